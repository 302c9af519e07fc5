"""Watermarks (forward only), window records, reset, and the `state show` summary."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from powerflex_etl.errors import LakeError
from powerflex_etl.lake.state import State, WindowRecord
from powerflex_etl.lake.store import Lake
from tests.lake.test_lake_helpers import NO_REJECTS, M, at, ct_rows, grid, reject_rows, win

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _record(start_h: float, end_h: float, rows: int = 10, run_id: str = "r") -> WindowRecord:
    return WindowRecord(M, win(start_h, end_h), rows, 1, run_id, 0.25, NOW)


@pytest.fixture
def state(tmp_path: Any) -> State:
    return State(Lake(str(tmp_path)))


def test_watermark_only_moves_forward(state: State) -> None:
    assert state.watermark(M) is None
    assert state.advance_watermark(M, at(12)) == at(12)
    assert state.advance_watermark(M, at(6)) == at(12)  # a backfill never moves it back
    assert state.watermark(M) == at(12)
    assert state.advance_watermark(M, at(18)) == at(18)
    assert state.watermark("evse_request") is None
    stored = json.loads(Path(state.lake.url, "_state", "watermarks", f"{M}.json").read_text())
    assert stored["measurement"] == M
    assert datetime.fromisoformat(stored["watermark"]) == at(18)
    assert "updated_at" in stored


def test_concurrent_advances_keep_the_maximum(state: State) -> None:
    targets = [at(h) for h in range(24)]
    threads = [threading.Thread(target=state.advance_watermark, args=(M, t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.watermark(M) == at(23)


def test_window_records_round_trip_sorted_and_overwritten(state: State) -> None:
    for rec in (_record(6, 12), _record(0, 6), _record(12, 18)):
        state.record_window(rec)
    state.record_window(_record(0, 6, rows=99, run_id="again"))  # a rerun overwrites
    got = state.committed_windows(M)
    assert [(r.window, r.rows, r.run_id) for r in got] == [
        (win(0, 6), 99, "again"),
        (win(6, 12), 10, "r"),
        (win(12, 18), 10, "r"),
    ]
    assert got[1] == _record(6, 12)
    assert state.committed_windows("evse_request") == []


def test_window_records_are_flat_json_duckdb_can_read(state: State) -> None:
    state.record_window(_record(0, 6))
    state.record_window(_record(6, 12.5))
    pattern = os.path.join(state.lake.url, "_state", "windows", "*", "*.json")
    con = duckdb.connect()
    rows = con.execute(
        f"select measurement, window_start, rows, run_id from read_json_auto('{pattern}') "
        "order by window_start"
    ).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [(M, 10, "r"), (M, 10, "r")]
    names = sorted(os.listdir(os.path.join(state.lake.url, "_state", "windows", M)))
    assert names == [
        "20200228T000000Z--20200228T060000Z.json",
        "20200228T060000Z--20200228T123000Z.json",
    ]


def test_reset_forgets_state_never_data(state: State) -> None:
    lake = state.lake
    lake.commit_window(M, win(0, 6), ct_rows(grid(0, 6)), NO_REJECTS, run_id="r")
    state.record_window(_record(0, 6))
    state.advance_watermark(M, at(6))
    state.advance_watermark("evse_request", at(6))
    state.reset(M)
    assert state.watermark(M) is None and state.committed_windows(M) == []
    assert state.watermark("evse_request") == at(6)  # others untouched
    assert lake.read(M).num_rows == len(grid(0, 6))
    state.reset()
    assert state.watermark("evse_request") is None
    assert lake.read(M).num_rows == len(grid(0, 6))


def test_summary_for_state_show(state: State) -> None:
    lake = state.lake
    lake.commit_window(
        M, win(0, 12), ct_rows(grid(0, 12)), reject_rows([("bad", at(1))], win(0, 12)), run_id="r"
    )
    state.record_window(_record(0, 12, rows=len(grid(0, 12))))
    state.advance_watermark(M, at(12))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lake.lock(M, run_id="busy-run"):
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        summary = state.summary()
    finally:
        release.set()
        t.join()
    s = summary[M]
    assert s["watermark"] == at(12).isoformat()
    assert s["rows"] == len(grid(0, 12)) and s["files"] == 2 and s["rejects"] == 1
    assert s["last_commit"]["window_end"] == at(12).isoformat()
    assert s["lock_holder"]["run_id"] == "busy-run"
    assert summary["evse_request"]["rows"] == 0
    assert summary["evse_request"]["lock_holder"] is None
    assert state.summary()[M]["lock_holder"] is None
    json.dumps(summary)  # printable as is


def test_state_on_object_storage() -> None:
    state = State(Lake("memory://state-remote"))
    state.record_window(_record(0, 6))
    assert state.advance_watermark(M, at(6)) == at(6)
    assert state.advance_watermark(M, at(6) - timedelta(days=1)) == at(6)
    assert [r.window for r in state.committed_windows(M)] == [win(0, 6)]
    state.reset()
    assert state.watermark(M) is None and state.committed_windows(M) == []


def test_a_corrupt_state_file_names_itself(state: State) -> None:
    path = os.path.join(state.lake.url, "_state", "watermarks", f"{M}.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(LakeError, match=r"_state/watermarks/ct_response.json.*state reset"):
        state.watermark(M)
