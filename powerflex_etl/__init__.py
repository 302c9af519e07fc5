"""powerflex-etl: PowerFlex EV-charging telemetry into a Parquet lake with DuckDB views.

Nothing heavy is imported here: ``import powerflex_etl`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import duckdb


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


__all__ = ["__version__", "connect"]
