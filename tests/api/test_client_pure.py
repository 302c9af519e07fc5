"""The client's pure parts: JWT claims, refresh deadlines, Retry-After, backoff, input checks."""

from __future__ import annotations

import base64
import json
import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerflex_etl.api.auth import TokenTimes, refresh_at, token_times
from powerflex_etl.api.checks import acc_path, check_months, check_schedule, check_signal
from powerflex_etl.api.client import ClientNotPicklableError, PowerflexClient
from powerflex_etl.api.retry import backoff_s, parse_retry_after
from powerflex_etl.cli.api import parse_months
from powerflex_etl.errors import ConfigError, PowerflexError
from powerflex_etl.schemas import MONTHS
from powerflex_etl.settings import Settings


def _jwt(claims: object) -> str:
    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJl"


@given(
    iat=st.integers(0, 2**40),
    life=st.integers(1, 10**7),
    extra=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
def test_token_times_reads_iat_and_exp_from_any_jwt(iat: int, life: int, extra: dict) -> None:
    claims = {**extra, "iat": iat, "exp": iat + life}
    assert token_times(_jwt(claims)) == TokenTimes(float(iat), float(iat + life))


@pytest.mark.parametrize(
    "token",
    ["opaque-token", "a.b.c", "a.!!!.c", _jwt([1, 2]), _jwt({"exp": "soon"}), _jwt({"exp": True})],
)
def test_token_without_readable_claims_is_still_usable(token: str) -> None:
    assert token_times(token) == TokenTimes(None, None)


@given(lifetime=st.floats(1.0, 10**6), login=st.floats(0, 2e9), skew=st.floats(-1e5, 1e5))
def test_refresh_before_expiry_by_min_60s_or_half_lifetime(
    lifetime: float, login: float, skew: float
) -> None:
    # the server's clock may be off ours by `skew`: the deadline follows our clock
    times = TokenTimes(login + skew, login + skew + lifetime)
    deadline = refresh_at(times, login)
    margin = min(60.0, lifetime / 2)
    assert deadline == pytest.approx(login + lifetime - margin)
    assert login < deadline < login + lifetime


def test_refresh_without_claims_assumes_the_vendors_one_day() -> None:
    assert refresh_at(TokenTimes(None, None), 1000.0) == 1000.0 + 86400 - 60
    assert refresh_at(TokenTimes(None, 1100.0), 1000.0) == 1050.0
    # already expired by our clock: use once, let the server's 401 decide
    assert refresh_at(TokenTimes(None, 900.0), 1000.0) == 1000.0


@given(st.floats(0, 1e6))
def test_retry_after_seconds(seconds: float) -> None:
    assert parse_retry_after(repr(seconds)) == pytest.approx(seconds)


@given(st.integers(0, 10**6))
def test_retry_after_http_date(delta: int) -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=delta), usegmt=True)
    assert parse_retry_after(header, now=now) == delta


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0


@given(attempt=st.integers(1, 100), base=st.floats(0, 10), r=st.floats(0, 1, exclude_max=True))
def test_backoff_is_full_jitter_under_an_exponential_cap(
    attempt: int, base: float, r: float
) -> None:
    wait = backoff_s(attempt, base, r)
    assert 0 <= wait <= min(60.0, base * 2 ** (attempt - 1)) + 1e-9


@given(st.integers(0, 10**9), st.integers(0, 4))
def test_acc_id_goes_into_the_url_in_integer_form(n: int, pad: int) -> None:
    assert acc_path(n) == str(n)
    assert acc_path("0" * pad + str(n)) == str(n)


@pytest.mark.parametrize("bad", ["", "abc", "3a", "-1", "../3", "٣", -1, True, 2.5])
def test_non_numeric_acc_id_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="acc_id"):
        acc_path(bad)  # type: ignore[arg-type]


@given(st.dictionaries(st.sampled_from(MONTHS), st.integers(0, 10**6), min_size=1))
def test_months_round_trip_through_the_cli_syntax(months: dict[str, int]) -> None:
    items = [f"{m.lower()}={v}" for m, v in months.items()]
    assert check_months(parse_months(items)) == months


@pytest.mark.parametrize(
    "months", [{}, {"June": 1}, {"Jun": 1.5}, {"Jun": True}, {"Jun": -1}, {"Jun": "700"}]
)
def test_bad_months_are_refused(months: dict) -> None:
    with pytest.raises(ConfigError):
        check_months(months)


@pytest.mark.parametrize("item", ["Jun", "Jun=", "Jun=7.5", "=3"])
def test_bad_month_syntax_is_refused(item: str) -> None:
    with pytest.raises(ConfigError):
        check_months(parse_months([item]))


def test_signal_checks() -> None:
    assert check_signal("S", 21.6, "kW", True) == {
        "name": "S",
        "max_load": 21.6,
        "max_load_unit": "kW",
        "is_enabled": True,
    }
    for args in [("", 1, "kW", True), ("S", 1, "W", True), ("S", -1, "A", True), ("S", 1, "A", 1)]:
        with pytest.raises(ConfigError):
            check_signal(*args)  # type: ignore[arg-type]


GOOD_SCHEDULE = {
    "definition": [
        {"days": [1, 2, 3, 4, 5, 6, 7], "schedule": [{"start_time": "00:00:00", "max_power": 13}]}
    ],
    "max_power_units": "kW",
    "is_enabled": True,
    "timezone": "US/Pacific",
}


def test_schedule_checks() -> None:
    assert check_schedule(GOOD_SCHEDULE) == GOOD_SCHEDULE
    bad_entries = [
        {"days": [0], "schedule": [{"start_time": "00:00:00", "max_power": 1}]},
        {"days": [1], "schedule": []},
        {"days": [1], "schedule": [{"start_time": "24:00:00", "max_power": 1}]},
        {"days": [1], "schedule": [{"start_time": "00:00:00", "max_power": -1}]},
    ]
    for entry in bad_entries:
        with pytest.raises(ConfigError, match="definition"):
            check_schedule({**GOOD_SCHEDULE, "definition": [entry]})
    with pytest.raises(ConfigError):
        check_schedule({"definition": []})


def test_a_client_refuses_to_be_pickled_and_says_what_to_do() -> None:
    client = PowerflexClient(Settings(base_url="http://127.0.0.1:9", username="u"))
    try:
        with pytest.raises(ClientNotPicklableError, match="cannot be pickled") as info:
            pickle.dumps(client)
        assert isinstance(info.value, PowerflexError)
        assert "one per process" in info.value.one_line()
    finally:
        client.close()
