"""Prefect-free ingestion steps: plan windows, ingest one window end to end, run many.

One window is fetched, parsed, normalized and committed inside one call, so a big answer
never crosses a task boundary; what comes back is a small :class:`WindowSummary`.
Flows (``flows/``) and the CLI only sequence these functions.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powerflex_etl.errors import (
    AnswerTooLargeError,
    ConfigError,
    PartialAnswerError,
    PowerflexError,
    RetryableApiError,
    WindowError,
)
from powerflex_etl.schemas import MEASUREMENTS
from powerflex_etl.windows import Window, as_utc, parse_time, split

if TYPE_CHECKING:
    from powerflex_etl.api.client import PowerflexClient
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.settings import Settings

log = logging.getLogger("powerflex_etl.ingest")

# a window is never split below this: a cut answer that small is a server problem
MIN_SPLIT_SECONDS = 60.0
# the answers worth answering with a split: too large, cut by the row limit, or timed out
_SPLIT_ERRORS = (PartialAnswerError, AnswerTooLargeError)


def new_run_id() -> str:
    """A fresh run id (lineage column ``_run_id``)."""
    return uuid.uuid4().hex[:16]


def check_measurements(measurements: Iterable[str] | None) -> list[str]:
    """The measurements asked for (all when none), validated, in contract order."""
    asked = list(measurements or MEASUREMENTS)
    unknown = [m for m in asked if m not in MEASUREMENTS]
    if unknown:
        raise ConfigError(
            f"unknown measurement {unknown[0]!r}", hint=f"use one of {', '.join(MEASUREMENTS)}"
        )
    return [m for m in MEASUREMENTS if m in asked]


#: The counts of a WindowSummary that add up across sub-windows and across a run.
COUNTS: tuple[str, ...] = (
    "points",
    "rows",
    "rejects",
    "new_rejects",
    "duplicates",
    "outside_window",
    "out_of_scope",
    "slots",
    "splits",
    "bytes",
)


@dataclass
class WindowSummary:
    """What one committed window did; small enough to be a task result."""

    measurement: str
    window_start: str
    window_end: str
    points: int = 0  # rows delivered by the API (after the parser)
    rows: int = 0  # rows committed for the window
    rejects: int = 0  # rejects found in the answer
    new_rejects: int = 0  # rejects not stored before
    duplicates: int = 0
    outside_window: int = 0
    out_of_scope: int = 0
    slots: int = 0
    splits: int = 0  # how many times the window had to be split
    bytes: int = 0
    seconds: float = 0.0
    unit_check: str | None = None
    unit_check_ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def absorb(self, other: WindowSummary) -> None:
        """Add a sub-window's counts (after a split)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.unit_check and (self.unit_check is None or not other.unit_check_ok):
            self.unit_check, self.unit_check_ok = other.unit_check, other.unit_check_ok


def plan(
    measurements: Sequence[str], start: datetime, end: datetime, hours: float
) -> list[tuple[str, Window]]:
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
) -> list[tuple[str, Window]]:
    """The (measurement, window) pairs of a run; without ``start``, incremental per measurement."""
    ms = check_measurements(measurements)
    now = now or datetime.now(UTC).replace(microsecond=0)
    end_dt = _as_time(end, "--end") if end is not None else now
    work: list[tuple[str, Window]] = []
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


def committed_keys(
    state: State, measurements: Iterable[str]
) -> set[tuple[str, datetime, datetime]]:
    """(measurement, start, end) of every window already committed: what a resumed backfill skips."""
    return {
        (m, r.window.start, r.window.end) for m in measurements for r in state.committed_windows(m)
    }


def _as_time(value: str | datetime, name: str) -> datetime:
    return parse_time(value, name=name) if isinstance(value, str) else as_utc(value)


def _is_timeout(err: PowerflexError) -> bool:
    return isinstance(err, RetryableApiError) and "timed out" in str(err).lower()


def ingest_window(
    client: PowerflexClient,
    lake: Lake,
    state: State,
    measurement: str,
    window: Window,
    *,
    settings: Settings,
    run_id: str,
) -> WindowSummary:
    """Fetch, parse, normalize and commit one window; split it when the answer is cut or too big.

    Raises a :class:`PowerflexError` naming the measurement and window when it cannot be
    ingested; nothing of that window is committed then.
    """
    from powerflex_etl.lake.state import WindowRecord
    from powerflex_etl.parse.answer import parse_answer
    from powerflex_etl.parse.normalize import Scope, normalize

    t0 = time.perf_counter()
    summary = WindowSummary(measurement, window.start.isoformat(), window.end.isoformat())
    try:
        body = client.get_measurement_data(measurement, window.start, window.end)
        summary.bytes = len(body)
        parsed = parse_answer(body, measurement)
        del body
    except PowerflexError as err:
        splittable = isinstance(err, _SPLIT_ERRORS) or _is_timeout(err)
        if not splittable or (window.end - window.start).total_seconds() <= MIN_SPLIT_SECONDS:
            raise WindowError(measurement, window, err) from err
        log.warning("%s %s: %s; splitting the window", measurement, window, err)
        summary.splits = 1
        for half in window.halves():
            summary.absorb(
                ingest_window(
                    client, lake, state, measurement, half, settings=settings, run_id=run_id
                )
            )
        summary.seconds = time.perf_counter() - t0
        return summary

    scope = Scope(tuple(settings.acn_id), tuple(settings.acc_id), tuple(settings.acs_id))
    result = normalize(
        parsed,
        window,
        run_id=run_id,
        ingested_at=datetime.now(UTC),
        power_unit=settings.power_unit,
        scope=scope if (scope.acn_id or scope.acc_id or scope.acs_id) else None,
    )
    del parsed
    try:
        commit = lake.commit_window(
            measurement, window, result.table, result.rejects, run_id=run_id
        )
    except PowerflexError as err:
        raise WindowError(measurement, window, err) from err
    st = result.stats
    summary.points = st.rows_in
    summary.rows = commit.rows_written
    summary.rejects = st.rejected
    summary.new_rejects = commit.rejects_written
    summary.duplicates = st.duplicates
    summary.outside_window = st.outside_window
    summary.out_of_scope = st.out_of_scope
    summary.slots = len(commit.slots)
    summary.unit_check, summary.unit_check_ok = st.unit_check, st.unit_check_ok
    summary.seconds = time.perf_counter() - t0
    state.record_window(
        WindowRecord(
            measurement=measurement,
            window=window,
            rows=summary.rows,
            rejects=summary.rejects,
            run_id=run_id,
            seconds=round(summary.seconds, 3),
            committed_at=datetime.now(UTC),
        )
    )
    log.info(
        "%s %s: %d points, %d rows, %d rejects, %.2f s",
        measurement,
        window,
        summary.points,
        summary.rows,
        summary.rejects,
        summary.seconds,
    )
    return summary


def advance_watermarks(
    state: State, summaries: Iterable[WindowSummary], failed: Iterable[tuple[str, Window]]
) -> dict[str, str]:
    """Per measurement, move the watermark to the end of the committed windows before any failure.

    Windows after a failed one do not advance it: the next incremental run redoes them.
    """
    failed_starts: dict[str, datetime] = {}
    for m, w in failed:
        failed_starts[m] = min(failed_starts.get(m, w.start), w.start)
    ends: dict[str, datetime] = {}
    for s in summaries:
        end = datetime.fromisoformat(s.window_end)
        if s.measurement in failed_starts and end > failed_starts[s.measurement]:
            continue
        ends[s.measurement] = max(ends.get(s.measurement, end), end)
    return {m: state.advance_watermark(m, end).isoformat() for m, end in ends.items()}


@dataclass
class RunResult:
    run_id: str
    summaries: list[WindowSummary]
    failures: list[tuple[str, Window, PowerflexError]]
    watermarks: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> dict[str, Any]:
        """The run's summary: per-measurement totals, the unit check, failures, watermarks."""
        per: dict[str, dict[str, Any]] = {}
        for s in sorted(self.summaries, key=lambda x: (x.measurement, x.window_start)):
            t = per.setdefault(s.measurement, dict.fromkeys(_TOTALS, 0))
            t["windows"] += 1
            for k in _TOTALS[1:]:
                t[k] += getattr(s, k)
            if s.unit_check and (not s.unit_check_ok or "unit_check" not in t):
                t["unit_check"], t["unit_check_ok"] = s.unit_check, s.unit_check_ok
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "measurements": per,
            "failures": [e.one_line() for _, _, e in self.failures],
            "watermarks": self.watermarks,
        }


_TOTALS = ("windows", *COUNTS)


def run_windows(
    work: Sequence[tuple[str, Window]],
    *,
    settings: Settings,
    lake: Lake,
    state: State,
    client: PowerflexClient,
    run_id: str,
    workers: int = 2,
    skip: Callable[[str, Window], bool] | None = None,
    on_done: Callable[[WindowSummary | None, tuple[str, Window], PowerflexError | None], None]
    | None = None,
    advance: bool = True,
) -> RunResult:
    """Run windows on a bounded thread pool (at most ``workers`` in flight), without Prefect."""
    t0 = time.perf_counter()
    summaries: list[WindowSummary] = []
    failures: list[tuple[str, Window, PowerflexError]] = []
    todo = [(m, w) for m, w in work if not (skip and skip(m, w))]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="window") as pool:
        pending: dict[Future[WindowSummary], tuple[str, Window]] = {}
        it = iter(todo)
        while True:
            while len(pending) < max(1, workers):
                nxt = next(it, None)
                if nxt is None:
                    break
                m, w = nxt
                fut = pool.submit(
                    ingest_window, client, lake, state, m, w, settings=settings, run_id=run_id
                )
                pending[fut] = nxt
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                exc = fut.exception()
                if exc is None:
                    summaries.append(fut.result())
                    if on_done:
                        on_done(summaries[-1], item, None)
                elif isinstance(exc, PowerflexError):
                    failures.append((item[0], item[1], exc))
                    if on_done:
                        on_done(None, item, exc)
                else:
                    raise exc
    marks = (
        advance_watermarks(state, summaries, [(m, w) for m, w, _ in failures]) if advance else {}
    )
    return RunResult(run_id, summaries, failures, marks, time.perf_counter() - t0)
