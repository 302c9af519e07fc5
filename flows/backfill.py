"""Backfill and nightly flows: the ingest flow's body over a long or a scheduled range."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.ingest import run_ingest
from powerflex_etl.ingest import window as pipeline


@flow(name="powerflex-backfill", log_prints=False)
def backfill_flow(
    start: str,
    end: str,
    measurements: list[str] | None = None,
    window_hours: float | None = None,
    lake: str | None = None,
    redo: bool = False,
    base_url: str | None = None,
    workers: int = 4,
) -> dict[str, Any]:
    """Ingest [start, end) window by window, skipping windows already committed (resumable).

    The watermark only ever moves forward, so a backfill of old data never moves it back.
    ``base_url`` (not a secret) overrides POWERFLEX_BASE_URL in every worker. ``workers``
    windows are in flight at once, however long the range, so memory stays flat.
    """
    from prefect.runtime import flow_run

    run_id = str(flow_run.id or pipeline.new_run_id()).replace("-", "")[:16]
    return run_ingest(
        start=start,
        end=end,
        measurements=measurements,
        overrides={"lake": lake, "window_hours": window_hours, "base_url": base_url},
        run_id=run_id,
        skip_committed=not redo,
        max_in_flight=workers,
    )


def nightly_range(
    scheduled: datetime, lookback_hours: float, days: float = 1.0
) -> tuple[datetime, datetime]:
    """The range a nightly run covers: the whole UTC day(s) before its *scheduled* start, plus lookback.

    Derived from the scheduled time (not the wall clock), so rerunning a given night fetches
    exactly the same range.
    """
    scheduled = scheduled.astimezone(UTC)
    end = scheduled.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days) - timedelta(hours=lookback_hours)
    return start, end


@flow(name="powerflex-nightly", log_prints=False)
def nightly_flow(
    lookback_hours: float = 2.0,
    days: float = 1.0,
    measurements: list[str] | None = None,
    lake: str | None = None,
    workers: int = 4,
) -> dict[str, Any]:
    """The scheduled run: yesterday (UTC) plus a lookback for late data, ``workers`` windows at once."""
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time or datetime.now(UTC)
    start, end = nightly_range(scheduled, lookback_hours, days)
    run_id = str(flow_run.id or pipeline.new_run_id()).replace("-", "")[:16]
    return run_ingest(
        start=start.isoformat(),
        end=end.isoformat(),
        measurements=measurements,
        overrides={"lake": lake},
        run_id=run_id,
        max_in_flight=workers,
    )


def backfill_with(executor: str, workers: int, dask_address: str | None = None) -> Any:
    """The backfill flow on a thread pool or a Dask cluster (local, or at ``dask_address``)."""
    if executor == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            runner = DaskTaskRunner(address=dask_address)
        else:
            runner = DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": max(1, workers),
                    "threads_per_worker": 1,
                    "processes": True,
                }
            )
        return backfill_flow.with_options(task_runner=cast(Any, runner))
    return backfill_flow.with_options(
        task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=max(1, workers)))
    )


@contextmanager
def shared_api() -> Iterator[str | None]:
    """Make sure other processes (Dask workers) reach the same Prefect API as this one.

    Without ``PREFECT_API_URL``, Prefect serves a temporary API for this process only; each
    Dask worker would then start its own and time out doing so. Here the temporary server
    is started once and its URL put in the settings the task runner hands to the workers.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    from prefect.server.api.server import SubprocessASGIServer

    # the same instance Prefect's own temporary-API mode uses; it stops itself at exit
    server = SubprocessASGIServer()
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield server.api_url
