"""One writer per measurement: across processes, threads, SIGKILL, and on object storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from powerflex_etl.errors import LockError
from powerflex_etl.lake import lock as lock_mod
from powerflex_etl.lake.store import Lake
from tests.lake.test_lake_helpers import NO_REJECTS, M, ct_rows, grid, win

# holds the lock, says so on stdout, then waits until stdin closes (or it is killed)
_HOLDER = """
import sys
from powerflex_etl.lake.store import Lake
with Lake(sys.argv[1]).lock(sys.argv[2], run_id="other-run"):
    print("held", flush=True)
    sys.stdin.read()
print("released", flush=True)
"""


@pytest.fixture
def holder_proc(tmp_path: Any) -> Iterator[subprocess.Popen[str]]:
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path), M],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"  # the pipe is the synchronisation
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_another_process_holding_the_lock_excludes_us(
    tmp_path: Any, holder_proc: subprocess.Popen[str]
) -> None:
    lake = Lake(str(tmp_path))
    with (
        pytest.raises(LockError, match=f"pid {holder_proc.pid}") as err,
        lake.lock(M, timeout_s=0.2),
    ):
        pass
    assert "ct_response" in str(err.value)
    # a commit waits for the lock too, and fails cleanly without touching the data
    slow = Lake(str(tmp_path), lock_timeout_s=0.1)
    with pytest.raises(LockError):
        slow.commit_window(M, win(0, 6), ct_rows(grid(0, 6)), NO_REJECTS, run_id="me")
    assert slow.slot_files(M) == []
    # the holder is visible for `state show`
    info = lake.lock_holder(M)
    assert info is not None
    assert (info["pid"], info["run_id"]) == (holder_proc.pid, "other-run")
    # other measurements are independent
    with lake.lock("evse_request", timeout_s=0.2):
        pass


def test_lock_is_free_after_the_holder_is_sigkilled(
    tmp_path: Any, holder_proc: subprocess.Popen[str]
) -> None:
    lake = Lake(str(tmp_path))
    os.kill(holder_proc.pid, signal.SIGKILL)
    holder_proc.wait()
    assert lake.lock_holder(M) is None
    with lake.lock(M, timeout_s=5):
        assert lake.lock_holder(M)["pid"] == os.getpid()  # type: ignore[index]
    assert lake.lock_holder(M) is None


def test_lock_is_released_when_the_holder_finishes(
    tmp_path: Any, holder_proc: subprocess.Popen[str]
) -> None:
    assert holder_proc.stdin is not None and holder_proc.stdout is not None
    holder_proc.stdin.close()
    assert holder_proc.stdout.readline().strip() == "released"
    with Lake(str(tmp_path)).lock(M, timeout_s=5):
        pass


def test_threads_are_excluded_and_the_holding_thread_may_reenter(tmp_path: Any) -> None:
    lake = Lake(str(tmp_path))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        # re-entrant for the holding thread
        with lake.lock(M, run_id="thread"), lake.lock(M, timeout_s=0):
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(LockError, match="another thread"), lake.lock(M, timeout_s=0.1):
            pass
    finally:
        release.set()
        t.join()
    with lake.lock(M, timeout_s=5):
        pass


def test_concurrent_commits_from_threads_serialise(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(str(tmp_path))
    inside_now = []
    peak = []
    guard = threading.Lock()
    real = lock_mod._acquire_file

    def counting(*args: Any, **kwargs: Any) -> Any:
        held = real(*args, **kwargs)
        with guard:
            inside_now.append(1)
            peak.append(len(inside_now))
        release = held.release

        def counted_release() -> None:
            with guard:
                inside_now.pop()
            release()

        held.release = counted_release  # type: ignore[method-assign]
        return held

    monkeypatch.setattr(lock_mod, "_acquire_file", counting)
    pts = grid(0, 24)
    windows = [win(h, h + 6) for h in range(0, 24, 3)]
    threads = [
        threading.Thread(
            target=lake.commit_window,
            args=(M, w, ct_rows([p for p in pts if w.start <= p[1] < w.end]), NO_REJECTS),
            kwargs={"run_id": f"t{i}"},
        )
        for i, w in enumerate(windows)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peak) == 1
    assert lake.read(M).num_rows == len(pts)


def test_lock_is_released_when_the_block_raises(tmp_path: Any) -> None:
    lake = Lake(str(tmp_path))
    with pytest.raises(ZeroDivisionError), lake.lock(M):
        raise ZeroDivisionError
    assert lake.lock_holder(M) is None
    with lake.lock(M, timeout_s=0):
        pass


# --- object storage: a lease object (memory:// stands in for S3) --------------------------------


def _lease(lake: Lake, run_id: str) -> lock_mod._Lease:
    path = lock_mod.lock_path(lake.root, M)
    return lock_mod._Lease(lake.root, M, path, run_id, lease_s=600.0)


def test_lease_is_created_once_and_released() -> None:
    lake = Lake("memory://lease-once")
    with lake.lock(M, run_id="mine") as held:
        info = lake.lock_holder(M)
        assert info is not None and info["run_id"] == "mine" and "token" not in info
        other = _lease(lake, "theirs").try_acquire()
        assert other is not None and other["run_id"] == "mine"
        held.check()
    assert lake.lock_holder(M) is None
    assert not lake.root.exists(lock_mod.lock_path(lake.root, M))


def test_expired_lease_is_taken_over() -> None:
    lake = Lake("memory://lease-expired")
    path = lock_mod.lock_path(lake.root, M)
    dead = {"run_id": "dead", "pid": 1, "token": "x", "expires": time.time() - 1}
    lake.root.write_atomic(path, json.dumps(dead).encode())
    assert lake.lock_holder(M) is None
    with lake.lock(M, timeout_s=1, run_id="new"):
        assert lake.lock_holder(M)["run_id"] == "new"  # type: ignore[index]


def test_live_lease_times_out_and_a_lost_lease_stops_the_holder() -> None:
    lake = Lake("memory://lease-live")
    path = lock_mod.lock_path(lake.root, M)
    live = {"run_id": "other", "pid": 2, "host": "h", "token": "y", "expires": time.time() + 600}
    lake.root.write_atomic(path, json.dumps(live).encode())
    with pytest.raises(LockError, match="run other"), lake.lock(M, timeout_s=0.1):
        pass
    lake.root.remove(path)
    with lake.lock(M) as held:
        lake.root.write_atomic(path, json.dumps(live).encode())  # someone took it over
        with pytest.raises(LockError, match="lost the lease"):
            held.check()
    # the new owner's lease is left alone on release
    assert lake.lock_holder(M)["run_id"] == "other"  # type: ignore[index]
