"""The lake's remote path against a real S3-compatible server (moto on loopback)."""

from __future__ import annotations

import pytest

from powerflex_etl.lake import lock as lock_mod
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from tests.lake.test_lake_helpers import (
    NO_REJECTS,
    M,
    at,
    ct_rows,
    grid,
    inside,
    reject_rows,
    rows_of,
    win,
)

pytestmark = pytest.mark.s3


def test_commit_rerun_and_state_on_s3(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    pts = grid(0, 12)
    bad = reject_rows([("row-1", at(1))], win(0, 12))
    lake.commit_window(M, win(0, 12), ct_rows(pts), bad, run_id="a")
    lake.commit_window(M, win(0, 12), ct_rows(pts), bad, run_id="b")  # rerun: same rows
    assert rows_of(lake.read(M)) == rows_of(ct_rows(pts))
    assert lake.read("rejects").num_rows == 1
    # a fresh Lake (another process's view) sees the same and can shrink a slot
    other = Lake(s3_lake)
    other.commit_window(M, win(6, 12), ct_rows([]), NO_REJECTS, run_id="c")
    assert rows_of(lake.read(M)) == rows_of(ct_rows(inside(pts, win(0, 6))))
    state = State(lake)
    assert state.advance_watermark(M, at(12)) == at(12)
    assert state.advance_watermark(M, at(6)) == at(12)
    assert state.summary()[M]["rows"] == len(inside(pts, win(0, 6)))


def test_s3_lease_is_created_only_once(s3_lake: str) -> None:
    lake = Lake(s3_lake)
    path = lock_mod.lock_path(lake.root, M)
    assert lake.root.create_exclusive(path, b"{}") is True
    assert lake.root.create_exclusive(path, b"{}") is False  # the conditional PUT refused it
    lake.root.remove(path)
    with lake.lock(M, run_id="mine"):
        rival = lock_mod._Lease(lake.root, M, path, "rival", lease_s=600.0)
        holder = rival.try_acquire()
        assert holder is not None and holder["run_id"] == "mine"
    assert lake.lock_holder(M) is None
