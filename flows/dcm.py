"""The DCM snapshot flow: one task per acc_id fetches; the library writes all or nothing.

The failure policy is the library's (``powerflex_etl.ingest.dcm``), the same as
``powerflex-etl dcm``: if any acc_id's fetch fails, nothing is written and the flow fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows import _runtime
from flows.tasks import fetch_site_task
from powerflex_etl.ingest.dcm import run_snapshot
from powerflex_etl.ingest.summary import new_run_id


@flow(name="powerflex-dcm-snapshot", log_prints=False)
def dcm_snapshot_flow(
    acc_ids: list[str] | None = None,
    lake: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Snapshot external signals and target peak power for ``acc_ids`` (default: the lake's)."""
    from prefect.runtime import flow_run

    _runtime.route_library_logs()
    overrides = {"lake": lake, "base_url": base_url}

    def fetch_with(acc_id: str, run_id: str, at: datetime) -> Any:
        return fetch_site_task.submit(acc_id, run_id, at, overrides)

    return run_snapshot(
        _runtime.settings(overrides),
        acc_ids,
        run_id=new_run_id(flow_run.id),
        fetch_with=fetch_with,
    )


def with_workers(workers: int) -> Any:
    """The flow with ``workers`` sites fetched at once."""
    return dcm_snapshot_flow.with_options(
        task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=max(1, workers)))
    )
