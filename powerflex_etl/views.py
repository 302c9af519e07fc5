"""DuckDB: applies ``sql/staging`` then ``sql/marts`` into the lake's catalog ``powerflex.duckdb``.

INTERFACE (stub; being implemented). See CONTRACT §3-§4 and DESIGN.md "Views".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


def build_catalog(lake: str, *, catalog_path: str | None = None) -> Path:
    """(Re)build the catalog in a temporary file and rename it into place. Returns its path."""
    raise NotImplementedError


def connect(
    lake: str | None = None, *, catalog_path: str | None = None, **_: Any
) -> duckdb.DuckDBPyConnection:
    """A read-only connection with every view; builds the catalog first if it is missing."""
    raise NotImplementedError
