"""Proof on real data: do the marts find the real ACN sessions the simulator replayed?

``run_proof`` serves real sessions (seed 0 replays real dates) at a chosen sample period,
ingests ``[start, end)`` with the orchestrator's local engine into a fresh lake, and compares
``charging_sessions`` with the sessions the simulator placed there:

- every real session wholly inside the range must be found once, its start within two
  sample periods after the real plug-in, its energy within 0.5 % of what the telemetry
  shows (the largest ``energy_delivered_kwh`` between plug-in and unplug);
- no found session may start where nobody was plugged in;
- a real session crossing an edge of the range is found once and flagged cut.

How the found energy compares with the real ``kWhDelivered`` is reported, not required:
the telemetry shows the meter only at samples, so a session unplugged while still
charging ends below its real total.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import SecretStr

from powerflex_etl.simulator.config import SimulatorConfig
from powerflex_etl.simulator.runner import start_simulator

START_SAMPLES = 2  # a found session may start this many sample periods after the plug-in
ENERGY_TOLERANCE = 0.005  # relative, against the telemetry


@dataclass
class ProofFigures:
    """What the comparison found; ``ok`` says whether every requirement held."""

    start: datetime
    end: datetime
    sample_period_s: float
    real_sessions: int  # wholly inside the range
    real_cut: int  # crossing an edge of the range
    found_sessions: int  # every charging_sessions row
    recovered: int  # real sessions inside found exactly once, start and energy in tolerance
    found_cut_flagged: int  # real sessions crossing an edge, found once and flagged cut
    phantom: int  # found sessions starting where nobody was plugged in
    max_start_error_s: float
    max_energy_error_vs_telemetry_pct: float
    max_energy_error_vs_kwh_delivered_pct: float
    mean_energy_error_vs_kwh_delivered_pct: float
    within_half_pct_of_kwh_delivered: int
    energy_kwh_found: float  # sum over the recovered sessions
    kwh_delivered_real: float  # their real kWhDelivered, summed
    ct_response_points: int
    # the 15-minute load integrates power over time: it should land near what the meters count
    integrated_kwh: float  # sum of site_load_15min.energy_kwh
    metered_kwh: float  # sum of charging_sessions.energy_kwh
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every real session inside recovered, none invented, every cut one flagged."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain values (for printing or JSON)."""
        out = asdict(self)
        out["ok"] = self.ok
        return out


_COMPARE_SQL = """
with real as (
    select
        *,
        session_start >= $start and session_end <= $end as inside
    from real_sessions
    where session_start < $end and session_end > $start
),

telemetry as (
    -- what the meter showed while this vehicle was plugged in
    select
        real.session_id,
        max(ct.energy_delivered_kwh) as telemetry_kwh
    from real
    join ct_response as ct
        on ct.evse_address = real.evse_address
        and ct.time >= real.session_start
        and ct.time < real.session_end
    group by real.session_id
),

found as (
    select * from charging_sessions
),

pairs as (
    -- a found session belongs to the real one whose plug-in it starts in
    select
        real.session_id as real_id,
        found.session_id as found_id
    from real
    join found
        on found.evse_address = real.evse_address
        and found.session_start >= real.session_start
        and found.session_start < real.session_end
)

select
    real.session_id as real_id,
    real.evse_address,
    real.inside,
    real.session_start as real_start,
    real.kwh_delivered,
    telemetry.telemetry_kwh,
    found.session_id as found_id,
    found.session_start as found_start,
    found.energy_kwh,
    found.cut_at_start or found.cut_at_end as found_cut,
    epoch(found.session_start - real.session_start) as start_error_s,
    count(found.session_id) over (partition by real.session_id) as found_count
from real
left join telemetry on telemetry.session_id = real.session_id
left join pairs on pairs.real_id = real.session_id
left join found on found.session_id = pairs.found_id
order by real.evse_address, real.session_start
"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _pct(a: float, b: float) -> float:
    return abs(a - b) / b * 100.0 if b else (0.0 if a == b else float("inf"))


def compare(
    con: duckdb.DuckDBPyConnection,
    real: pa.Table,
    start: datetime,
    end: datetime,
    sample_period_s: float,
) -> ProofFigures:
    """Compare ``charging_sessions`` on ``con`` with the real sessions ``real`` (see module doc).

    ``real`` has the columns of ``RunningSimulator.sessions``; ``con`` holds the lake's views.
    """
    con.register("real_sessions", real)
    try:
        rows = _rows(con, _COMPARE_SQL, {"start": start, "end": end})
        (n_found,) = con.execute("select count(*) from charging_sessions").fetchone() or (0,)
        (points,) = con.execute("select count(*) from ct_response").fetchone() or (0,)
        (integrated,) = con.execute(
            "select coalesce(sum(energy_kwh), 0) from site_load_15min"
        ).fetchone() or (0.0,)
        (metered,) = con.execute(
            "select coalesce(sum(energy_kwh), 0) from charging_sessions"
        ).fetchone() or (0.0,)
        phantom = _rows(
            con,
            "select f.evse_address, f.session_start from charging_sessions f"
            " anti join real_sessions r on f.evse_address = r.evse_address"
            " and f.session_start >= r.session_start and f.session_start < r.session_end",
            {},
        )
    finally:
        con.unregister("real_sessions")
    problems = [f"phantom session at {p['evse_address']} {p['session_start']}" for p in phantom]
    inside = [r for r in rows if r["inside"]]
    cut = [r for r in rows if not r["inside"]]
    recovered = []
    for r in inside:
        label = f"real session {r['real_id']} ({r['evse_address']})"
        if r["found_count"] != 1:
            problems.append(f"{label} found {r['found_count']} times")
            continue
        if not 0 <= r["start_error_s"] <= START_SAMPLES * sample_period_s:
            problems.append(f"{label} starts {r['start_error_s']:.1f} s after the plug-in")
            continue
        if _pct(r["energy_kwh"], r["telemetry_kwh"]) > ENERGY_TOLERANCE * 100:
            problems.append(
                f"{label}: {r['energy_kwh']:.3f} kWh, the telemetry shows {r['telemetry_kwh']:.3f}"
            )
            continue
        recovered.append(r)
    flagged = 0
    for r in cut:
        # a session cut by the range may still leave no sample inside it (a few seconds in)
        if r["found_count"] > 1:
            problems.append(f"cut session {r['real_id']} found {r['found_count']} times")
        elif r["found_count"] == 1 and not r["found_cut"]:
            problems.append(f"cut session {r['real_id']} found but not flagged cut")
        elif r["found_count"] == 1:
            flagged += 1
    vs_real = [_pct(r["energy_kwh"], r["kwh_delivered"]) for r in recovered]
    return ProofFigures(
        start=start,
        end=end,
        sample_period_s=sample_period_s,
        real_sessions=len(inside),
        real_cut=len(cut),
        found_sessions=int(n_found),
        recovered=len(recovered),
        found_cut_flagged=flagged,
        phantom=len(phantom),
        max_start_error_s=max((r["start_error_s"] for r in recovered), default=0.0),
        max_energy_error_vs_telemetry_pct=max(
            (_pct(r["energy_kwh"], r["telemetry_kwh"]) for r in recovered), default=0.0
        ),
        max_energy_error_vs_kwh_delivered_pct=max(vs_real, default=0.0),
        mean_energy_error_vs_kwh_delivered_pct=sum(vs_real) / len(vs_real) if vs_real else 0.0,
        within_half_pct_of_kwh_delivered=sum(1 for v in vs_real if v <= 0.5),
        energy_kwh_found=sum(r["energy_kwh"] for r in recovered),
        kwh_delivered_real=sum(r["kwh_delivered"] for r in recovered),
        ct_response_points=int(points),
        integrated_kwh=float(integrated),
        metered_kwh=float(metered),
        problems=problems,
    )


def run_proof(
    start: datetime,
    end: datetime,
    *,
    sample_period_s: float,
    site: str = "caltech",
    lake: str | Path | None = None,
    workers: int = 2,
) -> ProofFigures:
    """Replay ``site``'s real sessions over ``[start, end)``, ingest them, compare (module doc).

    Uses a temporary lake unless ``lake`` is given (it should be empty: the comparison reads
    everything in it).
    """
    # imported here: the simulator package must not need the ingestion stack to serve
    from powerflex_etl.catalog import connect
    from powerflex_etl.ingest.run import LocalEngine
    from powerflex_etl.settings import Settings

    config = SimulatorConfig(seed=0, sample_period_s=sample_period_s, sites=(site,))
    with tempfile.TemporaryDirectory() as tmp, start_simulator(config) as sim:
        s = Settings(
            base_url=sim.url,
            username=config.username,
            password=SecretStr(config.password),
            lake=str(lake or Path(tmp) / "lake"),
        )
        LocalEngine().ingest(
            s, start=start.isoformat(), end=end.isoformat(), measurements=None, workers=workers
        )
        con = connect(s.lake)
        try:
            return compare(con, sim.sessions(start, end), start, end, sample_period_s)
        finally:
            con.close()
