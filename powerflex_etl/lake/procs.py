"""Which process is this, and is that one still alive: liveness checks for locks and temp files.

A lock's owner and a temporary file's name record the writer's machine (kernel boot and PID
namespace), pid and start time, so a later process can tell a dead writer's leftovers (safe
to take over or delete) from a live writer's (never touched). Linux ``/proc`` answers; without
it every check says "unsure", which callers treat as alive.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def current_machine() -> str | None:
    """Which kernel and PID namespace this process runs in (Linux), or None elsewhere.

    Two processes with the same value can see each other's pids; a hostname alone cannot
    promise that (containers with ``--network host`` share one).
    """
    boot = _read_text("/proc/sys/kernel/random/boot_id")
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{ns}" if boot else None


def machine_tag() -> str:
    """A short file-name-safe form of :func:`current_machine` ("nomachine" without procfs)."""
    machine = current_machine()
    if machine is None:
        return "nomachine"
    return hashlib.sha256(machine.encode()).hexdigest()[:12]


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None without procfs."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    return stat.rsplit(")", 1)[-1].split()


def process_started(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), so a reused pid is not taken for it."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process, but it exists
    fields = _stat(pid)
    return not (fields and fields[0] in ("Z", "X"))


def temp_name(final_name: str) -> str:
    """A hidden temporary name next to ``final_name`` that says which process writes it."""
    return f".{final_name}.{machine_tag()}-{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


# the tail temp_name() appends (DuckDB may add ".wal" to a temporary catalog)
_TEMP_TAIL = re.compile(
    r"\.(?P<tag>[0-9a-f]{12}|nomachine)-(?P<pid>[0-9]+)\.[0-9a-f]{12}\.tmp(\.wal)?"
)


def remove_dead_temps(directory: str, *, prefix: str = ".", max_age_s: float = 3600.0) -> int:
    """Delete the temporary files of dead writers (named by :func:`temp_name`) in ``directory``.

    Only names starting with ``prefix`` and ending like :func:`temp_name`'s are considered.
    One is dead when its process, on this machine, is gone, or when it is older than
    ``max_age_s`` (a whole-file write takes seconds). Returns how many were removed.
    """
    mine = machine_tag()
    cutoff = time.time() - max_age_s
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for e in entries:
        m = _TEMP_TAIL.search(e.name)
        if m is None or m.end() != len(e.name) or not e.name.startswith(prefix):
            continue
        try:
            dead = m["tag"] == mine and not process_alive(int(m["pid"]))
            if dead or e.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(e.path)
                removed += 1
        except OSError:
            continue  # gone already, or not ours to delete
    return removed
