"""Time cells -> µs: exact truncation for epoch floats, RFC 3339 fast path == per-value path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from powerflex_etl.parse.times import (
    BAD_TIME,
    MAX_US,
    MIN_US,
    NO_TIME,
    OUT_OF_RANGE,
    _rfc3339_one,
    times_to_us,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_float_error_does_not_lose_a_microsecond() -> None:
    assert times_to_us([1566333668.123456]).us.tolist() == [1566333668_123456]
    # a 7th digit (this float's shortest form) is below µs: truncated, not rounded
    assert times_to_us([1566333668.1000001]).us.tolist() == [1566333668_100000]
    assert times_to_us([0.000001, 1e-7]).us.tolist() == [1, 0]
    assert times_to_us([-0.0000015]).us.tolist() == [-2]  # truncation is toward -inf


def test_reasons_name_what_is_wrong_with_the_time() -> None:
    t = times_to_us([None, "soon", False, [1], 1e15, "0000-12-31T23:59:59Z", 0])
    assert t.reasons == [NO_TIME, BAD_TIME, BAD_TIME, BAD_TIME, OUT_OF_RANGE, BAD_TIME, None]
    assert not t.all_ok


def test_offset_can_push_a_time_out_of_range() -> None:
    t = times_to_us(["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
    assert t.reasons == [OUT_OF_RANGE, OUT_OF_RANGE]


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-(2.0**32), max_value=2.0**32))
def test_epoch_seconds_truncate_the_number_as_written(seconds: float) -> None:
    # json writes a float's shortest repr; truncating that decimal is the contract
    expected = int((Decimal(repr(seconds)) * 1_000_000).to_integral_value(rounding="ROUND_FLOOR"))
    assert times_to_us([seconds]).us.tolist() == [expected]


@settings(max_examples=300, deadline=None)
@given(st.integers(MIN_US // 2, MAX_US // 2))
def test_epoch_microseconds_round_trip_through_a_float(us: int) -> None:
    if abs(us) < 2**32 * 10**6:  # beyond, a float cannot hold every µs
        assert times_to_us([us / 1e6]).us.tolist() == [us]


rfc3339 = st.builds(
    lambda dt, minutes, digits, z: (
        dt.astimezone(timezone(timedelta(minutes=minutes))).strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{dt.microsecond:06d}999"[: digits + 1] if digits else "")
        + (
            "Z"
            if z and minutes == 0
            else dt.astimezone(timezone(timedelta(minutes=minutes))).strftime("%z")[:3]
            + ":"
            + dt.astimezone(timezone(timedelta(minutes=minutes))).strftime("%z")[3:]
        )
    ),
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    st.integers(-14 * 60, 14 * 60),
    st.integers(0, 12),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(rfc3339, min_size=1, max_size=8))
def test_vectorised_strings_agree_with_the_per_value_parser(texts: list[str]) -> None:
    fast = times_to_us(texts)
    one_by_one = [_rfc3339_one(t) for t in texts]
    assert fast.reasons == [None] * len(texts)
    assert fast.us.tolist() == one_by_one


@settings(max_examples=200, deadline=None)
@given(rfc3339)
def test_per_value_parser_agrees_with_datetime(text: str) -> None:
    # Python 3.11 reads any number of fraction digits and drops those below µs
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    expected = (parsed - EPOCH) // timedelta(microseconds=1)
    assert _rfc3339_one(text) == expected


def test_mixed_numbers_and_strings_take_the_per_value_path() -> None:
    t = times_to_us([1.5, "1970-01-01T00:00:02.000001Z", None])
    assert t.us[:2].tolist() == [1_500000, 2_000001]
    assert t.reasons == [None, None, NO_TIME]
    assert t.us.dtype == np.int64
