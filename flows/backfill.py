"""The backfill flow: a long range, committed windows skipped, on threads or a Dask cluster."""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.ingest import run_ingest


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
    return run_ingest(
        start=start,
        end=end,
        measurements=measurements,
        overrides={"lake": lake, "window_hours": window_hours, "base_url": base_url},
        workers=workers,
        skip_committed=not redo,
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
