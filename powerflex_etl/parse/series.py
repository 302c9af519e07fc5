"""Pure: one InfluxDB series (``columns``, raw ``values``, ``tags``) -> typed columns + bad rows.

The typed path decodes ``values`` straight into tuples typed per column (msgspec validates
the types while parsing), transposes them and builds Arrow arrays. Big series go in chunks
of rows, so Python objects never outnumber one chunk. A chunk with any surprise (a wrong
type, a wrong-length row, a bad time) is read again by the per-row path of
:mod:`.rows`, which converts values the same way, so a row's outcome and raw text
never depend on which path saw it or on its neighbours.
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
import pyarrow.csv as pcsv

from powerflex_etl.parse.gcpause import gc_paused
from powerflex_etl.parse.parsed import NUMBER_TYPE, TEXT_TYPE, BadRow
from powerflex_etl.parse.rows import (
    Piece,
    SeriesError,
    Slot,
    id_text,
    number_or_reason,
    rows_piece,
)
from powerflex_etl.parse.times import numbers_to_us, times_to_us
from powerflex_etl.schemas import TIME, Kind

__all__ = ["SeriesError", "SeriesPart", "Slot", "decode_series", "slot_of"]

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
_MIN_SPLIT_ROWS = 128


@dataclass
class SeriesPart:
    """One series as columns: ``n`` good rows, their times, and the rows that failed."""

    n: int
    time_us: np.ndarray
    # id columns as TEXT_TYPE, num columns as float64; unknown ("any") columns as delivered
    # Python values, typed only once every series is in (their type depends on the whole answer)
    columns: dict[str, pa.Array | list[Any]]
    slots: dict[str, Slot]
    bad: list[BadRow] = field(default_factory=list)


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
    columns: Sequence[str], order: tuple[Slot, ...], piece: Piece
) -> msgspec.json.Decoder[Any] | None:
    """A decoder giving the id labels seen in ``piece`` as shared objects, for later chunks.

    Ids repeat (a few dozen EVSEs, sites, states): decoding them as a ``Literal`` of the
    labels already seen hands back one object per label instead of a new string per cell,
    which saves a third of the decode and of freeing for those columns.
    """
    types: list[Any] = []
    for name, slot in zip(columns, order, strict=True):
        typ = _SLOT_TYPES[slot]
        col = piece.cols.get(name)
        if slot == "id" and isinstance(col, pa.Array):
            labels = pc.unique(col.drop_null()).to_pylist()
            if labels and len(labels) <= _MAX_LABELS:
                typ = Literal[tuple(sorted(labels))] | int | None
        types.append(typ)
    if types == [_SLOT_TYPES[s] for s in order]:
        return None
    return msgspec.json.Decoder(list[tuple.__class_getitem__(tuple(types))])  # type: ignore[misc]


def _id_array(values: Sequence[object]) -> pa.Array:
    # plain strings here, dictionary-encoded once per series in _merge: pieces are often
    # small (see _Reader.read), and a dictionary builder per piece costs more than one pass
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([None if v is None else id_text(v) for v in values], type=pa.string())


def _tag_columns(
    tags: Mapping[str, Any], slots: Mapping[str, Slot], n: int
) -> dict[str, pa.Array | list[Any]] | None:
    """Tag values repeated over ``n`` rows; None when one cannot be trusted (per-row path)."""
    out: dict[str, pa.Array | list[Any]] = {}
    for name, value in tags.items():
        slot = slots[name]
        if slot == "num":
            number, reason = number_or_reason(name, value)
            if reason is not None:
                return None
            out[name] = (
                pa.array(np.full(n, number)) if number is not None else pa.nulls(n, NUMBER_TYPE)
            )
        elif slot == "id":
            out[name] = (
                pa.nulls(n, TEXT_TYPE)
                if value is None
                else pa.DictionaryArray.from_arrays(
                    np.zeros(n, dtype=np.int32), pa.array([id_text(value)], pa.string())
                )
            )
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
    try:
        rows = _ROWS_RAW.decode(raw)
    except msgspec.ValidationError:
        raise SeriesError("values is not a list of rows")
    for start in range(0, len(rows), _CHUNK_ROWS):
        yield b"[" + b",".join(rows[start : start + _CHUNK_ROWS]) + b"]"


def _typed_piece(
    columns: Sequence[str], slots: Mapping[str, Slot], rows: list[tuple[Any, ...]]
) -> Piece | None:
    """Typed rows -> a piece; None when a row needs the per-row path (bad time, inf)."""
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
            arr = pa.array(col or (), type=NUMBER_TYPE)
            if arr.null_count < n and not pc.all(pc.is_finite(arr)).as_py():
                return None
            out[name] = arr
        elif slot == "id":
            out[name] = _id_array(col or ())
        elif slot == "any":
            out[name] = list(col or ())
    return Piece(times.us, out)


@dataclass
class _Reader:
    """Reads chunks of one series: typed when it can, per row only around the bad rows."""

    columns: Sequence[str]
    slots: dict[str, Slot]
    tags: Mapping[str, Any]
    plain: msgspec.json.Decoder[Any]
    labelled: msgspec.json.Decoder[Any] | None = None

    def _typed_rows(self, chunk: bytes | msgspec.Raw) -> list[tuple[Any, ...]] | None:
        if self.labelled is not None:
            try:
                return self.labelled.decode(chunk)  # type: ignore[no-any-return]
            except msgspec.ValidationError:
                pass  # a label the first chunk did not have: the plain decoder reads it
        try:
            return self.plain.decode(chunk)  # type: ignore[no-any-return]
        except msgspec.ValidationError:
            return None

    def read(self, chunk: bytes | msgspec.Raw, first_row: int) -> list[Piece]:
        """Rows of ``chunk`` (the first being series row ``first_row``) as pieces in order.

        A chunk the typed path cannot take is split into parts of ``_MIN_SPLIT_ROWS`` rows,
        each tried typed again, so a bad row costs the slow per-row path only its own part.
        """
        if _tag_columns(self.tags, self.slots, 0) is not None:  # else every row is bad
            rows = self._typed_rows(chunk)
            if rows is not None:
                piece = _typed_piece(self.columns, self.slots, rows)
                del rows
                if piece is not None:
                    return [piece]
            try:
                raw_rows = _ROWS_RAW.decode(chunk)
            except msgspec.ValidationError:
                raw_rows = []  # not a list: the per-row path says so
            if len(raw_rows) > _MIN_SPLIT_ROWS:
                step = _MIN_SPLIT_ROWS
                out: list[Piece] = []
                for start in range(0, len(raw_rows), step):
                    part = b"[" + b",".join(raw_rows[start : start + step]) + b"]"
                    out += self.read(part, first_row + start)
                return out
        return [rows_piece(self.columns, self.slots, self.tags, chunk, first_row)]


def _merge(
    pieces: list[Piece], columns: Sequence[str], slots: dict[str, Slot], tags: Mapping[str, Any]
) -> SeriesPart:
    bad = [b for p in pieces for b in p.bad]
    n = sum(len(p.us) for p in pieces)
    if n == 0:
        return SeriesPart(0, np.zeros(0, dtype=np.int64), {}, slots, bad)
    out: dict[str, pa.Array | list[Any]] = {}
    for name in columns:
        if name == TIME:
            continue
        parts = [p.cols[name] for p in pieces if len(p.us)]
        if slots[name] == "any":
            out[name] = [v for part in parts for v in part]
            continue
        arrays = [a for a in parts if isinstance(a, pa.Array)]
        arr = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
        out[name] = arr.dictionary_encode() if slots[name] == "id" else arr
    # non-None: a tag that cannot be trusted makes every row bad, and n > 0 here
    out.update(_tag_columns(tags, slots, n) or {})
    us = pieces[0].us if len(pieces) == 1 else np.concatenate([p.us for p in pieces])
    return SeriesPart(n, us, out, slots, bad)


# bytes that make the flat path step aside: escapes, objects, line breaks; and spaces next
# to JSON punctuation (looked for only when there is a space at all: then it may be inside
# a string, which is harmless)
_FLAT_STOP = (b"\\", b"{", b"\n", b"\r", b"\t")
_SPACE = ord(" ")
_PUNCTUATION = np.zeros(256, dtype=bool)
_PUNCTUATION[list(b",[]")] = True
_BRACKET_CLOSE, _COMMA, _BRACKET_OPEN = b"],["
_FLAT_PARSE = pcsv.ParseOptions(
    quote_char=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=False
)
_FLAT_CONVERT_BASE = {"null_values": ["null"], "strings_can_be_null": True}


def _flat_ids(col: pa.ChunkedArray) -> pa.Array | None:
    """Quoted labels (dictionary-encoded by the CSV reader, a dictionary per block) -> one
    TEXT_TYPE array, unquoted; None unless every non-null cell was a JSON string (an unquoted
    cell is a number or a literal: typed path). Only the small dictionaries are touched."""
    out = []
    for chunk in col.chunks:
        labels = chunk.dictionary
        if len(labels):
            quoted = pc.and_(
                pc.greater_equal(pc.binary_length(labels), 2),
                pc.and_(pc.starts_with(labels, '"'), pc.ends_with(labels, '"')),
            )
            if not pc.all(quoted).as_py():
                return None
            labels = pc.utf8_slice_codeunits(labels, 1, -1)
        out.append(pa.DictionaryArray.from_arrays(chunk.indices, labels))
    # concatenating unifies the blocks' dictionaries: the indices are remapped, no string copied
    return pa.concat_arrays(out) if len(out) != 1 else out[0]


# bytes looked at this many at a time: a whole answer's boolean mask would be as big as
# the answer itself (30 MB for a 6 h ct_response window), one block's stays in cache, and
# its temporaries, under glibc's mmap threshold as the CLI sets it (cli/memory.py), reuse
# the heap instead of faulting in fresh pages for every block
_SCAN_BLOCK = 1 << 18
_NEWLINE, _ZERO = b"\n0"


def _blocks(a: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``a`` as (offset, view) blocks of ``_SCAN_BLOCK`` bytes."""
    for i in range(0, a.size, _SCAN_BLOCK):
        yield i, a[i : i + _SCAN_BLOCK]


def _spaced(a: np.ndarray) -> bool:
    """Whether a space stands next to ``,``, ``[`` or ``]`` anywhere in ``a`` (bytes as uint8).

    Spaces are rare (a label such as "NOT CHARGING"), so numpy finds them block by block
    and only their neighbours are looked at: six substring searches over a whole answer
    cost ~15x more (0.8 µs per point of a ct_response answer).
    """
    for i, block in _blocks(a):
        at = np.flatnonzero(block == _SPACE) + i
        before = at[at > 0] - 1
        after = at[at + 1 < a.size] + 1
        if _PUNCTUATION[a[before]].any() or _PUNCTUATION[a[after]].any():
            return True
    return False


def _csv_rows(text: _Text) -> int | None:
    """``r1],[r2],[r3`` -> ``r1\\n00r2\\n00r3`` in place: each ``],[`` a newline and two zeros.

    Done with numpy, block by block (``bytes.replace`` is several times slower and copies);
    the zeros pad the first cell of the next row, which the reader takes for the same
    number. A first cell that is not a plain non-negative number then fails to convert,
    and the typed path reads the series. Returns the number of rows; None, with the text
    put back, when a bracket is left over (nested arrays, brackets in strings). The text
    has no newline before (see :func:`_flat_part`), so :meth:`_Text.restore` finds what
    was written by looking for newlines: no list of positions is kept.
    """
    a = text.array()
    rows = 1
    for i, block in _blocks(a):
        ends = np.flatnonzero(block == _BRACKET_CLOSE) + i
        if not ends.size:
            continue
        if ends[-1] + 2 >= a.size or not (
            (a[ends + 1] == _COMMA).all() and (a[ends + 2] == _BRACKET_OPEN).all()
        ):
            del a, block
            text.restore()
            return None
        a[ends] = _NEWLINE
        a[ends + 1] = a[ends + 2] = _ZERO
        rows += ends.size
    del a  # a view on the buffer: gone before anyone resizes it
    if text.has(b"["):
        text.restore()
        return None
    return rows


class _Text:
    """The rows of a series (``values`` without its outer brackets) as a writable region.

    Borrowed in place when the answer body is a ``bytearray`` holding ``raw`` (the client
    hands one over: no copy of a 30 MB answer), else a copy. A borrowed region is put back
    byte for byte (:meth:`restore`) before the parser lets go of it, so the body the caller
    holds, and the typed path's view of it, never change.
    """

    def __init__(self, raw: msgspec.Raw, owner: bytearray | None) -> None:
        view = memoryview(raw)
        start = _offset_in(view, owner) if owner is not None else None
        if start is None or owner is None:
            self.buf, self.start, self.borrowed = bytearray(view[2:-2]), 0, False
        else:
            self.buf, self.start, self.borrowed = owner, start + 2, True
        self.end = self.start + view.nbytes - 4

    def has(self, needle: bytes) -> bool:
        # find() with bounds searches in place (memchr speed), slicing would copy
        return self.buf.find(needle, self.start, self.end) >= 0

    def array(self) -> np.ndarray:
        """The region as a writable numpy view (drop it before the buffer may be resized)."""
        return np.frombuffer(
            self.buf, dtype=np.uint8, count=self.end - self.start, offset=self.start
        )

    def arrow(self) -> pa.Buffer:
        return pa.py_buffer(memoryview(self.buf)[self.start : self.end])

    def restore(self) -> None:
        """Undo :func:`_csv_rows`: each newline (all of them its own) ``],[`` again."""
        a = self.array()
        for i, block in _blocks(a):
            ends = np.flatnonzero(block == _NEWLINE) + i
            a[ends] = _BRACKET_CLOSE
            a[ends + 1] = _COMMA
            a[ends + 2] = _BRACKET_OPEN


def _offset_in(view: memoryview, owner: bytearray) -> int | None:
    """Where ``view`` (msgspec's read-only view of a ``Raw``) starts inside ``owner``, or None."""
    if not view.nbytes or not owner:
        return None
    here = np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]
    base = np.frombuffer(owner, dtype=np.uint8).__array_interface__["data"][0]
    start = int(here - base)
    if start < 0 or start + view.nbytes > len(owner):
        return None  # msgspec made a copy (a chunked answer's lines): nothing to borrow
    return start


def _flat_part(
    columns: Sequence[str],
    slots: Mapping[str, Slot],
    tags: Mapping[str, Any],
    raw: msgspec.Raw,
    owner: bytearray | None = None,
) -> SeriesPart | None:
    """The common shape in one pass of Arrow's multithreaded CSV reader, or None.

    ``values`` that msgspec has already validated as JSON, holding only numbers, ``null`` and
    strings without escapes, in rows of equal length, is CSV once ``],[`` becomes a newline:
    with quoting off, every JSON string arrives with its quotes, which tells it from a number
    or a literal. Any surprise (a quoted number, an unquoted id, a bad time, a wrong-length
    row, a bracket or comma inside a string, an unknown field) returns None and the typed path
    reads the series, so the outcome never depends on which path ran. No Python object per
    cell is made, and the reader releases the GIL, so windows in other threads keep going.
    ``owner``, the body ``raw`` lies in, is written in place and put back (see :class:`_Text`).
    """
    if any(slots[c] == "any" for c in columns) or any(slots[t] == "any" for t in tags):
        return None
    view = memoryview(raw)
    if view.nbytes < 4 or view[:2] != b"[[" or view[-2:] != b"]]":
        return None
    del view
    text = _Text(raw, owner)
    if any(text.has(stop) for stop in _FLAT_STOP):
        return None
    if text.has(b" ") and _spaced(text.array()):
        return None
    rows = _csv_rows(text)
    if rows is None:
        return None
    try:
        return _read_flat(columns, slots, tags, text, rows)
    finally:
        if text.borrowed:
            text.restore()


def _read_flat(
    columns: Sequence[str], slots: Mapping[str, Slot], tags: Mapping[str, Any], text: _Text, n: int
) -> SeriesPart | None:
    """The CSV text of :func:`_flat_part` as a SeriesPart, or None at any surprise."""
    types = {c: TEXT_TYPE if slots[c] == "id" else NUMBER_TYPE for c in columns}
    try:
        table = pcsv.read_csv(
            text.arrow(),
            read_options=pcsv.ReadOptions(
                column_names=list(columns),
                block_size=max(1 << 20, (text.end - text.start) // 4 + 1),
            ),
            parse_options=_FLAT_PARSE,
            convert_options=pcsv.ConvertOptions(column_types=types, **_FLAT_CONVERT_BASE),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != n:
        return None
    time_col = table[TIME].combine_chunks()
    if time_col.null_count:
        return None
    us, reasons = numbers_to_us(time_col)
    if reasons.count(None) != n:
        return None
    out: dict[str, pa.Array | list[Any]] = {}
    for name in columns:
        if name == TIME:
            continue
        if slots[name] == "id":
            ids = _flat_ids(table[name])
            if ids is None:
                return None
            out[name] = ids
        else:
            arr = table[name].combine_chunks()
            if arr.null_count < n and not pc.all(pc.is_finite(arr)).as_py():
                return None
            out[name] = arr
    tag_cols = _tag_columns(tags, slots, n)
    if tag_cols is None:
        return None
    out.update(tag_cols)
    return SeriesPart(n, us, out, dict(slots))


def decode_series(
    columns: Sequence[str],
    tags: Mapping[str, Any] | None,
    raw: msgspec.Raw,
    kinds: Mapping[str, Kind],
    owner: bytearray | None = None,
) -> SeriesPart:
    """Decode one series; raises :class:`SeriesError` when its shape is unreadable.

    Tag values belong to every row of the series; a tag whose key is also a column is
    ignored (the row's own value wins). ``owner`` is the answer body when it is a
    ``bytearray`` that ``raw`` points into: the fast path then works in it, and leaves it
    as it was, instead of copying the series.
    """
    if TIME not in columns:
        raise SeriesError('columns has no "time"')
    if len(set(columns)) != len(columns):
        raise SeriesError("columns repeats a name")
    tags = {k: v for k, v in (tags or {}).items() if k not in columns}
    slots = {name: slot_of(name, kinds) for name in (*columns, *tags)}
    order = tuple(slots[c] for c in columns)
    flat = _flat_part(columns, slots, tags, raw, owner)
    if flat is not None:
        return flat
    with gc_paused():
        reader = _Reader(columns, slots, tags, _rows_decoder(order))
        pieces: list[Piece] = []
        for k, chunk in enumerate(_chunks(raw)):
            pieces += reader.read(chunk, k * _CHUNK_ROWS)
            if k == 0 and len(raw) > _SPLIT_BYTES and pieces and len(pieces[0].us):
                reader.labelled = _label_decoder(columns, order, pieces[0])
        return _merge(pieces, columns, slots, tags)
