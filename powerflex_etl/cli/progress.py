"""The backfill's progress: a Rich bar on a terminal, one log line per window otherwise.

Fed by the orchestrator's ``on_window`` callback (one :class:`WindowDone` per finished
window); the bar appears with the first finished window, when the total is known.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from powerflex_etl.ingest.summary import WindowDone

log = logging.getLogger("powerflex_etl.cli")


class BackfillProgress:
    """Use as a context manager; pass :meth:`update` as ``on_window``."""

    def __init__(self) -> None:
        self.points = 0
        self.t0 = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> BackfillProgress:
        self.t0 = time.perf_counter()
        return self

    def update(self, event: WindowDone) -> None:
        """Count one finished window (ok or failed)."""
        if event.summary is not None:
            self.points += event.summary.points
        rate = self.points / max(time.perf_counter() - self.t0, 1e-9)
        if self._tty:
            if self._bar is None:
                self._start(event.total)
            self._bar.update(self._task, advance=1, points=self.points, rate=rate)
            return
        status = "ok" if event.error is None else f"FAILED: {event.error}"
        log.info(
            "[%d/%d] %s %s %s (%d points total, %.0f points/s)",
            event.done,
            event.total,
            event.measurement,
            event.window,
            status,
            self.points,
            rate,
        )

    def _start(self, total: int) -> None:
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
        self._task = self._bar.add_task("backfill", total=total, points=0, rate=0.0)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
