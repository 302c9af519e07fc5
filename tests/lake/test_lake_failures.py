"""What a failed or crashed commit leaves behind, and that nothing escapes the lake."""

from __future__ import annotations

import glob
import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powerflex_etl.errors import LakeError
from powerflex_etl.lake import crashpoints
from powerflex_etl.lake import staging as staging_mod
from powerflex_etl.lake.layout import SLOT_US, slot_parts, slot_starts
from powerflex_etl.lake.state import State, WindowRecord
from powerflex_etl.lake.store import Lake
from powerflex_etl.windows import Window, from_us
from tests.lake.test_lake_helpers import (
    NO_REJECTS,
    M,
    at,
    ct_rows,
    grid,
    inside,
    reject_rows,
    rows_of,
    snapshot_files,
    win,
)

D = "ct_response/date=2020-02-28"


class Boom(RuntimeError):
    pass


@pytest.fixture
def lake(tmp_path: object) -> Lake:
    lk = Lake(str(tmp_path))
    day = grid(0, 24)
    lk.commit_window(M, win(0, 24), ct_rows(day, power=1.0), NO_REJECTS, run_id="old")
    return lk


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    points: list[str] = []
    monkeypatch.setattr(crashpoints, "HOOK", points.append)
    return points


def test_writer_failing_after_first_slot_leaves_every_file_byte_identical(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot_files(lake.url)
    real = staging_mod.write_parquet
    calls = []

    def flaky(table: pa.Table, where: Any, dictionary: Any, metadata: Any = None) -> None:
        calls.append(where)
        if len(calls) > 1:
            raise Boom("disk full")
        real(table, where, dictionary, metadata)

    monkeypatch.setattr(staging_mod, "write_parquet", flaky)
    w = win(3, 21)  # four slots
    with pytest.raises(Boom):
        lake.commit_window(
            M, w, ct_rows(inside(grid(0, 24), w), power=2.0), NO_REJECTS, run_id="new"
        )
    assert len(calls) == 2  # the first slot was staged, the second failed
    assert snapshot_files(lake.url) == before
    assert os.listdir(os.path.join(lake.url, "_staging")) == []


def test_crash_hook_is_called_at_each_step_in_order(lake: Lake, hook: list[str]) -> None:
    w = win(3, 9)
    bad = reject_rows([("row-1", at(4))], w)
    lake.commit_window(M, w, ct_rows(inside(grid(0, 24), w)), bad, run_id="new")
    State(lake).record_window(WindowRecord(M, w, 1, 1, "new", 0.1, datetime.now(UTC)))
    s0, s1 = f"{D}/part-00.parquet", f"{D}/part-06.parquet"
    r0 = "rejects/ct_response/date=2020-02-28/part-00.parquet"
    # the pending record's file name is a fresh token
    pending = f"temp_written:_state/pending/{M}/"
    got = [f"{pending}<token>.json" if p.startswith(pending) else p for p in hook]
    assert got == [
        f"lock_acquired:{M}",
        f"staged:{s0}",
        f"staged:{s1}",
        "rejects_staged",
        f"{pending}<token>.json",
        f"pending_written:{M}",
        f"before_replace:{s0}",
        f"after_replace:{s0}",
        f"before_replace:{s1}",
        f"after_replace:{s1}",
        f"before_reject_replace:{r0}",
        f"after_reject_replace:{r0}",
        "rejects_replaced",
        "staging_removed",
        f"lock_releasing:{M}",
        f"lock_released:{M}",
        "before_state",
        f"temp_written:_state/windows/{M}/20200228T030000Z--20200228T090000Z.json",
        "after_state",
    ]
    # every point reached belongs to a documented family
    assert {p.split(":", 1)[0] for p in hook} <= set(crashpoints.FAMILIES)


def test_each_slot_is_old_or_new_at_every_step(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.path.join(lake.url, D, "part-06.parquet")
    seen: dict[str, set[float]] = {}

    def look(point: str) -> None:
        powers = set(pq.read_table(path).column("power_kw").to_pylist())
        seen[point] = powers

    monkeypatch.setattr(crashpoints, "HOOK", look)
    w = win(3, 9)
    lake.commit_window(M, w, ct_rows(inside(grid(0, 24), w), power=2.0), NO_REJECTS, run_id="n")
    slot = f"{D}/part-06.parquet"
    assert seen[f"before_replace:{slot}"] == {1.0}
    assert seen[f"after_replace:{slot}"] == {1.0, 2.0}  # 06-09 new, 09-12 kept


def test_crash_between_slot_replaces_then_rerun_converges(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = win(3, 15)
    new = ct_rows(inside(grid(0, 24), w), power=2.0)

    def die(point: str) -> None:
        if point == f"after_replace:{D}/part-00.parquet":
            raise Boom("killed")

    monkeypatch.setattr(crashpoints, "HOOK", die)
    with pytest.raises(Boom):
        lake.commit_window(M, w, new, NO_REJECTS, run_id="crashed")
    # the first slot is wholly new, the others wholly old
    powers = {(r["time"].hour // 6): r["power_kw"] for r in lake.read(M).to_pylist()}
    assert powers[0] == 2.0 and powers[1] == 1.0
    monkeypatch.setattr(crashpoints, "HOOK", None)
    lake.commit_window(M, w, new, NO_REJECTS, run_id="rerun")
    expected = [(e, t, 2.0 if w.start <= t < w.end else 1.0) for e, t in grid(0, 24)]
    got = sorted((r["evse_address"], r["time"], r["power_kw"]) for r in lake.read(M).to_pylist())
    assert got == sorted(expected)


def test_window_record_is_written_after_the_data(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = State(lake)
    w = win(6, 12)
    record_dir = os.path.join(lake.url, "_state", "windows", M)
    order: list[tuple[str, bool]] = []

    def note(point: str) -> None:
        # a record is a *.json file; a state write's hidden temp copy is not one yet
        records = glob.glob(os.path.join(record_dir, "*.json"))
        order.append((point, bool(records)))

    monkeypatch.setattr(crashpoints, "HOOK", note)
    # the pipeline's order: commit, then record
    lake.commit_window(M, w, ct_rows(inside(grid(0, 24), w)), NO_REJECTS, run_id="n")
    state.record_window(WindowRecord(M, w, 36, 0, "n", 0.2, datetime.now(UTC)))
    assert all(not has for point, has in order if point != "after_state")
    assert order[-1] == ("after_state", True)


def test_staging_of_dead_runs_is_cleaned_at_the_next_commit(lake: Lake) -> None:
    staging = os.path.join(lake.url, "_staging")
    dead, live = os.path.join(staging, "dead-run"), os.path.join(staging, "live-run")
    for d in (dead, live):
        os.makedirs(d)
        with open(os.path.join(d, "x.parquet"), "wb") as f:
            f.write(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(dead, (two_hours_ago, two_hours_ago))
    lake.commit_window(M, win(0, 6), ct_rows(grid(0, 6)), NO_REJECTS, run_id="n")
    assert sorted(os.listdir(staging)) == ["live-run"]


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden", "x\x00", "/abs"])
def test_no_path_can_leave_the_lake(tmp_path: object, bad: str) -> None:
    lake = Lake(str(tmp_path))
    with pytest.raises(LakeError):
        lake.root.path(bad)
    with pytest.raises(LakeError):
        lake.table_path(bad)


def test_a_symlink_out_of_the_lake_is_refused(tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    lake = Lake(str(tmp_path / "lake"))
    os.makedirs(lake.url)
    os.symlink(outside, os.path.join(lake.url, M))
    with pytest.raises(LakeError, match="escapes"):
        lake.commit_window(M, win(0, 6), ct_rows(grid(0, 6)), NO_REJECTS, run_id="n")
    assert list(outside.iterdir()) == []


def test_run_id_cannot_steer_the_staging_path(tmp_path: Any) -> None:
    lake = Lake(str(tmp_path / "lake"))
    lake.commit_window(M, win(0, 6), ct_rows(grid(0, 6)), NO_REJECTS, run_id="../../evil")
    written = {
        os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs
    }
    assert all(p.startswith("lake" + os.sep) for p in written)
    assert rows_of(lake.read(M)) == rows_of(ct_rows(grid(0, 6)))


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=3))
def test_any_path_component_stays_inside_or_is_refused(parts: list[str]) -> None:
    lake = Lake("/tmp/pf-lake-never-written")
    try:
        p = lake.root.path(*parts)
    except LakeError:
        return
    assert p.startswith(lake.url + os.sep)
    assert ".." not in p.split(os.sep)


@settings(deadline=None)
@given(start=st.integers(0, 10**6), length=st.integers(1, 2000), unit=st.sampled_from([60, 3600]))
def test_slots_cover_the_window_exactly_once(start: int, length: int, unit: int) -> None:
    w = Window(from_us(start * unit * 10**6), from_us((start + length) * unit * 10**6))
    slots = slot_starts(w)
    assert slots[0] <= w.start_us < slots[0] + SLOT_US
    assert slots[-1] < w.end_us <= slots[-1] + SLOT_US
    assert all(b - a == SLOT_US for a, b in itertools.pairwise(slots))
    assert all(slot_parts(s)[1] in {f"part-{h:02d}.parquet" for h in (0, 6, 12, 18)} for s in slots)


def test_a_corrupt_slot_file_is_named_and_left_alone(lake: Lake) -> None:
    path = os.path.join(lake.url, D, "part-06.parquet")
    with open(path, "wb") as f:
        f.write(b"not parquet")
    with pytest.raises(LakeError, match=f"{D}/part-06.parquet.*move the file aside"):
        lake.commit_window(M, win(6, 12), ct_rows(grid(6, 12)), NO_REJECTS, run_id="n")
    with open(path, "rb") as f:
        assert f.read() == b"not parquet"


_KILLED_WRITER = """
import os, signal, sys
from powerflex_etl.lake import crashpoints
from powerflex_etl.lake.store import Lake
from tests.lake.test_lake_helpers import NO_REJECTS, M, ct_rows, grid, inside, win

def die(point):
    if point == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

crashpoints.HOOK = die
w = win(3, 15)
lake = Lake(sys.argv[1])
lake.commit_window(M, w, ct_rows(inside(grid(0, 24), w), power=2.0), NO_REJECTS, run_id="killed")
"""


@pytest.mark.parametrize(
    "point", [f"staged:{D}/part-06.parquet", f"after_replace:{D}/part-06.parquet"]
)
def test_sigkilled_writer_leaves_whole_slots_and_a_rerun_converges(lake: Lake, point: str) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, lake.url, point], cwd=repo, check=False
    )
    assert proc.returncode == -signal.SIGKILL
    w = win(3, 15)
    per_slot: dict[int, set[float]] = {}
    for r in lake.read(M).to_pylist():
        if w.start <= r["time"] < w.end:
            per_slot.setdefault(r["time"].hour // 6, set()).add(r["power_kw"])
    assert all(len(v) == 1 for v in per_slot.values())  # each slot wholly old or wholly new
    assert lake.read(M).num_rows == len(grid(0, 24))
    # the kernel released the dead writer's lock: the rerun does not wait
    lake.lock_timeout_s = 5
    lake.commit_window(M, w, ct_rows(inside(grid(0, 24), w), power=2.0), NO_REJECTS, run_id="rerun")
    got = sorted((r["evse_address"], r["time"], r["power_kw"]) for r in lake.read(M).to_pylist())
    assert got == sorted((e, t, 2.0 if w.start <= t < w.end else 1.0) for e, t in grid(0, 24))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Any) -> None:
    from powerflex_etl.lake.procs import remove_dead_temps, temp_name

    live = temp_name("ct_response.json")
    dead = live.replace(f"-{os.getpid()}.", f"-{_dead_pid()}.")
    foreign = ".notes.tmp"  # not a name temp_name() gives: never touched, however old
    for name in (live, dead, foreign, "ct_response.json"):
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / foreign, (0, 0))
    assert remove_dead_temps(str(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live, foreign, "ct_response.json"])


def test_a_lease_is_stale_only_when_its_owner_is_gone_from_this_machine() -> None:
    from powerflex_etl.lake import lock as lock_mod

    mine = lock_mod._owner_info(M, "run")
    assert not lock_mod.owner_dead(mine)
    assert lock_mod.owner_dead({**mine, "pid": _dead_pid()})
    assert lock_mod.owner_dead({**mine, "started": "1"})  # the pid was reused since
    assert not lock_mod.owner_dead({**mine, "pid": _dead_pid(), "machine": "elsewhere"})
    assert not lock_mod.owner_dead({"pid": _dead_pid()})  # an older lease: wait for expiry
