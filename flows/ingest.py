"""The ingestion flow: one task per (measurement, window); the big answer stays inside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed, wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows import _runtime
from powerflex_etl.errors import PowerflexError, WindowError
from powerflex_etl.ingest import window as pipeline
from powerflex_etl.windows import Window


def _retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a window only when retrying can help (5xx/429/timeouts after the client's own retries)."""
    try:
        state.result()
    except WindowError as err:
        return err.retryable
    except Exception:
        return False
    return False


@task(
    name="ingest-window",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_if_retryable,
)
def ingest_window_task(
    measurement: str, start: datetime, end: datetime, run_id: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Fetch, parse, normalize and commit one window; returns its small summary."""
    s = _runtime.settings(overrides)
    lake, state = _runtime.lake_and_state(s)
    window = Window(start, end)
    summary = pipeline.ingest_window(
        _runtime.client(s), lake, state, measurement, window, settings=s, run_id=run_id
    )
    get_run_logger().info(
        "%s %s: %d points, %d rows, %d rejects, %.2f s",
        measurement,
        window,
        summary.points,
        summary.rows,
        summary.rejects,
        summary.seconds,
    )
    return summary.to_dict()


@task(name="refresh-catalog", cache_policy=NO_CACHE)
def refresh_catalog_task(overrides: dict[str, Any]) -> str:
    """Rebuild the DuckDB catalog so analysts see what was just written."""
    from powerflex_etl.catalog.build import build_catalog

    s = _runtime.settings(overrides)
    return str(build_catalog(s.lake, catalog_path=s.catalog_path))


def run_ingest(
    *,
    start: str | None,
    end: str | None,
    measurements: list[str] | None,
    overrides: dict[str, Any],
    run_id: str,
    advance_watermark: bool = True,
    skip_committed: bool = False,
    task_retry_delay_s: float | None = None,
    max_in_flight: int | None = None,
) -> dict[str, Any]:
    """The flow body (shared with the backfill flow): plan, submit, wait, record, refresh.

    At most ``max_in_flight`` windows (default 4) are submitted at once, so a long range
    never holds more answers in memory than that: Prefect's default thread pool has no
    bound of its own.
    """
    logger = get_run_logger()
    s = _runtime.settings(overrides)
    _lake, state = _runtime.lake_and_state(s)
    work = pipeline.plan_run(state, measurements, start, end, settings=s)
    if skip_committed:
        done = pipeline.committed_keys(state, {m for m, _ in work})
        work = [(m, w) for m, w in work if (m, w.start, w.end) not in done]
        logger.info("%d windows to run (%d already committed)", len(work), len(done))
    window_task = ingest_window_task
    if task_retry_delay_s is not None:
        window_task = ingest_window_task.with_options(retry_delay_seconds=task_retry_delay_s)
    t0 = time.perf_counter()
    futures = _submit_bounded(
        lambda m, w: window_task.submit(m, w.start, w.end, run_id, overrides),
        work,
        max_in_flight,
    )
    summaries: list[pipeline.WindowSummary] = []
    failed: list[tuple[str, Window]] = []
    errors: list[PowerflexError] = []
    for (m, w), fut in zip(work, futures, strict=True):
        try:
            summaries.append(pipeline.WindowSummary(**fut.result()))
        except PowerflexError as err:
            failed.append((m, w))
            errors.append(err)
    marks = pipeline.advance_watermarks(state, summaries, failed) if advance_watermark else {}
    if summaries:
        refresh_catalog_task(overrides)
    result = pipeline.RunResult(
        run_id,
        summaries,
        [(m, w, e) for (m, w), e in zip(failed, errors, strict=True)],
        marks,
        time.perf_counter() - t0,
    )
    report = result.report()
    if report["measurements"]:
        create_table_artifact(
            [{"measurement": m, **t} for m, t in report["measurements"].items()],
            key="powerflex-ingest-summary",
            description=f"run {run_id}",
        )
    for m, t in report["measurements"].items():
        if not t.get("unit_check_ok", True):
            logger.warning("%s: %s", m, t.get("unit_check"))
    if errors:
        raise errors[0]
    return report


DEFAULT_IN_FLIGHT = 4


def _submit_bounded(
    submit: Callable[[str, Window], PrefectFuture[Any]],
    work: list[tuple[str, Window]],
    max_in_flight: int | None,
) -> list[PrefectFuture[Any]]:
    """Submit every window in order with at most ``max_in_flight`` unfinished; wait for all."""
    limit = max(1, max_in_flight or DEFAULT_IN_FLIGHT)
    futures: list[PrefectFuture[Any]] = []
    pending: set[PrefectFuture[Any]] = set()
    for m, w in work:
        while len(pending) >= limit:
            pending.discard(next(as_completed(list(pending))))
        fut = submit(m, w)
        futures.append(fut)
        pending.add(fut)
    wait(futures)
    return futures


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
    from prefect.runtime import flow_run

    overrides = {
        "lake": lake,
        "base_url": base_url,
        "window_hours": window_hours,
        "lookback_hours": lookback_hours,
    }
    run_id = str(flow_run.id or pipeline.new_run_id()).replace("-", "")[:16]
    return run_ingest(
        start=start,
        end=end,
        measurements=measurements,
        overrides=overrides,
        run_id=run_id,
        task_retry_delay_s=task_retry_delay_s,
        max_in_flight=workers,
    )


def with_workers(workers: int) -> Any:
    """The flow with a thread pool of ``workers`` threads (pass ``workers=`` to the call too)."""
    return ingest_flow.with_options(
        task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=max(1, workers)))
    )
