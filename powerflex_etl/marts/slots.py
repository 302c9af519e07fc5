"""What each slot write records for the marts, while the slot's rows are still in memory.

:func:`derive_slot` is the lake's ``derive`` hook (``Lake(url, derive=derive_slot)``): for
every slot file a commit or a compaction writes, the file's footer gets its telemetry
coverage per EVSE and hour (every measurement) and, for ct_response, its per-EVSE figures
(:data:`sessionize.SLOT_SCHEMA`); ct_response's kept rows go beside it. So a refresh reads
footers and kept rows, never the raw telemetry again. A slot written without them (by an
older version, or a writer without the hook) is read whole instead (``refresh.py``).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from powerflex_etl.lake.derived import SlotDerived, footer_json
from powerflex_etl.marts.sessionize import (
    SLOT_SCHEMA,
    US,
    _codes,
    _labels,
    _times,
    slot_pass,
)
from powerflex_etl.schemas import DERIVED_SCHEMAS

HOUR_US = 3600 * US
COVERAGE_KEY = "powerflex:coverage"
FIGURES_KEY = "powerflex:figures"
COVERAGE_SCHEMA = DERIVED_SCHEMAS["coverage"]


def coverage(measurement: str, rows: pa.Table) -> pa.Table:
    """Per EVSE and UTC hour of rows sorted by (evse_address, time): samples, first, last, site."""
    n = rows.num_rows
    if n == 0:
        return COVERAGE_SCHEMA.empty_table()
    t = rows["time"].cast(pa.int64()).to_numpy()
    codes, labels = _codes(_labels(rows, "evse_address"))
    hour = t // HOUR_US
    start = np.ones(n, dtype=bool)
    start[1:] = (codes[1:] != codes[:-1]) | (hour[1:] != hour[:-1])
    starts = np.flatnonzero(start)
    ends = np.append(starts[1:], n)
    acc_ids = _labels(rows, "acc_id").take(pa.array(starts))
    return pa.Table.from_arrays(
        [
            pa.array([measurement] * len(starts), pa.string()),
            pa.array([labels[c] for c in codes[starts].tolist()], pa.string()),
            _times(hour[starts] * HOUR_US),
            pa.array(ends - starts, pa.int64()),
            _times(t[starts]),
            _times(t[ends - 1]),
            acc_ids.cast(pa.string()) if acc_ids.type != pa.string() else acc_ids,
        ],
        schema=COVERAGE_SCHEMA,
    )


def _to_json(table: pa.Table) -> str:
    """A small table as JSON columns (timestamps as µs), for a footer."""
    cols: dict[str, list[object]] = {}
    for f in table.schema:
        col = table[f.name]
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.int64())
        cols[f.name] = col.to_pylist()
    return json.dumps(cols, separators=(",", ":"))


def _from_json(value: object, schema: pa.Schema) -> pa.Table | None:
    if not isinstance(value, dict):
        return None
    try:
        arrays = []
        for f in schema:
            values = value[f.name]
            if pa.types.is_timestamp(f.type):
                arrays.append(pa.array(values, pa.int64()).cast(f.type))
            else:
                arrays.append(pa.array(values, f.type))
        return pa.Table.from_arrays(arrays, schema=schema)
    except (KeyError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def derive_slot(measurement: str, slot_us: int, rows: pa.Table) -> SlotDerived:
    """The lake's ``derive`` hook: footer metadata and (ct_response) kept rows of one slot."""
    meta = {COVERAGE_KEY: _to_json(coverage(measurement, rows))}
    if measurement != "ct_response":
        return SlotDerived(meta)
    kept, figures = slot_pass(rows, slot_us)
    meta[FIGURES_KEY] = _to_json(figures)
    return SlotDerived(meta, kept)


def footer_records(meta: object) -> tuple[pa.Table | None, pa.Table | None]:
    """(coverage, figures) a slot file's footer holds, each None when absent or unreadable."""
    from pyarrow.parquet import FileMetaData

    if not isinstance(meta, FileMetaData):
        return None, None
    return (
        _from_json(footer_json(meta, COVERAGE_KEY), COVERAGE_SCHEMA),
        _from_json(footer_json(meta, FIGURES_KEY), SLOT_SCHEMA),
    )
