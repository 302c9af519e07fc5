"""Pure: the per-row path for InfluxDB series rows the typed decode could not take.

Good rows go into columns, the others into bad rows with a reason and their raw text.
Values are converted exactly as the typed path converts them, so a row's outcome never
depends on which path read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import numpy as np
import pyarrow as pa

from powerflex_etl.parse.parsed import NUMBER_TYPE, BadRow
from powerflex_etl.parse.times import times_to_us
from powerflex_etl.schemas import TIME

# how a column is decoded: the time, an id/label (text), a number (float64), unknown
Slot = Literal["time", "id", "num", "any"]


class SeriesError(Exception):
    """A series has a shape no row can be read from; the caller names the measurement."""


@dataclass
class Piece:
    """Some rows of a series: good rows' times and columns, and the bad rows."""

    us: np.ndarray  # int64 µs of the good rows
    # id columns as strings (dictionary-encoded once the series is merged), num columns as
    # float64; unknown ("any") columns as delivered values
    cols: dict[str, pa.Array | list[Any]]
    bad: list[BadRow] = field(default_factory=list)


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


def rows_piece(
    columns: Sequence[str],
    slots: Mapping[str, Slot],
    tags: Mapping[str, Any],
    raw: bytes | msgspec.Raw,
    first_row: int = 0,
) -> Piece:
    """Row by row: good rows into columns, the others into ``bad`` with a reason.

    Tags are checked with every row (a non-number in a number tag makes each row bad) but,
    being the same for every row, are not in the returned columns.
    """
    try:
        raw_rows = msgspec.json.decode(raw, type=list[msgspec.Raw])
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise SeriesError("values is not a list of rows")
    ncols = len(columns)
    ti = columns.index(TIME)
    rows: list[list[Any] | None] = []
    bad: list[BadRow] = []
    spliced: dict[int, str] = {}
    for i, raw_row in enumerate(raw_rows):
        try:
            cells = msgspec.json.decode(raw_row)
        except msgspec.ValidationError:
            # JSON msgspec cannot represent (e.g. 1e400): keep the row's text as its trace
            try:
                spliced[i] = _spliced_object(columns, raw_row, tags)
            except (msgspec.ValidationError, msgspec.DecodeError):
                raise SeriesError(f"row {first_row + i} is not a list")
            rows.append(None)
            continue
        if not isinstance(cells, list):
            raise SeriesError(f"row {first_row + i} is not a list")
        rows.append(cells)
    times = times_to_us([r[ti] if r is not None and len(r) == ncols else None for r in rows])
    good_idx: list[int] = []
    good: dict[str, list[Any]] = {c: [] for c in columns if c != TIME}
    for i, cells in enumerate(rows):
        if cells is None:
            bad.append(BadRow("a number is out of range", spliced[i]))
            continue
        if len(cells) != ncols:
            shape = f"row has {len(cells)} cells for {ncols} columns"
            bad.append(BadRow(shape, _raw_object(columns, cells, tags)))
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
            bad.append(BadRow(reason, _raw_object(columns, cells, tags), time_us))
            continue
        good_idx.append(i)
        for name, values in good.items():
            values.append(converted[name])
    out: dict[str, pa.Array | list[Any]] = {}
    for name, values in good.items():
        slot = slots[name]
        if slot == "num":
            out[name] = pa.array(values, type=NUMBER_TYPE)
        elif slot == "id":
            out[name] = pa.array(values, type=pa.string())
        else:
            out[name] = values
    return Piece(times.us[np.asarray(good_idx, dtype=np.int64)], out, bad)
