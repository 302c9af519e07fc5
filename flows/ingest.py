"""The ingestion flow: the library's orchestrator with one Prefect task per window.

:func:`run_ingest` is the body the ingest, backfill and nightly flows share; it adds only
Prefect's concerns to ``powerflex_etl.ingest.run``: tasks (with retries), the summary
table artifact, and the library's log lines in the run's logs.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows import _runtime
from flows.tasks import TaskSubmit
from powerflex_etl.ingest import run
from powerflex_etl.ingest.summary import new_run_id

#: Windows in flight when a flow is not told otherwise.
DEFAULT_WORKERS = 4


def run_ingest(
    *,
    start: str | None,
    end: str | None,
    measurements: list[str] | None,
    overrides: dict[str, Any],
    workers: int | None = None,
    skip_committed: bool = False,
    task_retry_delay_s: float | None = None,
) -> dict[str, Any]:
    """Plan, run every window as a task (at most ``workers`` in flight), refresh, publish, report."""
    from prefect.runtime import flow_run

    _runtime.route_library_logs()
    run_id = new_run_id(flow_run.id)
    s = _runtime.settings(overrides)
    _lake, state = _runtime.lake_and_state(s)
    result = run.ingest(
        s,
        TaskSubmit(run_id, overrides, retry_delay_s=task_retry_delay_s),
        # logs in once in the flow's process; tasks on threads here share that token
        preflight=_runtime.client(s, run_id).ensure_login,
        state=state,
        run_id=run_id,
        start=start,
        end=end,
        measurements=measurements,
        workers=workers or DEFAULT_WORKERS,
        skip_committed=skip_committed,
    )
    report = result.report()
    if report["measurements"]:
        create_table_artifact(
            [{"measurement": m, **t} for m, t in report["measurements"].items()],
            key="powerflex-ingest-summary",
            description=f"run {run_id}",
        )
    return run.finish(result)


@flow(name="powerflex-ingest", log_prints=False)
def ingest_flow(
    start: str | None = None,
    end: str | None = None,
    measurements: list[str] | None = None,
    lake: str | None = None,
    base_url: str | None = None,
    window_hours: float | None = None,
    lookback_hours: float | None = None,
    task_retry_delay_s: float | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Ingest every asked measurement over [start, end); without start, from the watermark.

    ``workers``: windows in flight at once (default 4).
    """
    overrides = {
        "lake": lake,
        "base_url": base_url,
        "window_hours": window_hours,
        "lookback_hours": lookback_hours,
    }
    return run_ingest(
        start=start,
        end=end,
        measurements=measurements,
        overrides=overrides,
        workers=workers,
        task_retry_delay_s=task_retry_delay_s,
    )


def with_workers(workers: int) -> Any:
    """The flow with a thread pool of ``workers`` threads (pass ``workers=`` to the call too)."""
    return ingest_flow.with_options(
        task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=max(1, workers)))
    )
