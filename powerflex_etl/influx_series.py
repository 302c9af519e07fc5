"""Pure: one InfluxDB series (``columns``, raw ``values``, ``tags``) -> typed columns + bad rows.

The fast path decodes ``values`` straight into tuples typed per column (msgspec validates
the types while parsing), transposes them and builds Arrow arrays. Any surprise in a
series (a wrong type, a wrong-length row, a bad time) sends the *whole series* down the
generic per-row path instead, so a row's outcome and its raw text never depend on which
path saw it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .influx_time import times_to_us
from .schemas import TIME, Kind

# how a column is decoded: the time, an id/label (string), a number (float64), unknown
Slot = Literal["time", "id", "num", "any"]

_SLOT_TYPES: dict[Slot, Any] = {
    "time": float | str | None,
    "id": str | int | None,
    "num": float | None,
    "any": Any,
}


# series bigger than this are decoded in chunks of this many rows (see _chunks)
_SPLIT_BYTES = 8 << 20
_CHUNK_ROWS = 50_000
_ROWS_RAW = msgspec.json.Decoder(list[msgspec.Raw])
_MAX_LABELS = 1024


class SeriesError(Exception):
    """A series has a shape no row can be read from; the caller names the measurement."""


@dataclass
class SeriesPart:
    """One series as columns: ``n`` good rows, their times, and the rows that failed."""

    n: int
    time_us: np.ndarray
    # id/num columns as Arrow arrays; unknown ("any") columns as delivered Python values,
    # typed only once every series is in (their type depends on the whole answer)
    columns: dict[str, pa.Array | list[Any]]
    slots: dict[str, Slot]
    bad: list[tuple[str, str, int | None]] = field(default_factory=list)


def slot_of(name: str, kinds: Mapping[str, Kind]) -> Slot:
    """How the field ``name`` is decoded for a measurement with these source kinds."""
    if name == TIME:
        return "time"
    kind = kinds.get(name)
    if kind in ("id", "state"):
        return "id"
    if kind in ("number", "bool"):
        return "num"
    return "any"


@lru_cache(maxsize=256)
def _rows_decoder(slots: tuple[Slot, ...]) -> msgspec.json.Decoder[Any]:
    row_type = tuple.__class_getitem__(tuple(_SLOT_TYPES[s] for s in slots))
    return msgspec.json.Decoder(list[row_type])  # type: ignore[valid-type]


def _label_decoder(
    order: tuple[Slot, ...], rows: Sequence[tuple[Any, ...]]
) -> msgspec.json.Decoder[Any] | None:
    """A decoder giving the id labels seen in ``rows`` as shared objects, for later chunks.

    Ids repeat (a few dozen EVSEs, sites, states): decoding them as a ``Literal`` of the
    labels already seen hands back one object per label instead of a new string per cell,
    which saves a third of the decode and of freeing for those columns.
    """
    types: list[Any] = []
    for i, slot in enumerate(order):
        typ = _SLOT_TYPES[slot]
        if slot == "id":
            labels = {row[i] for row in rows}
            labels.discard(None)
            if labels and len(labels) <= _MAX_LABELS and all(type(v) is str for v in labels):
                typ = Literal[tuple(sorted(labels))] | int | None
        types.append(typ)
    if types == [_SLOT_TYPES[s] for s in order]:
        return None
    return msgspec.json.Decoder(list[tuple.__class_getitem__(tuple(types))])  # type: ignore[misc]


def id_text(value: object) -> str:
    """An id/label cell as text: strings as sent ("03" stays "03"), ints in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return msgspec.json.encode(value).decode()


def number_or_reason(name: str, value: object) -> tuple[float | None, str | None]:
    """A number/bool cell -> (float, None), or (None, why the row cannot be trusted)."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{name} is not a number"
    try:
        number = float(value)
    except OverflowError:
        return None, f"{name} is out of range"
    if not np.isfinite(number):
        return None, f"{name} is not finite"
    return number, None


def _id_array(values: Sequence[object]) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([None if v is None else id_text(v) for v in values], type=pa.string())


def _tag_columns(
    tags: Mapping[str, Any], slots: Mapping[str, Slot], n: int
) -> dict[str, pa.Array | list[Any]] | None:
    """Tag values repeated over ``n`` rows; None when one cannot be trusted (generic path)."""
    out: dict[str, pa.Array | list[Any]] = {}
    for name, value in tags.items():
        slot = slots[name]
        if slot == "num":
            number, reason = number_or_reason(name, value)
            if reason is not None:
                return None
            out[name] = (
                pa.array(np.full(n, number)) if number is not None else pa.nulls(n, pa.float64())
            )
        elif slot == "id":
            text = None if value is None else id_text(value)
            out[name] = pa.array([text] * n, type=pa.string())
        else:
            out[name] = [value] * n
    return out


def _chunks(raw: msgspec.Raw) -> Iterator[bytes | msgspec.Raw]:
    """``values`` as JSON arrays of at most ``_CHUNK_ROWS`` rows each.

    Decoding a big series in one go would hold a Python object per cell (~6x the body);
    chunks bound that to one chunk's worth and keep the working set in cache.
    """
    if len(raw) <= _SPLIT_BYTES:
        yield raw
        return
    rows = _ROWS_RAW.decode(raw)
    for start in range(0, len(rows), _CHUNK_ROWS):
        yield b"[" + b",".join(rows[start : start + _CHUNK_ROWS]) + b"]"


def _fast_chunk(
    columns: Sequence[str], slots: Mapping[str, Slot], rows: list[tuple[Any, ...]]
) -> tuple[np.ndarray, dict[str, pa.Array | list[Any]]] | None:
    n = len(rows)
    cols: list[Sequence[Any] | None] = list(zip(*rows, strict=True)) if n else [() for _ in columns]
    del rows
    times = times_to_us(cols[columns.index(TIME)] or (), no_bools=True)
    if not times.all_ok:
        return None
    out: dict[str, pa.Array | list[Any]] = {}
    for i, name in enumerate(columns):
        col, cols[i] = cols[i], None  # drop each Python column as soon as it is converted
        slot = slots[name]
        if slot == "num":
            arr = pa.array(col or (), type=pa.float64())
            if arr.null_count < n and not pc.all(pc.is_finite(arr)).as_py():
                return None
            out[name] = arr
        elif slot == "id":
            out[name] = _id_array(col or ())
        elif slot == "any":
            out[name] = list(col or ())
    return times.us, out


def _fast(
    columns: Sequence[str], slots: dict[str, Slot], tags: Mapping[str, Any], raw: msgspec.Raw
) -> SeriesPart | None:
    """Typed decode; None when anything in the series needs the per-row path."""
    order = tuple(slots[c] for c in columns)
    plain = _rows_decoder(order)
    labelled: msgspec.json.Decoder[Any] | None = None
    pieces = []
    try:
        for k, chunk in enumerate(_chunks(raw)):
            rows = None
            if labelled is not None:
                try:
                    rows = labelled.decode(chunk)
                except msgspec.ValidationError:
                    pass  # a label the first chunk did not have: the plain decoder reads it
            if rows is None:
                rows = plain.decode(chunk)
            if k == 0 and len(raw) > _SPLIT_BYTES:
                labelled = _label_decoder(order, rows)
            piece = _fast_chunk(columns, slots, rows)
            del rows
            if piece is None:
                return None
            pieces.append(piece)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    n = sum(len(us) for us, _ in pieces)
    if n == 0:
        return SeriesPart(0, np.zeros(0, dtype=np.int64), {}, slots)
    out: dict[str, pa.Array | list[Any]] = {}
    for name in pieces[0][1]:
        parts = [cols[name] for _, cols in pieces]
        if slots[name] == "any":
            out[name] = [v for part in parts for v in part]
        else:
            out[name] = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
    tag_cols = _tag_columns(tags, slots, n)
    if tag_cols is None:
        return None
    out.update(tag_cols)
    us = pieces[0][0] if len(pieces) == 1 else np.concatenate([us for us, _ in pieces])
    return SeriesPart(n, us, out, slots)


def _raw_object(columns: Sequence[str], cells: Sequence[Any], tags: Mapping[str, Any]) -> str:
    obj = dict(zip(columns, cells, strict=False))
    if len(cells) > len(columns):
        obj["_extra_cells"] = list(cells[len(columns) :])
    obj.update(tags)
    return msgspec.json.encode(obj).decode()


def _spliced_object(columns: Sequence[str], raw_row: msgspec.Raw, tags: Mapping[str, Any]) -> str:
    """A row msgspec cannot hold in Python (a number out of range) as an object, verbatim."""
    cells = msgspec.json.decode(raw_row, type=list[msgspec.Raw])
    parts = [
        msgspec.json.encode(name) + b":" + bytes(cell)
        for name, cell in zip(columns, cells, strict=False)
    ]
    parts += [msgspec.json.encode(k) + b":" + msgspec.json.encode(v) for k, v in tags.items()]
    return (b"{" + b",".join(parts) + b"}").decode()


def _generic(
    columns: Sequence[str], slots: dict[str, Slot], tags: Mapping[str, Any], raw: msgspec.Raw
) -> SeriesPart:
    """Row by row: good rows into columns, the others into ``bad`` with a reason."""
    try:
        raw_rows = msgspec.json.decode(raw, type=list[msgspec.Raw])
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise SeriesError("values is not a list of rows")
    ncols = len(columns)
    ti = columns.index(TIME)
    rows: list[list[Any] | None] = []
    bad: list[tuple[str, str, int | None]] = []
    spliced: dict[int, str] = {}
    for i, raw_row in enumerate(raw_rows):
        try:
            cells = msgspec.json.decode(raw_row)
        except msgspec.ValidationError:
            # JSON msgspec cannot represent (e.g. 1e400): keep the row's text as its trace
            try:
                spliced[i] = _spliced_object(columns, raw_row, tags)
            except (msgspec.ValidationError, msgspec.DecodeError):
                raise SeriesError(f"row {i} is not a list")
            rows.append(None)
            continue
        if not isinstance(cells, list):
            raise SeriesError(f"row {i} is not a list")
        rows.append(cells)
    times = times_to_us([r[ti] if r is not None and len(r) == ncols else None for r in rows])
    good_idx: list[int] = []
    good: dict[str, list[Any]] = {c: [] for c in (*columns, *tags) if c != TIME}
    for i, cells in enumerate(rows):
        if cells is None:
            bad.append(("a number is out of range", spliced[i], None))
            continue
        if len(cells) != ncols:
            shape = f"row has {len(cells)} cells for {ncols} columns"
            bad.append((shape, _raw_object(columns, cells, tags), None))
            continue
        time_reason = times.reasons[i]
        time_us = None if time_reason else int(times.us[i])
        converted: dict[str, Any] = {}
        reason: str | None = time_reason
        for name, value in (*zip(columns, cells, strict=True), *tags.items()):
            slot = slots[name]
            if slot == "num":
                converted[name], field_reason = number_or_reason(name, value)
                reason = reason or field_reason
            elif slot == "id":
                converted[name] = None if value is None else id_text(value)
            elif slot == "any":
                converted[name] = value
        if reason is not None:
            bad.append((reason, _raw_object(columns, cells, tags), time_us))
            continue
        good_idx.append(i)
        for name, value in converted.items():
            good[name].append(value)
    out: dict[str, pa.Array | list[Any]] = {}
    for name, values in good.items():
        slot = slots[name]
        if slot == "num":
            out[name] = pa.array(values, type=pa.float64())
        elif slot == "id":
            out[name] = pa.array(values, type=pa.string())
        else:
            out[name] = values
    us = times.us[np.asarray(good_idx, dtype=np.int64)]
    return SeriesPart(len(good_idx), us, out, slots, bad)


def decode_series(
    columns: Sequence[str],
    tags: Mapping[str, Any] | None,
    raw: msgspec.Raw,
    kinds: Mapping[str, Kind],
) -> SeriesPart:
    """Decode one series; raises :class:`SeriesError` when its shape is unreadable.

    Tag values belong to every row of the series; a tag whose key is also a column is
    ignored (the row's own value wins).
    """
    if TIME not in columns:
        raise SeriesError('columns has no "time"')
    if len(set(columns)) != len(columns):
        raise SeriesError("columns repeats a name")
    extra_tags = {k: v for k, v in (tags or {}).items() if k not in columns}
    slots = {name: slot_of(name, kinds) for name in (*columns, *extra_tags)}
    part = _fast(columns, slots, extra_tags, raw)
    if part is None:
        part = _generic(columns, slots, extra_tags, raw)
    return part
