"""What a run will do, decided before anything is fetched: its (measurement, window) pairs.

Windows are aligned to multiples of ``window_hours``; without a start, each measurement
starts at its watermark minus the lookback. Reads the lake's state, writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powerflex_etl.errors import ConfigError
from powerflex_etl.schemas import check_measurements
from powerflex_etl.windows import Window, as_utc, parse_time, split

if TYPE_CHECKING:
    from powerflex_etl.lake.state import State
    from powerflex_etl.settings import Settings

log = logging.getLogger("powerflex_etl.ingest")

#: One unit of work: a measurement over one half-open window.
Work = tuple[str, Window]


def plan(measurements: Sequence[str], start: datetime, end: datetime, hours: float) -> list[Work]:
    """Every (measurement, window) of a run, windows aligned to multiples of ``hours``."""
    windows = list(split(start, end, hours))
    return [(m, w) for m in measurements for w in windows]


def incremental_start(
    state: State, measurement: str, now: datetime, lookback_hours: float
) -> datetime:
    """Where an incremental run starts: watermark minus lookback, or the last 24 h."""
    mark = state.watermark(measurement)
    if mark is None:
        return now - timedelta(hours=24)
    return mark - timedelta(hours=lookback_hours)


def plan_run(
    state: State,
    measurements: Iterable[str] | None,
    start: str | datetime | None,
    end: str | datetime | None,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> list[Work]:
    """The (measurement, window) pairs of a run; without ``start``, incremental per measurement."""
    ms = check_measurements(measurements)
    now = now or datetime.now(UTC).replace(microsecond=0)
    end_dt = clamp_end(end, now)
    work: list[Work] = []
    for m in ms:
        if start is not None:
            start_dt = _as_time(start, "--start")
        else:
            start_dt = incremental_start(state, m, now, settings.lookback_hours)
        if start_dt >= end_dt and start is not None:
            raise ConfigError(
                f"--start {start_dt.isoformat()} is not before --end {end_dt.isoformat()}"
            )
        if start_dt < end_dt:
            work += plan([m], start_dt, end_dt, settings.window_hours)
    return work


def clamp_end(end: str | datetime | None, now: datetime | None = None) -> datetime:
    """A run's end: ``end``, or now when it is missing or in the future (with a warning).

    Data from the future does not exist yet; a window past now would move the watermark
    past the present, and every later incremental run would then silently fetch nothing.
    """
    now = now or datetime.now(UTC).replace(microsecond=0)
    if end is None:
        return now
    end_dt = _as_time(end, "--end")
    if end_dt > now:
        log.warning(
            "--end %s is in the future; ingesting up to now (%s)",
            end_dt.isoformat(),
            now.isoformat(),
        )
        return now
    return end_dt


def committed_keys(
    state: State, measurements: Iterable[str]
) -> set[tuple[str, datetime, datetime]]:
    """(measurement, start, end) of every window already committed: what a resumed backfill skips."""
    return {
        (m, r.window.start, r.window.end) for m in measurements for r in state.committed_windows(m)
    }


def without_committed(state: State, work: Sequence[Work]) -> list[Work]:
    """``work`` minus the windows already committed, in the same order."""
    done = committed_keys(state, {m for m, _ in work})
    return [(m, w) for m, w in work if (m, w.start, w.end) not in done]


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


def estimate(state: State, work: Sequence[Work], redo: bool) -> dict[str, Any]:
    """A dry run: the windows a backfill would run, and points estimated from committed windows' density."""
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


def _as_time(value: str | datetime, name: str) -> datetime:
    return parse_time(value, name=name) if isinstance(value, str) else as_utc(value)
