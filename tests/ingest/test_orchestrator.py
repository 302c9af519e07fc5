"""The orchestrator's loop on a fake engine: the bound, plan-order failures, progress, bugs.

The fake finishes the newest window first, so completion order differs from plan order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powerflex_etl.errors import ParseError, WindowError
from powerflex_etl.ingest.plan import plan
from powerflex_etl.ingest.run import run_windows_with
from powerflex_etl.ingest.summary import WindowDone, WindowSummary
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.windows import Window

T0 = datetime(2021, 6, 1, tzinfo=UTC)


class Done:
    def __init__(self, value: WindowSummary | None = None, error: Exception | None = None):
        self.value, self.error = value, error

    def result(self) -> WindowSummary:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class NewestFirst:
    """Submits nothing anywhere: each window's outcome is decided at submit time."""

    def __init__(self, outcomes: dict[int, Exception]) -> None:
        self.outcomes = outcomes
        self.submitted: list[Window] = []
        self.most_in_flight = 0

    def submit(self, measurement: str, window: Window) -> Done:
        i = len(self.submitted)
        self.submitted.append(window)
        if i in self.outcomes:
            return Done(error=self.outcomes[i])
        return Done(WindowSummary(measurement, window.start.isoformat(), window.end.isoformat()))

    def first_done(self, handles: Sequence[Done]) -> Done:
        self.most_in_flight = max(self.most_in_flight, len(handles))
        return handles[-1]


def _bad(window: Window) -> WindowError:
    return WindowError("ct_response", window, ParseError("truncated"))


def test_failures_come_back_in_plan_order_with_at_most_workers_in_flight(tmp_path: Path) -> None:
    work = plan(["ct_response"], T0, T0 + timedelta(hours=36), 6)
    windows = [w for _, w in work]
    fake = NewestFirst({3: _bad(windows[3]), 1: _bad(windows[1])})
    events: list[WindowDone] = []
    state = State(Lake(str(tmp_path / "lake")))
    result = run_windows_with(
        fake, work, state=state, run_id="r", workers=2, on_window=events.append
    )
    assert fake.most_in_flight == 2 and len(fake.submitted) == 6
    assert [w for _, w, _ in result.failures] == [windows[1], windows[3]]
    assert len(result.summaries) == 4
    assert [e.done for e in events] == [1, 2, 3, 4, 5, 6] and {e.total for e in events} == {6}
    assert sum(e.error is not None for e in events) == 2
    # the watermark stops where the first failed window starts
    assert state.watermark("ct_response") == windows[1].start


def test_a_bug_stops_submitting_and_is_raised_after_the_windows_in_flight(tmp_path: Path) -> None:
    work = plan(["ct_response"], T0, T0 + timedelta(hours=36), 6)
    fake = NewestFirst({1: RuntimeError("a bug, not a window failure")})
    state = State(Lake(str(tmp_path / "lake")))
    with pytest.raises(RuntimeError, match="a bug"):
        run_windows_with(fake, work, state=state, run_id="r", workers=2)
    assert len(fake.submitted) == 2
    assert state.watermark("ct_response") is None
