"""No password or token anywhere a run leaves a trace.

A run through the Prefect flow (temporary Prefect server) and one through the CLI, both
with a distinctive password and debug logging; then every file the runs wrote (lake,
``_state``, the DuckDB catalog, PREFECT_HOME, the Prefect server's database), the captured
logs/stdout/stderr and what the Prefect API holds (artifacts, logs, flow-run parameters)
are searched for the password and for any JWT. Error paths too: a login refused with a
body echoing the password, and 4xx/5xx answers echoing the password and the token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.ingest import run as runner
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import RunningSimulator, SimulatorConfig, start_simulator
from tests.fixtures.cli_run import run_cli
from tests.fixtures.fake_api import FakeApi, Status, serve

PASSWORD = "Zq9!distinctive-PW-7781"
T0 = datetime(2021, 6, 3, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)
# any JWT: base64url of '{"' twice (header and claims), then a signature
JWT = re.compile(rb"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")


def leaks(blob: bytes, tokens: list[str]) -> list[str]:
    """What secret ``blob`` holds: the password (also JSON- or URL-escaped), a JWT, a token."""
    found = []
    for form in {PASSWORD, PASSWORD.replace("!", "%21"), PASSWORD.replace("!", "\\u0021")}:
        if form.encode() in blob:
            found.append("password")
    if JWT.search(blob):
        found.append("a JWT")
    found += [f"token {t[:12]}..." for t in tokens if t.encode() in blob]
    # the signature alone is what makes a token usable
    found += ["a token's signature" for t in tokens if t.rsplit(".", 1)[-1].encode() in blob]
    return found


def walk(root: Path) -> Iterator[tuple[Path, bytes]]:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield p, p.read_bytes()


@pytest.fixture(scope="module")
def secret_sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(seed=2, sample_period_s=60.0, password=PASSWORD)
    with start_simulator(config) as sim:
        yield sim


def _login_token(url: str) -> str:
    s = Settings(base_url=url, username="demo", password=PASSWORD)  # type: ignore[arg-type]
    with PowerflexClient(s) as c:
        c.login()
        token = c._tokens.token
    assert token is not None
    return token


def _debug_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("", "powerflex_etl", "prefect", "urllib3", "httpx"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "level", logging.DEBUG)


async def _prefect_records() -> list[tuple[str, str]]:
    """(what, text) of every artifact, log line and flow-run parameter set the API holds."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    out: list[tuple[str, str]] = []
    async with get_client() as c:
        for a in await c.read_artifacts():
            out.append((f"artifact {a.key}", f"{a.data} {a.description} {a.metadata_}"))
        for log in await c.read_logs():
            out.append((f"log {log.name}", log.message))
        for fr in await c.read_flow_runs():
            out.append((f"flow run {fr.name}", f"{fr.parameters} {fr.job_variables}"))
    return out


@pytest.mark.prefect
def test_a_prefect_flow_run_leaves_no_secret_anywhere(
    prefect_server: str,
    secret_sim: RunningSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_DATABASE_CONNECTION_URL

    lake = tmp_path / "lake"
    for k, v in {
        "POWERFLEX_BASE_URL": secret_sim.url,
        "POWERFLEX_USERNAME": "demo",
        "POWERFLEX_PASSWORD": PASSWORD,
        "POWERFLEX_LAKE": str(lake),
        "POWERFLEX_RETRY_BACKOFF_S": "0.01",
    }.items():
        monkeypatch.setenv(k, v)
    _debug_logging(monkeypatch)
    caplog.set_level(logging.DEBUG)
    s = Settings()
    report = runner.run(s, start=T0.isoformat(), end=T1.isoformat(), measurements=None)
    assert report["ok"], report
    tokens = [_login_token(secret_sim.url)]
    out, err = capfd.readouterr()

    checked: dict[str, list[str]] = {}
    places: dict[str, bytes] = {"captured logs": caplog.text.encode()}
    places["stdout"], places["stderr"] = out.encode(), err.encode()
    db_url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    db_dir = Path(db_url.split(":///", 1)[1]).parent
    roots = {"lake": lake, "PREFECT_HOME": Path(PREFECT_HOME.value()), "Prefect DB": db_dir}
    for label, root in roots.items():
        files = list(walk(root))
        assert files, f"nothing under {label} ({root})"
        for p, data in files:
            places[f"{label}: {p.relative_to(root)}"] = data
    records = asyncio.run(_prefect_records())
    assert any(what.startswith("artifact powerflex-ingest-summary") for what, _ in records)
    for what, text in records:
        places[f"API {what}"] = text.encode()
    assert (lake / "powerflex.duckdb").exists() and (lake / "_state").is_dir()
    for where, blob in places.items():
        found = leaks(blob, tokens)
        if found:
            checked[where] = found
    assert checked == {}
    # the search could find them: the password and the token are in the process's memory
    assert leaks(PASSWORD.encode() + b" " + tokens[0].encode(), tokens)


def test_a_cli_run_with_debug_logging_leaves_no_secret(
    secret_sim: RunningSimulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    env = {
        "POWERFLEX_BASE_URL": secret_sim.url,
        "POWERFLEX_USERNAME": "demo",
        "POWERFLEX_PASSWORD": PASSWORD,
        "POWERFLEX_LAKE": str(lake),
    }
    args = ["ingest", "--start", T0.isoformat(), "--end", T1.isoformat(), "--verbose"]
    proc = run_cli(args, env)
    assert proc.returncode == 0, proc.stderr
    assert "logged in" in proc.stderr  # debug logging really was on
    query = run_cli(["query", "select count(*) as n from ct_response"], env)
    assert query.returncode == 0, query.stderr
    tokens = [_login_token(secret_sim.url)]
    places = {
        "stdout": proc.stdout.encode(),
        "stderr": proc.stderr.encode(),
        "query output": (query.stdout + query.stderr).encode(),
    }
    places |= {str(p.relative_to(lake)): data for p, data in walk(lake)}
    assert "powerflex.duckdb" in places and any(k.startswith("_state") for k in places)
    found = {where: f for where, blob in places.items() if (f := leaks(blob, tokens))}
    assert found == {}


def _echo(fake: FakeApi) -> bytes:
    token = fake.tokens[-1] if fake.tokens else "none"
    return (
        f'{{"error": "db down for demo password={PASSWORD} pw {PASSWORD} '
        f'Authorization: Bearer {token} raw {token}"}}'
    ).encode()


@pytest.mark.parametrize("code", [401, 400, 500])
def test_error_answers_echoing_the_password_and_token_never_show_them(
    code: int, tmp_path: Path
) -> None:
    fake = FakeApi(password=PASSWORD)
    if code == 401:
        fake.login_answer = Status(401, f'{{"error": "wrong password {PASSWORD}"}}'.encode())
    else:
        fake.answer = lambda m, s, e: Status(code, _echo(fake))
    with serve(fake) as url:
        env = {
            "POWERFLEX_BASE_URL": url,
            "POWERFLEX_USERNAME": "demo",
            "POWERFLEX_PASSWORD": PASSWORD,
            "POWERFLEX_LAKE": str(tmp_path / "lake"),
        }
        args = ["ingest", "--start", T0.isoformat(), "--end", T1.isoformat(), "--verbose"]
        args += ["--measurement", "ct_response"]
        proc = run_cli(args, env)
    assert proc.returncode != 0
    line = proc.last_error_line()
    assert line.startswith("powerflex-etl: error:"), proc.stderr
    assert ("refused" in line) if code == 401 else ("ct_response" in line and f"{code}" in line)
    if code == 400:
        assert "db down" in line  # the server's words are shown, its secrets are not
    places: dict[str, Any] = {"stdout": proc.stdout.encode(), "stderr": proc.stderr.encode()}
    places |= {str(p): data for p, data in walk(tmp_path / "lake")}
    found = {where: f for where, blob in places.items() if (f := leaks(blob, fake.tokens))}
    assert found == {}
