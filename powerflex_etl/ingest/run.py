"""What `ingest` and `backfill` run: the Prefect flow, or the same library steps without it.

Kept apart from cli.py so the CLI stays a thin layer and tests can call it directly.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from typing import Any

from powerflex_etl.errors import ConfigError
from powerflex_etl.ingest.window import (
    RunResult,
    WindowSummary,
    committed_keys,
    new_run_id,
    plan_run,
    run_windows,
)
from powerflex_etl.settings import Settings
from powerflex_etl.windows import Window

log = logging.getLogger("powerflex_etl.ingest")


def _overrides(s: Settings) -> dict[str, Any]:
    """Non-secret settings a flow must see the same way the CLI did."""
    return {
        "lake": s.lake,
        "base_url": s.base_url,
        "window_hours": s.window_hours,
        "lookback_hours": s.lookback_hours,
    }


def run(
    s: Settings,
    *,
    start: str | None,
    end: str | None,
    measurements: list[str] | None,
    engine: str = "prefect",
    workers: int = 4,
) -> dict[str, Any]:
    """One ingestion run; returns the run report, raises the first failure (nothing partial committed)."""
    if engine == "prefect":
        from flows.ingest import with_workers

        flow = with_workers(workers)
        report: dict[str, Any] = flow(
            start=start, end=end, measurements=measurements, workers=workers, **_overrides(s)
        )
        return report
    if engine != "local":
        raise ConfigError(f"unknown engine {engine!r}", hint="use prefect or local")
    return _run_local(s, start=start, end=end, measurements=measurements, workers=workers)


def _run_local(
    s: Settings,
    *,
    start: str | None,
    end: str | None,
    measurements: list[str] | None,
    workers: int,
    skip_committed: bool = False,
    advance: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    from powerflex_etl.api.client import PowerflexClient
    from powerflex_etl.catalog.build import build_catalog
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake

    lake = Lake(s.lake)
    state = State(lake)
    work = plan_run(state, measurements, start, end, settings=s)
    skip = None
    if skip_committed:
        done = committed_keys(state, {m for m, _ in work})

        def skip(m: str, w: Window) -> bool:
            return (m, w.start, w.end) in done

    client = PowerflexClient(s)
    try:
        with _Progress(work, skip, enabled=progress) as bar:
            result = run_windows(
                work,
                settings=s,
                lake=lake,
                state=state,
                client=client,
                run_id=new_run_id(),
                workers=workers,
                skip=skip,
                on_done=bar.update,
                advance=advance,
            )
    finally:
        client.close()
    if result.summaries:
        build_catalog(s.lake, catalog_path=s.catalog_path)
    return _finish(result)


def _finish(result: RunResult) -> dict[str, Any]:
    report = result.report()
    for m, t in report["measurements"].items():
        if not t.get("unit_check_ok", True):
            log.warning("%s: %s", m, t.get("unit_check"))
    if result.failures:
        raise result.failures[0][2]
    return report


def backfill(
    s: Settings,
    *,
    start: str,
    end: str,
    measurements: list[str] | None,
    workers: int = 4,
    dry_run: bool = False,
    redo: bool = False,
    executor: str = "threads",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """A long range in parallel windows; committed windows are skipped unless ``redo``.

    ``threads``: the library's bounded thread pool with a progress bar. ``dask``: the Prefect
    backfill flow on prefect-dask's DaskTaskRunner (a local cluster, or ``dask_address``);
    every worker process builds its own client from its environment.
    """
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake

    state = State(Lake(s.lake))
    work = plan_run(state, measurements, start, end, settings=s)
    if dry_run:
        return _dry_run(state, work, redo)
    if executor == "dask":
        from flows.backfill import backfill_with, shared_api

        flow = backfill_with("dask", workers, dask_address)
        with shared_api():
            result: dict[str, Any] = flow(
                start=start,
                end=end,
                measurements=measurements,
                window_hours=s.window_hours,
                lake=s.lake,
                redo=redo,
                # the workers read credentials from their environment; --base-url must reach them
                base_url=s.base_url,
                workers=workers,
            )
        return result
    if executor != "threads":
        raise ConfigError(f"unknown executor {executor!r}", hint="use threads or dask")
    return _run_local(
        s,
        start=start,
        end=end,
        measurements=measurements,
        workers=workers,
        skip_committed=not redo,
        progress=True,
    )


def _dry_run(state: Any, work: list[tuple[str, Window]], redo: bool) -> dict[str, Any]:
    """The windows a backfill would run, and points estimated from committed windows' density."""
    out: dict[str, Any] = {"windows": [], "estimate": {}}
    for m in sorted({m for m, _ in work}):
        records = state.committed_windows(m)
        done = {(r.window.start, r.window.end) for r in records}
        hours = sum((r.window.end - r.window.start).total_seconds() / 3600 for r in records)
        per_hour = sum(r.rows for r in records) / hours if hours else None
        todo = [w for mm, w in work if mm == m and (redo or (w.start, w.end) not in done)]
        todo_hours = sum((w.end - w.start).total_seconds() / 3600 for w in todo)
        out["estimate"][m] = {
            "windows": len(todo),
            "skipped_committed": sum(1 for mm, _ in work if mm == m) - len(todo),
            "points": round(per_hour * todo_hours) if per_hour is not None else None,
            "basis": f"{len(records)} committed windows"
            if per_hour is not None
            else "no committed windows yet",
        }
        out["windows"] += [f"{m} {w}" for w in todo]
    return out


class _Progress:
    """A Rich progress bar on a terminal, plain log lines otherwise."""

    def __init__(self, work: list[tuple[str, Window]], skip: Any, *, enabled: bool) -> None:
        self.total = sum(1 for m, w in work if not (skip and skip(m, w)))
        self.enabled = enabled
        self.points = 0
        self.done = 0
        self.t0 = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]backfill"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} windows"),
                TextColumn("{task.fields[points]:,} points"),
                TextColumn("{task.fields[rate]:,.0f} points/s"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("backfill", total=self.total, points=0, rate=0.0)
        return self

    def update(
        self, summary: WindowSummary | None, item: tuple[str, Window], err: Exception | None
    ) -> None:
        self.done += 1
        if summary is not None:
            self.points += summary.points
        rate = self.points / max(time.perf_counter() - self.t0, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, points=self.points, rate=rate)
        elif self.enabled:
            m, w = item
            status = "ok" if err is None else f"FAILED: {err}"
            log.info(
                "[%d/%d] %s %s %s (%d points total, %.0f points/s)",
                self.done,
                self.total,
                m,
                w,
                status,
                self.points,
                rate,
            )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def parse_optional(value: str | None) -> datetime | None:
    from powerflex_etl.windows import parse_time

    return parse_time(value) if value else None
