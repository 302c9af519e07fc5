"""Filesystem plumbing for the lake: one root (local directory or fsspec URL), safe paths,
atomic whole-file writes.

Local and remote differ in one place only: a local file is written to a temporary name on
the same filesystem and moved into place with ``os.replace``; a remote object is written
by one PUT (``fs.pipe_file``), which object stores apply atomically per object.
"""

from __future__ import annotations

import contextlib
import errno
import glob as globlib
import hashlib
import os
import posixpath
import re
import time
import uuid
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from powerflex_etl.errors import LakeError
from powerflex_etl.lake.crashpoints import reached as crash_point

# one path component built by the lake: names, date=YYYY-MM-DD, part-HH.parquet, keys
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+\-]{0,199}$")


def safe_part(part: str, *, what: str = "path component") -> str:
    """``part`` if it is one harmless path component; LakeError otherwise."""
    if not _SAFE_PART.match(part) or part in (".", "..") or ".." in part:
        raise LakeError(f"unsafe {what} {part!r}: only letters, digits and _ . = + - allowed")
    return part


def safe_token(text: str, *, max_len: int = 64) -> str:
    """Squash free text (a run id) into a harmless path component."""
    token = re.sub(r"[^A-Za-z0-9_\-]", "_", text)[:max_len].strip("_")
    return token or "run"


# -- which process wrote a temporary file -------------------------------------------------
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


def _write_temp(path: str, data: bytes) -> str:
    """``data`` durably in a new temporary file next to ``path`` (same filesystem); its path.

    Removed again when writing fails, so a full disk leaves no partial temp behind.
    """
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, temp_name(os.path.basename(path)))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


class Root:
    """Where a lake lives: an fsspec filesystem plus a root path inside it."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        opts = dict(storage_options or {})
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol in ("file", "local"):
            path = url.split("://", 1)[1] if "://" in url else url
            self.local = True
            self.fs: AbstractFileSystem = fsspec.filesystem("file")
            self.root = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
            self.url = self.root
        else:
            fs, path = fsspec.core.url_to_fs(url, **opts)
            self.local = False
            self.fs = fs
            self.root = path.rstrip("/")
            self.url = f"{protocol}://{self.root}"

    def path(self, *parts: str) -> str:
        """The filesystem path of ``<root>/<parts...>``; each part must be safe.

        Checked after normalisation to still lie under the root, so nothing the lake
        writes can land outside it.
        """
        for p in parts:
            safe_part(p)
        if self.local:
            full = os.path.realpath(os.path.join(self.root, *parts))
            if full != self.root and not full.startswith(self.root + os.sep):
                raise LakeError(f"path {'/'.join(parts)!r} escapes the lake {self.root}")
            return full
        full = posixpath.normpath(posixpath.join(self.root, *parts))
        if full != self.root and not full.startswith(self.root + "/"):
            raise LakeError(f"path {'/'.join(parts)!r} escapes the lake {self.url}")
        return full

    def rel(self, path: str) -> str:
        """``path`` relative to the root, with ``/`` separators."""
        rel = os.path.relpath(path, self.root) if self.local else posixpath.relpath(path, self.root)
        return rel.replace(os.sep, "/")

    def uri(self, *parts: str) -> str:
        """A full address for readers outside fsspec (DuckDB): local path or ``proto://...``."""
        p = self.path(*parts)
        if self.local:
            return p
        return f"{self.url.split('://', 1)[0]}://{p}"

    # -- reading -------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        if self.local:
            return os.path.exists(path)
        return bool(self.fs.exists(path))

    def read_bytes(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            if self.local:
                with open(path, "rb") as f:
                    return f.read()
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def glob(self, pattern_parts: list[str]) -> list[str]:
        """Paths matching ``<root>/<pattern_parts...>`` (fsspec glob), sorted."""
        if self.local:
            # the root is a literal path: a "[" in a directory name is no pattern
            return sorted(globlib.glob(os.path.join(globlib.escape(self.root), *pattern_parts)))
        # listings are cached per filesystem instance; another process may have written since
        self.fs.invalidate_cache()
        return sorted(str(p) for p in self.fs.glob(posixpath.join(self.root, *pattern_parts)))

    # -- writing -------------------------------------------------------------------------
    def makedirs(self, path: str) -> None:
        if self.local:
            os.makedirs(path, exist_ok=True)

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data`` in one atomic step (temp + os.replace, or one PUT)."""
        if not self.local:
            self.fs.pipe_file(path, data)
            return
        tmp = _write_temp(path, data)
        try:
            crash_point(f"temp_written:{self.rel(path)}")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Write ``path`` only if it does not exist yet; False when it already did.

        Atomic where the backend supports create-if-absent (local: ``os.link``; S3 and
        memory: a conditional PUT). Elsewhere it degrades to check-then-write.
        """
        if self.local:
            tmp = _write_temp(path, data)
            try:
                os.link(tmp, path)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        try:
            self.fs.pipe_file(path, data, mode="create")
            return True
        except FileExistsError:
            return False
        except OSError as err:
            # s3fs maps a failed If-None-Match without its condition field to EINVAL
            if err.errno == errno.EINVAL:
                return False
            raise
        except TypeError:
            # a backend without the ``mode`` argument: best effort
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, data)
            return True

    def remove(self, path: str) -> bool:
        """Delete one file; False when it was already gone."""
        try:
            if self.local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)
            return True
        except FileNotFoundError:
            return False
