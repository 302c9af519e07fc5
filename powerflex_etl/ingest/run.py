"""The one orchestrator: plan -> skip committed -> run windows via submit -> watermarks -> refresh.

Every engine ingests through :func:`ingest` and :func:`finish`: the built-in
:class:`LocalEngine` passes a thread pool, ``flows/`` passes Prefect's ``task.submit``
(see ``ingest/engine.py``). :func:`run` and :func:`backfill` are what the CLI calls;
they only pick the engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from powerflex_etl.errors import ConfigError, PowerflexError, stops_run
from powerflex_etl.ingest.engine import (
    Engine,
    Handle,
    Submit,
    ThreadPoolSubmit,
    default_engine,
    plugin_engine,
)
from powerflex_etl.ingest.plan import Work, clamp_end, estimate, plan_run, without_committed
from powerflex_etl.ingest.summary import RunResult, WindowDone, WindowSummary, new_run_id

if TYPE_CHECKING:
    from powerflex_etl.api.client import PowerflexClient
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.settings import Settings

log = logging.getLogger("powerflex_etl.ingest")

#: Called once per finished window (ok or failed), e.g. by the CLI's progress bar.
OnWindow = Callable[[WindowDone], None]
#: A run's first API call, made before any window starts (the engine's client logs in).
Preflight = Callable[[], object]


def run_windows_with(
    submit: Submit,
    work: Sequence[Work],
    *,
    state: State,
    run_id: str,
    workers: int,
    advance: bool = True,
    on_window: OnWindow | None = None,
) -> RunResult:
    """Run ``work`` through ``submit``, at most ``workers`` windows in flight; then move watermarks.

    The bound lives here, not in the engine: Prefect's thread pool has no bound of its own,
    and a long range must never hold more than ``workers`` answers in memory. Window
    failures (:class:`PowerflexError`) are collected in plan order; any other exception is
    a bug, raised once the windows in flight have finished.

    A failure that stops the run (:func:`~powerflex_etl.errors.stops_run`: bad credentials,
    a 403, a spent retry budget...) awaits every other window too: no window is started
    after it, the engine is told to cancel the ones in flight (``submit.cancel(err)``, if it
    has one), and the result carries it as ``stopped``.
    """
    t0 = time.perf_counter()
    limit = max(1, workers)
    todo = iter(enumerate(work))
    pending: list[tuple[Handle, int]] = []
    summaries: list[WindowSummary] = []
    failed: list[tuple[int, PowerflexError]] = []
    bug: Exception | None = None
    stopped: PowerflexError | None = None
    finished = 0
    while True:
        while bug is None and stopped is None and len(pending) < limit:
            nxt = next(todo, None)
            if nxt is None:
                break
            i, (m, w) = nxt
            pending.append((submit.submit(m, w), i))
        if not pending:
            break
        first = submit.first_done([h for h, _ in pending])
        _, i = pending.pop(next(k for k, (h, _) in enumerate(pending) if h == first))
        m, w = work[i]
        summary: WindowSummary | None = None
        error: PowerflexError | None = None
        try:
            summary = first.result()
        except PowerflexError as err:
            error = err
            failed.append((i, err))
            if stopped is None and stops_run(err):
                stopped = err
                _cancel(submit, err, len(work) - finished - 1)
        except Exception as err:
            # not a window failure but a bug: stop submitting, let the windows in flight end
            bug = bug or err
            continue
        else:
            summaries.append(summary)
        finished += 1
        if on_window is not None:
            on_window(WindowDone(m, w, summary, error, finished, len(work)))
    if bug is not None:
        raise bug
    failures = [(*work[i], err) for i, err in sorted(failed, key=lambda f: f[0])]
    marks = (
        advance_watermarks(state, summaries, [(m, w) for m, w, _ in failures]) if advance else {}
    )
    return RunResult(run_id, summaries, failures, marks, time.perf_counter() - t0, stopped=stopped)


def _cancel(submit: Submit, err: PowerflexError, left: int) -> None:
    log.warning("stopping the run: %d window(s) left undone", left)
    cancel = getattr(submit, "cancel", None)
    if cancel is not None:
        cancel(err)


def advance_watermarks(
    state: State, summaries: Iterable[WindowSummary], failed: Iterable[Work]
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


def ingest(
    settings: Settings,
    submit: Submit,
    *,
    state: State,
    run_id: str,
    start: str | datetime | None,
    end: str | datetime | None,
    measurements: list[str] | None,
    workers: int,
    skip_committed: bool = False,
    on_window: OnWindow | None = None,
    preflight: Preflight | None = None,
) -> RunResult:
    """One ingestion run on any engine: plan, skip committed (``skip_committed``), run, refresh.

    ``preflight`` (the engine's login) runs once there is work and before any window, so
    wrong credentials or an unreachable API fail the run once, raised as they are. The
    catalog is rebuilt when any window was committed, failures or not. Window failures are
    in the result, not raised: pass it to :func:`finish` (after publishing it, if the engine
    publishes reports).
    """
    work = plan_run(state, measurements, start, end, settings=settings)
    skipped = 0
    if skip_committed:
        todo = without_committed(state, work)
        skipped = len(work) - len(todo)
        log.info("%d windows to run (%d already committed)", len(todo), skipped)
        work = todo
    if work and preflight is not None:
        preflight()
    result = run_windows_with(
        submit, work, state=state, run_id=run_id, workers=workers, on_window=on_window
    )
    result.skipped_committed = skipped
    if result.summaries:
        from powerflex_etl.ingest.upkeep import after_write

        after_write(settings, state.lake)
    return result


def finish(result: RunResult) -> dict[str, Any]:
    """The run's report; warns on a failed unit check, raises what stopped the run, else the
    first failure (plan order)."""
    report = result.report()
    for m, t in report["measurements"].items():
        if not t.get("unit_check_ok", True):
            log.warning("%s: %s", m, t.get("unit_check"))
    if result.stopped is not None:
        raise result.stopped
    if result.failures:
        raise result.failures[0][2]
    return report


def run_windows(
    work: Sequence[Work],
    *,
    settings: Settings,
    lake: Lake,
    state: State,
    client: PowerflexClient,
    run_id: str,
    workers: int = 2,
    advance: bool = True,
) -> RunResult:
    """Run ``work`` on a thread pool in this process (no planning, no catalog): for harnesses."""
    with ThreadPoolSubmit(
        settings=settings, lake=lake, state=state, client=client, run_id=run_id, workers=workers
    ) as submit:
        return run_windows_with(
            submit, work, state=state, run_id=run_id, workers=workers, advance=advance
        )


class LocalEngine:
    """The built-in engine: every window on a thread pool in this process, no Prefect."""

    def __init__(self, *, on_window: OnWindow | None = None) -> None:
        self.on_window = on_window

    def ingest(
        self,
        settings: Settings,
        *,
        start: str | None,
        end: str | None,
        measurements: list[str] | None,
        workers: int,
    ) -> dict[str, Any]:
        """One run over [start, end) (incremental without start); raises the first failure."""
        return self._run(settings, start, end, measurements, workers, skip_committed=False)

    def backfill(
        self,
        settings: Settings,
        *,
        start: str,
        end: str,
        measurements: list[str] | None,
        workers: int,
        redo: bool,
    ) -> dict[str, Any]:
        """A long range, skipping committed windows unless ``redo``; raises the first failure."""
        return self._run(settings, start, end, measurements, workers, skip_committed=not redo)

    def _run(
        self,
        s: Settings,
        start: str | None,
        end: str | None,
        measurements: list[str] | None,
        workers: int,
        *,
        skip_committed: bool,
    ) -> dict[str, Any]:
        from powerflex_etl.api.client import PowerflexClient
        from powerflex_etl.ingest.upkeep import open_lake
        from powerflex_etl.lake.state import State

        lake = open_lake(s)
        state = State(lake)
        run_id = new_run_id()
        with (
            PowerflexClient(s) as client,
            ThreadPoolSubmit(
                settings=s, lake=lake, state=state, client=client, run_id=run_id, workers=workers
            ) as submit,
        ):
            result = ingest(
                s,
                submit,
                state=state,
                run_id=run_id,
                start=start,
                end=end,
                measurements=measurements,
                workers=workers,
                skip_committed=skip_committed,
                on_window=self.on_window,
                preflight=client.ensure_login,
            )
        return finish(result)


def load_engine(name: str, **options: Any) -> Engine:
    """``local`` (built in) or an engine registered under ``powerflex_etl.engines`` (``prefect``)."""
    if name == "local":
        return LocalEngine(**options)
    return plugin_engine(name, **options)


def run(
    s: Settings,
    *,
    start: str | None,
    end: str | None,
    measurements: list[str] | None,
    engine: str | None = None,
    workers: int = 4,
    on_window: OnWindow | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ingestion run on ``engine`` (default: :func:`default_engine`), built with
    ``engine_options``; returns the run report, raises the first failure.

    ``on_window`` hears of every finished window on the local engine (a progress bar);
    other engines report through their own UI.
    """
    name = engine or default_engine()
    options = dict(engine_options or {})
    if on_window and name == "local":
        options["on_window"] = on_window
    return load_engine(name, **options).ingest(
        s, start=start, end=end, measurements=measurements, workers=workers
    )


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
    on_window: OnWindow | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A long range in parallel windows; committed windows are skipped unless ``redo``.

    ``threads``: the local engine (``on_window`` hears of every finished window). ``dask``:
    the Prefect engine's backfill flow on a Dask cluster (a local one, or ``dask_address``),
    built with ``engine_options``; every worker process builds its own client from its
    environment. An ``end`` in the future is clamped to now (one warning).
    """
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake

    state = State(Lake(s.lake))
    # clamped once here, so the engine's own planning sees a present end and says nothing
    end = clamp_end(end).isoformat()
    # planned here too, so a bad range fails before any engine (or Dask cluster) starts
    work = plan_run(state, measurements, start, end, settings=s)
    if dry_run:
        return estimate(state, work, redo)
    eng: Engine
    if executor == "threads":
        eng = LocalEngine(on_window=on_window)
    elif executor == "dask":
        options = dict(engine_options or {})
        eng = plugin_engine("prefect", executor="dask", dask_address=dask_address, **options)
    else:
        raise ConfigError(f"unknown executor {executor!r}", hint="use threads or dask")
    return eng.backfill(
        s, start=start, end=end, measurements=measurements, workers=workers, redo=redo
    )
