"""`powerflex-etl api ...`: one subcommand per PowerFlex endpoint (stub; being implemented)."""

from __future__ import annotations

import typer

api_app = typer.Typer(
    help="Call the PowerFlex API directly; answers are printed as JSON.", no_args_is_help=True
)
