"""`powerflex-etl`: a thin Typer layer; every command's logic lives in the library or flows/."""

from __future__ import annotations

import sys

import typer

from .cli_api import api_app
from .errors import PowerflexError

app = typer.Typer(
    help="PowerFlex EV-charging telemetry into a Parquet lake with DuckDB views.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(api_app, name="api")


def main() -> None:
    """Console entry point: a PowerflexError becomes one line on stderr and exit 1."""
    try:
        app(standalone_mode=False)
    except PowerflexError as err:
        print(f"powerflex-etl: error: {err.one_line()}", file=sys.stderr, flush=True)
        sys.exit(1)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        print("powerflex-etl: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("powerflex-etl: interrupted", file=sys.stderr)
        sys.exit(130)
