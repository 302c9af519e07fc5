"""`backfill --executor dask` (prefect-dask, a local cluster of 2 worker processes) writes
exactly the lake of a sequential backfill: same rows in every table, same window records.

Windows of 3 hours inside 6-hour slots, so two windows often rewrite the same slot file
from different worker processes: the lake's lock is what keeps that exact.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from powerflex_etl.ingest import run as runner
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import LINEAGE_COLUMNS, MEASUREMENTS
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import RunningSimulator

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

START, END = "2021-06-01T00:00:00+00:00", "2021-06-01T18:00:00+00:00"


def _rows(lake: Lake, table: str) -> pa.Table:
    t = lake.read(table)
    keep = sorted(c for c in t.column_names if c not in LINEAGE_COLUMNS and c != "ingested_at")
    key = ["reject_id"] if table == "rejects" else ["evse_address", "time"]
    return t.select(keep).sort_by([(c, "ascending") for c in key])


def _records(lake: Lake, m: str) -> list[tuple[str, str, int, int]]:
    return [
        (r.window.start.isoformat(), r.window.end.isoformat(), r.rows, r.rejects)
        for r in State(lake).committed_windows(m)
    ]


def test_dask_backfill_writes_exactly_the_sequential_lake(
    prefect_server: str,
    sim: RunningSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the Dask workers are other processes: credentials reach them through the environment
    monkeypatch.setenv("POWERFLEX_USERNAME", sim.config.username)
    monkeypatch.setenv("POWERFLEX_PASSWORD", sim.config.password)
    monkeypatch.setenv("POWERFLEX_RETRY_BACKOFF_S", "0.01")
    # no POWERFLEX_BASE_URL: the flow must hand the CLI's --base-url to every worker
    monkeypatch.delenv("POWERFLEX_BASE_URL", raising=False)
    seq = Settings(base_url=sim.url, lake=str(tmp_path / "seq"), window_hours=3)
    par = Settings(base_url=sim.url, lake=str(tmp_path / "dask"), window_hours=3)

    a = runner.backfill(seq, start=START, end=END, measurements=None, workers=1)
    b = runner.backfill(par, start=START, end=END, measurements=None, workers=2, executor="dask")

    assert a["ok"] and b["ok"]
    for m in MEASUREMENTS:
        assert a["measurements"][m]["windows"] == b["measurements"][m]["windows"] == 6
        assert a["measurements"][m]["rows"] == b["measurements"][m]["rows"] > 0
    ls, ld = Lake(seq.lake), Lake(par.lake)
    for table in (*MEASUREMENTS, "rejects"):
        want, got = _rows(ls, table), _rows(ld, table)
        assert got.num_rows == want.num_rows, table
        assert got.equals(want), table
    for m in MEASUREMENTS:
        assert _records(ld, m) == _records(ls, m)
        assert State(ld).watermark(m) == State(ls).watermark(m)
    assert ls.slot_files("ct_response") == ld.slot_files("ct_response")


def test_dask_backfill_from_the_cli_without_a_prefect_server(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """`powerflex-etl backfill --executor dask` on a machine with no Prefect API configured:
    the workers must share the CLI's temporary API (each starting its own timed out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POWERFLEX_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        POWERFLEX_USERNAME=sim.config.username,
        POWERFLEX_PASSWORD=sim.config.password,
    )
    lake = str(tmp_path / "lake")
    args = ["--start", "2021-06-02", "--end", "2021-06-02T12:00", "-m", "evse_request"]
    args += ["--executor", "dask", "--workers", "2", "--lake", lake, "--base-url", sim.url]
    args += ["--json"]  # the machine report, not the summary a person reads
    out = subprocess.run(
        [sys.executable, "-m", "powerflex_etl", "backfill", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["ok"] and report["measurements"]["evse_request"]["windows"] == 2
    truth = sim.truth(
        "evse_request", datetime(2021, 6, 2, tzinfo=UTC), datetime(2021, 6, 2, 12, tzinfo=UTC)
    )
    assert Lake(lake).read("evse_request").num_rows == truth.num_rows > 0
    # the temporary server recorded both windows' task runs as finished: it writes them in
    # batches (flows/console.SERVER_SETTINGS), the last of which lands as the server stops
    with closing(sqlite3.connect(tmp_path / "prefect-home" / "prefect.db")) as db:
        states = db.execute(
            "SELECT state_type, count(*) FROM task_run WHERE name LIKE 'ingest-window%'"
            " GROUP BY state_type"
        ).fetchall()
    assert states == [("COMPLETED", 2)]
