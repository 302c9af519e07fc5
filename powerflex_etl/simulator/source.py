"""What the server serves: blocks of rows per site and EVSE for a window, and its truth."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from powerflex_etl.simulator.config import SimulatorConfig
from powerflex_etl.simulator.data import DAY, Evse, map_sessions, site_evses
from powerflex_etl.simulator.encode import constants
from powerflex_etl.simulator.generate import COLUMNS, STATES, Block, generate, plan_sessions

MEASUREMENTS: tuple[str, ...] = tuple(COLUMNS)


def evses(config: SimulatorConfig) -> list[Evse]:
    """Every EVSE the simulator reports, site by site."""
    out: list[Evse] = []
    for site in config.sites:
        out += site_evses(site, config.id_overrides.get(site))
    return out


def blocks(config: SimulatorConfig, measurement: str, start: float, end: float) -> Iterator[Block]:
    """Rows for ``[start, end)``: per site, per EVSE, one block per UTC day, in time order."""
    if end <= start:
        return
    days = np.arange(np.floor(start / DAY) * DAY, end, DAY)
    for site in config.sites:
        mapped = map_sessions(site, config.seed, start, end)
        for evse in site_evses(site, config.id_overrides.get(site)):
            plan = plan_sessions(evse, mapped, config.sample_period_s)
            for d in days:
                yield generate(
                    measurement,
                    evse,
                    plan,
                    seed=config.seed,
                    period=config.sample_period_s,
                    start=max(start, float(d)),
                    end=min(end, float(d) + DAY),
                )


def truth(config: SimulatorConfig, measurement: str, start: float, end: float) -> pa.Table:
    """The rows a faithful answer holds, in source names and units; time as epoch seconds."""
    cols = COLUMNS[measurement]
    states = pa.array(STATES)
    parts: dict[str, list[pa.Array]] = {c: [] for c in cols}
    for b in blocks(config, measurement, start, end):
        n = len(b)
        if not n:
            continue
        consts = constants(b)
        for c in cols:
            if c == "time":
                parts[c].append(pa.array(b.time))
            elif c == "charging_state":
                parts[c].append(states.take(pa.array(b.state.astype(np.int32))))
            elif c in b.values:
                parts[c].append(pa.array(b.values[c], from_pandas=True))
            else:
                parts[c].append(pa.array([consts[c]]).take(pa.array(np.zeros(n, dtype=np.int32))))
    arrays = []
    for c in cols:
        typ = pa.string() if c in STRING_COLUMNS else pa.float64()
        arrays.append(pa.chunked_array(parts[c], type=typ).combine_chunks())
    return pa.table(arrays, names=list(cols))


STRING_COLUMNS = frozenset(
    {
        "acn_id",
        "acc_id",
        "acg_id",
        "acs_id",
        "evse_address",
        "evse_type",
        "phases",
        "space_number",
        "version",
        "charging_state",
    }
)


def sessions(config: SimulatorConfig, start: float, end: float) -> pa.Table:
    """The real sessions placed in ``[start, end)`` (overlapping it), one row each."""
    ts = pa.timestamp("us", tz="UTC")
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "evse_address", "acc_id", "space_number", "session_start", "session_end",
            "done_charging", "kwh_delivered", "energy_kwh_served", "session_id",
        )
    }  # fmt: skip
    for site in config.sites:
        mapped = map_sessions(site, config.seed, start, end)
        for evse in site_evses(site, config.id_overrides.get(site)):
            plan = plan_sessions(evse, mapped, config.sample_period_s)
            sel = np.nonzero(mapped.evse == evse.index)[0]
            for i, j in enumerate(sel):
                if not (plan.connect[i] < end and plan.disconnect[i] > start):
                    continue
                rows["evse_address"].append(evse.evse_address)
                rows["acc_id"].append(evse.acc_id)
                rows["space_number"].append(evse.space_number)
                rows["session_start"].append(round(plan.connect[i] * 1e6))
                rows["session_end"].append(round(plan.disconnect[i] * 1e6))
                rows["done_charging"].append(round(plan.done[i] * 1e6))
                rows["kwh_delivered"].append(float(plan.kwh[i]))
                # the telemetry reaches the real kWhDelivered exactly at done_charging
                rows["energy_kwh_served"].append(float(plan.kwh[i]))
                rows["session_id"].append(str(mapped.session_id[j]))
    types = {
        "session_start": ts,
        "session_end": ts,
        "done_charging": ts,
        "kwh_delivered": pa.float64(),
        "energy_kwh_served": pa.float64(),
    }
    return pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in rows.items()})
