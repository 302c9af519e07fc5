"""`powerflex-etl`: the command line (Typer), a thin layer over the library."""

from powerflex_etl.cli.app import app, main

__all__ = ["app", "main"]
