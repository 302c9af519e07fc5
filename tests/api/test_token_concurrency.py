"""One client, many threads, a server that revokes tokens early: a few logins, never a storm.

Against the real simulator (tokens revoked after N uses, on a second login, by a login
elsewhere) and a scripted fake for servers that refuse every token; plus the run's retry
budget and abort. Login counts are exact where the server's rules make them so.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.errors import (
    AuthError,
    RetryBudgetSpent,
    RunCancelledError,
    WindowError,
    stops_run,
)
from powerflex_etl.settings import Settings
from tests.fixtures.fake_api import FakeApi, Status, serve

ACC = "39"
THREADS = 8
T0 = datetime(2021, 6, 1, tzinfo=UTC)


def _logins(sim: Any) -> int:
    return sum(r["path"] == "/login" for r in sim.requests_seen())


@pytest.fixture
def make(sim: Any) -> Iterator[Callable[..., PowerflexClient]]:
    made: list[PowerflexClient] = []

    def build(**overrides: Any) -> PowerflexClient:
        given = {
            "base_url": sim.url,
            "username": sim.config.username,
            "password": sim.config.password,
            "retry_backoff_s": 0.0,
            **overrides,
        }
        s = Settings(**given)
        c = PowerflexClient(s, sleep=lambda _s: None)
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()


def _hammer(client: PowerflexClient, calls: int) -> list[BaseException | None]:
    """``calls`` cheap calls from THREADS threads released together; each call's error or None."""
    start = threading.Barrier(THREADS)

    def one(i: int) -> BaseException | None:
        if i < THREADS:
            start.wait()
        try:
            client.get_target_peak_power(ACC)
        except Exception as err:
            return err
        return None

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(calls)))


@pytest.mark.parametrize("uses", [2, 3, 7])
def test_tokens_used_up_after_n_uses_cost_one_login_per_n_calls(make, sim, uses):
    """Revoked after N uses, one session per account: every call succeeds, logins = calls/N."""
    sim.config.faults.token_max_uses = uses
    sim.config.faults.single_session = True
    client = make()
    base = _logins(sim)
    client.ensure_login()
    results = _hammer(client, 60)
    assert results == [None] * 60
    # each token is taken exactly N times before it is refused: no login is wasted
    assert _logins(sim) - base == math.ceil(60 / uses) == client.logins


def test_a_login_elsewhere_mid_burst_costs_one_login(make, sim):
    client = make()
    client.ensure_login()
    base = _logins(sim)
    sim.revoke_tokens()  # the same account logs in from another process
    assert _hammer(client, 40) == [None] * 40
    assert _logins(sim) - base == 1


def test_the_account_logging_in_elsewhere_again_and_again(make, sim):
    """A nightly run beside a backfill: every 10 accepted calls our token is revoked."""
    sim.config.faults.foreign_login_every = 10
    sim.config.faults.single_session = True
    client = make()
    base = _logins(sim)
    assert _hammer(client, 60) == [None] * 60
    assert _logins(sim) - base <= 60 // 10 + 1


def test_a_server_that_refuses_every_token_gets_two_logins_in_all():
    """A fresh token refused on its first use: more logins cannot help, however many calls."""
    fake = FakeApi()
    fake.answer = lambda *_: Status(401, b'{"error":"token not valid for this API"}')
    with serve(fake) as url:
        s = Settings(base_url=url, username="demo", password="demo-password")  # type: ignore[arg-type]
        with PowerflexClient(s, sleep=lambda _s: None) as client:
            errors = []
            for _ in range(5):
                with pytest.raises(AuthError, match="even after a fresh login") as info:
                    client.get_measurement_data("ct_response", T0, T0 + timedelta(hours=6))
                errors.append(info.value)
    logins = sum(path == "/login" for path, _ in fake.seen)
    assert logins == 2
    assert all(stops_run(e) for e in errors)


def test_a_refused_password_is_sent_once_however_many_threads_ask(make, sim):
    client = make(password="not-the-password")
    base = _logins(sim)
    results = _hammer(client, 50)
    assert all(isinstance(e, AuthError) and "HTTP 401" in str(e) for e in results)
    assert _logins(sim) - base == 1 == client.logins
    assert all(stops_run(e) for e in results if e is not None)


def test_the_runs_retry_budget_is_shared_by_every_call(make, sim):
    """Per call 6 attempts, per run 4 retries: the run's fifth retry is refused, in any call."""
    client = make(max_attempts=6, run_max_retries=4)
    client.ensure_login()
    sim.config.faults.fail_next = 1000
    seen = len(sim.requests_seen())
    with pytest.raises(RetryBudgetSpent) as first:
        client.get_target_peak_power(ACC)  # 1 attempt + the run's 4 retries
    with pytest.raises(RetryBudgetSpent) as second:
        client.get_target_peak_power(ACC)  # 1 attempt, no retry left
    assert len(sim.requests_seen()) - seen == 5 + 1
    assert "gave up after 5 attempt(s): the run's 4 retries" in str(first.value)
    assert "gave up after 1 attempt(s)" in str(second.value)
    assert "POWERFLEX_RUN_MAX_RETRIES" in second.value.one_line()
    # it ends the run, and no task retry is worth it; a window carrying it ends the run too
    assert stops_run(first.value) and not first.value.retryable
    assert stops_run(WindowError("ct_response", "w", second.value))


def test_an_aborted_client_sends_nothing(make, sim):
    client = make()
    client.ensure_login()
    client.abort(AuthError("stopping: bad credentials elsewhere"))
    seen = len(sim.requests_seen())
    with pytest.raises(RunCancelledError, match="not sent"):
        client.get_target_peak_power(ACC)
    assert len(sim.requests_seen()) == seen
