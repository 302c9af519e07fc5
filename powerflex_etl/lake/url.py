"""Where a lake is: the one parser of a lake's address (local path or ``proto://bucket/prefix``)."""

from __future__ import annotations

import glob as globlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from powerflex_etl.errors import LakeError, LakeLocationError

# DuckDB expands these in read_parquet paths and offers no escape for them
_GLOB_CHARS = re.compile(r"[*?\[]")
_LOCAL_PROTOCOLS = ("file", "local")


@dataclass(frozen=True)
class LakeUrl:
    """A lake's address, normalised: the same lake always gives the same :attr:`url`.

    ``url`` is an absolute local path (symlinks resolved, so the catalog works from any
    directory) or ``proto://<path>`` where ``<path>`` is what the fsspec filesystem calls the
    root (``s3://bucket/prefix``; ``memory://x`` becomes ``memory:///x``).
    """

    url: str
    protocol: str  # "file" for a local lake
    path: str  # the root inside :attr:`fs`: the local path, or e.g. "bucket/prefix"
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, url: str, storage_options: dict[str, Any] | None = None) -> LakeUrl:
        """Normalise a lake address (``~`` expanded, ``file://`` dropped, trailing ``/`` too)."""
        opts = dict(storage_options or {})
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol in _LOCAL_PROTOCOLS:
            local = url.split("://", 1)[1] if "://" in url else url
            path = os.path.realpath(os.path.abspath(os.path.expanduser(local)))
            return cls(path, "file", path, opts)
        _, path = fsspec.core.url_to_fs(url, **opts)
        root = str(path).rstrip("/")
        return cls(f"{protocol}://{root}", protocol, root, opts)

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def check_location(self) -> LakeUrl:
        """This lake, if its path can hold a lake; :class:`LakeLocationError` when the path,
        or a folder above it, is a file.

        Checked when a lake is opened, before any network call, so a mistyped ``--lake``
        fails at once in one line instead of after a login, deep in a write. An object-store
        address is not checked (that would take a request).
        """
        if not self.is_local:
            return self
        path = self.path
        while not os.path.lexists(path):
            parent = os.path.dirname(path)
            if parent == path:
                return self
            path = parent
        if os.path.isdir(path):
            return self
        if path == self.path:
            raise LakeLocationError(f"the lake {self.path} is a file, not a directory")
        raise LakeLocationError(f"the lake {self.path} cannot be created: {path} is a file")

    @cached_property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem the lake lives on (the local one for a local lake)."""
        if self.is_local:
            return fsspec.filesystem("file")
        fs, _ = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs

    def join(self, *parts: str) -> str:
        """The full address of ``<lake>/<parts...>`` for readers outside fsspec (DuckDB)."""
        return "/".join((self.url, *parts))

    def duckdb_safe(self) -> LakeUrl:
        """This lake, if DuckDB can read it by glob; LakeError when its path holds ``*?[``."""
        if _GLOB_CHARS.search(self.url):
            raise LakeError(
                f"lake path {self.url!r} contains *, ? or [, which DuckDB reads as a glob",
                hint="move the lake to a path without them",
            )
        return self

    def has_files(self, pattern: str) -> bool:
        """Whether a glob over full addresses (as :meth:`join` builds them) matches a file."""
        if self.is_local:
            return bool(globlib.glob(pattern))
        return bool(self.fs.glob(pattern))
