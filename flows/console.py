"""Prefect's own output kept off the terminal: its log lines, its temporary server, its shutdown.

A failed command must end with the library's one line (``powerflex-etl: error: ...``), not
with a task run's traceback, the flow run's, or the ``CancelledError`` a temporary API server
prints while it shuts down after that line. Here:

- :func:`prefect_console_to` sends what Prefect logs to the console (the root logger's
  console handler, uvicorn's, Prefect's internal debug handler) to a log file instead;
  the handlers that send logs to the Prefect API are left alone, so flow runs keep them;
- :func:`prefect_api` gives the run a Prefect API: the configured one (``PREFECT_API_URL``),
  else a temporary server started here, with its output in a file of its own, and stopped
  (after Prefect's log and event queues are drained into it) before the command returns —
  so nothing of it can print after the command's last line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from powerflex_etl.errors import EngineError


def _is_console(handler: logging.Handler) -> bool:
    if isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and stream in (
        sys.stderr,
        sys.stdout,
        sys.__stderr__,
        sys.__stdout__,
    )


@contextlib.contextmanager
def prefect_console_to(log_file: Path) -> Iterator[None]:
    """Within: every console handler Prefect configured writes to ``log_file`` instead."""
    import prefect  # noqa: F401  (configures Prefect's logging, which is what is moved)

    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s", "%H:%M:%S")
    )
    moved: list[tuple[logging.Logger, logging.Handler]] = []
    existing = [
        v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)
    ]
    for logger in [logging.root, *existing]:
        # the library's own logger stays on the terminal: its lines are the CLI's output
        if logger.name == "powerflex_etl" or logger.name.startswith("powerflex_etl."):
            continue
        for handler in list(logger.handlers):
            if _is_console(handler):
                logger.removeHandler(handler)
                logger.addHandler(to_file)
                moved.append((logger, handler))
    try:
        yield
    finally:
        for logger, handler in moved:
            logger.removeHandler(to_file)
            logger.addHandler(handler)
        to_file.close()


@contextlib.contextmanager
def prefect_api(server_log: Path | None = None) -> Iterator[str]:
    """A Prefect API for the duration; yields its URL.

    ``PREFECT_API_URL`` when set; else a temporary server started here (its stdout and
    stderr to ``server_log``, or inherited without one) and shared with any process this
    one starts (Dask workers), then stopped on the way out.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        yield str(configured)
        return
    server = _server(server_log)
    try:
        server.start(timeout=_startup_timeout())
    except RuntimeError as err:  # Prefect's "Timed out while attempting to connect ..."
        server.stop()
        seen = f"; its output: {server_log}" if server_log else ""
        raise EngineError(
            f"Prefect's temporary API server did not start ({str(err).splitlines()[0]}){seen}",
            hint="point PREFECT_API_URL at a running Prefect server, raise "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or use --engine local",
        ) from None
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            try:
                yield server.api_url
            finally:
                _drain()
    finally:
        server.stop()


def _startup_timeout() -> int:
    """Seconds to wait for the temporary server: the user's setting, else 90.

    Prefect's own default (20 s) is often too short on a busy two-core machine, where the
    server's start (imports, database migrations) alone can take longer.
    """
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in os.environ:
        return int(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    return 90


def _drain() -> None:
    """Send what Prefect still queues for the API (logs, events) while the API is up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # a queue that will not drain must not hide the result
        APILogWorker.drain_all(timeout=5)
    with contextlib.suppress(Exception):
        EventsWorker.drain_all(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(server_log: Path | None) -> Any:
    """Prefect's own temporary server class, with its output sent to ``server_log``."""
    from prefect.server.api.server import SubprocessASGIServer

    class _Server(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> Any:
            with _server_settings():
                if server_log is None:
                    return super()._run_uvicorn_command()
                server_log.parent.mkdir(parents=True, exist_ok=True)
                with open(server_log, "ab") as out, _inherited_as_stdio(out):
                    return super()._run_uvicorn_command()

    # its own port: Prefect keeps one instance per port, and None is Prefect's own
    return _Server(_free_port())


#: The temporary server's own settings, where the user has not set them. Prefect's task run
#: recorder writes each event of a task run (pending, running, completed: three per window)
#: in a transaction of its own by default: ~55 ms of the server's CPU per window here, as
#: much as a tenth of the window's own work; in batches (flushed every 5 s, and as the
#: server stops) ~20 ms. Only this
#: server, which lives for the one command, is configured; a server at PREFECT_API_URL is
#: the user's.
SERVER_SETTINGS = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100"}


@contextlib.contextmanager
def _server_settings() -> Iterator[None]:
    """:data:`SERVER_SETTINGS` in the environment while the server's process is started.

    Prefect starts it with a copy of this process's environment; this is where its settings
    can be chosen. The environment is restored right after.
    """
    added = {k: v for k, v in SERVER_SETTINGS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextlib.contextmanager
def _inherited_as_stdio(out: IO[bytes]) -> Iterator[None]:
    """Point fds 1 and 2 at ``out`` while a child process is started, so it inherits them.

    Prefect starts its server without choosing the child's output; this is the one moment
    it can be chosen. Only the start happens inside: the parent's own output is restored
    right after.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
