"""The DuckDB catalog: the views of ``sql/`` over the lake, built after every write, read-only."""

from powerflex_etl.catalog.build import build_catalog, build_for, default_catalog_path
from powerflex_etl.catalog.connect import connect
from powerflex_etl.catalog.sqlfiles import CatalogError

__all__ = ["CatalogError", "build_catalog", "build_for", "connect", "default_catalog_path"]
