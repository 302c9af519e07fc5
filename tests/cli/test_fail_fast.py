"""Failing runs fail fast, bounded and in one line, on every engine, run as a user runs them.

Each case is the real CLI in a fresh process against the session's simulator (or a closed
port), on the default engine (no ``--engine``, no ``PREFECT_API_URL``: the local one),
``--engine local`` and, where the failure happens inside a flow, ``--engine prefect`` with
Prefect's temporary server. Checked: the exact last line on stderr, that nothing on stderr
looks like a traceback, how many times ``POST /login`` was called, and what reached the
lake. The revoked-token runs check every row against the simulator's truth.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import MEASUREMENTS
from powerflex_etl.simulator import RunningSimulator
from powerflex_etl.windows import Window, split

T0 = datetime(2021, 6, 1, tzinfo=UTC)
DAY = ["--start", "2021-06-01", "--end", "2021-06-02"]
ENGINES = {"default": [], "local": ["--engine", "local"], "prefect": ["--engine", "prefect"]}
TRACEBACKISH = re.compile(
    r"Traceback \(most recent call last\)|^\s+File \"|^\s*\^+\s*$|CancelledError|^\w+(Error|Exception):"
)
CREDENTIALS = "(check POWERFLEX_USERNAME / POWERFLEX_PASSWORD)"


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    logins: int
    measurement_calls: int
    home: Path

    @property
    def last(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def assert_one_line(self, expected: str) -> None:
        assert self.rc == 1, self.stderr
        assert self.last == f"powerflex-etl: error: {expected}", self.stderr
        noise = [line for line in self.stderr.splitlines() if TRACEBACKISH.search(line)]
        assert noise == [], self.stderr
        assert self.stderr.count("powerflex-etl: error:") == 1


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the module's temporary servers (its database is migrated once)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def cli(sim: RunningSimulator, tmp_path: Path, prefect_home: Path) -> Iterator[Any]:
    """``cli(*args, env=..., fast=True)``: the CLI in a fresh process, as a new user runs it."""

    def run(*args: str, env: dict[str, str] | None = None, fast: bool = True) -> Run:
        home = tmp_path / f"home-{time.monotonic_ns()}"
        home.mkdir()
        full = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("POWERFLEX_", "PREFECT_API", "PREFECT_HOME"))
        }
        full.update(
            HOME=str(home),
            PREFECT_HOME=str(prefect_home),
            POWERFLEX_BASE_URL=sim.url,
            POWERFLEX_USERNAME=sim.config.username,
            POWERFLEX_PASSWORD=sim.config.password,
            POWERFLEX_LAKE=str(tmp_path / "lake"),
        )
        if fast:  # quick retries; the user's defaults are measured in their own tests
            full.update(POWERFLEX_RETRY_BACKOFF_S="0.01", POWERFLEX_MAX_ATTEMPTS="2")
        for k, v in (env or {}).items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v
        seen = len(sim.requests_seen())
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "powerflex_etl", *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=400,
        )
        seconds = time.perf_counter() - t0
        paths = [r["path"] for r in sim.requests_seen()[seen:]]
        return Run(
            proc.returncode,
            proc.stdout,
            proc.stderr,
            seconds,
            paths.count("/login"),
            paths.count("/get_measurement_data"),
            home,
        )

    yield run


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _no_secret_in(run: Run, password: str) -> None:
    texts = [run.stdout, run.stderr]
    texts += [p.read_text(errors="replace") for p in run.home.rglob("*.log")]
    for text in texts:
        assert password not in text
        assert "eyJ" not in text  # every JWT starts with the base64 of '{"'


# -- a wrong password -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_wrong_password_is_one_login_and_one_line(cli, sim, engine, tmp_path):
    r = cli("ingest", *DAY, *ENGINES[engine], env={"POWERFLEX_PASSWORD": "Not-The-Pw-1"})
    r.assert_one_line(f"/login at {sim.url} refused for user 'demo' (HTTP 401) {CREDENTIALS}")
    assert r.logins == 1 and r.measurement_calls == 0
    assert not (tmp_path / "lake" / "ct_response").exists()
    _no_secret_in(r, "Not-The-Pw-1")
    if engine == "prefect":
        # Prefect's own output went to the log file the run names, not the terminal
        log = r.home / ".cache" / "powerflex-etl" / "prefect.log"
        assert f"Prefect's own log: {log}" in r.stderr and log.exists()
        assert len(r.stderr.strip().splitlines()) == 2


def test_a_wrong_password_over_a_30_day_backfill_is_over_in_seconds(cli, sim):
    """The user's own retry settings, not the tests' quick ones."""
    r = cli(
        "backfill", "--start", "2021-05-01", "--end", "2021-05-31",
        env={"POWERFLEX_PASSWORD": "Not-The-Pw-2"}, fast=False,
    )  # fmt: skip
    r.assert_one_line(f"/login at {sim.url} refused for user 'demo' (HTTP 401) {CREDENTIALS}")
    assert r.logins <= 3 and r.measurement_calls == 0
    assert r.seconds < 30, r.seconds
    # the plan's one line ("360 windows to run"), then the error
    assert len(r.stderr.strip().splitlines()) <= 2


# -- an API that is not there, or not configured -------------------------------------------


@pytest.mark.parametrize("engine", ["default", "local"])
def test_an_unreachable_api_is_one_line(cli, engine):
    url = _closed_port()
    r = cli("ingest", *DAY, *ENGINES[engine], env={"POWERFLEX_BASE_URL": url})
    r.assert_one_line(
        f"/login: connection to {url} failed (Connection refused); gave up after 2 attempt(s) "
        "(check POWERFLEX_BASE_URL and that the API is reachable from here)"
    )


def test_an_unreachable_api_fails_the_run_within_a_minute_on_the_users_settings(cli):
    url = _closed_port()
    r = cli("ingest", *DAY, env={"POWERFLEX_BASE_URL": url}, fast=False)
    r.assert_one_line(
        f"/login: connection to {url} failed (Connection refused); gave up after 6 attempt(s) "
        "(check POWERFLEX_BASE_URL and that the API is reachable from here)"
    )
    assert r.seconds < 60, r.seconds
    # one warning per retry of the one login, then the error
    assert len(r.stderr.strip().splitlines()) == 6


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", *DAY],
        ["ingest", *DAY, "--engine", "local"],
        ["ingest", *DAY, "--engine", "prefect"],
        ["backfill", *DAY],
        ["dcm", "--acc-id", "39"],
    ],
    ids=["ingest default", "ingest local", "ingest prefect", "backfill", "dcm"],
)
def test_no_base_url_refuses_to_start(cli, args):
    r = cli(*args, env={"POWERFLEX_BASE_URL": None})
    r.assert_one_line(
        "no API base URL is configured "
        "(set POWERFLEX_BASE_URL or pass --base-url, e.g. https://<host>:9443)"
    )
    assert r.seconds < 30 and len(r.stderr.strip().splitlines()) == 1


def test_a_dry_run_needs_no_base_url(cli):
    r = cli("backfill", *DAY, "--dry-run", "--json", env={"POWERFLEX_BASE_URL": None})
    assert r.rc == 0, r.stderr
    assert len(json.loads(r.stdout)["windows"]) == 12


# -- arguments refused before anything runs -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", *DAY],
        ["ingest", *DAY, "--engine", "prefect"],
        ["backfill", *DAY],
        ["state", "show"],
        ["demo", "--days", "1"],
    ],
    ids=["ingest default", "ingest prefect", "backfill", "state show", "demo"],
)
def test_a_lake_path_that_is_a_file_is_refused_before_any_call(cli, tmp_path, args):
    lake = tmp_path / "lake"
    lake.write_text("not a lake\n")
    r = cli(*args)
    r.assert_one_line(
        f"the lake {lake} is a file, not a directory "
        "(pass --lake or POWERFLEX_LAKE a directory, or a path that does not exist yet)"
    )
    assert r.logins == 0 and lake.read_text() == "not a lake\n"


@pytest.mark.parametrize("command", ["ingest", "backfill"])
def test_workers_below_one_are_refused(cli, command):
    r = cli(command, *DAY, "--workers", "0")
    r.assert_one_line("--workers must be at least 1, not 0")
    assert r.logins == 0


def test_a_usage_error_ends_with_the_error_line(cli):
    r = cli("backfill", "--start", "2021-06-01")
    assert r.rc == 2
    assert r.last.startswith("powerflex-etl: error: Missing option '--end'.")
    assert "--help" in r.last


@pytest.mark.parametrize("engine", ["default", "local"])
def test_an_end_in_the_future_is_clamped_to_now(cli, tmp_path, engine):
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    end = start + timedelta(days=30)
    r = cli(
        "ingest", "--start", start.isoformat(), "--end", end.isoformat(),
        "-m", "evse_response", *ENGINES[engine],
    )  # fmt: skip
    after = datetime.now(UTC)
    assert r.rc == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if "is in the future" in line]
    assert len(warned) == 1
    assert f"--end {end.isoformat()} is in the future; ingesting up to now (" in warned[0]
    mark = State(Lake(str(tmp_path / "lake"))).watermark("evse_response")
    assert mark is not None and start < mark <= after


# -- a failure that awaits every window stops the run ---------------------------------------


def _forbidden_line(w: Window) -> str:
    return (
        f"ct_response {w}: /get_measurement_data ct_response {w}: HTTP 403 Forbidden: "
        "get_measurement_data: this account may not read ct_response "
        "(this account may not make that call; check its access with PowerFlex)"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_403_stops_the_whole_run_in_one_line(cli, sim, tmp_path, engine):
    sim.config.faults.forbidden = {"ct_response"}
    r = cli("ingest", "--start", "2021-06-01", "--end", "2021-06-03", "--workers", "4",
            *ENGINES[engine])  # fmt: skip
    first = list(split(T0, T0 + timedelta(days=2), 6))[:4]
    assert r.rc == 1 and r.last in {f"powerflex-etl: error: {_forbidden_line(w)}" for w in first}
    r.assert_one_line(r.last.removeprefix("powerflex-etl: error: "))
    # 24 windows planned; the run stopped with the windows in flight (at most 4 calls)
    assert r.measurement_calls <= 4 and r.logins == 1
    assert not list((tmp_path / "lake").glob("*/date=*/*.parquet"))


# -- tokens revoked early: every row in, a bounded number of logins -------------------------

# (the Prefect engine's run of the same is tests/flows/test_flow_tokens.py, on the session's
# Prefect server: a temporary one per case would cost a minute each on this machine)
REVOKED = ["--start", "2021-06-02", "--end", "2021-06-03", "--window-hours", "3", "--workers", "4"]
REVOKED_WINDOWS = 8 * len(MEASUREMENTS)  # 24


def _every_row_in(sim: RunningSimulator, lake: Path) -> None:
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=2)
    for m in MEASUREMENTS:
        assert Lake(str(lake)).read(m).num_rows == sim.truth(m, start, end).num_rows > 0, m


@pytest.mark.parametrize("engine", ["default", "local"])
def test_tokens_revoked_after_four_uses_and_on_each_login(cli, sim, tmp_path, engine):
    sim.config.faults.token_max_uses = 4
    sim.config.faults.single_session = True
    r = cli("ingest", *REVOKED, *ENGINES[engine])
    assert r.rc == 0, r.stderr
    _every_row_in(sim, tmp_path / "lake")
    assert r.measurement_calls >= REVOKED_WINDOWS
    # each token serves exactly four windows: one login per four, none wasted
    assert r.logins == math.ceil(REVOKED_WINDOWS / 4) == 6


def test_the_account_logging_in_elsewhere_during_a_backfill(cli, sim, tmp_path):
    """A nightly run beside a backfill on one account: every 5 answers our token is revoked."""
    sim.config.faults.foreign_login_every = 5
    sim.config.faults.single_session = True
    r = cli("backfill", *REVOKED)
    assert r.rc == 0, r.stderr
    _every_row_in(sim, tmp_path / "lake")
    assert r.logins <= REVOKED_WINDOWS // 5 + 2  # well under one per window


# -- with a Prefect API configured, the default engine records flow runs --------------------


@pytest.mark.prefect
def test_with_prefect_api_url_the_default_run_is_a_flow_run(cli, prefect_server):
    import asyncio

    from prefect.client.orchestration import get_client

    r = cli("ingest", "--start", "2021-06-01", "--end", "2021-06-01T06:00", "-m", "evse_request", "--json",
            env={"PREFECT_API_URL": prefect_server})  # fmt: skip
    assert r.rc == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]

    async def flow_runs() -> list[Any]:
        async with get_client() as c:
            return list(await c.read_flow_runs())

    ours = [fr for fr in asyncio.run(flow_runs()) if fr.id.hex.startswith(run_id)]
    assert len(ours) == 1 and ours[0].state_name == "Completed"
