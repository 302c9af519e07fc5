"""`powerflex-etl marts ...`: the derived tables the analytic views read.

Every write keeps them current on its own; these commands are for after a SQL change, a
repair, or a look at how fresh they are.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from powerflex_etl.cli.help import epilog

marts_app = typer.Typer(
    help="The derived tables behind the analytic views (sessions, 15-minute load, coverage).",
    epilog=epilog("marts status", "marts rebuild --lake ./lake"),
    no_args_is_help=True,
    rich_markup_mode=None,
)

LakeOpt = Annotated[
    str | None,
    typer.Option(
        "--lake", help="Lake directory or s3://bucket/prefix (POWERFLEX_LAKE; default ./lake)."
    ),
]


@marts_app.command(
    "rebuild", epilog=epilog("marts rebuild", "marts rebuild --lake s3://bucket/lake")
)
def rebuild(lake: LakeOpt = None) -> None:
    """Recompute every derived table from the raw lake, then rebuild the catalog.

    Waits for running writes (it takes every measurement's lock); the old tables stay
    readable until the new ones are swapped in at once.
    """
    from powerflex_etl.cli.app import _settings
    from powerflex_etl.ingest.upkeep import after_write

    s = _settings(lake=lake)
    summary, catalog = after_write(s, rebuild=True)
    typer.echo(summary.line())
    for table, rows in summary.rows.items():
        typer.echo(f"  {table}: {rows:,} row(s)")
    typer.echo(f"catalog: {catalog}")


@marts_app.command("status", epilog=epilog("marts status", "marts status --json"))
def status(
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """How fresh each derived table is: rows, periods, last refresh, pending commits.

    Changes nothing and takes no lock. Exit status 0 whatever the state.
    """
    from powerflex_etl.cli.app import _settings
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.marts.status import status as marts_status

    s = _settings(lake=lake)
    st = marts_status(Lake(s.lake))
    if as_json:
        typer.echo(json.dumps(st.to_dict(), indent=2))
        return
    typer.echo(f"marts of {st.lake}: {st.advice()}")
    if st.refreshed_at:
        typer.echo(f"  last refreshed {st.refreshed_at} (generation {st.generation})")
    for m, n in st.pending_slots.items():
        typer.echo(f"  pending: {m}: {n} slot(s)")
    for table, t in st.tables.items():
        span = f"{t['first_period']} .. {t['last_period']}" if t["files"] else "no data"
        typer.echo(f"  {table:<16} {t['rows']:>12,} row(s)  {t['files']:>4} file(s)  {span}")
