"""A run's progress: a Rich bar that owns the terminal, or ``[n/N]`` lines when stderr is not one.

On a terminal, one Rich :class:`~rich.console.Console` on stderr draws the bar, and every
log record goes through the same console (:func:`setup_logging`), so Rich prints records
above the bar instead of two writers overwriting each other's lines. Anywhere else (a
file, a pipe, CI) a ``[n/N]`` line is logged for the first window, then about every 5% of
the windows or every 30 s, and always for a failed window and the last one.

Fed by the orchestrator's ``on_window`` callback (one :class:`WindowDone` per finished
window); the bar appears with the first finished window, when the total is known.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from powerflex_etl.ingest.summary import WindowDone

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("powerflex_etl.cli")

#: Lines at most this far apart in windows: 1/STEPS of the run.
STEPS = 20
#: ...and in seconds, for runs whose windows are slow.
EVERY_S = 30.0


def terminal() -> Console | None:
    """A Rich console on stderr when stderr is a terminal, else None (plain lines)."""
    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return None
    from rich.console import Console

    return Console(stderr=True)


def setup_logging(verbose: bool, console: Console | None = None) -> None:
    """The library's log records on stderr: through ``console`` (above any bar) or as lines."""
    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(
            console=console, show_path=False, log_time_format="%H:%M:%S", markup=False
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("powerflex_etl")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    # Prefect's own console chatter only when asked for
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


class RunProgress:
    """Use as a context manager; pass :meth:`update` as ``on_window``.

    ``console``: draw a bar there (see :func:`terminal`); None: log ``[n/N]`` lines.
    ``clock`` is injectable so the 30 s rule can be tested without waiting.
    """

    def __init__(
        self,
        label: str,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = EVERY_S,
    ) -> None:
        self.label = label
        self.points = 0
        self.failed = 0
        self._console = console
        self._clock = clock
        self._every_s = every_s
        self._t0 = clock()
        self._last_line: tuple[int, float] | None = None  # (done, when) of the last line
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        self._t0 = self._clock()
        return self

    def update(self, event: WindowDone) -> None:
        """Count one finished window (ok or failed)."""
        if event.summary is not None:
            self.points += event.summary.points
        if event.error is not None:
            self.failed += 1
        if self._console is not None:
            self._draw(event)
        elif self._due(event):
            self._line(event)

    def _due(self, event: WindowDone) -> bool:
        """Whether this window gets a line: first, last, failed, or a step of windows/time on."""
        if self._last_line is None or event.error is not None or event.done >= event.total:
            return True
        done, when = self._last_line
        step = max(1, -(-event.total // STEPS))
        return event.done - done >= step or self._clock() - when >= self._every_s

    def _line(self, event: WindowDone) -> None:
        now = self._clock()
        self._last_line = (event.done, now)
        rate = self.points / max(now - self._t0, 1e-9)
        status = "ok" if event.error is None else f"FAILED: {event.error.one_line()}"
        log.info(
            "[%d/%d] %s %s %s %s (%s points so far, %s points/s%s)",
            event.done,
            event.total,
            self.label,
            event.measurement,
            event.window,
            status,
            f"{self.points:,}",
            f"{rate:,.0f}",
            f", {self.failed} failed" if self.failed else "",
        )

    def _draw(self, event: WindowDone) -> None:
        rate = self.points / max(self._clock() - self._t0, 1e-9)
        if self._bar is None:
            self._start(event.total)
        self._bar.update(self._task, advance=1, points=self.points, rate=rate, failed=self.failed)

    def _start(self, total: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} windows"),
            TextColumn("{task.fields[points]:,} points"),
            TextColumn("{task.fields[rate]:,.0f} points/s"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
            # everything printed while the bar is up goes above it, never through it
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, points=0, rate=0.0, failed=0)

    @property
    def bar(self) -> Any:
        """The Rich Progress once drawn (None before the first window or without a console)."""
        return self._bar

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
