"""`powerflex-etl demo`: a busy real week from the embedded simulator, the views, a report.

The story: the Caltech ACN garage (54 stations, Pasadena) in the week of Monday
11 March 2019, replayed from real ACN-Data sessions (dozens a weekday), with a March
target peak power set through the API a little below what the garage really drew, so
the report shows a month over its target. Every step is the product's own: the API
client sets the target, ``ingest`` and ``dcm`` write the lake, the report reads it.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer

#: The simulator's replay of March 2019 at Caltech (see simulator/build_data.py).
DEMO_SITE = "caltech_mar2019"
DEMO_ACC_ID = "0039"
DEMO_TZ = "America/Los_Angeles"
#: Monday 11 March 2019, local midnight: a busy real week (39-46 sessions a weekday).
DEMO_START = datetime(2019, 3, 11, tzinfo=ZoneInfo(DEMO_TZ))
#: The March target the demo sets (kW): below the week's real 15-minute peak.
DEMO_TARGETS: dict[str, int] = {"Mar": 90}


def sites_toml() -> str:
    """The demo's sites.toml (the Caltech garage in America/Los_Angeles)."""
    return resources.files(__package__).joinpath("data/demo_sites.toml").read_text("utf-8")


def write_sites(lake: str) -> Path | None:
    """Put the demo's sites.toml in ``lake`` unless the lake has one; the path written, or None."""
    path = Path(lake) / "sites.toml"
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sites_toml(), encoding="utf-8")
    return path


def runnable(argv0: str | None = None, which: str | None = None, cwd: str | None = None) -> str:
    """How to run this powerflex-etl again from this shell: the bare name when PATH finds this
    one, else its path (relative when under ``cwd``), else ``python -m powerflex_etl``."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    which = shutil.which("powerflex-etl") if which is None else which
    cwd = os.getcwd() if cwd is None else cwd
    if os.path.basename(argv0) != "powerflex-etl":
        return f"{sys.executable} -m powerflex_etl"
    exe = os.path.realpath(os.path.join(cwd, argv0))
    if which and os.path.realpath(which) == exe:
        return "powerflex-etl"
    rel = os.path.relpath(os.path.join(cwd, argv0), cwd)
    return rel if not rel.startswith("..") else os.path.abspath(os.path.join(cwd, argv0))


def run_demo(
    *,
    lake: str,
    days: int = 7,
    seed: int = 0,
    engine: str = "local",
    engine_options: dict[str, Any] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Replay ``days`` days from :data:`DEMO_START` into ``lake``; print and return the summary."""
    from powerflex_etl.api.client import PowerflexClient
    from powerflex_etl.ingest.dcm import run_snapshot
    from powerflex_etl.ingest.run import run
    from powerflex_etl.settings import Settings
    from powerflex_etl.simulator import SimulatorConfig, start_simulator

    config = SimulatorConfig(seed=seed, sites=(DEMO_SITE,))
    start, end = DEMO_START, DEMO_START + timedelta(days=days)
    wrote = write_sites(lake)
    with start_simulator(config) as sim:
        # the flow reads its settings from the environment, as a deployment would
        os.environ.update(
            POWERFLEX_BASE_URL=sim.url,
            POWERFLEX_USERNAME=config.username,
            POWERFLEX_PASSWORD=config.password,
            POWERFLEX_LAKE=lake,
        )
        s = Settings()
        typer.echo(
            f"simulator on {sim.url} (login {config.username} / {config.password}), replaying"
            f" the Caltech ACN garage, {_day(start)} .. {_day(end - timedelta(days=1))}"
            f" ({DEMO_TZ}), into {s.lake}" + (f"; wrote {wrote}" if wrote else ""),
            err=True,
        )
        with PowerflexClient(s) as client:
            client.set_target_peak_power(DEMO_ACC_ID, DEMO_TARGETS)
        report = run(
            s,
            start=start.isoformat(),
            end=end.isoformat(),
            measurements=None,
            engine=engine,
            workers=4,
            on_window=progress.update if progress is not None else None,
            engine_options=engine_options,
        )
        # the DCM targets, so monthly_peak sets each site's peak beside its target
        run_snapshot(s)
    summary = _summarize(lake, report, start, end)
    _print(summary)
    return summary


def _day(t: datetime) -> str:
    return t.strftime("%a %-d %b %Y")


def _summarize(lake: str, report: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    from powerflex_etl.catalog import connect

    con = connect(lake)
    out: dict[str, Any] = {
        "lake": os.path.abspath(lake),
        "run_id": report.get("run_id"),
        "range": [start.isoformat(), end.isoformat()],
        "tables": {},
    }
    try:
        for m, t in report["measurements"].items():
            (rows,) = con.execute(f"select count(*) from {m}").fetchone() or (0,)  # m: validated
            out["tables"][m] = {"rows_in_lake": rows, "rejects": t["rejects"]}
        n, kwh = con.execute(
            "select count(*), coalesce(sum(energy_kwh), 0) from charging_sessions"
            " where session_start >= ? and session_start < ?",
            [start, end],
        ).fetchone() or (0, 0)
        out["sessions"], out["energy_kwh"] = int(n), round(float(kwh), 1)
        busiest = con.execute(
            "select session_start_local::date as day, count(*) as n from charging_sessions"
            " where session_start >= ? and session_start < ? group by 1 order by 2 desc, 1 limit 1",
            [start, end],
        ).fetchone()
        out["busiest_day"] = [busiest[0].isoformat(), int(busiest[1])] if busiest else None
        out["monthly_peak"] = [
            {
                "acc_id": acc,
                "month": month,
                "peak_kw": peak,
                "at_local": at,
                "target_kw": target,
                "excess_kw": excess,
            }
            for acc, month, peak, at, target, excess in con.execute(
                "select acc_id, strftime(month_start_local, '%Y-%m'), round(peak_demand_kw, 1),"
                " strftime(timezone(?, peak_interval_start), '%a %-d %b %H:%M'),"
                " target_peak_power_kw, round(excess_kw, 1)"
                " from monthly_peak order by 1, 2",
                [DEMO_TZ],
            ).fetchall()
        ]
    finally:
        con.close()
    out["report"] = _try_report(lake, start, end)
    return out


def _try_report(lake: str, start: datetime, end: datetime) -> str | None:
    from powerflex_etl.report import build_report

    path = os.path.join(lake, "report.html")
    build_report(lake, path, start=start, end=end)
    return os.path.abspath(path)


def _print(summary: dict[str, Any]) -> None:
    typer.echo(f"lake: {summary['lake']}")
    for m, t in summary["tables"].items():
        typer.echo(f"  {m:<14} {t['rows_in_lake']:>10,} rows  {t['rejects']:>5} rejects")
    typer.echo(
        f"  {summary['sessions']:,} charging sessions, {summary['energy_kwh']:,} kWh delivered"
    )
    if summary.get("busiest_day"):
        day, n = summary["busiest_day"]
        typer.echo(f"  busiest day: {datetime.fromisoformat(day):%a %-d %b}, {n} sessions")
    for p in summary.get("monthly_peak", []):
        line = f"  site {p['acc_id']} {p['month']}: peak 15-min demand {p['peak_kw']} kW ({p['at_local']})"
        if p["target_kw"] is not None:
            verdict = (
                f"{p['excess_kw']} kW over"
                if p["excess_kw"] and p["excess_kw"] > 0
                else "within it"
            )
            line += f", target {p['target_kw']:.0f} kW: {verdict}"
        typer.echo(line)
    if summary.get("report"):
        typer.echo(f"  report: {summary['report']}")
    cmd = runnable()
    typer.echo(f'try: {cmd} query "select * from monthly_peak" --lake {summary["lake"]}')
    if cmd != "powerflex-etl" and not cmd.endswith("-m powerflex_etl"):
        activate = os.path.join(os.path.dirname(cmd), "activate")
        typer.echo(f"     (. {activate} puts powerflex-etl on PATH)")
