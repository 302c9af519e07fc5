"""`powerflex-etl`: a thin Typer layer; every command's logic lives in the library.

Imports are lazy so `powerflex-etl --help` and `query` start fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from powerflex_etl.cli.api import api_app
from powerflex_etl.errors import ConfigError, PowerflexError

app = typer.Typer(
    help="PowerFlex EV-charging telemetry into a Parquet lake with DuckDB views.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(api_app, name="api")
state_app = typer.Typer(
    help="Watermarks and committed windows under <lake>/_state.", no_args_is_help=True
)
app.add_typer(state_app, name="state")


class Engine(StrEnum):
    prefect = "prefect"
    local = "local"


class Executor(StrEnum):
    threads = "threads"
    dask = "dask"


class Fmt(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


LakeOpt = Annotated[
    str | None,
    typer.Option(
        "--lake", help="Lake directory or s3://bucket/prefix (POWERFLEX_LAKE; default ./lake)."
    ),
]
MeasOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--measurement",
        "-m",
        help="ct_response, evse_request or evse_response; repeatable (default: all).",
    ),
]
StartOpt = Annotated[
    str | None, typer.Option("--start", help="ISO date/datetime, UTC unless it says otherwise.")
]
EndOpt = Annotated[
    str | None, typer.Option("--end", help="ISO date/datetime, exclusive (default: now).")
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="API base URL (POWERFLEX_BASE_URL).")
]
WindowOpt = Annotated[
    float | None,
    typer.Option(
        "--window-hours", help="Window size in hours (POWERFLEX_WINDOW_HOURS; default 6)."
    ),
]


def _settings(**overrides: Any) -> Any:
    from powerflex_etl.lake.url import LakeUrl
    from powerflex_etl.settings import Settings

    try:
        s = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as err:  # pydantic's ValidationError: one line per bad field
        raise ConfigError(
            f"bad settings: {err}".splitlines()[0] + " " + " ".join(str(err).splitlines()[1:3])
        )
    # every command here reads or writes a lake: a path that cannot hold one fails first
    LakeUrl.parse(s.lake).check_location()
    return s


def _require_api(s: Any) -> None:
    """Commands that call the API refuse to start without its address (no placeholder)."""
    if not s.base_url:
        raise ConfigError(
            "no API base URL is configured",
            hint="set POWERFLEX_BASE_URL or pass --base-url, e.g. https://<host>:9443",
        )


def _check_workers(workers: int) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")


def _engine_name(engine: Engine | None) -> str:
    """The engine named (--engine, POWERFLEX_ENGINE), else local unless PREFECT_API_URL is set."""
    from powerflex_etl.ingest.engine import default_engine

    return engine.value if engine is not None else default_engine()


def _engine_options(name: str, verbose: bool) -> dict[str, Any]:
    """Prefect's console output goes to a log file unless --verbose (the last line is ours)."""
    if name != "prefect" or verbose:
        return {}
    from pathlib import Path

    # beside the catalogs of object-store lakes: a per-user cache, never the lake itself
    return {"log_file": str(Path.home() / ".cache" / "powerflex-etl" / "prefect.log")}


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("powerflex_etl")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    # Prefect's own console chatter only when asked for
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command()
def ingest(
    start: StartOpt = None,
    end: EndOpt = None,
    measurement: MeasOpt = None,
    lake: LakeOpt = None,
    base_url: BaseUrlOpt = None,
    window_hours: WindowOpt = None,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="prefect: run the Prefect flow; local: the same steps without Prefect "
            "(default: local, or prefect when PREFECT_API_URL is set).",
            envvar="POWERFLEX_ENGINE",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Windows in flight at once.")] = 4,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Ingest measurements over [--start, --end); without --start, incrementally from the watermark."""
    _setup_logging(verbose)
    _check_workers(workers)
    s = _settings(lake=lake, base_url=base_url, window_hours=window_hours)
    _require_api(s)
    from powerflex_etl.ingest.run import run

    name = _engine_name(engine)
    report = run(
        s,
        start=start,
        end=end,
        measurements=measurement,
        engine=name,
        workers=workers,
        engine_options=_engine_options(name, verbose),
    )
    _echo_json(report)


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="ISO date/datetime (UTC).")],
    end: Annotated[str, typer.Option("--end", help="ISO date/datetime, exclusive.")],
    measurement: MeasOpt = None,
    workers: Annotated[
        int, typer.Option(help="Windows in flight at once (memory stays flat).")
    ] = 4,
    lake: LakeOpt = None,
    base_url: BaseUrlOpt = None,
    window_hours: WindowOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the windows and an estimate of points; fetch nothing."
        ),
    ] = False,
    redo: Annotated[
        bool, typer.Option("--redo", help="Also redo windows already committed.")
    ] = False,
    executor: Annotated[
        Executor, typer.Option(help="threads: a local thread pool; dask: Prefect's DaskTaskRunner.")
    ] = Executor.threads,
    dask_address: Annotated[
        str | None,
        typer.Option(help="Scheduler address of an existing Dask cluster (else a local one)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Ingest a long range in parallel windows; resumes without redoing committed windows."""
    _setup_logging(verbose)
    _check_workers(workers)
    s = _settings(lake=lake, base_url=base_url, window_hours=window_hours)
    if not dry_run:
        _require_api(s)
    from powerflex_etl.cli.progress import BackfillProgress
    from powerflex_etl.ingest.run import backfill as run_backfill

    with BackfillProgress() as progress:
        report = run_backfill(
            s,
            start=start,
            end=end,
            measurements=measurement,
            workers=workers,
            dry_run=dry_run,
            redo=redo,
            executor=executor.value,
            dask_address=dask_address,
            on_window=progress.update,
            engine_options=_engine_options("prefect", verbose),
        )
    _echo_json(report)


@app.command()
def query(
    sql: Annotated[
        str, typer.Argument(help="SQL over the views (ct_response, charging_sessions, ...).")
    ],
    format: Annotated[
        Fmt, typer.Option("--format", "-f", help="table, csv (header + rows) or json.")
    ] = Fmt.table,
    lake: LakeOpt = None,
) -> None:
    """Run SQL on the lake's views (builds the catalog if missing; opens it read-only)."""
    s = _settings(lake=lake)
    from powerflex_etl.catalog import connect
    from powerflex_etl.catalog.query import run_query
    from powerflex_etl.ingest.upkeep import ensure_current, open_lake

    ensure_current(open_lake(s))
    con = connect(s.lake, catalog_path=s.catalog_path, sites_file=s.sites_file)
    try:
        out = run_query(con, sql, format.value)
    finally:
        con.close()
    sys.stdout.write(out if out.endswith("\n") else out + "\n")


@app.command()
def demo(
    lake: LakeOpt = None,
    days: Annotated[int, typer.Option(help="Days of telemetry to ingest.")] = 3,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="Run through Prefect or without it (default: local, or prefect when "
            "PREFECT_API_URL is set).",
            envvar="POWERFLEX_ENGINE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the embedded simulator, ingest a few days of everything, build the views, summarize."""
    _setup_logging(False)
    from powerflex_etl.cli.demo import run_demo
    from powerflex_etl.lake.url import LakeUrl

    lake = lake or os.environ.get("POWERFLEX_LAKE") or "./lake"
    LakeUrl.parse(lake).check_location()
    name = _engine_name(engine)
    run_demo(
        lake=lake, days=days, seed=seed, engine=name, engine_options=_engine_options(name, False)
    )


@app.command()
def simulator(
    port: Annotated[int, typer.Option(help="TCP port (0 = a free one).")] = 9443,
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed for the replayed data.")] = 0,
    sample_period: Annotated[
        float, typer.Option(help="ct_response sample period in seconds.")
    ] = 60.0,
) -> None:
    """Serve the PowerFlex API simulator alone (Ctrl-C to stop)."""
    from powerflex_etl.simulator import SimulatorConfig, serve

    serve(SimulatorConfig(seed=seed, sample_period_s=sample_period), host=host, port=port)


@app.command()
def dcm(
    acc_id: Annotated[
        list[str] | None,
        typer.Option("--acc-id", help="Site id, repeatable (default: every acc_id in the lake)."),
    ] = None,
    lake: LakeOpt = None,
    base_url: BaseUrlOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Snapshot the DCM endpoints (external signals, target peak power) into the lake."""
    _setup_logging(verbose)
    s = _settings(lake=lake, base_url=base_url)
    _require_api(s)
    from powerflex_etl.ingest.dcm import run_snapshot

    _echo_json(run_snapshot(s, acc_id or None))


@app.command()
def report(
    out: Annotated[str, typer.Option("--out", help="HTML file to write.")] = "report.html",
    start: StartOpt = None,
    end: EndOpt = None,
    lake: LakeOpt = None,
) -> None:
    """Write one self-contained HTML report (energy, sessions, site load vs target, utilization)."""
    s = _settings(lake=lake)
    from powerflex_etl.report import build_report
    from powerflex_etl.windows import parse_time

    summary = build_report(
        s.lake,
        out,
        start=parse_time(start, name="--start") if start else None,
        end=parse_time(end, name="--end") if end else None,
        catalog_path=s.catalog_path,
        sites_file=s.sites_file,
    )
    _echo_json(summary.to_dict())


@app.command()
def compact(
    measurement: MeasOpt = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Only partitions dated before this day (YYYY-MM-DD)."),
    ] = None,
    lake: LakeOpt = None,
) -> None:
    """Rewrite partitions holding many small files into fewer, atomically; rows unchanged."""
    from datetime import date

    s = _settings(lake=lake)
    try:
        day = date.fromisoformat(before) if before else None
    except ValueError:
        raise ConfigError(f"--before {before!r} is not a date; use YYYY-MM-DD") from None
    from powerflex_etl.ingest.housekeeping import compact_lake

    summary = compact_lake(s, measurement or None, day)
    for line in summary.lines():
        typer.echo(line)


@state_app.command("show")
def state_show(measurement: MeasOpt = None, lake: LakeOpt = None) -> None:
    """Watermarks, last committed window and rows per measurement."""
    s = _settings(lake=lake)
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake

    summary = State(Lake(s.lake)).summary()
    if measurement:
        summary = {k: v for k, v in summary.items() if k in measurement}
    _echo_json(summary)


@state_app.command("reset")
def state_reset(
    measurement: MeasOpt = None,
    lake: LakeOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Forget watermarks and window records (never the data): the next run starts afresh."""
    s = _settings(lake=lake)
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.schemas import check_measurements

    targets = check_measurements(measurement)
    if not yes and not typer.confirm(f"reset state of {', '.join(targets)} in {s.lake}?"):
        raise typer.Abort()
    st = State(Lake(s.lake))
    for m in targets:
        st.reset(m)
    typer.echo(f"reset: {', '.join(targets)}")


def main() -> None:
    """Console entry point: any failure is one line on stderr (the last line) and a non-zero exit."""
    try:
        rv = app(standalone_mode=False)
    except PowerflexError as err:
        _die(err.one_line())
    except typer.Abort:
        _die("aborted", 130)
    except typer.TyperException as err:  # typer's own click: usage errors, bad parameters
        _usage_error(err)
    except KeyboardInterrupt:
        _die("interrupted", 130)
    except Exception as err:  # a bug, or a dependency's own error: still one line
        _unexpected(err)
    sys.exit(rv if isinstance(rv, int) else 0)


def _usage_error(err: typer.TyperException) -> None:
    """Usage and where help is, then the one error line (help alone when no arguments)."""
    code = int(getattr(err, "exit_code", 2))
    ctx: Any = getattr(err, "ctx", None)
    if type(err).__name__ == "NoArgsIsHelpError":
        show: Any = err.show  # type: ignore[attr-defined]
        show()
        sys.exit(code)
    if ctx is not None:
        sys.stderr.write(f"{ctx.get_usage()}\n")
        message = f"{err.format_message()} (try '{ctx.command_path} --help')"
    else:
        message = err.format_message()
    _die(message, code)


def _unexpected(err: Exception) -> None:
    """Not one of the library's errors: a bug. The traceback only with --verbose."""
    if "--verbose" in sys.argv or "-v" in sys.argv:
        import traceback

        traceback.print_exception(err)
    text = " ".join(str(err).split())[:300]
    _die(
        f"unexpected {type(err).__name__}: {text} (a bug: rerun with --verbose for the "
        "traceback and report it)"
    )


def _die(message: str, code: int = 1) -> None:
    from powerflex_etl.errors import redact

    sys.stdout.flush()
    sys.stderr.write(f"powerflex-etl: error: {redact(message)}\n")
    sys.stderr.flush()
    sys.exit(code)
