"""Opening the catalog read-only, building or rebuilding it first when the lake outgrew it.

Time zone: every timestamp in the lake is UTC, and DuckDB reads Arrow ``timestamp[us, UTC]``
as ``TIMESTAMP WITH TIME ZONE``, which DuckDB *displays* in the session's ``TimeZone``.
:func:`connect` sets it to UTC. A session setting cannot be stored in the file, so an analyst
opening the catalog with the ``duckdb`` CLI runs ``SET TimeZone = 'UTC'`` (or puts it in
``~/.duckdbrc``) to see UTC; the values are the same instants either way. docs/analytics.md
("Time zones", "Opening the catalog") says this, what ``_local`` columns are, and what a
moved lake does to plain DuckDB readers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb

from powerflex_etl.catalog.build import (
    CATALOG_ALIAS,
    STORAGE_VERSION,
    _first_line,
    _prepare,
    build_catalog,
    default_catalog_path,
    marts_manifest,
)
from powerflex_etl.catalog.render import sql_literal
from powerflex_etl.catalog.sites import sites_digest, sites_text
from powerflex_etl.errors import LakeError, PowerflexError
from powerflex_etl.lake.url import LakeUrl

log = logging.getLogger(__name__)


def _outgrown(
    con: duckdb.DuckDBPyConnection, lake: LakeUrl, sites_file: str | None
) -> dict[str, str | None] | None:
    """The build arguments to rebuild with when the catalog no longer fits the lake, else None.

    A view over a table that had no file is an empty relation, and one over files that are
    all gone fails; both are fixed by a rebuild. So are a lake that moved (the views hold
    absolute paths), a sites file added, edited or removed (its digest is in the meta), a
    different ``sites_file`` asked for, and a catalog in another storage format (one written
    before :data:`.build.STORAGE_VERSION`, which older DuckDBs cannot open).
    """
    try:
        meta = dict(con.execute("select key, value from _catalog").fetchall())
        sources = con.execute("select pattern, has_files from _catalog_sources").fetchall()
    except duckdb.Error:
        return {}  # built by an older version: rebuild with defaults
    wanted = sites_file if sites_file is not None else meta.get("sites_file")
    rebuild = {**meta, "sites_file": wanted}
    if meta.get("lake") != lake.url or meta.get("storage_version") != STORAGE_VERSION:
        return rebuild
    manifest = marts_manifest(lake)
    if meta.get("marts_generation") != (manifest.generation if manifest else None):
        return rebuild  # the derived tables moved on to other files
    if any(lake.has_files(pattern) != had for pattern, had in sources):
        return rebuild
    if wanted != meta.get("sites_file"):
        return rebuild
    try:
        digest = sites_digest(sites_text(lake, wanted))
    except PowerflexError:
        return rebuild  # the sites file went missing: the rebuild says so
    if digest != meta.get("sites_sha256"):
        return rebuild
    return None


def connect(
    lake: str,
    *,
    catalog_path: str | None = None,
    storage_options: dict[str, Any] | None = None,
    sites_file: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with every view, the catalog attached read-only; builds it if missing.

    Rebuilds it, too, when a table that had no file has one now (or lost its last one), so
    a lake written without a catalog refresh still shows its rows; when the lake moved; and
    when the sites file changed (``sites_file``, else the one the catalog was built with, else
    ``<lake>/sites.toml``). The session's TimeZone is
    UTC, so timestamps display as the lake stores them. For an object-store lake the fsspec
    filesystem is registered so the views can read it. Each call sees the catalog as it is
    now; a connection already open keeps the one it opened.
    """
    ref = LakeUrl.parse(lake, storage_options).duckdb_safe()
    path = default_catalog_path(ref, catalog_path)
    if not path.is_file():
        build_catalog(
            lake,
            catalog_path=catalog_path,
            storage_options=storage_options,
            sites_file=sites_file,
        )
    con = _open(path, ref)
    rebuild = _outgrown(con, ref, sites_file)
    if rebuild is None:
        return con
    con.close()
    try:
        build_catalog(
            lake,
            catalog_path=catalog_path,
            storage_options=storage_options,
            sites_file=rebuild.get("sites_file"),
            sql_dir=rebuild.get("sql_dir"),
        )
    except PowerflexError as e:
        # an analyst can still read the old catalog; the writer's next refresh will say more
        log.warning("catalog %s is out of date and could not be rebuilt: %s", path, e)
    return _open(path, ref)


def _open(path: Path, lake: LakeUrl) -> duckdb.DuckDBPyConnection:
    # Attached to a fresh in-memory database rather than duckdb.connect(path): DuckDB caches
    # one database instance per path in a process, so a second connect() would keep reading
    # the catalog file that a rebuild has since replaced.
    con = duckdb.connect()
    try:
        _prepare(con, lake)
        con.execute(f"attach {sql_literal(str(path))} as {CATALOG_ALIAS} (read_only)")
        con.execute(f"use {CATALOG_ALIAS}")
    except duckdb.Error as e:
        con.close()
        raise LakeError(f"cannot open catalog {path}: {_first_line(e)}") from e
    return con
