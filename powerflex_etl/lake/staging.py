"""Stage files, then put each in place in one step: the lake's only way of changing a table.

A :class:`Staging` belongs to one measurement whose lock is held. Each file is first staged
whole (local lake: a file under ``<lake>/_staging/<m>/<run>-<id>/``, the same filesystem as
the lake; object store: bytes in memory), then :meth:`Staging.put` moves it to its final
path by one ``os.replace`` (one PUT), or deletes the file a staged removal names. Before
every put the lock's ``check()`` runs, so a writer that lost a remote lease stops before
replacing anything more. ``commit_window`` and ``compact`` both change the lake this way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from powerflex_etl.lake import layout
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.fs import Root
from powerflex_etl.lake.lock import Held
from powerflex_etl.lake.parquet import write_parquet, write_parquet_bytes
from powerflex_etl.schemas import MEASUREMENTS

# staging left by a dead run is removed once older than this
STAGING_MAX_AGE_S = 3600.0


@dataclass
class StagedFile:
    """One file to put in place: staged (a local path or bytes) or, when both are None, removed."""

    rel: str  # relative to the lake, with "/" (crash-point names use it)
    final: str  # its path in the lake's filesystem
    staged_path: str | None = None
    staged_bytes: bytes | None = None


class Staging:
    """Files staged for one measurement under its lock; see the module docstring."""

    def __init__(self, root: Root, held: Held, directory: str | None, run_id: str) -> None:
        self.root = root
        self.held = held
        self.directory = directory  # None: object store, staged in memory
        self.run_id = run_id  # the run that stages, for the records it leaves

    def stage(
        self,
        parts: Sequence[str],
        table: pa.Table | None,
        dictionary: Sequence[str],
        metadata: Mapping[str, str] | None = None,
    ) -> StagedFile:
        """Stage ``table`` as the file at ``parts`` (a path from ``layout``); None: remove it.

        ``metadata`` goes into the file's footer. Nothing in the lake changes yet.
        """
        final = self.root.path(*parts)
        staged = StagedFile(self.root.rel(final), final)
        if table is None:
            return staged
        if self.directory is None:
            staged.staged_bytes = write_parquet_bytes(table, dictionary, metadata)
        else:
            staged.staged_path = os.path.join(self.directory, layout.staging_name(staged.rel))
            write_parquet(table, staged.staged_path, dictionary, metadata)
        return staged

    def put(self, staged: StagedFile, *, before: str | None = None, after: str) -> None:
        """Put one staged file in place (or remove its file), after checking the lock.

        Crash points ``<before>:<rel>`` (when given) and ``<after>:<rel>`` surround the step.
        """
        self.held.check()
        if before is not None:
            crash_point(f"{before}:{staged.rel}")
        if staged.staged_path is not None:
            os.makedirs(os.path.dirname(staged.final), exist_ok=True)
            os.replace(staged.staged_path, staged.final)
        elif staged.staged_bytes is not None:
            self.root.fs.pipe_file(staged.final, staged.staged_bytes)
        else:
            self.root.remove(staged.final)
        crash_point(f"{after}:{staged.rel}")

    def put_all(
        self, staged: Sequence[StagedFile], *, before: str | None = None, after: str
    ) -> None:
        """:meth:`put` each of ``staged`` in order, one atomic step each."""
        for f in staged:
            self.put(f, before=before, after=after)

    def remove(self, path: str, *, after: str) -> None:
        """Delete a file found by a listing (``path`` in the lake's filesystem), lock checked."""
        self.held.check()
        self.root.remove(path)
        crash_point(f"{after}:{self.root.rel(path)}")


@contextmanager
def staging_area(root: Root, held: Held, run_id: str) -> Iterator[Staging]:
    """A :class:`Staging` for ``held``'s measurement; its directory is removed on leaving.

    Removes first what dead runs left (see :func:`clean_staging`).
    """
    m = held.measurement
    clean_staging(root, m)
    directory = None
    if root.local:  # remote objects are staged in memory and PUT whole
        directory = root.path(*layout.staging_dir(m, run_id, uuid.uuid4().hex[:8]))
        os.makedirs(directory, exist_ok=True)
    try:
        yield Staging(root, held, directory, run_id)
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(directory))  # only when no other run's is left


def clean_staging(root: Root, m: str) -> None:
    """Remove what dead runs left in ``_staging``: all of ``m``'s, anything over an hour old.

    Called under ``m``'s lock, so nothing in ``_staging/<m>/`` belongs to a live commit:
    a writer killed mid-commit leaves no litter past the next commit of its measurement.
    """
    if not root.local:
        return
    shutil.rmtree(root.path(layout.STAGING, m), ignore_errors=True)
    base = root.path(layout.STAGING)
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    cutoff = time.time() - STAGING_MAX_AGE_S
    for e in entries:
        if e.name in MEASUREMENTS:
            continue  # another measurement's staging: cleaned under its own lock
        try:
            if e.stat(follow_symlinks=False).st_mtime < cutoff:
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
        except OSError:
            continue
