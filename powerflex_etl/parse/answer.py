"""Pure: InfluxDB 1.7 ``/query`` JSON (every shape PowerFlex may send) -> a ParsedAnswer. No I/O.

See CONTRACT §1 "Answers to accept". The envelope is decoded with msgspec Structs that
keep each series' ``values`` as raw bytes; :mod:`.series` then decodes the rows straight
into typed columns (see :mod:`.parsed`), so no list of dicts is ever built.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from powerflex_etl.errors import AnswerErrorReported, ParseError, PartialAnswerError
from powerflex_etl.parse.parsed import NUMBER_TYPE, TEXT_TYPE, BadRow, ParsedAnswer
from powerflex_etl.parse.series import SeriesError, SeriesPart, Slot, decode_series
from powerflex_etl.schemas import SPECS, Kind, source_kinds

__all__ = ["BadRow", "ParsedAnswer", "parse_answer"]

_PARSE_HINT = "the answer was malformed or truncated; retry the window, or report it if it persists"
_MAX_QUOTE = 300


class _Series(msgspec.Struct):
    columns: list[str]
    values: msgspec.Raw = msgspec.Raw(b"[]")
    name: Any = None
    tags: dict[str, Any] | None = None
    partial: bool = False


class _Result(msgspec.Struct):
    series: list[_Series] | None = None
    error: Any = None
    partial: bool = False
    statement_id: Any = None


class _Answer(msgspec.Struct):
    results: list[_Result] | None = None
    error: Any = None


class _Document(msgspec.Struct):
    """One JSON document: the answer itself, or ``{"data": answer}`` as PowerFlex wraps it."""

    results: list[_Result] | None = None
    error: Any = None
    data: _Answer | None = None


_DOCUMENT = msgspec.json.Decoder(_Document)


def _fail(measurement: str, detail: str) -> ParseError:
    return ParseError(
        f"cannot parse the {measurement} answer: {detail}",
        measurement=measurement,
        hint=_PARSE_HINT,
    )


def _documents(body: bytes | bytearray, measurement: str) -> list[_Answer]:
    """The JSON documents of a body: one, or one per line when the answer was chunked."""
    # isspace() stops at the first other byte; strip() would copy the whole body
    if not body or body.isspace():
        raise _fail(measurement, "the body is empty")
    try:
        docs = [_DOCUMENT.decode(body)]
    except msgspec.ValidationError as err:  # a subclass of DecodeError: catch it first
        raise _fail(measurement, f"not an InfluxDB answer: {err}")
    except msgspec.DecodeError as err:
        if "trailing characters" not in str(err):
            raise _fail(measurement, str(err))
        docs = []
        lines: list[bytes | bytearray] = [*body.splitlines()]
        for lineno, line in enumerate(lines, 1):
            if not line.isspace() and line:
                try:
                    docs.append(_DOCUMENT.decode(line))
                except msgspec.MsgspecError as line_err:
                    raise _fail(measurement, f"document on line {lineno}: {line_err}")
    answers = []
    for doc in docs:
        if doc.error is not None:
            answers.append(_Answer(error=doc.error))
        elif doc.results is None and doc.data is not None:
            answers.append(doc.data)
        else:
            answers.append(_Answer(results=doc.results))
    return answers


def _quote(error: object) -> str:
    text = error if isinstance(error, str) else msgspec.json.encode(error).decode()
    return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "..."


def _check(answers: list[_Answer], measurement: str) -> None:
    """Raise for reported errors, missing results and a cut (``partial``) final document."""
    for answer in answers:
        if answer.error is not None:
            raise AnswerErrorReported(
                f'the {measurement} answer reported an error: "{_quote(answer.error)}"',
                measurement=measurement,
                hint="check the query and the account's access to this measurement",
            )
        if answer.results is None:
            raise _fail(measurement, 'no "results" and no "error"')
        for result in answer.results:
            if result.error is not None:
                raise AnswerErrorReported(
                    f"the {measurement} answer reported a statement error: "
                    f'"{_quote(result.error)}"',
                    measurement=measurement,
                    hint="check the query and the account's access to this measurement",
                )
    last = answers[-1].results or []
    if any(r.partial or any(s.partial for s in r.series or ()) for r in last):
        raise PartialAnswerError(
            f"the {measurement} answer was cut: its last part says partial", measurement=measurement
        )


def _unknown_column(values: list[Any]) -> pa.Array:
    """An unknown field across the answer: float64 when every value is a number, else text."""
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        try:
            return pa.array([None if v is None else float(v) for v in values], type=NUMBER_TYPE)
        except OverflowError:
            pass
    return pa.array(
        [v if v is None or isinstance(v, str) else msgspec.json.encode(v).decode() for v in values],
        type=TEXT_TYPE,
    )


def _fields(parts: list[SeriesPart]) -> tuple[np.ndarray, pa.Table]:
    """Series parts, in order, as (times in µs, one table of fields, one chunk per column).

    A field a series lacks is null for its rows.
    """
    slots: dict[str, Slot] = {}
    for part in parts:
        for name in part.columns:
            slots.setdefault(name, part.slots[name])
    us = (
        np.concatenate([p.time_us for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    ).astype(np.int64, copy=False)
    arrays: list[pa.Array] = []
    for name, slot in slots.items():
        if slot == "any":
            values: list[Any] = []
            for p in parts:
                col = p.columns.get(name)
                values.extend(col if isinstance(col, list) else [None] * p.n)
            arrays.append(_unknown_column(values))
        else:
            typ = TEXT_TYPE if slot == "id" else NUMBER_TYPE
            chunks = []
            for p in parts:
                col = p.columns.get(name)
                chunks.append(col if isinstance(col, pa.Array) else pa.nulls(p.n, typ))
            # text chunks' dictionaries are unified here: indices remapped, strings not copied
            arrays.append(chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks))
    if not arrays:
        # rows with a time and no field: a table of len(us) rows and no column
        return us, pa.table({"_": pa.nulls(len(us))}).drop_columns(["_"])
    return us, pa.Table.from_arrays(arrays, names=list(slots))


def parse_answer(body: bytes | bytearray, measurement: str) -> ParsedAnswer:
    """Parse a whole answer body into typed columns in delivery order, plus its bad rows.

    A ``bytearray`` body (what the client returns) is parsed without a copy of its series:
    the parser works in it and puts every byte back before it returns, so the caller's
    body is unchanged either way (it must not be read or written meanwhile).

    Accepts the bare InfluxDB 1.7 JSON or ``{"data": {...}}``, one document or a chunked
    stream (one document per line), several statements and series, tags, any column order.
    Known fields are typed from :func:`schemas.source_kinds`; for a measurement not in
    :data:`schemas.SPECS` every field is unknown. A series whose ``name`` differs from
    ``measurement`` is kept: PowerFlex answers only what was asked for, so the name is
    informational (InfluxDB names a ``SELECT ... INTO`` result "result", for instance).

    JSON has no NaN/Infinity; msgspec refuses those tokens, so an answer holding one is a
    ``ParseError``, while a number too big for a float (``1e400``) makes its row a bad row.

    Raises ``ParseError`` (malformed/truncated, or a shape no row can be read from),
    ``AnswerErrorReported`` (statement or top-level ``error``), ``PartialAnswerError``
    (a final ``partial: true``: cut answer). Never anything but a ``PowerflexError``.
    """
    kinds: dict[str, Kind] = source_kinds(measurement) if measurement in SPECS else {}
    if isinstance(body, memoryview):
        body = bytes(body)
    elif isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes | bytearray):
        raise _fail(measurement, f"the body is a {type(body).__name__}, not bytes")
    try:
        return _parse(body, measurement, kinds)
    except RecursionError:
        # msgspec refuses nesting deeper than the interpreter's recursion limit
        raise _fail(measurement, "JSON nested too deeply") from None
    except UnicodeDecodeError as err:
        # the envelope is checked by msgspec, but strings inside raw ``values`` only here
        raise _fail(measurement, f"a string is not UTF-8 ({err.reason})") from None


def _parse(body: bytes | bytearray, measurement: str, kinds: dict[str, Kind]) -> ParsedAnswer:
    owner = body if isinstance(body, bytearray) else None
    answers = _documents(body, measurement)
    _check(answers, measurement)
    parts: list[SeriesPart] = []
    for answer in answers:
        for result in answer.results or ():
            for series in result.series or ():
                try:
                    part = decode_series(series.columns, series.tags, series.values, kinds, owner)
                except SeriesError as err:
                    raise _fail(measurement, f"series {_quote(series.name)}: {err}")
                parts.append(part)
    us, fields = _fields(parts)
    return ParsedAnswer(measurement, us, fields, [b for p in parts for b in p.bad])
