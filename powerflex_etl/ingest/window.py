"""One window end to end: fetch, parse, normalize, commit, record; split when the answer is cut.

The whole window happens inside one call, so a big answer never crosses a task boundary;
what comes back is a small :class:`WindowSummary`. Engines (a thread pool, Prefect tasks)
only decide where this call runs.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from powerflex_etl.errors import (
    AnswerTooLargeError,
    PartialAnswerError,
    PowerflexError,
    RetryableApiError,
    WindowError,
)
from powerflex_etl.ingest.summary import WindowSummary
from powerflex_etl.windows import Window

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
        # the buffer the answer was read into: parse_answer works in it, no copy of its rows
        body = client.get_measurement_answer(measurement, window.start, window.end)
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
