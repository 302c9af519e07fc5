"""Fuzzing the parser and the normalizer: whatever the bytes, only a clean PowerflexError.

Hypothesis feeds ``parse_answer`` (and, when it parses, ``normalize``) arbitrary bytes,
arbitrary JSON, InfluxDB-shaped answers with a wrong type in any cell (huge numbers,
``NaN``/``Infinity`` tokens, nested junk, control characters), chunked streams and
byte-level mutations of good answers; explicit cases cover 100k-deep nesting and non-UTF-8
strings. Every case is counted, and the last test checks the total is what the docs say
(>= 10,000 in CI; ten times more under ``POWERFLEX_TEST_LONG=1``).
"""

from __future__ import annotations

import json
import math
import os
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerflex_etl.errors import ParseError, PowerflexError
from powerflex_etl.parse.answer import parse_answer
from powerflex_etl.parse.normalize import normalize
from powerflex_etl.schemas import MEASUREMENTS, REJECTS_SCHEMA, source_kinds
from powerflex_etl.windows import Window

LONG = os.environ.get("POWERFLEX_TEST_LONG") == "1"
SCALE = 10 if LONG else 1
WINDOW = Window(datetime(2021, 6, 1, tzinfo=UTC), datetime(2021, 6, 1, 6, tzinfo=UTC))
T_IN = 1622505600  # 2021-06-01T00:00:00Z, inside WINDOW
RAN: Counter[str] = Counter()
# (test name, examples asked); the sum is the figure docs/reliability.md quotes
BUDGET = {
    "bytes": 4500,
    "json": 1500,
    "influx": 2000,
    "mutated": 2000,
}


def fuzz(name: str) -> settings:
    return settings(
        max_examples=BUDGET[name] * SCALE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,  # the same cases on every machine; no state left behind
        derandomize=not LONG,
    )


class Tok:
    """A JSON token written as-is (``NaN``, ``1e400``, a 2**70 integer, a bad escape)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Tok({self.text!r})"


def dump(value: Any) -> str:
    """JSON text of ``value`` with :class:`Tok` leaves spliced in verbatim."""
    if isinstance(value, Tok):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dump(v) for k, v in value.items()) + "}"
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return json.dumps(value)


def check(body: bytes, measurement: str = "ct_response") -> None:
    """The property: parse (and normalize) or a one-line PowerflexError; nothing else."""
    try:
        parsed = parse_answer(body, measurement)
    except PowerflexError as err:
        assert "\n" not in str(err)
        assert measurement in str(err)
        return
    table = parsed.table
    assert table.column("time").null_count == 0
    for bad in parsed.bad_rows:
        assert isinstance(json.loads(bad.raw), dict)
    try:
        result = normalize(parsed, WINDOW, run_id="fuzz", ingested_at=datetime.now(UTC))
    except PowerflexError as err:
        assert "\n" not in str(err)
        return
    st_ = result.stats
    assert st_.rows_in == (
        st_.outside_window + st_.out_of_scope + st_.rejected + st_.duplicates + st_.rows_out
    )
    assert result.rejects.schema.equals(REJECTS_SCHEMA)
    for raw in result.rejects.column("raw").to_pylist():
        json.loads(raw)  # the trace of a reject is always readable JSON
    times = result.table.column("time").cast(pa.int64()).to_pylist()
    assert all(WINDOW.start_us <= t < WINDOW.end_us for t in times)


# -- strategies ---------------------------------------------------------------------------

hostile_tokens = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        str(2**70),
        str(-(2**70)),
        "1" * 400,
        "0.0000000000000000000000000000001e-400",
        '"\\ud800"',
        '"\\u0000"',
        "nan",
        "+1",
        "01",
        ".5",
        "1.",
        "tru",
        '"\\x"',
    ]
).map(Tok)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "..", "a/b", "x\x00y", "é🔋", "2021-06-01T00:00:00Z", "CHARGING"]),
    hostile_tokens,
)
junk = st.recursive(
    leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=12,
)
good_time = st.one_of(
    st.integers(T_IN - 3600, T_IN + 7 * 3600),
    st.floats(T_IN - 3600, T_IN + 7 * 3600),
    st.sampled_from(["2021-06-01T01:00:00Z", "2021-06-01T02:00:00.123456789+00:00"]),
)


# wrong types that are still valid JSON: the parser must turn each into a bad row or a value
valid_odd = st.sampled_from(
    ["1e400", "-1e400", str(2**70), str(-(2**70)), "1" * 400, "1e-400", "-0", "[]", "{}"]
).map(Tok)
cell = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["", "..", "a/b", "x\x00y", "é🔋", "2021-06-01T00:00:00Z", "CHARGING"]),
    valid_odd,
    st.lists(st.integers() | st.text(max_size=3), max_size=2),
)


@st.composite
def influx_answers(draw: st.DrawFn) -> tuple[str, bytes]:
    """Well-formed InfluxDB envelopes whose cells may hold any wrong type per column.

    One answer in ten also carries a token JSON forbids (NaN, Infinity, a bad escape) in a
    random cell, which must fail the whole answer cleanly.
    """
    measurement = draw(st.sampled_from(MEASUREMENTS))
    known = list(source_kinds(measurement))
    docs: list[Any] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
        series_list = []
        for _ in range(draw(st.integers(0, 2))):
            names = draw(st.lists(st.sampled_from([*known, "extra"]), unique=True, max_size=5))
            columns = draw(st.permutations(["time", *names]))
            rows = []
            for _ in range(draw(st.integers(0, 5))):
                row = [draw(good_time | cell) if c == "time" else draw(cell) for c in columns]
                if draw(st.integers(0, 9)) == 0:  # a wrong-length row now and then
                    row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(cell, max_size=2))
                if row and draw(st.integers(0, 9)) == 0:
                    row[draw(st.integers(0, len(row) - 1))] = draw(hostile_tokens)
                rows.append(row)
            series: dict[str, Any] = {"name": measurement, "columns": columns, "values": rows}
            if draw(st.booleans()):
                series["tags"] = draw(st.dictionaries(st.sampled_from(known), cell, max_size=2))
            if draw(st.integers(0, 19)) == 0:
                series["values"] = draw(junk)
            series_list.append(series)
        result: dict[str, Any] = {"statement_id": 0, "series": series_list}
        if draw(st.integers(0, 19)) == 0:
            result["error"] = draw(cell)
        if draw(st.integers(0, 9)) == 0:
            result["partial"] = draw(st.booleans() | cell)
        doc: dict[str, Any] = {"results": [result]}
        if draw(st.booleans()):
            doc = {"data": doc}
        docs.append(doc)
    return measurement, "\n".join(dump(d) for d in docs).encode()


good_body = json.dumps(
    {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "name": "ct_response",
                        "tags": {"acc_id": "3"},
                        "columns": ["time", "evse_address", "power", "charging_state"],
                        "values": [
                            [T_IN + 60 * i, f"33-73-211-96{i}", 1.5 * i, "CHARGING_ACTIVE"]
                            for i in range(4)
                        ],
                    }
                ],
            }
        ]
    }
).encode()


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    """A good answer with a few byte-level edits: delete, insert, overwrite, truncate."""
    body = bytearray(good_body)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "overwrite", "truncate"]))
        pos = draw(st.integers(0, len(body)))
        piece = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from(
                [b"\xff", b"\xc3", b"\xed\xa0\x80", b"[", b"{", b'"', b"NaN", b"1e400"]
            )
        )
        if op == "delete":
            del body[pos : pos + len(piece)]
        elif op == "insert":
            body[pos:pos] = piece
        elif op == "overwrite":
            body[pos : pos + len(piece)] = piece
        else:
            del body[pos:]
    return bytes(body)


# -- the fuzz tests -----------------------------------------------------------------------


@fuzz("bytes")
@given(st.binary(max_size=300), st.sampled_from(MEASUREMENTS))
def test_arbitrary_bytes(body: bytes, measurement: str) -> None:
    RAN["bytes"] += 1
    check(body, measurement)


@fuzz("json")
@given(junk, st.booleans())
def test_arbitrary_json_documents(doc: Any, wrap: bool) -> None:
    RAN["json"] += 1
    check(dump({"data": doc} if wrap else doc).encode())


@fuzz("influx")
@given(influx_answers())
def test_influx_shaped_answers_with_wrong_types_per_column(case: tuple[str, bytes]) -> None:
    RAN["influx"] += 1
    measurement, body = case
    check(body, measurement)


@fuzz("mutated")
@given(mutations())
def test_byte_mutations_of_a_good_answer(body: bytes) -> None:
    RAN["mutated"] += 1
    check(body)


# -- explicit hostile bodies --------------------------------------------------------------

DEPTHS = [1_000, 100_000]


def _wrap(where: str, nest: bytes) -> bytes:
    series = b'{"name":"ct_response","columns":["time","evse_address","%s"],"values":%s}'
    if where == "top":
        return nest
    if where == "results":
        return b'{"results":' + nest + b"}"
    if where == "error":
        return b'{"error":' + nest + b"}"
    if where == "values":
        return b'{"results":[{"series":[' + series % (b"power", nest) + b"]}]}"
    if where == "tags":
        return (
            b'{"results":[{"series":[{"columns":["time"],"tags":{"acc_id":'
            + nest
            + b'},"values":[[1622505600]]}]}]}'
        )
    cell = b"[[1622505600,%s,%s]]"
    col = {"num_cell": b"power", "id_cell": b"acc_id", "unknown_cell": b"extra"}[where]
    return b'{"results":[{"series":[' + series % (col, cell % (b'"e1"', nest)) + b"]}]}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(
    "where", ["top", "results", "error", "values", "tags", "num_cell", "id_cell", "unknown_cell"]
)
@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
def test_deeply_nested_junk_is_a_parse_error_not_a_recursion_error(
    depth: int, where: str, closed: bool
) -> None:
    nest = b"[" * depth + (b"]" * depth if closed else b"")
    with pytest.raises(ParseError) as info:
        parse_answer(_wrap(where, nest), "ct_response")
    assert "\n" not in str(info.value)


def test_nesting_just_below_the_limit_parses_normalizes_and_rejects() -> None:
    # the deepest value msgspec takes must also survive normalize's JSON of the raw row
    for depth in range(200, 2000, 50):
        body = _wrap("unknown_cell", b"[" * depth + b"]" * depth)
        try:
            parsed = parse_answer(body, "ct_response")
        except ParseError:
            break
        normalize(parsed, WINDOW, run_id="deep", ingested_at=datetime.now(UTC))
    else:
        pytest.fail("no nesting depth was refused")


@pytest.mark.parametrize(
    "bad",
    [b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"],
    ids=["ff", "cut-2-byte", "surrogate", "above-max", "overlong-slash", "lone-continuation"],
)
@pytest.mark.parametrize("where", ["id_cell", "unknown_cell", "tags", "columns", "error", "top"])
def test_non_utf8_strings_anywhere_are_a_parse_error(bad: bytes, where: str) -> None:
    text = b'"a' + bad + b'"'
    body = {
        "id_cell": b'{"results":[{"series":[{"columns":["time","acc_id"],"values":[[1622505600,%s]]}]}]}',
        "unknown_cell": b'{"results":[{"series":[{"columns":["time","x"],"values":[[1622505600,%s]]}]}]}',
        "tags": b'{"results":[{"series":[{"columns":["time"],"tags":{"acc_id":%s},"values":[[1]]}]}]}',
        "columns": b'{"results":[{"series":[{"columns":["time",%s],"values":[[1,2]]}]}]}',
        "error": b'{"error":%s}',
        "top": b"%s",
    }[where] % text
    with pytest.raises(ParseError) as info:
        parse_answer(body, "ct_response")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("body", [b"", b" ", b"\n\n", b"\x00", b"\xef\xbb\xbf", b"null", b"{}"])
def test_empty_and_near_empty_bodies_are_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError, match="ct_response"):
        parse_answer(body, "ct_response")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_tokens_are_parse_errors(token: str) -> None:
    body = '{"results":[{"series":[{"columns":["time","power"],"values":[[1622505600,%s]]}]}]}'
    with pytest.raises(ParseError):
        parse_answer((body % token).encode(), "ct_response")


def test_huge_numbers_become_rejects_not_crashes() -> None:
    big, huge = str(2**70), "1e400"
    rows = [
        f'[{T_IN}, "e1", {huge}, 1]',
        f'[{T_IN + 1}, "e2", {big}, 1]',
        f'[{T_IN + 2}, "e3", 1, {huge}]',
        f'[{T_IN + 3}, "e4", 1, -{big}]',
        f'[{huge}, "e5", 1, 1]',
        f'[{big}, "e6", 1, 1]',
    ]
    body = (
        '{"results":[{"series":[{"columns":["time","evse_address","power","extra"],"values":['
        + ",".join(rows)
        + "]}]}]}"
    ).encode()
    parsed = parse_answer(body, "ct_response")
    result = normalize(parsed, WINDOW, run_id="big", ingested_at=datetime.now(UTC))
    table = result.table
    kept = dict(zip(table["evse_address"].to_pylist(), table["power_kw"].to_pylist(), strict=True))
    # 2**70 is a finite float: a real (absurd) value, kept; 1e400 is not a float: a reject
    assert kept.get("e2") == float(2**70)
    assert "e1" not in kept and "e5" not in kept and "e6" not in kept
    assert result.stats.rows_in == len(rows)
    assert result.stats.rejected + result.stats.rows_out == len(rows)


def test_memory_of_a_parse_is_bounded_by_a_small_multiple_of_the_body() -> None:
    # the worst ratio we know: tiny rows, every one of them bad (per-row path, raw JSON kept)
    rows = ",".join(f'[{T_IN + i // 2},"e{i % 7}","x{i % 3}"]' for i in range(10_000))
    head = '{"results":[{"series":[{"columns":["time","evse_address","power"],"values":['
    body = (head + rows + "]}]}]}").encode()
    pool = pa.default_memory_pool()
    tracemalloc.start()
    try:
        before = pool.bytes_allocated()
        parsed = parse_answer(body, "ct_response")
        result = normalize(parsed, WINDOW, run_id="mem", ingested_at=datetime.now(UTC))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.stats.rejected == 10_000
    arrow = pool.bytes_allocated() - before
    # Python objects (rows, raw JSON of each reject) + Arrow buffers still held
    assert peak + arrow < 40 * len(body), (peak, arrow, len(body))


def test_at_least_ten_thousand_cases_ran() -> None:
    ran = {k: RAN[k] for k in BUDGET}
    if any(v == 0 for v in ran.values()):
        pytest.skip(f"run the whole module to count its cases (ran {ran})")
    total = sum(ran.values())
    print(f"\nfuzz cases run: {total} {ran}")
    assert total >= 10_000 * SCALE, ran
