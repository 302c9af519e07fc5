"""InfluxDB 1.7 JSON, built as bytes with Arrow string kernels (no Python object per row).

A block's rows become one Arrow string array of ``,[v1,v2,...]`` fragments whose data
buffer is already the JSON text; the server streams those bytes. Numbers print the way
InfluxDB prints them: integer-valued floats without a fraction, null as ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .generate import COLUMNS, FRACTIONAL, ID_COLUMNS, STATES, VERSION, Block

_STATE_JSON = pa.array([json.dumps(s) for s in STATES])


def _constant(block: Block, name: str) -> str:
    if name == "version":
        return json.dumps(VERSION)
    if name == "evse_address":
        return json.dumps(block.evse.evse_address)
    return json.dumps(getattr(block.evse, name))


def constants(block: Block) -> dict[str, str]:
    """The per-EVSE constant fields (ids, labels), as plain strings."""
    return {
        c: json.loads(_constant(block, c))
        for c in (*ID_COLUMNS, "evse_type", "phases", "space_number", "version")
    }


def _time_strings(t: np.ndarray, rfc3339: bool) -> pa.Array:
    micros = np.round(t * 1e6).astype(np.int64)
    if rfc3339:
        text = pc.strftime(pa.array(micros).cast(pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
        return pc.binary_join_element_wise('"', text, 'Z"', "")
    secs = pa.array(micros // 1_000_000).cast(pa.string())
    frac = pc.utf8_slice_codeunits(pa.array(micros % 1_000_000 + 1_000_000).cast(pa.string()), 1)
    return pc.binary_join_element_wise(secs, ".", frac, "")


def _number_strings(name: str, v: np.ndarray) -> pa.Array:
    null = np.isnan(v)
    if name in FRACTIONAL:
        return pa.array(v, mask=null if null.any() else None).cast(pa.string())
    ints = np.where(null, 0, v).astype(np.int64)
    return pa.array(ints, mask=null if null.any() else None).cast(pa.string())


def row_bytes(block: Block, columns: Iterable[str], *, rfc3339: bool = False) -> bytes:
    """``,[...]`` per row of ``block`` (the first row too), for the given columns."""
    if len(block) == 0:
        return b""
    pieces: list[pa.Array | str] = []
    literal = ",["
    for i, name in enumerate(columns):
        if i:
            literal += ","
        if name == "time":
            arr: pa.Array | None = _time_strings(block.time, rfc3339)
        elif name == "charging_state":
            arr = _STATE_JSON.take(pa.array(block.state.astype(np.int32)))
        elif name in block.values:
            arr = _number_strings(name, block.values[name])
        else:
            arr = None
            literal += _constant(block, name)
        if arr is not None:
            pieces += [literal, arr]
            literal = ""
    pieces.append(literal + "]")
    joined = pc.binary_join_element_wise(
        *pieces, "", null_handling="replace", null_replacement="null"
    )
    offsets = np.frombuffer(
        joined.buffers()[1], dtype=np.int32, count=len(joined) + 1, offset=joined.offset * 4
    )
    data = joined.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1]]


@dataclass(frozen=True)
class Shape:
    """How an answer is laid out (the fault switches that change the body, not the rows)."""

    rfc3339: bool = False
    split_tags: bool = False
    wrap_data: bool = False
    chunked: bool = False
    max_rows: int | None = None


def _series_head(measurement: str, block: Block, shape: Shape) -> tuple[bytes, list[str]]:
    cols = list(COLUMNS[measurement])
    head: dict[str, object] = {"name": measurement}
    if shape.split_tags:
        cols = [c for c in cols if c not in ID_COLUMNS]
        consts = constants(block)
        head["tags"] = {c: consts[c] for c in ID_COLUMNS}
    head["columns"] = cols
    text = json.dumps(head, separators=(",", ":"))
    return (text[:-1] + ',"values":[').encode(), cols


def _doc(body: bytes, shape: Shape) -> bytes:
    return b'{"data":' + body + b"}" if shape.wrap_data else body


EMPTY = b'{"results":[{"statement_id":0}]}'


def answer(measurement: str, blocks: Iterable[Block], shape: Shape) -> Iterator[bytes]:
    """The body of a ``get_measurement_data`` answer, as byte pieces to stream."""
    if shape.chunked or shape.max_rows is not None:
        yield from _chunked(measurement, blocks, shape)
        return
    started = False
    open_series = False
    for block in blocks:
        if len(block) == 0:
            continue
        if not started:
            yield (
                b'{"data":' if shape.wrap_data else b""
            ) + b'{"results":[{"statement_id":0,"series":['
        if shape.split_tags or not open_series:
            head, cols = _series_head(measurement, block, shape)
            if open_series:
                yield b"]},"
            yield head
            rows = row_bytes(block, cols, rfc3339=shape.rfc3339)
            yield rows[1:]
            open_series = True
        else:
            yield row_bytes(block, cols, rfc3339=shape.rfc3339)
        started = True
    if not started:
        yield _doc(EMPTY, shape)
        return
    yield b"]}]}]}" + (b"}" if shape.wrap_data else b"")


def _chunked(measurement: str, blocks: Iterable[Block], shape: Shape) -> Iterator[bytes]:
    """One document per block, ``partial`` on all but the last; a row limit cuts it short."""
    pending: bytes | None = None
    left = shape.max_rows
    for block in blocks:
        if len(block) == 0:
            continue
        if left is not None and len(block) > left:
            block = Block(
                block.evse,
                block.time[:left],
                block.state[:left],
                {k: v[:left] for k, v in block.values.items()},
            )
        if pending is not None:
            yield _doc(pending + b',"partial":true}],"partial":true}]}', shape) + b"\n"
        head, cols = _series_head(measurement, block, shape)
        pending = (
            b'{"results":[{"statement_id":0,"series":['
            + head
            + row_bytes(block, cols, rfc3339=shape.rfc3339)[1:]
            + b"]"
        )
        if left is not None:
            left -= len(block)
            if left <= 0:
                # InfluxDB's row limit: the last document says partial and nothing follows
                yield _doc(pending + b',"partial":true}],"partial":true}]}', shape) + b"\n"
                return
    if pending is None:
        yield _doc(EMPTY, shape) + b"\n"
    else:
        yield _doc(pending + b"}]}]}", shape) + b"\n"
