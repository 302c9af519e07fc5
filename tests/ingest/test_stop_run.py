"""What ends a run at once, and what a run's plan refuses, on fakes and literals (no network).

A failure that awaits every window (bad credentials, a 403, a spent retry budget) stops the
orchestrator: no window is started after it, the engine is told to cancel the ones in
flight, and that failure is what the run raises. Also: an --end in the future is clamped to
now, a lake path that is a file is refused before anything runs, and which engine runs by
default.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powerflex_etl.errors import (
    AuthError,
    FatalApiError,
    LakeLocationError,
    ParseError,
    PowerflexError,
    RetryBudgetSpent,
    WindowError,
    is_retryable,
    stops_run,
)
from powerflex_etl.ingest.engine import default_engine, prefect_api_url
from powerflex_etl.ingest.plan import clamp_end, plan, plan_run
from powerflex_etl.ingest.run import finish, run_windows_with
from powerflex_etl.ingest.summary import WindowSummary
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.lake.url import LakeUrl
from powerflex_etl.settings import Settings
from powerflex_etl.windows import Window
from tests.ingest.test_orchestrator import Done

T0 = datetime(2021, 6, 1, tzinfo=UTC)


class InOrder:
    """Finishes windows in submission order; window ``i``'s outcome is decided at submit."""

    def __init__(self, outcomes: dict[int, Exception]) -> None:
        self.outcomes = outcomes
        self.submitted: list[Window] = []
        self.cancelled: list[PowerflexError] = []

    def submit(self, measurement: str, window: Window) -> Done:
        i = len(self.submitted)
        self.submitted.append(window)
        if i in self.outcomes:
            return Done(error=self.outcomes[i])
        return Done(WindowSummary(measurement, window.start.isoformat(), window.end.isoformat()))

    def first_done(self, handles: Sequence[Done]) -> Done:
        return handles[0]

    def cancel(self, reason: PowerflexError) -> None:
        self.cancelled.append(reason)


def _window_error(window: Window, cause: Exception) -> WindowError:
    return WindowError("ct_response", window, cause)


@pytest.mark.parametrize(
    "cause",
    [
        AuthError("/login at http://x refused for user 'demo' (HTTP 401)"),
        FatalApiError("/get_measurement_data: HTTP 403 Forbidden", status=403),
        RetryBudgetSpent("/get_measurement_data: HTTP 503; gave up: the run's 30 retries"),
    ],
    ids=["bad credentials", "403", "retry budget spent"],
)
def test_a_failure_that_awaits_every_window_stops_the_run(tmp_path: Path, cause) -> None:
    work = plan(["ct_response", "evse_request"], T0, T0 + timedelta(days=5), 6)  # 40 windows
    windows = [w for _, w in work]
    # an ordinary failure first (plan order), then the one that stops the run
    stop = _window_error(windows[3], cause)
    fake = InOrder({1: _window_error(windows[1], ParseError("truncated")), 3: stop})
    state = State(Lake(str(tmp_path / "lake")))
    result = run_windows_with(fake, work, state=state, run_id="r", workers=4)
    # oldest first, 4 in flight: when window 3 fails, 4..6 are in flight and 7..39 never start
    assert len(fake.submitted) == 7
    assert result.stopped is stop and fake.cancelled == [stop]
    assert stops_run(result.stopped) and not is_retryable(result.stopped)
    # what stopped the run is what the run raises, not the earlier window's failure
    with pytest.raises(WindowError) as info:
        finish(result)
    assert info.value is stop
    assert state.watermark("ct_response") == windows[1].start


def test_ordinary_window_failures_do_not_stop_the_run(tmp_path: Path) -> None:
    work = plan(["ct_response"], T0, T0 + timedelta(days=2), 6)
    windows = [w for _, w in work]
    fake = InOrder(
        {
            2: _window_error(windows[2], ParseError("cut")),
            5: _window_error(windows[5], FatalApiError("HTTP 404", status=404)),
        }
    )
    result = run_windows_with(
        fake, work, state=State(Lake(str(tmp_path / "l"))), run_id="r", workers=2
    )
    assert len(fake.submitted) == len(work) == 8
    assert result.stopped is None and fake.cancelled == [] and len(result.failures) == 2


def test_an_end_in_the_future_is_clamped_to_now_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime(2024, 6, 1, 7, 30, tzinfo=UTC)
    caplog.set_level(logging.WARNING, logger="powerflex_etl.ingest")
    work = plan_run(
        State(Lake(str(tmp_path / "lake"))),
        ["ct_response"],
        "2024-06-01",
        "2030-01-01",
        settings=Settings(),
        now=now,
    )
    assert [w.end for _, w in work] == [datetime(2024, 6, 1, 6, tzinfo=UTC), now]
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "--end 2030-01-01T00:00:00+00:00 is in the future; ingesting up to now "
        "(2024-06-01T07:30:00+00:00)"
    ]
    assert clamp_end("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert clamp_end(None, now) == now


def test_a_range_wholly_in_the_future_is_refused(tmp_path: Path) -> None:
    from powerflex_etl.errors import ConfigError

    now = datetime(2024, 6, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="is not before --end 2024-06-01T00:00:00"):
        plan_run(
            State(Lake(str(tmp_path / "lake"))),
            None,
            "2029-01-01",
            "2030-01-01",
            settings=Settings(),
            now=now,
        )


def test_a_lake_path_that_is_a_file_is_refused_before_anything(tmp_path: Path) -> None:
    f = tmp_path / "lake"
    f.write_text("x")
    with pytest.raises(LakeLocationError) as info:
        Lake(str(f))
    assert info.value.one_line() == (
        f"the lake {f} is a file, not a directory "
        "(pass --lake or POWERFLEX_LAKE a directory, or a path that does not exist yet)"
    )
    with pytest.raises(LakeLocationError, match=f"cannot be created: {f} is a file"):
        Lake(str(f / "below" / "it"))
    # a path that does not exist yet, or a directory, is fine; object stores are not checked
    assert LakeUrl.parse(str(tmp_path / "new" / "lake")).check_location()
    assert LakeUrl.parse(str(tmp_path)).check_location()
    assert LakeUrl.parse("memory://bucket/lake").check_location()
    assert stops_run(info.value)


def test_the_default_engine_is_local_unless_a_prefect_api_is_configured(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = {"PREFECT_HOME": str(home)}
    assert default_engine(env) == "local" and prefect_api_url(env) is None
    assert default_engine({**env, "PREFECT_API_URL": "http://127.0.0.1:4200/api"}) == "prefect"
    # a URL set with `prefect config set` lives in the active profile
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "work"\n[profiles.ephemeral]\n[profiles.work]\n'
        'PREFECT_API_URL = "http://prefect.internal:4200/api"\n'
    )
    assert prefect_api_url(env) == "http://prefect.internal:4200/api"
    assert default_engine({**env, "PREFECT_PROFILE": "ephemeral"}) == "local"
    (home / "profiles.toml").write_text("not toml [")
    assert default_engine(env) == "local"
