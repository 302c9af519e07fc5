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
import os
import posixpath
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fsspec.spec import AbstractFileSystem

from powerflex_etl.errors import LakeError
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.layout import safe_part
from powerflex_etl.lake.procs import temp_name
from powerflex_etl.lake.url import LakeUrl


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
    """Where a lake lives: an fsspec filesystem plus a root path inside it.

    ``url`` is parsed by :class:`LakeUrl` (``storage_options`` go to fsspec); a ``LakeUrl``
    given as it is keeps its own options.
    """

    def __init__(self, url: str | LakeUrl, storage_options: dict[str, Any] | None = None) -> None:
        self.location = url if isinstance(url, LakeUrl) else LakeUrl.parse(url, storage_options)
        self.location.check_location()
        self.local = self.location.is_local
        self.fs: AbstractFileSystem = self.location.fs
        self.root = self.location.path
        self.url = self.location.url

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
        return f"{self.location.protocol}://{p}"

    # -- reading -------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        if self.local:
            return os.path.exists(path)
        return bool(self.fs.exists(path))

    def modified(self, path: str) -> float:
        """When the file was last written (epoch seconds); FileNotFoundError when it is gone."""
        if self.local:
            return os.stat(path).st_mtime
        info = self.fs.info(path)
        when = info.get("LastModified") or info.get("mtime") or info.get("created")
        if isinstance(when, datetime):
            return when.timestamp()
        return float(when) if when is not None else time.time()

    def read_bytes(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            if self.local:
                with open(path, "rb") as f:
                    return f.read()
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def glob(self, pattern_parts: Sequence[str]) -> list[str]:
        """Paths matching ``<root>/<pattern_parts...>`` (fsspec glob), sorted."""
        if self.local:
            # the root is a literal path: a "[" in a directory name is no pattern
            return sorted(globlib.glob(os.path.join(globlib.escape(self.root), *pattern_parts)))
        # listings are cached per filesystem instance; another process may have written since
        self.fs.invalidate_cache()
        return sorted(str(p) for p in self.fs.glob(posixpath.join(self.root, *pattern_parts)))

    # -- writing -------------------------------------------------------------------------
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
