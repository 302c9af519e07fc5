"""SQL templates of ``sql/``: what ``{{ source() }}`` and ``{{ state_records() }}`` expand to.

The only things substituted into SQL are the lake's own globs (quoted) and DuckDB types from
``schemas.py``; never data. A table with no file yet becomes an empty relation with the
schema's columns, so every view binds on an empty lake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pyarrow as pa

from powerflex_etl import schemas
from powerflex_etl.catalog.sqlfiles import CatalogError, sql_ident
from powerflex_etl.lake import layout
from powerflex_etl.lake.derived import Manifest
from powerflex_etl.lake.url import LakeUrl

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


def render_derived(lake: LakeUrl, name: str, manifest: Manifest | None) -> str:
    """SQL reading derived table ``name``: the files the manifest names (or no rows)."""
    if name not in schemas.DERIVED_SCHEMAS:
        known = tuple(schemas.DERIVED_SCHEMAS)
        raise CatalogError(f"derived('{name}') is not a derived table; known: {known}")
    files = manifest.files(name) if manifest is not None else []
    if not files:
        schema = schemas.DERIVED_SCHEMAS[name]
        return empty_relation([(f.name, duckdb_type(f.type)) for f in schema])
    listed = ", ".join(sql_literal(lake.join(rel)) for rel in files)
    return f"read_parquet([{listed}])"


def render(
    sql: str,
    lake: LakeUrl,
    seen: dict[str, bool] | None = None,
    manifest: Manifest | None = None,
) -> str:
    """Expand the templates of one SQL file; anything else between braces is an error.

    ``seen`` collects each glob read and whether it matched files when rendered, so
    :func:`connect` can tell when the lake has outgrown the catalog. ``manifest`` names the
    derived tables' files (``{{ derived('sessions') }}``).
    """
    seen = {} if seen is None else seen

    def expand(m: re.Match[str]) -> str:
        func, arg = m.group(1), m.group(2)
        if func == "derived":
            return render_derived(lake, arg, manifest)
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
