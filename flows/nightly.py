"""The nightly flow: yesterday (UTC) of every measurement plus a lookback, from the scheduled start."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow

from flows.ingest import run_ingest
from powerflex_etl.ingest.plan import nightly_range


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

    # the scheduled time, not the wall clock: rerunning a night fetches the same range
    start, end = nightly_range(
        flow_run.scheduled_start_time or datetime.now(UTC), lookback_hours, days
    )
    return run_ingest(
        start=start.isoformat(),
        end=end.isoformat(),
        measurements=measurements,
        overrides={"lake": lake},
        workers=workers,
    )
