"""DCM snapshots, all or nothing: fetch and validate every acc_id, write them all, refresh.

One failure policy whichever engine runs it (this process fetching one acc_id after
another, or Prefect tasks fetching one acc_id each): a bad answer or an unreachable
endpoint for any acc_id writes nothing at all, so a snapshot never holds some sites of a
moment and not others. The answer -> Arrow conversion is ``parse/dcm.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from powerflex_etl.errors import ConfigError
from powerflex_etl.ingest.summary import new_run_id
from powerflex_etl.lake import layout
from powerflex_etl.parse import dcm
from powerflex_etl.windows import as_utc

if TYPE_CHECKING:
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.settings import Settings

log = logging.getLogger("powerflex_etl.ingest")

#: One acc_id's validated snapshot: ``{"external_signals": t, "target_peak_power": t}``.
Tables = dict[str, pa.Table]


class DcmClient(Protocol):
    """The two client methods a snapshot needs (``PowerflexClient`` has them)."""

    def get_external_signal(self, acc_id: str | int, name: str | None = None) -> dict[str, Any]: ...

    def get_target_peak_power(self, acc_id: str | int) -> dict[str, int]: ...


class Fetched(Protocol):
    """One acc_id's fetch, running or done; ``result()`` waits and raises what it raised."""

    def result(self) -> Tables: ...


#: Starts one acc_id's fetch somewhere (acc_id, run_id, snapshot time): e.g. a Prefect task.
FetchWith = Callable[[str, str, datetime], Fetched]


def fetch(client: DcmClient, acc_id: str, *, run_id: str, at: datetime) -> Tables:
    """Both endpoints of one acc_id, validated; raises (ParseError naming it) on a bad answer."""
    dcm.check_acc_id(acc_id)
    signals = client.get_external_signal(acc_id)
    targets = client.get_target_peak_power(acc_id)
    return {
        "external_signals": dcm.external_signals_table(acc_id, signals, run_id=run_id, at=at),
        "target_peak_power": dcm.target_peak_power_table(acc_id, targets, run_id=run_id, at=at),
    }


def acc_ids_to_snapshot(acc_ids: Sequence[str]) -> list[str]:
    """``acc_ids`` in order without repeats, each checked before any call; none is a ConfigError."""
    ids = list(dict.fromkeys(acc_ids))
    if not ids:
        raise ConfigError(
            "dcm: no acc_id to snapshot",
            hint="pass --acc-id ID, or ingest ct_response first so the lake knows its sites",
        )
    for a in ids:
        dcm.check_acc_id(a)
    return ids


def write_all(
    lake: Lake, fetched: Sequence[tuple[str, Fetched]], *, run_id: str, at: datetime
) -> dict[str, Any]:
    """Write every acc_id's snapshot, or none: the policy every engine shares.

    Every result is taken first, in acc_id order; the first failure is raised as it is
    before anything is written. Returns ``{"run_id", "snapshot_at", "acc_ids",
    "external_signals": rows, "target_peak_power": rows}``.
    """
    ready = [(acc_id, f.result()) for acc_id, f in fetched]
    totals = {"external_signals": 0, "target_peak_power": 0}
    for acc_id, tables in ready:
        rows = _write(lake, acc_id, tables, run_id=run_id, at=at)
        for name, n in rows.items():
            totals[name] += n
        log.info(
            "dcm acc_id %s: %d signals, %d months",
            acc_id,
            rows["external_signals"],
            rows["target_peak_power"],
        )
    return {
        "run_id": run_id,
        "snapshot_at": as_utc(at).isoformat(),
        "acc_ids": [a for a, _ in ready],
        **totals,
    }


def snapshot(
    client: DcmClient, lake: Lake, acc_ids: Sequence[str], *, run_id: str, at: datetime
) -> dict[str, Any]:
    """Snapshot the DCM endpoints of every acc_id into the lake, in this process.

    acc_ids are fetched one after another; the first failure stops the rest and nothing
    at all is written. Returns :func:`write_all`'s summary.
    """
    ids = acc_ids_to_snapshot(acc_ids)
    return write_all(
        lake,
        [(a, _Later(partial(fetch, client, a, run_id=run_id, at=at))) for a in ids],
        run_id=run_id,
        at=at,
    )


def run_snapshot(
    settings: Settings,
    acc_ids: Sequence[str] | None = None,
    *,
    at: datetime | None = None,
    run_id: str | None = None,
    fetch_with: FetchWith | None = None,
) -> dict[str, Any]:
    """What ``powerflex-etl dcm`` and the DCM flow do: snapshot all or nothing, then refresh the catalog.

    acc_ids: the ones given, else the ``POWERFLEX_ACC_ID`` scope, else every acc_id of the
    lake's ct_response. ``fetch_with`` starts each acc_id's fetch elsewhere (all at once);
    without it this process fetches them one by one. Returns :func:`write_all`'s summary
    plus ``catalog``.
    """
    from powerflex_etl.catalog import build_for
    from powerflex_etl.lake.store import Lake

    ids = acc_ids_to_snapshot(list(acc_ids or settings.acc_id or Lake(settings.lake).acc_ids()))
    run_id = run_id or new_run_id()
    at = at or datetime.now(UTC)
    lake = Lake(settings.lake)
    if fetch_with is None:
        from powerflex_etl.api.client import PowerflexClient

        with PowerflexClient(settings) as client:
            summary = snapshot(client, lake, ids, run_id=run_id, at=at)
    else:
        started = [(a, fetch_with(a, run_id, at)) for a in ids]
        summary = write_all(lake, started, run_id=run_id, at=at)
    catalog = build_for(settings)
    return {**summary, "catalog": str(catalog)}


class _Later:
    """A fetch that runs when its result is asked for (so a failure stops the ones after it)."""

    def __init__(self, call: Callable[[], Tables]) -> None:
        self._call = call

    def result(self) -> Tables:
        return self._call()


def _write(
    lake: Lake, acc_id: str, tables: Mapping[str, pa.Table], *, run_id: str, at: datetime
) -> dict[str, int]:
    """One acc_id's tables, one immutable file each; rows per table."""
    key = layout.snapshot_key(dcm.check_acc_id(acc_id), run_id=run_id, at=at)
    rows: dict[str, int] = {}
    for name, table in tables.items():
        lake.write_snapshot(name, table, key, at=as_utc(at))
        rows[name] = table.num_rows
    return rows
