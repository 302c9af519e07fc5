"""Are two sides' outputs the same rows? A digest per column of each side's Parquet files.

Each side writes its own layout (the project's lake, pandas' ``date=`` partitions, dlt's
filesystem destination); :func:`digest` reads the lake's ct_response columns from any of
them (lineage and bookkeeping columns left out), brings each to one canonical type (time as
µs, numbers as float64, text as strings), sorts by (evse_address, time) and hashes every
column. Two sides hold the same rows exactly when their digests are equal.
"""

from __future__ import annotations

import glob
import hashlib
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from powerflex_etl.schemas import LINEAGE_COLUMNS, arrow_schema

COLUMNS = [f.name for f in arrow_schema("ct_response") if f.name not in LINEAGE_COLUMNS]
_FILES = {
    "project": "ct_response/date=*/part-*.parquet",
    "naive": "date=*/*.parquet",
    "dlt": "data/powerflex/ct_response/*.parquet",
}


def files_of(side: str, out: str) -> list[str]:
    """The Parquet files one side wrote under ``out``."""
    pattern = _FILES["dlt" if side.startswith("dlt") else side]
    return sorted(glob.glob(os.path.join(out, pattern)))


def _canonical(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_timestamp(arr.type):
        # pandas keeps ns: round to the µs the other sides hold
        ns = arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        return pc.divide(pc.add(ns, 500), 1000)
    if (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_null(arr.type)
    ):
        return arr.cast(pa.float64())
    return arr.cast(pa.large_string())


def _hash(arr: pa.Array) -> str:
    h = hashlib.sha256()
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    h.update(np.packbits(valid).tobytes())
    if pa.types.is_large_string(arr.type):
        filled = pc.fill_null(arr, "").combine_chunks() if arr.null_count else arr
        offsets = np.frombuffer(filled.buffers()[1], dtype=np.int64)[filled.offset :]
        offsets = offsets[: len(filled) + 1]
        data = np.frombuffer(filled.buffers()[2] or b"", dtype=np.uint8)
        h.update((offsets - offsets[0]).tobytes())
        h.update(data[offsets[0] : offsets[-1]].tobytes())
    else:
        values = arr.to_numpy(zero_copy_only=False)
        h.update(np.where(valid, values, 0).astype(values.dtype).tobytes())
    return h.hexdigest()[:16]


def digest(side: str, out: str) -> dict[str, object]:
    """``{"rows": n, "columns": {name: hash}, "missing": [...]}`` of one side's output."""
    files = files_of(side, out)
    if not files:
        return {"rows": 0, "columns": {}, "missing": COLUMNS}
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    present = [c for c in COLUMNS if c in schema.names]
    fields = [schema.field(c) for c in present]
    # a partition column pandas added is no part of the rows
    table = ds.dataset(files, schema=pa.schema(fields), format="parquet").to_table()
    cols = {c: _canonical(table[c]) for c in present}
    del table
    order = pc.sort_indices(
        pa.table({"e": cols["evse_address"], "t": cols["time"]}),
        sort_keys=[("e", "ascending"), ("t", "ascending")],
    )
    hashes = {c: _hash(a.take(order)) for c, a in cols.items()}
    return {
        "rows": len(order),
        "columns": hashes,
        "missing": [c for c in COLUMNS if c not in present],
    }


def differences(ref: dict[str, object], other: dict[str, object]) -> list[str]:
    """What differs between two digests, in words (empty: the same rows)."""
    out = []
    if ref["rows"] != other["rows"]:
        return [f"{other['rows']:,} rows, not {ref['rows']:,}"]  # then every column differs
    missing = other["missing"]
    assert isinstance(missing, list)
    out += [f"no column {c}" for c in missing]
    ours, theirs = ref["columns"], other["columns"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    out += [f"column {c} differs" for c in ours if c in theirs and theirs[c] != ours[c]]
    return out
