"""The client against the real simulator on loopback: every endpoint, every fault mode.

Sleeps and the token clock are injected, so backoff, Retry-After and token expiry are
asserted without waiting for them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.errors import (
    AnswerTooLargeError,
    AuthError,
    ConfigError,
    RetryableApiError,
)
from powerflex_etl.settings import Settings

# the simulator replays real Caltech ACN sessions; its acc_id is the cluster id "0039"
ACC = "0039"
START = datetime(2024, 6, 3, tzinfo=UTC)
END = datetime(2024, 6, 3, 6, tzinfo=UTC)


class Clock:
    """A settable wall clock for the client's token deadline."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return datetime.now(UTC).timestamp() + self.offset


def _path(entry: Any) -> str:
    for attr in ("path", "url"):
        if isinstance(entry, dict) and attr in entry:
            return str(entry[attr])
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    if isinstance(entry, tuple | list):
        return str(entry[1])
    return str(entry).split()[-1]


def _paths(sim: Any) -> list[str]:
    return [_path(e) for e in sim.requests_seen()]


def _logins(sim: Any) -> int:
    return sum(p == "/login" for p in _paths(sim))


@pytest.fixture
def make(sim_settings: Settings) -> Callable[..., tuple[PowerflexClient, list[float], Clock]]:
    made: list[PowerflexClient] = []

    def factory(**overrides: Any) -> tuple[PowerflexClient, list[float], Clock]:
        settings = sim_settings.model_copy(update={"retry_backoff_s": 0.5, **overrides})
        sleeps: list[float] = []
        clock = Clock()
        client = PowerflexClient(settings, sleep=sleeps.append, clock=clock, rand=lambda: 0.5)
        made.append(client)
        return client, sleeps, clock

    yield factory
    for c in made:
        c.close()


def test_login_check_gives_the_expiry_never_the_token(make: Any) -> None:
    client, _, _ = make()
    exp = client.login_check()
    assert exp is not None
    assert timedelta(hours=23) < exp - datetime.now(UTC) <= timedelta(days=1, minutes=1)


def test_measurement_data_is_the_raw_influx_answer_for_the_window(make: Any, sim: Any) -> None:
    client, sleeps, _ = make()
    for m in ("ct_response", "evse_request", "evse_response"):
        body = client.get_measurement_data(m, START, END)
        assert isinstance(body, bytes)
        doc = json.loads(body)
        series = doc["results"][0]["series"]
        assert {s["name"] for s in series} == {m}
        t = series[0]["columns"].index("time")
        times = [row[t] for s in series for row in s["values"]]
        assert times and all(START.timestamp() <= x < END.timestamp() for x in times)
    assert sleeps == []


def test_window_is_sent_as_epoch_seconds_under_the_configured_key(make: Any, sim: Any) -> None:
    client, _, _ = make()
    client.get_measurement_data("evse_request", START, END)
    sent = [r["body"] for r in sim.requests_seen() if r["path"] == "/get_measurement_data"]
    assert sent[-1] == {
        "measurement": "evse_request",
        "time_filter": [int(START.timestamp()), int(END.timestamp())],
    }

    other, _, _ = make(window_key="time_range")
    sim.config.window_key = "time_range"
    try:
        assert json.loads(other.get_measurement_data("ct_response", START, END))["results"]
    finally:
        sim.config.window_key = "time_filter"


def test_unknown_measurement_is_refused_before_sending(make: Any, sim: Any) -> None:
    client, _, _ = make()
    before = len(_paths(sim))
    with pytest.raises(ConfigError, match="unknown measurement 'ct-response'"):
        client.get_measurement_data("ct-response", START, END)
    with pytest.raises(ConfigError, match="empty window"):
        client.get_measurement_data("ct_response", END, START)
    assert len(_paths(sim)) == before


def test_every_dcm_endpoint(make: Any, sim: Any) -> None:
    before = len(_paths(sim))
    client, _, _ = make()
    signal = client.set_external_signal(
        ACC, name="DCM_EVSE_Allocation", max_load=21.6, max_load_unit="kW", is_enabled=True
    )
    assert signal == {
        "is_enabled": True,
        "max_load": 21.6,
        "max_load_unit": "kW",
        "name": "DCM_EVSE_Allocation",
    }
    assert client.get_external_signal(ACC)["DCM_EVSE_Allocation"] == signal
    assert client.get_external_signal(39, "DCM_EVSE_Allocation") == signal

    client.set_real_time_load(ACC, 1100)

    months = client.set_target_peak_power(ACC, {"Jun": 700, "jul": 555})
    assert len(months) == 12 and months["Jun"] == 700 and months["Jul"] == 555
    assert client.get_target_peak_power(ACC) == months

    schedule = {
        "definition": [
            {"days": [1, 2, 3, 4, 5], "schedule": [{"start_time": "08:00:00", "max_power": 13}]}
        ],
        "max_power_units": "kW",
        "is_enabled": True,
        "timezone": "US/Pacific",
    }
    assert isinstance(client.set_max_power_schedule(ACC, schedule), dict)
    # acc_id "0039" travels in integer form
    dcm = [p for p in _paths(sim)[before:] if p not in ("/login", "/get_measurement_data")]
    assert dcm and all(p.endswith("/39") for p in dcm)


def test_5xx_burst_is_survived_with_backoff(make: Any, sim: Any) -> None:
    client, sleeps, _ = make(max_attempts=6)
    client.login()
    sim.config.faults.fail_next = 4
    assert client.get_target_peak_power(ACC)
    assert sleeps == [0.25, 0.5, 1.0, 2.0]  # full jitter (rand=0.5) under 0.5 s * 2**n


def test_5xx_that_outlasts_the_attempts_names_endpoint_window_and_status(
    make: Any, sim: Any
) -> None:
    client, sleeps, _ = make(max_attempts=3)
    client.login()
    sim.config.faults.fail_next = 3
    with pytest.raises(RetryableApiError) as info:
        client.get_measurement_data("evse_response", START, END)
    msg = str(info.value)
    assert "/get_measurement_data" in msg and "evse_response" in msg
    assert "2024-06-03T00:00:00Z" in msg and "last status 503" in msg
    assert info.value.status == 503 and len(sleeps) == 2


def test_429_retry_after_is_honoured(make: Any, sim: Any) -> None:
    client, sleeps, _ = make()
    client.login()
    sim.config.faults.retry_after_s = 7
    sim.config.faults.rate_limit_next = 2
    assert client.get_measurement_data("ct_response", START, END)
    assert sleeps == [7.0, 7.0]


def test_token_near_expiry_is_renewed_before_the_call(make: Any, sim: Any) -> None:
    base = _logins(sim)
    client, _, clock = make()
    client.get_target_peak_power(ACC)
    assert _logins(sim) - base == 1
    clock.offset = 86400 - 59  # within a minute of exp
    client.get_target_peak_power(ACC)
    assert _logins(sim) - base == 2


def test_short_lived_tokens_renew_at_half_their_lifetime(make: Any, sim: Any) -> None:
    base = _logins(sim)
    client, _, clock = make()
    sim.config.token_lifetime_s = 100.0
    try:
        client.get_target_peak_power(ACC)
        clock.offset = 49
        client.get_target_peak_power(ACC)
        assert _logins(sim) - base == 1
        clock.offset = 51
        client.get_target_peak_power(ACC)
        assert _logins(sim) - base == 2
    finally:
        sim.config.token_lifetime_s = 86400.0


def test_a_401_mid_run_logs_in_once_and_replays(make: Any, sim: Any) -> None:
    base = _logins(sim)
    client, sleeps, _ = make()
    client.get_target_peak_power(ACC)
    # the server revokes the token (as a login elsewhere does): it still looks fresh here
    sim.revoke_tokens()
    assert client.get_measurement_data("ct_response", START, END)
    assert _logins(sim) - base == 2 and sleeps == []


def test_wrong_password_is_an_auth_error_without_the_password(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, _, _ = make(password=SecretStr("not-the-Password-42"))
    with pytest.raises(AuthError) as info:
        client.login_check()
    assert "refused" in str(info.value) and "POWERFLEX_PASSWORD" in info.value.one_line()
    assert "not-the-Password-42" not in info.value.one_line()
    assert "not-the-Password-42" not in caplog.text


def test_simulators_cut_json_passes_through_for_the_parser_to_name(make: Any, sim: Any) -> None:
    # The simulator's "truncate" is a complete HTTP message carrying cut JSON: the client
    # cannot see it (it never decodes), the parser fails it naming the measurement. Cuts
    # at the HTTP level are the client's job: see test_client_faults.
    from powerflex_etl.errors import ParseError
    from powerflex_etl.parse.answer import parse_answer

    client, sleeps, _ = make(max_attempts=3)
    sim.config.faults.truncate = True
    body = client.get_measurement_data("ct_response", START, END)
    with pytest.raises(ParseError, match="ct_response"):
        parse_answer(body, "ct_response")
    assert sleeps == []


def test_answer_too_large(make: Any, sim: Any) -> None:
    client, sleeps, _ = make(max_answer_bytes=2000)
    with pytest.raises(AnswerTooLargeError, match="ct_response"):
        client.get_measurement_data("ct_response", START, END)
    assert sleeps == []


def test_many_threads_one_client_one_login_when_the_token_expires(make: Any, sim: Any) -> None:
    base = _logins(sim)
    client, _, clock = make()
    client.get_target_peak_power(ACC)
    clock.offset = 86400  # every thread finds the token expired at once
    barrier = threading.Barrier(16)

    def call(_: int) -> dict[str, int]:
        barrier.wait()
        return client.get_target_peak_power(ACC)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(64)))
    assert all(len(a) == 12 for a in answers)
    assert _logins(sim) - base == 2


def test_no_secret_in_errors_or_logs(make: Any, sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, _, _ = make(max_attempts=2)
    client.login()
    token = client._tokens.token
    assert token
    sim.config.faults.fail_next = 2
    with pytest.raises(RetryableApiError) as info:
        client.get_external_signal(ACC)
    password = client.settings.password.get_secret_value()
    for secret in (password, token):
        assert secret not in info.value.one_line()
        assert secret not in caplog.text


def test_measurement_answer_is_the_same_answer_in_a_buffer_to_parse_in(make: Any) -> None:
    # ingestion's call: the bytearray the body was read into (the parser works in it)
    client, _, _ = make()
    answer = client.get_measurement_answer("ct_response", START, END)
    assert isinstance(answer, bytearray)
    assert bytes(answer) == client.get_measurement_data("ct_response", START, END)
