"""The DCM snapshot flow: one task per acc_id (fetch, validate, write), then a catalog refresh.

Each acc_id's snapshot is its own immutable pair of files, so one site's failure leaves the
others' snapshots in place; the flow still fails, naming the acc_ids that did not make it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows import _runtime
from flows.ingest import refresh_catalog_task
from powerflex_etl.errors import PowerflexError
from powerflex_etl.ingest import dcm


def _retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what retrying can help (the client already retried 5xx/429 itself)."""
    try:
        state.result()
    except Exception as err:
        return bool(getattr(err, "retryable", False))
    return False


@task(
    name="dcm-snapshot-site",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_if_retryable,
)
def snapshot_site_task(
    acc_id: str, run_id: str, at: datetime, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Snapshot one acc_id's DCM endpoints; returns rows written per table."""
    s = _runtime.settings(overrides)
    lake, _state = _runtime.lake_and_state(s)
    summary = dcm.snapshot_one(_runtime.client(s), lake, acc_id, run_id=run_id, at=at)
    get_run_logger().info(
        "acc_id %s: %d signals, %d months",
        acc_id,
        summary["external_signals"],
        summary["target_peak_power"],
    )
    return summary


@task(name="dcm-acc-ids", cache_policy=NO_CACHE)
def lake_acc_ids_task(overrides: dict[str, Any]) -> list[str]:
    """Every acc_id the lake's ct_response has seen."""
    return dcm.acc_ids_in_lake(_runtime.settings(overrides).lake)


@flow(name="powerflex-dcm-snapshot", log_prints=False)
def dcm_snapshot_flow(
    acc_ids: list[str] | None = None,
    lake: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Snapshot external signals and target peak power for ``acc_ids`` (default: the lake's)."""
    from prefect.runtime import flow_run

    overrides = {"lake": lake, "base_url": base_url}
    ids = list(dict.fromkeys(acc_ids or lake_acc_ids_task(overrides)))
    for a in ids:
        dcm.check_acc_id(a)
    if not ids:
        raise PowerflexError(
            "dcm: no acc_id to snapshot",
            hint="pass acc_ids, or ingest ct_response first so the lake knows its sites",
        )
    run_id = str(flow_run.id or datetime.now(UTC).strftime("%Y%m%d%H%M%S")).replace("-", "")[:16]
    at = datetime.now(UTC)
    futures = [snapshot_site_task.submit(a, run_id, at, overrides) for a in ids]
    wait(futures)
    done: list[dict[str, Any]] = []
    errors: dict[str, BaseException] = {}
    for a, fut in zip(ids, futures, strict=True):
        try:
            done.append(fut.result())
        except Exception as err:
            errors[a] = err
    if done:
        refresh_catalog_task(overrides)
    if errors:
        first = next(iter(errors.values()))
        raise PowerflexError(
            f"dcm: snapshot failed for acc_id {', '.join(errors)}: {first}",
            hint="the other sites' snapshots were written; rerun for the failed ones",
        )
    return {
        "run_id": run_id,
        "snapshot_at": at.isoformat(),
        "acc_ids": ids,
        "external_signals": sum(d["external_signals"] for d in done),
        "target_peak_power": sum(d["target_peak_power"] for d in done),
    }


def with_workers(workers: int) -> Any:
    """The flow with ``workers`` sites snapshotted at once."""
    return dcm_snapshot_flow.with_options(
        task_runner=cast(Any, ThreadPoolTaskRunner(max_workers=max(1, workers)))
    )
