"""DuckDB: applies the tiers of ``sql/`` (see :mod:`.sqlfiles`) into the lake's ``powerflex.duckdb``.

The catalog holds only views (over the lake's Parquet and state records, by absolute path or
URL) and the small ``sites`` table, so it is cheap to rebuild after every write. It is built
into a temporary file next to its final place and moved there with one ``os.replace``:
analysts holding the old catalog open read-only keep reading the old file and never block a
rebuild. Every argument is explicit: :func:`build_for` builds with a ``Settings``.

The file is written in an older storage format (:data:`STORAGE_VERSION`), not the writer's
newest: analysts open it with whatever DuckDB they have (``pip install duckdb-cli``, an older
Python ``duckdb``, DBeaver), and a file in DuckDB 2.0's own format is refused by every 1.x
reader. The views' SQL keeps to functions of :data:`MIN_READER`;
``tests/catalog/test_duckdb_readers.py`` runs every view in that version and in the
``duckdb-cli`` a user installs with pip.

SQL templates (:mod:`.render`; the only things substituted into SQL are paths of the lake and
view names, quoted):

- ``{{ ref('charging_sessions') }}``: another view of ``sql/``, or the ``sites`` table; the
  refs decide the order views are created in (:func:`.sqlfiles.build_order`).
- ``{{ source('ct_response') }}``: the lake table (any of ``schemas.LAKE_TABLES``) with its
  ``date`` partition column; an empty relation with the schema's columns when no file exists.
- ``{{ state_records('windows') }}``: the per-window commit records under ``<lake>/_state``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from powerflex_etl.catalog.render import render, sql_literal
from powerflex_etl.catalog.site_tariffs import create_tariff_tables
from powerflex_etl.catalog.sites import create_sites, sites_digest, sites_text
from powerflex_etl.catalog.sqlfiles import (
    SQL_DIR,
    TIERS,
    CatalogError,
    ViewFile,
    all_view_files,
    build_order,
    render_refs,
    sql_ident,
)
from powerflex_etl.errors import LakeError
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.derived import DerivedStore, Manifest
from powerflex_etl.lake.fs import Root
from powerflex_etl.lake.layout import CATALOG_NAME
from powerflex_etl.lake.procs import remove_dead_temps, temp_name
from powerflex_etl.lake.url import LakeUrl

if TYPE_CHECKING:
    from powerflex_etl.settings import Settings

#: The storage format the catalog is written in: what DuckDB 1.0/1.1 write, opened by 1.0.0
#: through 2.0 (DuckDB 2.0's own format is refused by every 1.x reader).
STORAGE_VERSION = "v1.1.0"
#: The oldest DuckDB that runs every view: the views' functions decide it, not the file format
#: (1.0 opens the file but has no ``arg_min`` over a struct, which monthly_peak uses).
#: docs/analytics.md says it; tests/catalog/test_duckdb_readers.py runs every view in it.
MIN_READER = "1.1.3"
#: The name the catalog is attached under while it is built, as readers see it (`duckdb
#: lake/powerflex.duckdb` names the database after the file, and :func:`.connect` does the same).
CATALOG_ALIAS = "powerflex"


def default_catalog_path(lake: LakeUrl, catalog_path: str | None = None) -> Path:
    """Inside a local lake; for an object store: ``catalog_path``, else a file in ~/.cache."""
    if lake.is_local:
        return Path(lake.url) / CATALOG_NAME
    if catalog_path:
        return Path(catalog_path).expanduser().resolve()
    digest = hashlib.sha256(lake.url.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "powerflex-etl" / f"{digest}.duckdb"


def _first_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def create_views(
    con: duckdb.DuckDBPyConnection,
    files: list[ViewFile],
    lake: LakeUrl,
    seen: dict[str, bool] | None = None,
    manifest: Manifest | None = None,
) -> None:
    """Create every view in :func:`.sqlfiles.build_order` (each after the views it refs).

    Raises :class:`CatalogError` naming each file that does not bind (a view reading a
    broken one is not tried, and named too), or the file whose template is wrong.
    """
    rendered = []
    for f in build_order(files):
        try:
            rendered.append((f, render(render_refs(f.sql), lake, seen, manifest)))
        except CatalogError as e:
            raise CatalogError(f"{f.path}: {e}") from e
    failed: dict[str, str] = {}
    for f, sql in rendered:
        broken = [name for name in f.refs if name in failed]
        if broken:
            failed[f.name] = f"{f.label}: reads {', '.join(broken)}"
            continue
        try:
            con.execute(f"create or replace view {sql_ident(f.name)} as\n{sql}\n")
        except duckdb.Error as e:
            # a relation read without {{ ref() }} is looked up only among the views made so far
            failed[f.name] = f"{f.label}: {_first_line(e)}"
    if failed:
        detail = "; ".join(failed.values())
        hint = None
        if "does not exist" in detail:
            hint = "name every view a file reads with {{ ref('name') }}; the old catalog stays"
        raise CatalogError(f"views that do not bind: {detail}", hint=hint)


def marts_manifest(lake: LakeUrl) -> Manifest | None:
    """The derived tables' current manifest (None before the first marts refresh)."""
    return DerivedStore(Root(lake)).manifest()


def _prepare(con: duckdb.DuckDBPyConnection, lake: LakeUrl) -> None:
    con.execute("set TimeZone = 'UTC'")
    if not lake.is_local:
        con.register_filesystem(lake.fs)


def _write_meta(
    con: duckdb.DuckDBPyConnection, meta: dict[str, str | None], seen: dict[str, bool]
) -> None:
    con.execute("create table _catalog(key varchar, value varchar)")
    con.executemany("insert into _catalog values (?, ?)", list(meta.items()))
    con.execute("create table _catalog_sources(pattern varchar, has_files boolean)")
    if seen:
        con.executemany("insert into _catalog_sources values (?, ?)", list(seen.items()))


def build_catalog(
    lake: str,
    *,
    catalog_path: str | None = None,
    storage_options: dict[str, Any] | None = None,
    sites_file: str | None = None,
    sql_dir: str | Path | None = None,
) -> Path:
    """(Re)build the catalog in a temporary file and rename it into place. Returns its path.

    ``catalog_path`` only matters for an object-store lake (a local lake keeps its catalog
    inside). ``sites_file`` (else ``<lake>/sites.toml``) fills the ``sites`` table and each
    site's tariff (``tariffs``, ``tariff_periods``; a bad tariff file fails the build). Raises
    :class:`CatalogError` when a view does not bind; the old catalog then stays as it was.
    """
    ref = LakeUrl.parse(lake, storage_options).duckdb_safe()
    if ref.is_local and not Path(ref.url).is_dir():
        raise LakeError(f"no lake at {ref.url}", hint="run `powerflex-etl ingest` or pass --lake")
    target = default_catalog_path(ref, catalog_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sql_root = Path(sql_dir).resolve() if sql_dir is not None else SQL_DIR
    if not (sql_root / "staging").is_dir():
        # a catalog without views would look like an empty lake; say so instead
        raise CatalogError(
            f"no SQL views at {sql_root / 'staging'}", hint="reinstall powerflex-etl"
        )
    remove_dead_temps(str(target.parent), prefix=f".{target.name}.")
    crash_point("catalog_started")
    # same directory as the target, so os.replace is one atomic rename; the name says which
    # process writes it, so a build killed half-way is cleaned up by the next one
    tmp = target.with_name(temp_name(target.name))
    try:
        # an in-memory session with the file attached: only ATTACH takes a storage version
        con = duckdb.connect()
        try:
            _prepare(con, ref)
            con.execute(
                f"attach {sql_literal(str(tmp))} as {CATALOG_ALIAS} "
                f"(storage_version {sql_literal(STORAGE_VERSION)})"
            )
            con.execute(f"use {CATALOG_ALIAS}")
            found = sites_text(ref, sites_file)
            create_sites(con, ref, sites_file, found=found)
            create_tariff_tables(con, ref, sites_file)
            seen: dict[str, bool] = {}
            manifest = marts_manifest(ref)
            create_views(con, all_view_files(sql_root, TIERS), ref, seen, manifest)
            meta = {
                "lake": ref.url,
                "sql_dir": str(sql_root),
                "sites_file": sites_file,
                "sites_sha256": sites_digest(found),
                "marts_generation": manifest.generation if manifest else None,
                "storage_version": STORAGE_VERSION,
                "min_reader": MIN_READER,
                "written_by_duckdb": duckdb.__version__,
            }
            _write_meta(con, meta, seen)
            crash_point("catalog_building")
            con.execute("checkpoint")
            con.execute("use memory")
            con.execute(f"detach {CATALOG_ALIAS}")
        finally:
            con.close()
        crash_point("catalog_temp_written")
        os.replace(tmp, target)
        crash_point("catalog_renamed")
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return target


def build_for(s: Settings) -> Path:
    """:func:`build_catalog` with a ``Settings``' lake, catalog path and sites file."""
    return build_catalog(s.lake, catalog_path=s.catalog_path, sites_file=s.sites_file)
