"""The Prefect tasks: one window end to end, one acc_id's DCM fetch; retries are what they add.

Each task runs one library call in whatever process the task runner chose, building its
settings and client there (``_runtime``); results are small (a WindowSummary, a few rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

from flows import _runtime
from powerflex_etl.errors import PowerflexError, is_retryable
from powerflex_etl.ingest import dcm as dcm_snapshot
from powerflex_etl.ingest import window as _window
from powerflex_etl.ingest.summary import WindowSummary
from powerflex_etl.windows import Window


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only what the library says retrying can help."""
    try:
        state.result()
    except Exception as err:
        return is_retryable(err)
    return False


@task(
    name="ingest-window",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_worth_retrying,
)
def ingest_window_task(
    measurement: str, start: datetime, end: datetime, run_id: str, overrides: dict[str, Any]
) -> WindowSummary:
    """Fetch, parse, normalize and commit one window; returns its small summary."""
    _runtime.route_library_logs()
    s = _runtime.settings(overrides)
    lake, state = _runtime.lake_and_state(s)
    # looked up at call time, so a test can wrap the one function every engine runs
    return _window.ingest_window(
        _runtime.client(s, run_id),
        lake,
        state,
        measurement,
        Window(start, end),
        settings=s,
        run_id=run_id,
    )


@task(
    name="dcm-fetch-site",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_worth_retrying,
)
def fetch_site_task(
    acc_id: str, run_id: str, at: datetime, overrides: dict[str, Any]
) -> dcm_snapshot.Tables:
    """Fetch and validate one acc_id's DCM endpoints; writing is the library's, all or nothing."""
    _runtime.route_library_logs()
    s = _runtime.settings(overrides)
    return dcm_snapshot.fetch(_runtime.client(s, run_id), acc_id, run_id=run_id, at=at)


class TaskSubmit:
    """The orchestrator's submit on Prefect: one ``ingest-window`` task per window."""

    def __init__(
        self, run_id: str, overrides: dict[str, Any], *, retry_delay_s: float | None = None
    ) -> None:
        self._run_id = run_id
        self._overrides = overrides
        self._task = ingest_window_task
        if retry_delay_s is not None:
            self._task = ingest_window_task.with_options(retry_delay_seconds=retry_delay_s)

    def submit(self, measurement: str, window: Window) -> PrefectFuture[WindowSummary]:
        """Submit one window to the flow's task runner."""
        return self._task.submit(
            measurement, window.start, window.end, self._run_id, self._overrides
        )

    def cancel(self, reason: PowerflexError) -> None:
        """The run is stopping: its tasks in this process fail at their next API call.

        (Tasks on Dask workers finish their window; no new one is submitted.)
        """
        _runtime.abort_run(self._run_id, reason)

    def first_done(
        self, handles: Sequence[PrefectFuture[WindowSummary]]
    ) -> PrefectFuture[WindowSummary]:
        """The first of ``handles`` to finish."""
        return next(as_completed(list(handles)))
