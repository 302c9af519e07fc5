"""DuckDB: applies the tiers of ``sql/`` (see :mod:`.sqlfiles`) into the lake's ``powerflex.duckdb``.

The catalog holds only views (over the lake's Parquet and state records, by absolute path or
URL) and the small ``sites`` table, so it is cheap to rebuild after every write. It is built
into a temporary file next to its final place and moved there with one ``os.replace``:
analysts holding the old catalog open read-only keep reading the old file and never block a
rebuild.

Time zone: every timestamp in the lake is UTC, and DuckDB reads Arrow ``timestamp[us, UTC]``
as ``TIMESTAMP WITH TIME ZONE``, which DuckDB *displays* in the session's ``TimeZone``.
:func:`connect` sets it to UTC. A session setting cannot be stored in the file, so an analyst
opening the catalog with the ``duckdb`` CLI should run ``SET TimeZone = 'UTC'`` (or put it in
``~/.duckdbrc``) to see UTC; the values are the same instants either way.

SQL templates (the only things substituted into SQL are paths of the lake and view names,
quoted):

- ``{{ ref('charging_sessions') }}``: another view of ``sql/``, or the ``sites`` table; the
  refs decide the order views are created in (:func:`.sqlfiles.build_order`).

- ``{{ source('ct_response') }}``: the lake table (any of ``schemas.LAKE_TABLES``) with its
  ``date`` partition column; an empty relation with the schema's columns when no file exists.
- ``{{ state_records('windows') }}``: the per-window commit records under ``<lake>/_state``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from powerflex_etl import schemas
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
from powerflex_etl.errors import ConfigError, LakeError, PowerflexError
from powerflex_etl.lake import layout
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.layout import CATALOG_NAME, SITES_NAME
from powerflex_etl.lake.procs import remove_dead_temps, temp_name
from powerflex_etl.lake.url import LakeUrl

if TYPE_CHECKING:
    from powerflex_etl.settings import Settings

log = logging.getLogger(__name__)

# per-window commit records written by state.py: one flat JSON object per file
STATE_RECORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "windows": (
        ("measurement", "varchar"),
        ("window_start", "timestamptz"),
        ("window_end", "timestamptz"),
        ("rows", "bigint"),
        ("rejects", "bigint"),
        ("run_id", "varchar"),
        ("seconds", "double"),
        ("committed_at", "timestamptz"),
    ),
}

_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\(\s*'([^']*)'\s*\)\s*\}\}")
def default_catalog_path(lake: LakeUrl, catalog_path: str | None = None) -> Path:
    """Inside a local lake; for an object store: the given path, the setting, else a cache file."""
    if lake.is_local:
        return Path(lake.url) / CATALOG_NAME
    if catalog_path is None:
        catalog_path = _settings().catalog_path
    if catalog_path:
        return Path(catalog_path).expanduser().resolve()
    digest = hashlib.sha256(lake.url.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "powerflex-etl" / f"{digest}.duckdb"


def _settings() -> Settings:
    from powerflex_etl.settings import Settings

    # mypy without the pydantic plugin reads Field(default, gt=...) as required arguments
    return Settings()  # type: ignore[call-arg]


def sql_literal(text: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type that DuckDB itself gives an Arrow column of type ``t``."""
    if pa.types.is_timestamp(t):
        unit = {"s": "timestamp_s", "ms": "timestamp_ms", "us": "timestamp", "ns": "timestamp_ns"}
        return "timestamptz" if t.tz is not None else unit[t.unit]
    if pa.types.is_dictionary(t):
        return duckdb_type(t.value_type)
    simple = {
        pa.string(): "varchar",
        pa.large_string(): "varchar",
        pa.float64(): "double",
        pa.float32(): "float",
        pa.bool_(): "boolean",
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int32(): "integer",
        pa.int64(): "bigint",
        pa.date32(): "date",
    }
    if t in simple:
        return simple[t]
    raise CatalogError(f"no DuckDB type for Arrow type {t} in schemas.py")


def empty_relation(columns: Iterable[tuple[str, str]]) -> str:
    """A subquery with exactly these (name, DuckDB type) columns and no rows."""
    cols = ", ".join(f"cast(null as {typ}) as {sql_ident(name)}" for name, typ in columns)
    return f"(select {cols} where false)"


def template_pattern(lake: LakeUrl, func: str, arg: str) -> str:
    """The file glob a template reads; raises :class:`CatalogError` for an unknown one."""
    if func == "source":
        if arg not in schemas.LAKE_TABLES:
            raise CatalogError(f"source('{arg}') is not a lake table; known: {schemas.LAKE_TABLES}")
        return lake.join(*layout.data_glob(arg))
    if func == "state_records":
        if arg not in STATE_RECORDS:
            raise CatalogError(f"state_records('{arg}') is unknown; known: {tuple(STATE_RECORDS)}")
        return lake.join(*layout.state_records_glob(arg))
    raise CatalogError(f"unknown template {{{{ {func}(...) }}}}")


def render_source(pattern: str, name: str, has_files: bool) -> str:
    """SQL reading lake table ``name`` with its ``date`` partition column (or an empty relation)."""
    if has_files:
        return (
            f"read_parquet({sql_literal(pattern)}, hive_partitioning = true, "
            "union_by_name = true, hive_types = {'date': date})"
        )
    cols = [(f.name, duckdb_type(f.type)) for f in schemas.table_schema(name)]
    return empty_relation([*cols, ("date", "date")])


def render_state_records(pattern: str, kind: str, has_files: bool) -> str:
    """SQL reading the state records of ``kind`` (or an empty relation with their columns)."""
    columns = STATE_RECORDS[kind]
    if not has_files:
        return empty_relation(columns)
    spec = ", ".join(f"{sql_literal(n)}: {sql_literal(t)}" for n, t in columns)
    return f"read_json({sql_literal(pattern)}, format = 'auto', columns = {{{spec}}})"


def render(sql: str, lake: LakeUrl, seen: dict[str, bool] | None = None) -> str:
    """Expand the templates of one SQL file; anything else between braces is an error.

    ``seen`` collects each glob read and whether it matched files when rendered, so
    :func:`connect` can tell when the lake has outgrown the catalog.
    """
    seen = {} if seen is None else seen

    def expand(m: re.Match[str]) -> str:
        func, arg = m.group(1), m.group(2)
        pattern = template_pattern(lake, func, arg)
        if pattern not in seen:
            seen[pattern] = lake.has_files(pattern)
        if func == "source":
            return render_source(pattern, arg, seen[pattern])
        return render_state_records(pattern, arg, seen[pattern])

    out = _TEMPLATE.sub(expand, sql)
    if "{{" in out:
        raise CatalogError("malformed template: use {{ source('name') }}")
    return out


def _first_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def create_views(
    con: duckdb.DuckDBPyConnection,
    files: list[ViewFile],
    lake: LakeUrl,
    seen: dict[str, bool] | None = None,
) -> None:
    """Create every view in :func:`.sqlfiles.build_order` (each after the views it refs).

    Raises :class:`CatalogError` naming each file that does not bind (a view reading a
    broken one is not tried, and named too), or the file whose template is wrong.
    """
    rendered = []
    for f in build_order(files):
        try:
            rendered.append((f, render(render_refs(f.sql), lake, seen)))
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


def read_sites(text: str, origin: str) -> list[tuple[str, str, str]]:
    """(acc_id, name, tz) rows from a sites TOML: ``[sites."03"] name = "..." tz = "..."``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"sites file {origin} is not valid TOML: {e}") from e
    sites = data.get("sites", {})
    if not isinstance(sites, dict):
        raise ConfigError(f"sites file {origin}: [sites] must be a table of acc_id tables")
    rows = []
    for acc_id, site in sorted(sites.items()):
        name = site.get("name") if isinstance(site, dict) else None
        tz = site.get("tz") if isinstance(site, dict) else None
        if not isinstance(name, str) or not isinstance(tz, str):
            raise ConfigError(
                f'sites file {origin}: [sites."{acc_id}"] needs string keys name and tz'
            )
        rows.append((acc_id, name, tz))
    return rows


def _sites_text(lake: LakeUrl, sites_file: str | None) -> tuple[str, str] | None:
    if sites_file is None:
        sites_file = _settings().sites_file
    if sites_file:
        path = Path(sites_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"sites file {path} not found", hint="fix POWERFLEX_SITES_FILE")
        return path.read_text(encoding="utf-8"), str(path)
    in_lake = lake.join(SITES_NAME)
    if lake.is_local:
        p = Path(in_lake)
        return (p.read_text(encoding="utf-8"), in_lake) if p.is_file() else None
    if not lake.fs.exists(in_lake):
        return None
    with lake.fs.open(in_lake, "rb") as fh:
        return fh.read().decode("utf-8"), in_lake


def create_sites(
    con: duckdb.DuckDBPyConnection, lake: LakeUrl, sites_file: str | None = None
) -> int:
    """Create the ``sites(acc_id, name, tz)`` table; empty when there is no sites file."""
    con.execute("create or replace table sites(acc_id varchar, name varchar, tz varchar)")
    found = _sites_text(lake, sites_file)
    if found is None:
        return 0
    rows = read_sites(*found)
    for acc_id, _, tz in rows:
        try:
            # the marts convert with DuckDB's ICU, so DuckDB decides what a valid zone is
            con.execute("select timezone(?, timestamptz '2000-01-01 00:00:00+00')", [tz])
        except duckdb.Error as e:
            raise ConfigError(
                f"sites file {found[1]}: site {acc_id!r} has unknown time zone {tz!r}"
            ) from e
    if rows:
        con.executemany("insert into sites values (?, ?, ?)", rows)
    return len(rows)


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
    inside). ``sites_file`` defaults to the setting, else ``<lake>/sites.toml``. Raises
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
        con = duckdb.connect(str(tmp))
        try:
            _prepare(con, ref)
            create_sites(con, ref, sites_file)
            seen: dict[str, bool] = {}
            create_views(con, all_view_files(sql_root, TIERS), ref, seen)
            meta = {"lake": ref.url, "sql_dir": str(sql_root), "sites_file": sites_file}
            _write_meta(con, meta, seen)
            crash_point("catalog_building")
            con.execute("checkpoint")
        finally:
            con.close()
        crash_point("catalog_temp_written")
        os.replace(tmp, target)
        crash_point("catalog_renamed")
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return target


def _outgrown(con: duckdb.DuckDBPyConnection, lake: LakeUrl) -> dict[str, str | None] | None:
    """The build arguments to rebuild with when the catalog no longer fits the lake, else None.

    A view over a table that had no file is an empty relation, and one over files that are
    all gone fails; both are fixed by a rebuild. So is a lake that moved.
    """
    try:
        meta = dict(con.execute("select key, value from _catalog").fetchall())
        sources = con.execute("select pattern, has_files from _catalog_sources").fetchall()
    except duckdb.Error:
        return {}  # built by an older version: rebuild with defaults
    if meta.get("lake") != lake.url:
        return meta
    if any(lake.has_files(pattern) != had for pattern, had in sources):
        return meta
    return None


def connect(
    lake: str | None = None,
    *,
    catalog_path: str | None = None,
    storage_options: dict[str, Any] | None = None,
    **_: Any,
) -> duckdb.DuckDBPyConnection:
    """A connection with every view, the catalog attached read-only; builds it if missing.

    Rebuilds it, too, when a table that had no file has one now (or lost its last one), so
    a lake written without a catalog refresh still shows its rows. The session's TimeZone is
    UTC, so timestamps display as the lake stores them. For an object-store lake the fsspec
    filesystem is registered so the views can read it. Each call sees the catalog as it is
    now; a connection already open keeps the one it opened.
    """
    if lake is None:
        lake = _settings().lake
    ref = LakeUrl.parse(lake, storage_options).duckdb_safe()
    path = default_catalog_path(ref, catalog_path)
    if not path.is_file():
        build_catalog(lake, catalog_path=catalog_path, storage_options=storage_options)
    con = _open(path, ref)
    rebuild = _outgrown(con, ref)
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
        con.execute(f"attach {sql_literal(str(path))} as powerflex (read_only)")
        con.execute("use powerflex")
    except duckdb.Error as e:
        con.close()
        raise LakeError(f"cannot open catalog {path}: {_first_line(e)}") from e
    return con
