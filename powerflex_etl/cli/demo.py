"""`powerflex-etl demo`: the embedded simulator, a few days of everything, the views, a summary."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import typer


def run_demo(
    *,
    lake: str,
    days: int = 3,
    seed: int = 1,
    engine: str | None = None,
    engine_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ingest ``days`` whole UTC days (ending today 00:00) from a fresh simulator into ``lake``."""
    from powerflex_etl.ingest.run import run
    from powerflex_etl.settings import Settings
    from powerflex_etl.simulator import SimulatorConfig, start_simulator

    config = SimulatorConfig(seed=seed)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
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
            f"simulator on {sim.url}; ingesting {start:%Y-%m-%d} .. {end:%Y-%m-%d} into {s.lake}",
            err=True,
        )
        report = run(
            s,
            start=start.isoformat(),
            end=end.isoformat(),
            measurements=None,
            engine=engine,
            workers=4,
            engine_options=engine_options,
        )
        # the DCM targets, so monthly_peak can set each site's peak beside its target
        from powerflex_etl.ingest.dcm import run_snapshot

        run_snapshot(s)
    summary = _summarize(lake, report)
    _print(summary)
    return summary


def _summarize(lake: str, report: dict[str, Any]) -> dict[str, Any]:
    from powerflex_etl.catalog import connect

    con = connect(lake)
    out: dict[str, Any] = {
        "lake": os.path.abspath(lake),
        "run_id": report.get("run_id"),
        "tables": {},
    }
    try:
        for m, t in report["measurements"].items():
            (rows,) = con.execute(f"select count(*) from {m}").fetchone() or (
                0,
            )  # m is a validated name
            out["tables"][m] = {
                "rows_in_lake": rows,
                "rejects": t["rejects"],
                "unit_check": t.get("unit_check"),
            }
        views = {
            r[0]
            for r in con.execute(
                "select view_name from duckdb_views() where not internal"
            ).fetchall()
        }
        if "charging_sessions" in views:
            n, kwh = con.execute(
                "select count(*), coalesce(sum(energy_kwh), 0) from charging_sessions"
            ).fetchone() or (0, 0)
            out["sessions"] = int(n)
            out["energy_kwh"] = round(float(kwh), 1)
        if "monthly_peak" in views:
            out["monthly_peak"] = con.execute(
                "select acc_id, strftime(month_start_local, '%Y-%m') as month, round(peak_demand_kw, 1) as peak_kw, "
                "target_peak_power_kw as target_kw from monthly_peak order by 1, 2"
            ).fetchall()
    finally:
        con.close()
    out["report"] = _try_report(lake)
    return out


def _try_report(lake: str) -> str | None:
    try:
        from powerflex_etl.report import build_report
    except ImportError:
        return None
    path = os.path.join(lake, "report.html")
    build_report(lake, path, start=None, end=None)
    return os.path.abspath(path)


def _print(summary: dict[str, Any]) -> None:
    typer.echo(f"lake: {summary['lake']}")
    for m, t in summary["tables"].items():
        typer.echo(f"  {m:<14} {t['rows_in_lake']:>10,} rows  {t['rejects']:>5} rejects")
    if "sessions" in summary:
        typer.echo(
            f"  charging sessions: {summary['sessions']:,}  energy: {summary['energy_kwh']:,} kWh"
        )
    for acc, month, peak, target in summary.get("monthly_peak", []):
        tgt = f" (target {target} kW)" if target is not None else ""
        typer.echo(f"  site {acc} {month}: peak 15-min demand {peak} kW{tgt}")
    if summary.get("report"):
        typer.echo(f"  report: {summary['report']}")
    typer.echo(
        f'try: powerflex-etl query "select * from ct_response limit 5" --lake {summary["lake"]}'
    )
