"""Hypothesis: rows -> InfluxDB JSON in any shape -> parse_answer gives the same rows back;
and no input, however broken, raises anything but a PowerflexError."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerflex_etl.errors import PowerflexError
from powerflex_etl.parse import series as influx_series
from powerflex_etl.parse.answer import parse_answer
from powerflex_etl.schemas import MEASUREMENTS, source_kinds

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -62_135_596_800 * 10**6 + 14 * 3600 * 10**6  # room for any offset
MAX_US = 253_402_300_800 * 10**6 - 14 * 3600 * 10**6 - 1
EXTRA = "extra_reading"  # a field not in the vendor's tables: kept, float64 when numeric

ids = st.one_of(st.text(max_size=8), st.integers(0, 10**6))
numbers = st.one_of(
    st.integers(-(10**15), 10**15), st.floats(allow_nan=False, allow_infinity=False)
)


@st.composite
def time_cell(draw: st.DrawFn, us: int) -> Any:
    """The same instant as epoch seconds or as RFC 3339 (any offset, 0-9 fraction digits)."""
    # epoch floats carry µs exactly only up to 2**32 s (year 2106), as the parser documents
    if abs(us) < 2**32 * 10**6 and draw(st.booleans()):
        return us / 1e6 if us % 10**6 else us // 10**6
    minutes = draw(st.integers(-14 * 60, 14 * 60))
    tz = timezone(timedelta(minutes=minutes))
    local = (EPOCH + timedelta(microseconds=us)).astimezone(tz)
    # fewer digits only when the dropped ones are zeros; digits 7-9 are below µs (truncated)
    least = 6 if local.microsecond % 1000 else 3 if local.microsecond else 0
    digits = draw(st.sampled_from([d for d in (0, 3, 6, 9) if d >= least]))
    frac = f"{local.microsecond:06d}" + draw(st.sampled_from(["000", "999"]))
    text = local.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    if digits:
        text += "." + frac[:digits]
    off = "Z" if minutes == 0 and draw(st.booleans()) else local.strftime("%z")
    if off != "Z":
        off = off[:3] + ":" + off[3:5]
    return text + off


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, bytes, dict[str, list[Any]], list[int]]:
    """(measurement, body, expected columns, expected µs): rows split into series/tags/docs."""
    measurement = draw(st.sampled_from(MEASUREMENTS))
    kinds = source_kinds(measurement)
    names = draw(st.lists(st.sampled_from([*kinds, EXTRA]), unique=True, max_size=6))
    n_series = draw(st.integers(0, 4))
    docs: list[dict[str, Any]] = []
    expected: dict[str, list[Any]] = {name: [] for name in names}
    times: list[int] = []
    for _ in range(n_series):
        n_rows = draw(st.integers(0, 5))
        tag_names = draw(st.lists(st.sampled_from(names), unique=True, max_size=2)) if names else []
        fields = [n for n in names if n not in tag_names]
        columns = draw(st.permutations(["time", *fields]))

        def value(name: str) -> Any:
            kind = kinds.get(name, "number")
            return draw(st.none() | (ids if kind in ("id", "state") else numbers))

        tags = {name: value(name) for name in tag_names}
        rows = []
        for _ in range(n_rows):
            us = draw(st.integers(MIN_US, MAX_US))
            cells = {"time": draw(time_cell(us)), **{f: value(f) for f in fields}}
            rows.append([cells[c] for c in columns])
            times.append(us)
            full = {**cells, **tags}
            for name in names:
                v = full[name]
                if v is None:
                    expected[name].append(None)
                elif kinds.get(name, "number") in ("id", "state"):
                    expected[name].append(str(v))
                else:
                    expected[name].append(float(v))
        series: dict[str, Any] = {"name": measurement, "columns": columns, "values": rows}
        if tags or draw(st.booleans()):
            series["tags"] = tags
        docs.append({"results": [{"statement_id": 0, "series": [series]}]})
    if draw(st.booleans()):  # chunked: one document per series, partial on all but the last
        for doc in docs[:-1]:
            doc["results"][0]["partial"] = True
        texts = [json.dumps(d) for d in docs] or ['{"results":[{"statement_id":0}]}']
    else:
        results = [{"statement_id": 0, "series": [d["results"][0]["series"][0] for d in docs]}]
        texts = [json.dumps({"results": results})]
    if draw(st.booleans()):
        texts = ['{"data": ' + t + "}" for t in texts]
    return measurement, "\n".join(texts).encode(), expected, times


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_rows_round_trip_in_order(case: tuple[str, bytes, dict[str, list[Any]], list[int]]) -> None:
    measurement, body, expected, times = case
    parsed = parse_answer(body, measurement)
    assert parsed.bad_rows == []
    table = parsed.table
    # times come back exactly, whatever the form: epoch floats, offsets, ns digits dropped
    assert table.column("time").cast(pa.int64()).to_pylist() == times
    for name, values in expected.items():
        if name in table.column_names:
            assert table.column(name).to_pylist() == values, name
        else:  # only a field no series delivered a row for is absent
            assert values == []


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)
)
json_values = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)
series_like = st.fixed_dictionaries(
    {"columns": st.one_of(st.just(["time", "power", "acc_id"]), json_values)},
    optional={
        "values": st.lists(st.lists(json_values, max_size=4), max_size=4) | json_values,
        "tags": json_values,
        "partial": json_values,
        "name": json_values,
    },
)
answer_like = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "results": st.lists(
                st.fixed_dictionaries(
                    {}, optional={"series": st.lists(series_like, max_size=3), "error": json_leaf}
                ),
                max_size=3,
            )
            | json_values,
            "error": json_leaf,
        },
    ),
)


def _only_powerflex_errors(body: bytes) -> None:
    try:
        parsed = parse_answer(body, "ct_response")
    except PowerflexError as err:
        assert "\n" not in str(err)
        return
    assert parsed.table.column("time").null_count == 0
    for bad in parsed.bad_rows:
        assert isinstance(json.loads(bad.raw), dict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_powerflex_errors(body: bytes) -> None:
    _only_powerflex_errors(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer_like, st.booleans(), st.integers(0, 40))
def test_json_shaped_input_only_raises_powerflex_errors(doc: Any, wrap: bool, cut: int) -> None:
    body = json.dumps({"data": doc} if wrap else doc).encode()
    _only_powerflex_errors(body)
    _only_powerflex_errors(body[: len(body) - cut])  # truncated answers too


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_rows_round_trip_when_series_are_decoded_in_chunks(
    case: tuple[str, bytes, dict[str, list[Any]], list[int]],
) -> None:
    # big-series machinery (chunks, shared labels, new labels in later chunks) on small data
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(influx_series, "_SPLIT_BYTES", 0)
        mp.setattr(influx_series, "_CHUNK_ROWS", 2)
        test_rows_round_trip_in_order.hypothesis.inner_test(case)  # type: ignore[attr-defined]


good_cell = {
    "time": st.integers(0, 2**31).map(lambda s: s / 8),
    "acc_id": st.none() | ids,
    "power": st.none() | numbers,
}
bad_cell = {
    "time": st.sampled_from([None, "soon", True, 1e13]),
    "acc_id": st.just(None),
    "power": st.sampled_from(["1", True, [1], 1e300 * 10]),
}


@st.composite
def rows_with_bad_ones(draw: st.DrawFn) -> list[list[Any]]:
    rows = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["good"] * 6 + ["bad_time", "bad_power", "short"]))
        row = [draw(good_cell[c]) for c in ("time", "acc_id", "power")]
        if kind == "bad_time":
            row[0] = draw(bad_cell["time"])
        elif kind == "bad_power":
            row[2] = draw(bad_cell["power"])
        elif kind == "short":
            row = row[:2]
        rows.append(row)
    return rows


@settings(max_examples=100, deadline=None)
@given(rows_with_bad_ones(), st.integers(1, 7), st.integers(1, 5))
def test_chunking_and_splitting_never_change_the_outcome(
    rows: list[list[Any]], chunk_rows: int, min_split: int
) -> None:
    body = json.dumps(
        {"results": [{"series": [{"columns": ["time", "acc_id", "power"], "values": rows}]}]}
    ).replace("Infinity", "1e400")
    whole = parse_answer(body.encode(), "ct_response")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(influx_series, "_SPLIT_BYTES", 0)
        mp.setattr(influx_series, "_CHUNK_ROWS", chunk_rows)
        mp.setattr(influx_series, "_MIN_SPLIT_ROWS", min_split)
        pieces = parse_answer(body.encode(), "ct_response")
    assert pieces.table.equals(whole.table)
    assert pieces.bad_rows == whole.bad_rows
    assert whole.n_rows == len(rows)
