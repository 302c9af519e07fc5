"""Running the simulator: in a background thread for tests, or blocking for the CLI."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import pyarrow as pa
import uvicorn

from powerflex_etl.simulator import source
from powerflex_etl.simulator.app import create_app
from powerflex_etl.simulator.config import SimulatorConfig


def _epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        raise ValueError(f"{dt!r} has no time zone; pass an aware UTC datetime")
    return dt.timestamp()


class RunningSimulator:
    """A simulator serving on loopback; stop it with :meth:`stop` or a ``with`` block."""

    def __init__(
        self, config: SimulatorConfig, server: uvicorn.Server, thread: threading.Thread, url: str
    ) -> None:
        self.config = config
        self.url = url
        self._server = server
        self._thread = thread
        self._state: Any = server.config.app.state.sim  # type: ignore[union-attr]

    def truth(self, measurement: str, start: datetime, end: datetime) -> pa.Table:
        """Exactly the rows a no-fault answer for ``[start, end)`` holds (source names and units)."""
        return source.truth(self.config, measurement, _epoch(start), _epoch(end))

    def sessions(self, start: datetime, end: datetime) -> pa.Table:
        """The real ACN sessions the simulator replays in ``[start, end)``."""
        return source.sessions(self.config, _epoch(start), _epoch(end))

    def requests_seen(self) -> list[dict[str, Any]]:
        """The requests so far (the last 10,000): method, path, body (passwords shown as ``***``)."""
        with self._state.lock:
            return [dict(r) for r in self._state.seen]

    def revoke_tokens(self) -> None:
        """Revoke every token issued so far (as the account logging in elsewhere would)."""
        self._state.revoke_all()

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _uvicorn(config: SimulatorConfig) -> uvicorn.Server:
    uconf = uvicorn.Config(
        create_app(config), log_level="warning", access_log=False, lifespan="off"
    )
    return uvicorn.Server(uconf)


def start_simulator(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve ``config`` on ``host:port`` (0 = a free port) in a thread; returns once it accepts."""
    config = config or SimulatorConfig()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = _uvicorn(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="powerflex-simulator", daemon=True
    )
    thread.start()
    started = threading.Event()
    while not started.wait(0.01):
        if server.started:
            started.set()
        elif not thread.is_alive():
            raise RuntimeError(f"simulator failed to start on {host}:{port}")
    bound_port = sock.getsockname()[1]
    return RunningSimulator(config, server, thread, f"http://{host}:{bound_port}")


def serve(
    config: SimulatorConfig,
    host: str,
    port: int,
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Serve ``config`` until interrupted (for ``powerflex-etl simulator``).

    The socket is bound here, before uvicorn starts, so ``on_start`` hears the real URL
    (port 0 included) and a client may connect as soon as it has been called.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    if on_start is not None:
        on_start(f"http://{host}:{sock.getsockname()[1]}")
    uconf = uvicorn.Config(create_app(config), log_level="info", lifespan="off")
    uvicorn.Server(uconf).run(sockets=[sock])
