"""How the lake's Parquet files are written, and how two files' columns are reconciled.

Pure Arrow in, Arrow or bytes out: no lake paths here (``store.py`` and ``compact.py`` put
the results in place).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from powerflex_etl.errors import LakeError
from powerflex_etl.lake.layout import REJECTS
from powerflex_etl.schemas import KEY_COLUMNS, LINEAGE_COLUMNS, RUN_ID, SPECS, TEXT_TYPE, is_text

ROW_GROUP_ROWS = 128 * 1024


def write_parquet(
    table: pa.Table,
    where: str | io.BytesIO,
    dictionary: Sequence[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """The one place Parquet files are written: zstd, statistics where they prune, ~128k-row groups.

    ``metadata`` goes into the footer's key-value metadata (a slot file's token and figures).
    Text may come dictionary-encoded (normalize's output): its dictionary is written as it is,
    not hashed again. Arrow's own schema is not stored, so every reader (pyarrow, DuckDB,
    pandas) sees what Parquet says: strings, timestamps in UTC, doubles.
    """
    present = [c for c in dictionary if c in table.column_names]
    kv = {**(table.schema.metadata or {}), **(metadata or {})}
    table = table.replace_schema_metadata(None)
    with pq.ParquetWriter(
        where,
        table.schema,
        compression="zstd",
        use_dictionary=present,
        write_statistics=statistics_columns(table.schema),
        store_schema=False,
    ) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        if kv:
            writer.add_key_value_metadata(kv)


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns whose min/max go into the footer: those a scan can skip row groups by.

    Time, numbers and the sort key (``evse_address``) prune; other text (site ids, states,
    run ids) holds the same few values in every row group, and its statistics cost a third
    of the write (13 of 41 ms for a 233k-row slot).
    """
    return [f.name for f in schema if f.name in KEY_COLUMNS or not is_text(f.type)]


def write_parquet_bytes(
    table: pa.Table, dictionary: Sequence[str], metadata: Mapping[str, str] | None = None
) -> bytes:
    """:func:`write_parquet` into memory: the bytes of one whole file."""
    buf = io.BytesIO()
    write_parquet(table, buf, dictionary, metadata)
    return buf.getvalue()


def dictionary_columns(name: str) -> list[str]:
    """The columns of lake table ``name`` worth dictionary-encoding (ids, states, run ids)."""
    if name in SPECS:
        return [f.column for f in SPECS[name] if f.kind in ("id", "state")] + [RUN_ID]
    if name == REJECTS:
        return ["measurement", "reason", RUN_ID]
    return [RUN_ID, "acc_id"]  # a snapshot table


def well_written(meta: pq.FileMetaData) -> bool:
    """Whether a file is laid out as :func:`write_parquet` writes it (row groups, codec)."""
    codecs = {
        meta.row_group(i).column(j).compression
        for i in range(meta.num_row_groups)
        for j in range(meta.num_columns)
    }
    wanted = max(1, -(-meta.num_rows // ROW_GROUP_ROWS))
    return meta.num_row_groups <= wanted and codecs <= {"ZSTD"}


def unify_schema(base: pa.Schema, schemas: Sequence[pa.Schema], *, what: str) -> pa.Schema:
    """``base`` plus every other column of ``schemas`` (extras before lineage).

    A column missing somewhere is kept (its rows get nulls); a null-typed column takes the
    other side's type; any other type difference is a LakeError naming the column.
    """
    types: dict[str, pa.DataType] = {f.name: f.type for f in base}
    extras: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            known = types.get(f.name, extras.get(f.name))
            if known is None:
                extras[f.name] = f.type
            elif not _same_type(f.type, known) and not pa.types.is_null(f.type):
                if pa.types.is_null(known) and f.name in extras:
                    extras[f.name] = f.type
                else:
                    raise LakeError(
                        f"{what}: column {f.name!r} is {f.type} in new rows but {known} in the lake; "
                        "fix the type upstream or move the old files aside"
                    )
    extra = pa.schema([pa.field(n, _text_as_held(n, t, schemas)) for n, t in extras.items()])
    lineage = [_text_field(f, schemas) for f in base if f.name in LINEAGE_COLUMNS]
    head = [_text_field(f, schemas) for f in base if f.name not in LINEAGE_COLUMNS]
    return pa.schema([*head, *extra, *lineage])


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Equal, or both text: plain and dictionary-encoded strings are one column type."""
    return a == b or (is_text(a) and is_text(b))


def _text_field(f: pa.Field, schemas: Sequence[pa.Schema]) -> pa.Field:
    return f.with_type(_text_as_held(f.name, f.type, schemas))


def _text_as_held(name: str, t: pa.DataType, schemas: Sequence[pa.Schema]) -> pa.DataType:
    """A text column stays dictionary-encoded when every table that has it holds it so
    (new rows alone: no cast); plain strings as soon as one side has plain strings."""
    if not is_text(t):
        return t
    held = [s.field(name).type for s in schemas if name in s.names]
    held = [h for h in held if not pa.types.is_null(h)]
    if held and all(pa.types.is_dictionary(h) for h in held):
        return TEXT_TYPE
    return pa.string()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones null, null-typed ones cast."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def merge(base: pa.Schema, tables: Sequence[pa.Table], *, what: str) -> pa.Table:
    """``tables`` concatenated under :func:`unify_schema` of ``base`` and their schemas."""
    schema = unify_schema(base, [t.schema for t in tables], what=what)
    return pa.concat_tables([conform(t, schema) for t in tables])
