"""powerflex-etl: PowerFlex EV-charging telemetry into a Parquet lake with DuckDB views.

Nothing heavy is imported here: ``import powerflex_etl`` stays cheap for the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import duckdb
    import pandas as pd


def connect(lake: str | None = None, **kwargs: Any) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with the lake's views (builds the catalog if missing).

    Without ``lake``, the lake, catalog path and sites file come from ``POWERFLEX_*`` settings.
    """
    from powerflex_etl.catalog import connect as _connect
    from powerflex_etl.ingest.upkeep import ensure_current
    from powerflex_etl.lake.store import Lake

    if lake is None:
        from powerflex_etl.settings import Settings

        s = Settings()
        kwargs.setdefault("catalog_path", s.catalog_path)
        kwargs.setdefault("sites_file", s.sites_file)
        lake = s.lake
    ensure_current(Lake(lake, kwargs.get("storage_options")))
    return _connect(lake, **kwargs)


def read(
    view: str,
    start: datetime | date | str | None = None,
    end: datetime | date | str | None = None,
    *,
    lake: str | None = None,
    columns: Sequence[str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """One view of the lake as a pandas DataFrame with Arrow-backed dtypes.

    ``start <= t < end`` on the view's natural time column (``time``, ``session_start``,
    ``interval_start``, ...; a local day or month for the daily and monthly views), run in
    DuckDB so only those rows are read; UTC columns are ``timestamp[us, tz=UTC]``. Times
    are datetimes, dates or ISO strings, UTC unless they say otherwise. ``lake`` and
    ``kwargs`` are :func:`connect`'s. An unknown view raises an error listing the views.
    See :mod:`powerflex_etl.catalog.frames`.
    """
    from powerflex_etl.catalog.frames import read_frame

    con = connect(lake, **kwargs)
    try:
        return read_frame(con, view, start, end, columns)
    finally:
        con.close()


__all__ = ["__version__", "connect", "read"]
