"""`powerflex-etl`: a thin Typer layer; every command's logic lives in the library.

Imports are lazy so `powerflex-etl --help` and `query` start fast. Help is click's plain
format (flags without ``<bool>``); every command's help ends in examples (``cli/help.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from powerflex_etl.cli.api import api_app
from powerflex_etl.cli.help import epilog
from powerflex_etl.cli.marts import marts_app
from powerflex_etl.errors import ConfigError, PowerflexError

app = typer.Typer(
    help="PowerFlex EV-charging telemetry into a Parquet lake with DuckDB views.",
    epilog=epilog(
        "demo",
        "ingest --start 2024-06-01 --end 2024-06-02",
        'query "select * from charging_sessions limit 5"',
        notes=["Every command has --help, with examples."],
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(api_app, name="api")
state_app = typer.Typer(
    help="Watermarks and committed windows under <lake>/_state.",
    epilog=epilog("state show", "state reset -m ct_response --yes"),
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(state_app, name="state")
app.add_typer(marts_app, name="marts")


def _print_version(value: bool) -> None:
    if value:
        from powerflex_etl import __version__

        typer.echo(f"powerflex-etl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


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
        "--lake",
        metavar="L",
        help="Lake directory or s3://bucket/prefix (POWERFLEX_LAKE; default ./lake).",
    ),
]
MeasOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--measurement",
        "-m",
        metavar="M",
        help="ct_response, evse_request or evse_response; repeatable (default: all).",
    ),
]
StartOpt = Annotated[
    str | None,
    typer.Option("--start", metavar="T", help="ISO date/datetime, UTC unless it says otherwise."),
]
EndOpt = Annotated[
    str | None,
    typer.Option("--end", metavar="T", help="ISO date/datetime, exclusive (default: now)."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", metavar="URL", help="API base URL (POWERFLEX_BASE_URL)."),
]
WindowOpt = Annotated[
    float | None,
    typer.Option(
        "--window-hours",
        metavar="H",
        help="Window size in hours (POWERFLEX_WINDOW_HOURS; default 6).",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the full run report as JSON instead of the summary."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


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


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _progress(label: str) -> tuple[Any, Any]:
    """(console or None, RunProgress): logging goes through the console the bar is drawn on."""
    from powerflex_etl.cli.progress import RunProgress, terminal

    console = terminal()
    return console, RunProgress(label, console=console)


@app.command(
    short_help="Ingest [--start, --end), or incrementally from the watermark.",
    epilog=epilog(
        "ingest --start 2024-06-01 --end 2024-06-02",
        "ingest    # incremental: from each watermark minus the lookback, to now",
        "ingest -m ct_response --start 2024-06-01T06:00 --end 2024-06-01T12:00 --json",
        credentials=True,
    ),
)
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
    workers: Annotated[int, typer.Option(metavar="N", help="Windows in flight at once.")] = 4,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Ingest measurements over [--start, --end); without --start, incrementally from the watermark."""
    from powerflex_etl.cli.progress import setup_logging

    _check_workers(workers)
    console, progress = _progress("ingest")
    setup_logging(verbose, console)
    s = _settings(lake=lake, base_url=base_url, window_hours=window_hours)
    _require_api(s)
    from powerflex_etl.cli.memory import pandas_kept_out
    from powerflex_etl.ingest.run import run

    name = _engine_name(engine)
    with progress, pandas_kept_out():
        report = run(
            s,
            start=start,
            end=end,
            measurements=measurement,
            engine=name,
            workers=workers,
            on_window=progress.update,
            engine_options=_engine_options(name, verbose),
        )
    _finish(report, "ingest", as_json)


def _finish(report: dict[str, Any], command: str, as_json: bool) -> None:
    from powerflex_etl.cli.summary import run_summary

    if as_json:
        _echo_json(report)
    else:
        sys.stdout.write(run_summary(report, command))


@app.command(
    short_help="Ingest a long range in parallel windows; resumable.",
    epilog=epilog(
        "backfill --start 2024-01-01 --end 2024-06-01 --workers 4",
        "backfill --start 2024-01-01 --end 2024-06-01 --dry-run",
        notes=[
            "Interrupted? Run the same command again: committed windows are skipped.\n"
            "A bar on a terminal; elsewhere a [n/N] line on stderr about every 5% of windows."
        ],
        credentials=True,
    ),
)
def backfill(
    start: Annotated[str, typer.Option("--start", metavar="T", help="ISO date/datetime (UTC).")],
    end: Annotated[str, typer.Option("--end", metavar="T", help="ISO date/datetime, exclusive.")],
    measurement: MeasOpt = None,
    workers: Annotated[
        int, typer.Option(metavar="N", help="Windows in flight at once (memory stays flat).")
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
        typer.Option(
            metavar="ADDR", help="Scheduler address of an existing Dask cluster (else a local one)."
        ),
    ] = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Ingest a long range in parallel windows; resumes without redoing committed windows."""
    from powerflex_etl.cli.progress import setup_logging

    _check_workers(workers)
    console, progress = _progress("backfill")
    setup_logging(verbose, console)
    s = _settings(lake=lake, base_url=base_url, window_hours=window_hours)
    if not dry_run:
        _require_api(s)
    from powerflex_etl.cli.memory import pandas_kept_out
    from powerflex_etl.ingest.run import backfill as run_backfill

    with progress, pandas_kept_out():
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
    if dry_run and not as_json:
        from powerflex_etl.cli.summary import dry_run_summary

        sys.stdout.write(dry_run_summary(report))
    else:
        _finish(report, "backfill", as_json)


class _QueryCommand(TyperCommand):
    """`query`: its help lists the views, read from sql/ only when help is shown."""

    # typer vendors its own click: its Context and HelpFormatter are not the installed click's
    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from powerflex_etl.cli.help import views_help

        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(views_help())


@app.command(
    short_help="Run SQL on the lake's views (--list shows them).",
    cls=_QueryCommand,
    epilog=epilog(
        'query "select acc_id, count(*) as n from ct_response group by 1" --format csv',
        'query "select * from monthly_peak" --format json',
        "query --list",
        notes=[
            "Floats are rounded in --format table, exact in csv and json. Times are UTC\n"
            "(timestamptz); *_local columns are in each site's zone from sites.toml."
        ],
    ),
)
def query(
    sql: Annotated[
        str | None,
        typer.Argument(
            metavar="SQL",
            help="SQL over the views (ct_response, charging_sessions, ...).",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        Fmt, typer.Option("--format", "-f", help="table, csv (header + rows) or json.")
    ] = Fmt.table,
    list_views: Annotated[
        bool, typer.Option("--list", help="List the views and what each holds, then exit.")
    ] = False,
    lake: LakeOpt = None,
) -> None:
    """Run SQL on the lake's views (builds the catalog if missing; opens it read-only)."""
    if list_views:
        from powerflex_etl.cli.help import list_views as views_text

        sys.stdout.write(views_text())
        return
    if sql is None:
        raise ConfigError(
            "query needs SQL", hint='e.g. powerflex-etl query "select 1"; --list shows the views'
        )
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


@app.command(
    short_help="Replay a busy real week into a lake; summary and report.",
    epilog=epilog(
        "demo",
        "demo --lake /tmp/demo-lake --days 2",
        notes=["No account or network needed: the simulator runs in this process."],
    ),
)
def demo(
    lake: LakeOpt = None,
    days: Annotated[
        int, typer.Option(metavar="N", help="Days to replay from Monday 11 March 2019.")
    ] = 7,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Simulator seed (0 replays the real days).")
    ] = 0,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="local (default, no Prefect server to start; prefect when PREFECT_API_URL is "
            "set) or prefect (a recorded flow run).",
            envvar="POWERFLEX_ENGINE",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Replay a busy real week of the Caltech ACN garage into a lake: views, summary, report.

    The embedded simulator serves real ACN-Data sessions of March 2019 (dozens a weekday);
    the demo writes a sites.toml (America/Los_Angeles) into the lake, sets a March target
    peak power through the API, ingests every measurement, snapshots the DCM endpoints and
    writes <lake>/report.html.
    """
    from powerflex_etl.cli.progress import setup_logging

    console, progress = _progress("demo")
    setup_logging(verbose, console)
    if not verbose:
        # the story, not every window: the bar (or [n/N] lines) says how far it is
        logging.getLogger("powerflex_etl").setLevel(logging.WARNING)
        logging.getLogger("powerflex_etl.cli").setLevel(logging.INFO)
    from powerflex_etl.cli.demo import run_demo
    from powerflex_etl.lake.url import LakeUrl

    lake = lake or os.environ.get("POWERFLEX_LAKE") or "./lake"
    LakeUrl.parse(lake).check_location()
    name = _engine_name(engine)
    with progress:
        run_demo(
            lake=lake,
            days=days,
            seed=seed,
            engine=name,
            engine_options=_engine_options(name, verbose),
            progress=progress,
        )


@app.command(
    epilog=epilog(
        "simulator --port 9443",
        "simulator --port 0 --seed 1    # any free port; the URL is printed",
        notes=[
            "It prints its URL and login (demo / demo-password) on stderr; point the\n"
            "other commands at it with POWERFLEX_BASE_URL, POWERFLEX_USERNAME, POWERFLEX_PASSWORD."
        ],
    )
)
def simulator(
    port: Annotated[int, typer.Option(metavar="P", help="TCP port (0 = a free one).")] = 9443,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    seed: Annotated[int, typer.Option(metavar="N", help="Seed for the replayed data.")] = 0,
    sample_period: Annotated[
        float, typer.Option(metavar="S", help="ct_response sample period in seconds.")
    ] = 60.0,
) -> None:
    """Serve the PowerFlex API simulator alone (Ctrl-C to stop)."""
    from powerflex_etl.simulator import SimulatorConfig, serve

    config = SimulatorConfig(seed=seed, sample_period_s=sample_period)
    serve(config, host=host, port=port, on_start=lambda url: _simulator_banner(url, config))


def _simulator_banner(url: str, config: Any) -> None:
    """Where the simulator listens and how to log in, with the lines that point a shell at it."""
    typer.echo(
        f"PowerFlex API simulator on {url}; login {config.username} / {config.password}"
        " (Ctrl-C to stop)\n"
        f"  export POWERFLEX_BASE_URL={url} POWERFLEX_USERNAME={config.username}"
        f" POWERFLEX_PASSWORD={config.password}",
        err=True,
    )
    sys.stderr.flush()


@app.command(
    short_help="Snapshot DCM signals and monthly targets into the lake.",
    epilog=epilog("dcm", "dcm --acc-id 0039", credentials=True),
)
def dcm(
    acc_id: Annotated[
        list[str] | None,
        typer.Option(
            "--acc-id",
            metavar="ID",
            help="Site id, repeatable (default: every acc_id in the lake).",
        ),
    ] = None,
    lake: LakeOpt = None,
    base_url: BaseUrlOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Snapshot the DCM endpoints (external signals, target peak power) into the lake."""
    from powerflex_etl.cli.progress import setup_logging

    setup_logging(verbose)
    s = _settings(lake=lake, base_url=base_url)
    _require_api(s)
    from powerflex_etl.ingest.dcm import run_snapshot

    _echo_json(run_snapshot(s, acc_id or None))


@app.command(
    short_help="Write a self-contained HTML report.",
    epilog=epilog(
        "report --out report.html",
        "report --start 2024-05-01 --end 2024-06-01 --out may.html",
    ),
)
def report(
    out: Annotated[
        str, typer.Option("--out", metavar="FILE", help="HTML file to write.")
    ] = "report.html",
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


@app.command(
    short_help="Fold small files into fewer; rows unchanged.",
    epilog=epilog("compact --before 2024-05-01", "compact -m ct_response"),
)
def compact(
    measurement: MeasOpt = None,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            metavar="DAY",
            help="Only partitions dated before this day (YYYY-MM-DD).",
        ),
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


@state_app.command("show", epilog=epilog("state show", "state show -m ct_response"))
def state_show(measurement: MeasOpt = None, lake: LakeOpt = None) -> None:
    """Watermarks, last committed window and rows per measurement."""
    s = _settings(lake=lake)
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake

    summary = State(Lake(s.lake)).summary()
    if measurement:
        summary = {k: v for k, v in summary.items() if k in measurement}
    _echo_json(summary)


@state_app.command(
    "reset", epilog=epilog("state reset -m ct_response --yes", "state reset --lake /data/lake")
)
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
    from powerflex_etl.cli.memory import settle

    settle()  # the application's allocator settings, before pyarrow and any thread
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
