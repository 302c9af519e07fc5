"""The CLI as a user runs it against the simulator: summaries, --json, progress lines, rounding,
months in order, and the standalone simulator saying where it is and how to log in."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import requests

from powerflex_etl.schemas import MONTHS
from tests.cli.test_cli_api import ACC, api, env  # noqa: F401  (fixtures)
from tests.ingest.test_ingest import T0, H, _cli


def test_ingest_ends_in_a_human_summary_and_json_on_request(sim, sim_settings) -> None:
    args = ["ingest", "--start", T0.isoformat(), "--end", (T0 + 12 * H).isoformat()]
    proc = _cli([*args, "-m", "ct_response"], sim_settings)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(
        r"ingest: 2 windows committed, [\d,]+ rows in [\d.]+ s \(run [0-9a-f]{16}\)", lines[0]
    ), lines[0]
    assert lines[1].split()[:3] == ["ct_response", "2", "windows"]
    assert "watermark 2021-06-01 12:00 UTC" in lines[1] and len(lines) == 2
    again = _cli([*args, "-m", "evse_request", "--json"], sim_settings)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["measurements"]["evse_request"]["windows"] == 2
    assert report["skipped_committed"] == 0


def test_backfill_shows_progress_off_a_terminal_and_a_rerun_has_nothing_to_do(
    sim, sim_settings
) -> None:
    args = ["backfill", "--start", T0.isoformat(), "--end", (T0 + 24 * H).isoformat()]
    args += ["-m", "evse_response", "--workers", "2"]
    first = _cli(args, sim_settings)
    assert first.returncode == 0, first.stderr
    progress = re.findall(r"\[(\d+)/4\] backfill evse_response", first.stderr)
    assert progress and progress[-1] == "4", first.stderr  # the last window always has a line
    assert first.stdout.startswith("backfill: 4 windows committed")
    rerun = _cli(args, sim_settings)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout == (
        "backfill: nothing to do: all 4 windows already committed (--redo runs them again)\n"
    )
    dry = _cli([*args, "--dry-run"], sim_settings)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == (
        "backfill --dry-run: 0 windows to run, 4 windows already committed (nothing fetched)"
    )


def test_query_table_rounds_floats_csv_keeps_them(sim_settings) -> None:
    from pathlib import Path

    Path(sim_settings.lake).mkdir(parents=True)  # an empty lake: the catalog is built for it
    sql = "select 899.9999999999999::double as kw, 1::double / 3 as third"
    table = _cli(["query", sql], sim_settings)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2].split() == ["900.0", "0.333"]
    csv = _cli(["query", sql, "--format", "csv"], sim_settings)
    assert csv.stdout.splitlines()[1] == "899.9999999999999,0.3333333333333333"


def test_target_peak_prints_months_in_calendar_order(env: Any, api: Any) -> None:  # noqa: F811
    code, out, err = api("target-peak", "get", "--acc-id", ACC)
    assert code == 0, err
    assert list(json.loads(out)) == list(MONTHS)
    code, out, err = api("target-peak", "set", "--acc-id", ACC, "--month", "Dec=90")
    assert code == 0, err
    assert list(json.loads(out)) == list(MONTHS)


def test_the_simulator_says_its_url_and_login(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "powerflex_etl", "simulator", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()  # printed once the socket is bound: the pipe syncs us
        hint = proc.stderr.readline()
        m = re.match(
            r"PowerFlex API simulator on (http://127\.0\.0\.1:\d+); login (\S+) / (\S+) ", banner
        )
        assert m, banner
        url, user, password = m.groups()
        assert (user, password) == ("demo", "demo-password")
        assert f"POWERFLEX_BASE_URL={url}" in hint and "POWERFLEX_PASSWORD=demo-password" in hint
        login = requests.post(
            f"{url}/login", json={"username": user, "password": password}, timeout=30
        )
        assert login.status_code == 200 and "access_token" in login.json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
