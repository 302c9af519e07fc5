"""One writer per measurement: a lock that lives in the lake, ``<lake>/_locks/<m>.lock``.

Local lake: ``fcntl.flock`` on the lock file, polled with short waits until the timeout.
The kernel drops a flock when its process dies, so a SIGKILLed writer never leaves a stale
lock. The file also holds the owner (pid, host, run id, since) for ``state show``.

Object-store lake (no flock): a lease object ``{owner, token, expires}``. It is taken by
create-if-absent (a conditional PUT on S3, ``If-None-Match: *``), renewed by a background
thread while held, and may be taken over once expired (a dead writer's lease lapses after
``LEASE_SECONDS``) or, at once, when its owner ran on this machine (same kernel boot and
PID namespace) and that process is gone (a SIGKILLed writer's lease is stale right away). Guarantee, honestly: while the backend honours conditional PUTs, two
live writers never both create the lease. Taking over an *expired* lease is
write-then-read-back, not a compare-and-swap, so two writers racing for the same expired
lease within one round trip could both believe they won; a holder notices a lost lease at
its next renewal or :meth:`Held.check` and stops before replacing anything further.

Within one process a ``threading.Lock`` per lock file serialises threads; the lock is
re-entrant for the thread holding it (so state updates may run inside a commit).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from powerflex_etl.errors import LockError
from powerflex_etl.lake import layout
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.fs import Root
from powerflex_etl.lake.procs import current_machine, process_alive, process_started

# how long a remote lease lives without renewal; renewed every third of it while held
LEASE_SECONDS = 600.0
_POLL_FIRST_S = 0.01
_POLL_MAX_S = 0.2


@dataclass
class _Entry:
    """Process-local state of one lock file."""

    mutex: threading.Lock = field(default_factory=threading.Lock)
    owner: int | None = None
    depth: int = 0
    held: Held | None = None


_entries: dict[str, _Entry] = {}
_entries_guard = threading.Lock()


def _forget_in_child() -> None:
    # a forked child inherits neither the parent's threads nor its holds
    global _entries_guard
    _entries_guard = threading.Lock()
    _entries.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _entry(key: str) -> _Entry:
    with _entries_guard:
        return _entries.setdefault(key, _Entry())


def lock_path(root: Root, measurement: str) -> str:
    """Where the lock (or lease) of ``measurement`` lives."""
    return root.path(*layout.lock_file(measurement))


def owner_dead(info: dict[str, Any]) -> bool:
    """True only when ``info`` names a process of this machine that no longer runs.

    Anything unsure (another machine, no /proc, a pid alive again) counts as alive, so a
    live writer's lock is never taken from it.
    """
    machine = current_machine()
    pid = info.get("pid")
    if machine is None or info.get("machine") != machine or not isinstance(pid, int):
        return False
    if not process_alive(pid):
        return True
    started = info.get("started")
    return started is not None and process_started(pid) not in (None, started)


def _owner_info(measurement: str, run_id: str | None) -> dict[str, Any]:
    return {
        "measurement": measurement,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "machine": current_machine(),
        "started": process_started(os.getpid()),
        "run_id": run_id,
        "since": datetime.now(UTC).isoformat(),
    }


class Held:
    """A lock being held. :meth:`check` raises if a remote lease was lost meanwhile."""

    def __init__(self, measurement: str, path: str) -> None:
        self.measurement = measurement
        self.path = path
        self.lost = False

    def check(self) -> None:
        """Raise LockError when the lock is no longer ours (only possible for a lease)."""
        if self.lost:
            raise LockError(
                f"{self.measurement}: lost the lease {self.path} to another writer; "
                "nothing more was replaced"
            )

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _FileLock(Held):
    def __init__(self, measurement: str, path: str, fd: int) -> None:
        super().__init__(measurement, path)
        self.fd = fd

    def release(self) -> None:
        try:
            # clear the owner first: a reader must never see a dead owner as holding it
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


def _read_owner_fd(fd: int) -> dict[str, Any] | None:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode()) if raw else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another writer"
    return (
        f"pid {info.get('pid')} on {info.get('host')} (run {info.get('run_id')}) "
        f"since {info.get('since')}"
    )


def _wait(deadline: float, delay: float) -> float:
    """Sleep a little (never past the deadline); the next, longer delay."""
    time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
    return min(delay * 2, _POLL_MAX_S)


def _acquire_file(path: str, measurement: str, run_id: str | None, deadline: float) -> Held:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    delay = _POLL_FIRST_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _read_owner_fd(fd)
                os.close(fd)
                raise LockError(
                    f"{measurement}: lock {path} is held by {_describe(holder)}; timed out waiting"
                )
            delay = _wait(deadline, delay)
        except BaseException:
            os.close(fd)
            raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_owner_info(measurement, run_id)).encode(), 0)
    return _FileLock(measurement, path, fd)


class _Lease(Held):
    def __init__(
        self, root: Root, measurement: str, path: str, run_id: str | None, lease_s: float
    ) -> None:
        super().__init__(measurement, path)
        self.root = root
        self.run_id = run_id
        self.lease_s = lease_s
        self.token = uuid.uuid4().hex
        self.info = _owner_info(measurement, run_id)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps(
            {**self.info, "token": self.token, "expires": time.time() + self.lease_s}
        ).encode()

    def _current(self) -> dict[str, Any] | None:
        with contextlib.suppress(FileNotFoundError):
            self.root.fs.invalidate_cache(self.path)
        raw = self.root.read_bytes(self.path)
        try:
            info = json.loads(raw) if raw else None
        except ValueError:
            return None
        return info if isinstance(info, dict) else None

    def try_acquire(self) -> dict[str, Any] | None:
        """Take the lease if free or expired: None on success, else the holder's info."""
        if self.root.create_exclusive(self.path, self._body()):
            return None
        cur = self._current()
        if cur is not None and float(cur.get("expires", 0)) > time.time() and not owner_dead(cur):
            return cur
        # absent again, expired, or its owner died on this machine: take it over, then make
        # sure our write is the one that stuck
        self.root.write_atomic(self.path, self._body())
        now = self._current()
        if now is not None and now.get("token") == self.token:
            return None
        return now or {}

    def check(self) -> None:
        """Re-read the lease: raise LockError unless it is still ours and unexpired."""
        if not self.lost:
            cur = self._current()
            mine = cur is not None and cur.get("token") == self.token
            if not mine or float(cur.get("expires", 0) if cur else 0) <= time.time():
                self.lost = True
        super().check()

    def start_renewal(self) -> None:
        self._renewer = threading.Thread(
            target=self._renew_loop, name=f"lease-{self.measurement}", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                cur = self._current()
                if cur is None or cur.get("token") != self.token:
                    self.lost = True
                    return
                self.root.write_atomic(self.path, self._body())
            except OSError:
                # a failed renewal is retried next round; the lease still has 2/3 of its life
                continue

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        cur = self._current()
        if cur is not None and cur.get("token") == self.token:
            self.root.remove(self.path)


def _acquire_lease(
    root: Root, path: str, measurement: str, run_id: str | None, deadline: float, lease_s: float
) -> Held:
    lease = _Lease(root, measurement, path, run_id, lease_s)
    delay = _POLL_FIRST_S
    while True:
        holder = lease.try_acquire()
        if holder is None:
            lease.start_renewal()
            return lease
        if time.monotonic() >= deadline:
            raise LockError(
                f"{measurement}: lease {root.uri(*layout.lock_file(measurement))} is held by "
                f"{_describe(holder)}; timed out waiting"
            )
        delay = _wait(deadline, delay)


@contextmanager
def hold(
    root: Root,
    measurement: str,
    *,
    timeout_s: float = 600.0,
    run_id: str | None = None,
    lease_s: float = LEASE_SECONDS,
) -> Iterator[Held]:
    """Hold ``measurement``'s lock for the block; LockError after ``timeout_s`` of waiting."""
    path = lock_path(root, measurement)
    entry = _entry(f"{root.url}|{path}")
    me = threading.get_ident()
    if entry.owner == me and entry.held is not None:
        entry.depth += 1
        try:
            yield entry.held
        finally:
            entry.depth -= 1
        return
    deadline = time.monotonic() + max(0.0, timeout_s)
    if not entry.mutex.acquire(timeout=max(0.0, timeout_s)):
        raise LockError(
            f"{measurement}: lock {path} is held by another thread of this process; timed out waiting"
        )
    try:
        if root.local:
            held = _acquire_file(path, measurement, run_id, deadline)
        else:
            held = _acquire_lease(root, path, measurement, run_id, deadline, lease_s)
        entry.owner, entry.depth, entry.held = me, 1, held
        try:
            crash_point(f"lock_acquired:{measurement}")
            yield held
        finally:
            entry.owner, entry.depth, entry.held = None, 0, None
            crash_point(f"lock_releasing:{measurement}")
            held.release()
            crash_point(f"lock_released:{measurement}")
    finally:
        entry.mutex.release()


def holder(root: Root, measurement: str) -> dict[str, Any] | None:
    """Who holds ``measurement``'s lock right now (pid, host, run_id, since), or None."""
    path = lock_path(root, measurement)
    if root.local:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_owner_fd(fd) or {"measurement": measurement}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
    raw = root.read_bytes(path)
    try:
        info = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(info, dict) or float(info.get("expires", 0)) <= time.time():
        return None
    if owner_dead(info):
        return None  # a dead writer's lease: the next writer takes it over at once
    return {k: v for k, v in info.items() if k != "token"}
