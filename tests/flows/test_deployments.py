"""prefect.yaml for real: a Prefect server and a process worker on loopback, `prefect deploy --all`,
then the nightly and backfill deployments triggered against the simulator.

One such test (it takes a minute); everything else calls the library or the test harness.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("prefect server exited")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)  # polling a starting server, not synchronising logic
    raise RuntimeError("prefect server did not become healthy")


def test_deploy_all_then_nightly_and_backfill_runs_fill_the_lake(tmp_path, sim, sim_settings):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POWERFLEX_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="WARNING",
        POWERFLEX_BASE_URL=sim_settings.base_url,
        POWERFLEX_USERNAME=sim_settings.username,
        POWERFLEX_PASSWORD=sim_settings.password.get_secret_value(),
        POWERFLEX_LAKE=sim_settings.lake,
        POWERFLEX_RETRY_BACKOFF_S="0.01",
    )
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        _wait_healthy(api, server)

        def prefect(*args: str, timeout: float = 300) -> str:
            out = subprocess.run(
                [PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
            )
            assert out.returncode == 0, (
                f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
            return out.stdout

        prefect("work-pool", "create", "powerflex", "--type", "process")
        deployed = prefect("--no-prompt", "deploy", "--all")
        for name in ("nightly-ingest", "backfill", "dcm-snapshot"):
            assert name in deployed
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "powerflex", "--limit", "2"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        prefect(
            "deployment",
            "run",
            "powerflex-nightly/nightly-ingest",
            "--watch",
            "--watch-timeout",
            "600",
            timeout=660,
        )
        start = datetime(2021, 6, 5, tzinfo=UTC)
        prefect(
            "deployment",
            "run",
            "powerflex-backfill/backfill",
            "-p",
            f"start={json.dumps(start.isoformat())}",
            "-p",
            f"end={json.dumps((start + timedelta(hours=12)).isoformat())}",
            "--watch",
            "--watch-timeout",
            "600",
            timeout=660,
        )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)

    lake = Lake(sim_settings.lake)
    state = State(lake)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for m in ("ct_response", "evse_request", "evse_response"):
        # the nightly run covered yesterday (UTC) and moved the watermark to today 00:00
        assert state.watermark(m) == today
        records = {(r.window.start, r.window.end) for r in state.committed_windows(m)}
        assert (start, start + timedelta(hours=6)) in records
        assert (start + timedelta(hours=6), start + timedelta(hours=12)) in records
        assert lake.read(m).num_rows > 0
