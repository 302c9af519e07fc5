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

from powerflex_etl.simulator.generate import COLUMNS, FRACTIONAL, ID_COLUMNS, STATES, VERSION, Block

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


# "0000".."9999" as bytes: a number is printed four digits at a time by table lookup
_DIGITS4 = np.array([list(f"{i:04d}".encode()) for i in range(10_000)], dtype=np.uint8)
_TIME_WIDTH = 17  # 10 digits, ".", 6 digits


def _time_text(t: np.ndarray) -> np.ndarray | None:
    """Epoch seconds as a (n, 17) uint8 matrix of text, or None outside 2001..2286."""
    micros = np.round(t * 1e6).astype(np.int64)
    if not micros.size or micros.min() < 10**15 or micros.max() >= 10**16:
        return None
    text = np.empty((micros.size, _TIME_WIDTH), dtype=np.uint8)
    hi, lo = np.divmod(micros, 10**8)
    text[:, 0:4] = _DIGITS4[hi // 10**4]
    text[:, 4:8] = _DIGITS4[hi % 10**4]
    g2, g3 = np.divmod(lo, 10**4)
    text[:, 8:10] = _DIGITS4[g2][:, 0:2]
    text[:, 10] = ord(".")
    text[:, 11:13] = _DIGITS4[g2][:, 2:4]
    text[:, 13:17] = _DIGITS4[g3]
    return text


def _fixed_strings(text: np.ndarray) -> pa.Array:
    """An Arrow string array over a (n, width) uint8 matrix, without a copy per row."""
    n, width = text.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(text))
    )


def _time_strings(t: np.ndarray, rfc3339: bool) -> pa.Array:
    micros = np.round(t * 1e6).astype(np.int64)
    if rfc3339:
        text = pc.strftime(pa.array(micros).cast(pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
        return pc.binary_join_element_wise('"', text, 'Z"', "")
    fixed = _time_text(t)
    if fixed is not None:
        return _fixed_strings(fixed)
    secs = pa.array(micros // 1_000_000).cast(pa.string())
    frac = pc.utf8_slice_codeunits(pa.array(micros % 1_000_000 + 1_000_000).cast(pa.string()), 1)
    return pc.binary_join_element_wise(secs, ".", frac, "")


def _number_strings(name: str, v: np.ndarray) -> pa.Array:
    null = np.isnan(v)
    if name in FRACTIONAL:
        return pa.array(v, mask=null if null.any() else None).cast(pa.string())
    ints = np.where(null, 0, v).astype(np.int64)
    return pa.array(ints, mask=null if null.any() else None).cast(pa.string())


def _json_number(name: str, x: float) -> str:
    if np.isnan(x):
        return "null"
    return repr(float(x)) if name in FRACTIONAL and x != int(x) else str(int(x))


def _pieces(block: Block, columns: list[str], rows: np.ndarray | None) -> list[pa.Array | str]:
    """Literal and array pieces of ``,[...]`` for the selected rows (all when None).

    A column constant over the selected rows becomes part of a literal: idle EVSEs repeat
    the same values row after row, so most rows need only their time formatted.
    """
    pieces: list[pa.Array | str] = []
    literal = ",["
    for i, name in enumerate(columns):
        if i:
            literal += ","
        arr: pa.Array | str | None = None
        if name == "time":
            arr = "time"  # placeholder: the caller supplies the time strings
        elif name == "charging_state":
            st = block.state if rows is None else block.state[rows]
            if st.size and (st == st[0]).all():
                literal += json.dumps(STATES[st[0]])
            else:
                arr = _STATE_JSON.take(pa.array(st.astype(np.int32)))
        elif name in block.values:
            v = block.values[name] if rows is None else block.values[name][rows]
            if v.size and ((v == v[0]).all() or np.isnan(v).all()):
                literal += _json_number(name, float(v[0]))
            else:
                arr = _number_strings(name, v)
        else:
            literal += _constant(block, name)
        if arr is not None:
            pieces += [literal, arr]
            literal = ""
    pieces.append(literal + "]")
    return pieces


def _encode_rows(
    block: Block, columns: list[str], rows: np.ndarray | None, rfc3339: bool
) -> tuple[memoryview, np.ndarray]:
    """The selected rows' text and their offsets into it."""
    t = block.time if rows is None else block.time[rows]
    pieces = _pieces(block, columns, rows)
    fixed = None if rfc3339 else _time_text(t)
    if fixed is not None and len(pieces) == 3 and pieces[1] == "time":
        # only the time varies: every row has the same width, so build the text in numpy
        head, tail = str(pieces[0]).encode(), str(pieces[2]).encode()
        width = len(head) + _TIME_WIDTH + len(tail)
        text = np.empty((t.size, width), dtype=np.uint8)
        text[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
        text[:, len(head) : len(head) + _TIME_WIDTH] = fixed
        text[:, len(head) + _TIME_WIDTH :] = np.frombuffer(tail, dtype=np.uint8)
        return text.reshape(-1).data, np.arange(0, (t.size + 1) * width, width, dtype=np.int64)
    times = _fixed_strings(fixed) if fixed is not None else _time_strings(t, rfc3339)
    args = [times if p == "time" else p for p in pieces]
    joined = pc.binary_join_element_wise(
        *args, "", null_handling="replace", null_replacement="null"
    )
    offsets = np.frombuffer(
        joined.buffers()[1], dtype=np.int32, count=len(joined) + 1, offset=joined.offset * 4
    )
    return memoryview(joined.buffers()[2]), offsets.astype(np.int64)


def row_bytes(block: Block, columns: Iterable[str], *, rfc3339: bool = False) -> bytes:
    """``,[...]`` per row of ``block`` (the first row too), for the given columns."""
    n = len(block)
    if n == 0:
        return b""
    columns = list(columns)
    idle = block.state == 0
    if idle.all() or not idle.any():
        text, off = _encode_rows(block, columns, None, rfc3339)
        return bytes(text[off[0] : off[-1]])
    # idle and active rows are built apart, then stitched back run by run in time order
    parts = {
        True: _encode_rows(block, columns, idle, rfc3339),
        False: _encode_rows(block, columns, ~idle, rfc3339),
    }
    change = np.nonzero(idle[1:] != idle[:-1])[0] + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    rank = np.empty(n, dtype=np.int64)
    rank[idle] = np.arange(int(idle.sum()))
    rank[~idle] = np.arange(int((~idle).sum()))
    out = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        text, off = parts[bool(idle[a])]
        out.append(text[off[rank[a]] : off[rank[b - 1] + 1]])
    return b"".join(out)


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
    current: str | None = None
    cols: list[str] = []
    for block in blocks:
        if len(block) == 0:
            continue
        if not started:
            yield (
                b'{"data":' if shape.wrap_data else b""
            ) + b'{"results":[{"statement_id":0,"series":['
        # one series in all, or with tags one per EVSE (its day blocks continue it)
        if not open_series or (shape.split_tags and block.evse.evse_address != current):
            current = block.evse.evse_address
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
