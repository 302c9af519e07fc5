"""The flat (CSV-reader) path of the series decoder gives exactly what the typed path gives.

``decode_series`` tries the flat path first and falls back to the typed one on any surprise;
these tests build ``values`` from adversarial cells (quoted numbers, brackets and commas in
strings, escapes, literals, big numbers, wrong-length rows) and check that the outcome,
bad rows included, never depends on which path read it.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerflex_etl.parse import series as influx_series
from powerflex_etl.parse.series import SeriesPart, decode_series
from powerflex_etl.schemas import source_kinds

KINDS = source_kinds("ct_response")
COLUMNS = ["time", "evse_address", "charging_state", "energy_delivered", "power"]

tricky_text = st.sampled_from(
    ["A", "", "0039", "null", "a],[b", "a, b", "x]", "[y", 'q"t', "back\\slash", "é", "a b", " "]
)
id_cells = st.one_of(tricky_text, st.text(max_size=6), st.integers(0, 99), st.none(), st.just(1.5))
num_cells = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.sampled_from(["5", True, 10**30]),
)
plain_ids = st.one_of(st.sampled_from(["0039", "CA-308", "", "null", "a b"]), st.none())
plain_nums = st.one_of(
    st.integers(0, 10**6), st.floats(0, 1e9, allow_nan=False, allow_infinity=False), st.none()
)
plain_times = st.floats(1e9, 2e9)
time_cells = st.one_of(
    st.floats(1e9, 2e9),
    st.integers(10**9, 2 * 10**9),
    st.sampled_from([None, "2021-06-01T00:00:00Z", -1.0, True]),
)


def _both(columns: list[str], raw: bytes) -> tuple[SeriesPart, SeriesPart | None]:
    typed = _typed(columns, raw)
    slots = {c: influx_series.slot_of(c, KINDS) for c in columns}
    flat = influx_series._flat_part(columns, slots, {}, msgspec.Raw(raw))
    return typed, flat


def _typed(columns: list[str], raw: bytes) -> SeriesPart:
    real = influx_series._flat_part
    influx_series._flat_part = lambda *a, **k: None  # type: ignore[assignment]
    try:
        return decode_series(columns, None, msgspec.Raw(raw), KINDS)
    finally:
        influx_series._flat_part = real  # type: ignore[assignment]


def _same(a: SeriesPart, b: SeriesPart) -> None:
    assert a.n == b.n
    assert a.time_us.tolist() == b.time_us.tolist()
    assert a.bad == b.bad
    assert set(a.columns) == set(b.columns)
    for name, col in a.columns.items():
        other = b.columns[name]
        assert not isinstance(col, list) and not isinstance(other, list)
        assert col.type == other.type, name
        assert col.to_pylist() == other.to_pylist(), name


@st.composite
def series(draw: st.DrawFn) -> tuple[list[str], bytes]:
    n = draw(st.integers(1, 12))
    # mostly plain series (the flat path's case), some with any cell at all
    wild = draw(st.integers(0, 2)) == 0
    tc, ic, nc = (time_cells, id_cells, num_cells) if wild else (plain_times, plain_ids, plain_nums)
    rows: list[list[Any]] = []
    for _ in range(n):
        row = [draw(tc), draw(ic), draw(ic), draw(nc), draw(nc)]
        if wild and draw(st.integers(0, 20)) == 0:
            row = row[: draw(st.integers(0, 4))]  # a wrong-length row
        rows.append(row)
    spaced = draw(st.booleans())
    text = json.dumps(rows, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=False)
    return COLUMNS, text.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series())
def test_flat_path_agrees_with_typed_path(case: tuple[list[str], bytes]) -> None:
    columns, raw = case
    typed, flat = _both(columns, raw)
    if flat is not None:
        _same(typed, flat)
    # and what decode_series returns is always the typed outcome
    _same(typed, decode_series(columns, None, msgspec.Raw(raw), KINDS))


def test_flat_path_takes_the_common_shape() -> None:
    rows = [
        [1622505602.288101, "0002-0039-0128-0018", "CHARGING", 0, 6.5],
        [1622505607.5, "0002-0039-0128-0018", None, 12345, None],
        [1622505612, "03", "UNPLUGGED", None, 0.0],
    ]
    raw = json.dumps(rows, separators=(",", ":")).encode()
    typed, flat = _both(COLUMNS, raw)
    assert flat is not None, "the plain PowerFlex shape should take the flat path"
    _same(typed, flat)
    assert flat.columns["evse_address"].to_pylist()[2] == "03"  # ids stay strings as sent
    assert flat.time_us.tolist() == [1622505602288101, 1622505607500000, 1622505612000000]


@pytest.mark.parametrize(
    "rows",
    [
        [[1622505602.5, 3, "A", 1, 2]],  # an unquoted id: id_text makes it "3"
        [[1622505602.5, "a", "A", "5", 2]],  # a quoted number: a bad row
        [[1622505602.5, "a],[b", "A", 1, 2]],  # the row separator inside a string
        [[1622505602.5, "a,b", "A", 1, 2]],  # the cell separator inside a string
        [[1622505602.5, "a", "A", 1e300, 1]],
        [["2021-06-01T00:00:00Z", "a", "A", 1, 2]],  # RFC 3339 times
        [[1622505602.5, "a", "A", 1, 2], [1622505603.5, "a", "A", 1]],  # a short row
        [[None, "a", "A", 1, 2]],
        [[1622505602.5, "a", "A", True, 2]],
    ],
)
def test_flat_path_steps_aside_or_agrees(rows: list[list[Any]]) -> None:
    raw = json.dumps(rows, separators=(",", ":")).encode()
    typed, flat = _both(COLUMNS, raw)
    if flat is not None:
        _same(typed, flat)
    _same(typed, decode_series(COLUMNS, None, msgspec.Raw(raw), KINDS))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b" "))
    | st.text(" ,[]ab").map(str.encode)
)
def test_spaced_is_the_substring_test(text: bytes) -> None:
    # the numpy shortcut must say exactly what six substring searches say
    expected = any(s in text for s in (b", ", b" ,", b"[ ", b" [", b"] ", b" ]"))
    assert influx_series._spaced(np.frombuffer(text, dtype=np.uint8)) is expected


def _body(columns: list[str], raw: bytes) -> bytes:
    head = json.dumps({"name": "ct_response", "columns": columns})[:-1].encode()
    return b'{"results":[{"statement_id":0,"series":[' + head + b',"values":' + raw + b"}]}]}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series())
def test_a_bytearray_body_is_parsed_in_place_and_given_back_unchanged(
    case: tuple[list[str], bytes],
) -> None:
    # the client hands over a bytearray: the fast path borrows it (no copy of the series),
    # and every path (taken, or stepping aside after rewriting the rows) puts it back
    from powerflex_etl.parse.answer import parse_answer

    columns, raw = case
    body = _body(columns, raw)
    owned = bytearray(body)
    want, got = parse_answer(body, "ct_response"), parse_answer(owned, "ct_response")
    assert bytes(owned) == body
    assert got.time_us.tolist() == want.time_us.tolist()
    assert got.fields.equals(want.fields)
    assert got.bad_rows == want.bad_rows


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series(), st.integers(1, 9))
def test_the_rewrite_is_the_same_in_blocks_of_any_size(
    case: tuple[list[str], bytes], block: int
) -> None:
    # the rows are rewritten (and put back) block by block: a "],[" split across two blocks,
    # or a bracket left over in a later block, must come out as in one block
    from powerflex_etl.parse.answer import parse_answer

    columns, raw = case
    body = _body(columns, raw)
    want = parse_answer(body, "ct_response")
    owned = bytearray(body)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(influx_series, "_SCAN_BLOCK", block)
        got = parse_answer(owned, "ct_response")
    assert bytes(owned) == body
    assert got.time_us.tolist() == want.time_us.tolist()
    assert got.fields.equals(want.fields)
    assert got.bad_rows == want.bad_rows


@pytest.mark.parametrize(
    "rows",
    [
        [[1622505602.5, "a", "A", "5", 2], [1622505603.5, "b", "A", 1, 2]],  # read_csv refuses
        [[1622505602.5, "a],[b", "A", 1, 2]],  # a bracket left after the rewrite
        [[1622505602.5, "a", "A", 1, 2], [1622505603.5, "b", "B", 3, 4]],  # taken
    ],
)
def test_borrowed_rows_are_put_back_on_every_path(rows: list[list[Any]]) -> None:
    raw = json.dumps(rows, separators=(",", ":")).encode()
    body = _body(COLUMNS, raw)
    owned = bytearray(body)
    start = body.index(raw)
    slots = {c: influx_series.slot_of(c, KINDS) for c in COLUMNS}
    view = msgspec.Raw(memoryview(owned)[start : start + len(raw)])
    text = influx_series._Text(view, owned)
    assert text.borrowed, "a Raw inside the body is borrowed, not copied"
    influx_series._flat_part(COLUMNS, slots, {}, view, owned)
    assert bytes(owned) == body


def test_the_flat_path_leaves_the_interpreters_gc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # process-wide state is the application's: only the typed path (millions of tuples)
    # pauses the GC, so a plain answer must parse with gc.disable out of reach
    import gc

    from powerflex_etl.parse.answer import parse_answer

    def refuse() -> None:
        raise AssertionError("the flat path paused the GC")

    rows = [[1622505602.5, "a", "CHARGING", 1, 2], [1622505603.5, "b", None, 3, None]]
    body = _body(COLUMNS, json.dumps(rows, separators=(",", ":")).encode())
    monkeypatch.setattr(gc, "disable", refuse)
    assert parse_answer(bytearray(body), "ct_response").fields.num_rows == 2
    with pytest.raises(AssertionError, match="paused the GC"):
        parse_answer(body.replace(b'"a"', b"7"), "ct_response")  # an unquoted id: typed path
