"""The simulator in a process of its own, so its memory counts on neither side of a benchmark."""

from __future__ import annotations

import socket
import subprocess
import sys
import time


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(period: float = 60.0, seed: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``powerflex-etl simulator``; returns the process and its URL once it accepts."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "powerflex_etl", "simulator",
            "--port", str(port), "--seed", str(seed), "--sample-period", str(period),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120  # a busy 2-core machine can take a while to import
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("simulator did not start") from None
            time.sleep(0.1)  # polling a port that is not open yet; nothing to wait on
