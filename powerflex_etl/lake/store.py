"""Parquet I/O only: atomic, idempotent slot-file commits, local or through fsspec.

See CONTRACT §3 and DESIGN.md "The lake". Layout::

    <lake>/<measurement>/date=YYYY-MM-DD/part-HH.parquet    HH in 00,06,12,18 (6-hour slots)
    <lake>/rejects/<measurement>/date=YYYY-MM-DD/part-HH.parquet
    <lake>/<snapshot table>/date=YYYY-MM-DD/snap-<key>.parquet
    <lake>/_state/...        (state.py)
    <lake>/_locks/<measurement>.lock    (lock.py)
    <lake>/_staging/<measurement>/<run>-<commit>/...   (private, same filesystem, then os.replace)

A slot file is the unit of atomic replacement: readers see a slot wholly old or wholly new.
Every path is built from a table name (checked against ``schemas.LAKE_TABLES``), dates and
hours, never from data values, and checked to stay under the lake root.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from powerflex_etl.errors import LakeError
from powerflex_etl.lake import lock as _lock
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.fs import Root, safe_part, safe_token
from powerflex_etl.schemas import (
    KEY_COLUMNS,
    LAKE_TABLES,
    LINEAGE_COLUMNS,
    MEASUREMENTS,
    REJECTS_SCHEMA,
    RUN_ID,
    SPECS,
    TIME,
    TIME_TYPE,
    arrow_schema,
    table_schema,
)
from powerflex_etl.windows import Window, from_us

SLOT_HOURS = 6
SLOT_US = SLOT_HOURS * 3600 * 1_000_000
ROW_GROUP_ROWS = 128 * 1024
# staging left by a dead run is removed once older than this
STAGING_MAX_AGE_S = 3600.0

# Crash points (see crashpoints.py): per changed slot ``staged:<slot>``, ``rejects_staged``,
# per slot ``before_replace:<slot>``/``after_replace:<slot>``, per rejects file
# ``before_reject_replace:<file>``/``after_reject_replace:<file>``, ``rejects_replaced``,
# ``staging_removed``. Everything is staged before anything is replaced.


@dataclass
class CommitResult:
    measurement: str
    window: Window
    rows_written: int = 0  # rows of this window now in the lake
    rejects_written: int = 0  # new rejects (ones not already stored)
    slots: list[str] = field(default_factory=list)  # slot files replaced/created/removed


def slot_starts(window: Window) -> list[int]:
    """Start (µs since the epoch) of every 6-hour UTC slot the window touches."""
    first = window.start_us // SLOT_US * SLOT_US
    return list(range(first, window.end_us, SLOT_US))


def slot_parts(slot_us: int) -> tuple[str, str]:
    """``("date=YYYY-MM-DD", "part-HH.parquet")`` of the slot starting at ``slot_us``."""
    start = from_us(slot_us)
    return f"date={start:%Y-%m-%d}", f"part-{start:%H}.parquet"


def write_parquet(table: pa.Table, where: str | io.BytesIO, dictionary: Sequence[str]) -> None:
    """The one place Parquet files are written: zstd, statistics, ~128k-row groups."""
    present = [c for c in dictionary if c in table.column_names]
    pq.write_table(
        table,
        where,
        compression="zstd",
        use_dictionary=present,
        write_statistics=True,
        row_group_size=ROW_GROUP_ROWS,
    )


def _dictionary_columns(name: str) -> list[str]:
    if name in SPECS:
        return [f.column for f in SPECS[name] if f.kind in ("id", "state")] + [RUN_ID]
    return ["measurement", "reason", RUN_ID]


def unify_schema(base: pa.Schema, schemas: Sequence[pa.Schema], *, what: str) -> pa.Schema:
    """``base`` plus every other column of ``schemas`` (extras before lineage).

    A column missing somewhere is kept (its rows get nulls); a null-typed column takes the
    other side's type; any other type difference is a LakeError naming the column.
    """
    types: dict[str, pa.DataType] = {f.name: f.type for f in base}
    extras: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            known = types.get(f.name, extras.get(f.name))
            if known is None:
                extras[f.name] = f.type
            elif f.type != known and not pa.types.is_null(f.type):
                if pa.types.is_null(known) and f.name in extras:
                    extras[f.name] = f.type
                else:
                    raise LakeError(
                        f"{what}: column {f.name!r} is {f.type} in new rows but {known} in the lake; "
                        "fix the type upstream or move the old files aside"
                    )
    extra = pa.schema([pa.field(n, t) for n, t in extras.items()])
    lineage = [f for f in base if f.name in LINEAGE_COLUMNS]
    head = [f for f in base if f.name not in LINEAGE_COLUMNS]
    return pa.schema([*head, *extra, *lineage])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones null, null-typed ones cast."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _time_mask(table: pa.Table, start_us: int, end_us: int) -> pa.ChunkedArray:
    t = table.column(TIME)
    return pc.and_(
        pc.greater_equal(t, pa.scalar(start_us, TIME_TYPE)),
        pc.less(t, pa.scalar(end_us, TIME_TYPE)),
    )


def _sort_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in KEY_COLUMNS])


@dataclass
class _Planned:
    """One file to put in place: staged (local path or bytes) or, when both are None, removed."""

    rel: str
    final: str
    staged_path: str | None = None
    staged_bytes: bytes | None = None


class Lake:
    """A lake at a local directory or an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(
        self,
        url: str,
        storage_options: dict[str, object] | None = None,
        *,
        lock_timeout_s: float = 600.0,
    ) -> None:
        self._root = Root(url, dict(storage_options or {}))
        self.lock_timeout_s = lock_timeout_s

    @property
    def url(self) -> str:
        """The lake's address: an absolute local path or ``proto://bucket/prefix``."""
        return self._root.url

    @property
    def is_local(self) -> bool:
        return self._root.local

    @property
    def root(self) -> Root:
        """The filesystem plumbing (for state.py and tools)."""
        return self._root

    def table_path(self, name: str) -> str:
        """Address of a table's directory, for readers such as DuckDB."""
        return self._root.uri(_check_table(name))

    # -- locking ---------------------------------------------------------------------------
    @contextmanager
    def lock(
        self, measurement: str, *, timeout_s: float | None = None, run_id: str | None = None
    ) -> Iterator[_lock.Held]:
        """One writer per measurement, across threads and processes (a lock in the lake)."""
        with _lock.hold(
            self._root,
            _check_table(measurement),
            timeout_s=self.lock_timeout_s if timeout_s is None else timeout_s,
            run_id=run_id,
        ) as held:
            yield held

    def lock_holder(self, measurement: str) -> dict[str, Any] | None:
        """Who holds the measurement's lock now (pid, host, run_id, since), or None."""
        return _lock.holder(self._root, _check_table(measurement))

    # -- reading ---------------------------------------------------------------------------
    def _files(self, name: str) -> list[str]:
        name = _check_table(name)
        if name == "rejects":
            return self._root.glob(["rejects", "*", "date=*", "part-*.parquet"])
        if name in SPECS:
            return self._root.glob([name, "date=*", "part-*.parquet"])
        return self._root.glob([name, "date=*", "*.parquet"])

    def slot_files(self, measurement: str) -> list[str]:
        """Paths (relative to the lake) of a table's data files, in slot order."""
        return [self._root.rel(p) for p in self._files(measurement)]

    def _parquet(self, path: str) -> pq.ParquetFile:
        if self._root.local:
            return pq.ParquetFile(path)
        data = self._root.read_bytes(path)
        if data is None:
            raise FileNotFoundError(path)
        return pq.ParquetFile(pa.BufferReader(data))

    def _read_file(self, path: str, columns: list[str] | None = None) -> pa.Table:
        table = self._read_if_exists(path, columns)
        if table is None:
            raise LakeError(f"{self._root.rel(path)} vanished while being read; run again")
        return table

    def _read_if_exists(self, path: str, columns: list[str] | None = None) -> pa.Table | None:
        """The file's rows, or None when it does not exist.

        Remote: one GET that tells absence by a 404, never a cached listing, which could
        hide a file another process wrote and so lose its rows on rewrite.
        """
        try:
            return self._parquet(path).read(columns=columns)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowInvalid) as err:
            raise LakeError(
                f"cannot read {self._root.rel(path)}: {err}; move the file aside and rerun its window"
            )

    def read(self, measurement: str) -> pa.Table:
        """Every row of a table (``"rejects"`` for the rejects), for tests and tools."""
        tables = [self._read_file(p) for p in self._files(measurement)]
        if not tables:
            return table_schema(measurement).empty_table()
        try:
            return pa.concat_tables(tables, promote_options="default")
        except pa.ArrowInvalid as err:
            raise LakeError(f"{measurement}: files disagree on column types: {err}")

    def stats(self, name: str, *, measurement: str | None = None) -> dict[str, int]:
        """Rows (from Parquet footers, no data read), files and bytes of a table.

        For ``"rejects"``, ``measurement`` narrows it to that measurement's rejects.
        """
        files = self._files(name)
        if name == "rejects" and measurement is not None:
            files = self._root.glob(["rejects", _check_table(measurement), "date=*", "*.parquet"])
        rows = size = 0
        for p in files:
            # through fs.open an object store serves only the footer's byte ranges
            with self._root.fs.open(p, "rb") as f:
                rows += pq.ParquetFile(f).metadata.num_rows
            size += int(self._root.fs.size(p))
        return {"rows": rows, "files": len(files), "bytes": size}

    # -- writing ---------------------------------------------------------------------------
    def commit_window(
        self, measurement: str, window: Window, table: pa.Table, rejects: pa.Table, *, run_id: str
    ) -> CommitResult:
        """Replace the window's rows in every slot it touches; keep rows outside it.

        Takes the lock itself. Every changed slot file is staged first, then each is
        replaced by one ``os.replace`` (one PUT on object storage); a slot left empty is
        deleted. A failure before the replaces leaves every file as it was; a crash between
        two replaces leaves each slot wholly old or wholly new, and a rerun converges.
        """
        if measurement not in MEASUREMENTS:
            raise LakeError(f"unknown measurement {measurement!r}; use one of {MEASUREMENTS}")
        what = f"{measurement} {window}"
        _check_inside(table, window, what)
        result = CommitResult(measurement, window, rows_written=table.num_rows)
        with self.lock(measurement, run_id=run_id) as held:
            self._clean_staging(measurement)
            stage_dir = self._stage_dir(measurement, run_id)
            try:
                slots = self._plan_slots(measurement, window, table, stage_dir, what)
                new_rejects, reject_files = self._plan_rejects(
                    measurement, window, rejects, stage_dir, what
                )
                crash_point("rejects_staged")
                for plan in slots:
                    held.check()
                    crash_point(f"before_replace:{plan.rel}")
                    self._put(plan)
                    crash_point(f"after_replace:{plan.rel}")
                    result.slots.append(plan.rel)
                for plan in reject_files:
                    held.check()
                    crash_point(f"before_reject_replace:{plan.rel}")
                    self._put(plan)
                    crash_point(f"after_reject_replace:{plan.rel}")
                crash_point("rejects_replaced")
                result.rejects_written = new_rejects
            finally:
                if stage_dir is not None:
                    shutil.rmtree(stage_dir, ignore_errors=True)
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(stage_dir))  # only when no other run's is left
            crash_point("staging_removed")
        return result

    def _plan_slots(
        self, m: str, window: Window, table: pa.Table, stage_dir: str | None, what: str
    ) -> list[_Planned]:
        plans = []
        for slot_us in slot_starts(window):
            date_part, name = slot_parts(slot_us)
            final = self._root.path(m, date_part, name)
            new = table.filter(_time_mask(table, slot_us, slot_us + SLOT_US))
            old = self._read_if_exists(final)
            if old is None and new.num_rows == 0:
                continue
            kept = old
            if old is not None:
                kept = old.filter(pc.invert(_time_mask(old, window.start_us, window.end_us)))
                if kept.num_rows == old.num_rows and new.num_rows == 0:
                    continue  # nothing of this slot changes: leave the file alone
            schemas = [t.schema for t in (kept, new) if t is not None]
            schema = unify_schema(arrow_schema(m), schemas, what=what)
            parts = [conform(t, schema) for t in (kept, new) if t is not None and t.num_rows]
            plan = _Planned(self._root.rel(final), final)
            if parts:
                merged = _sort_rows(pa.concat_tables(parts))
                self._stage(plan, merged, _dictionary_columns(m), stage_dir)
            plans.append(plan)
            crash_point(f"staged:{plan.rel}")
        return plans

    def _plan_rejects(
        self, m: str, window: Window, rejects: pa.Table, stage_dir: str | None, what: str
    ) -> tuple[int, list[_Planned]]:
        if rejects.num_rows == 0:
            return 0, []
        seen: set[str] = set()
        for p in self._root.glob(["rejects", m, "date=*", "part-*.parquet"]):
            seen.update(self._read_file(p, ["reject_id"]).column("reject_id").to_pylist())
        keep = []
        for i, rid in enumerate(rejects.column("reject_id").to_pylist()):
            if rid not in seen:
                seen.add(rid)
                keep.append(i)
        if not keep:
            return 0, []
        fresh = rejects.take(keep)
        times = fresh.column(TIME).cast(pa.int64()).to_pylist()
        by_slot: dict[int, list[int]] = {}
        for i, t in enumerate(times):
            us = window.start_us if t is None else t
            by_slot.setdefault(us // SLOT_US * SLOT_US, []).append(i)
        plans = []
        for slot_us, rows in sorted(by_slot.items()):
            date_part, name = slot_parts(slot_us)
            final = self._root.path("rejects", m, date_part, name)
            new = fresh.take(rows)
            old = self._read_if_exists(final)
            tables = [t for t in (old, new) if t is not None]
            schema = unify_schema(REJECTS_SCHEMA, [t.schema for t in tables], what=what)
            merged = pa.concat_tables([conform(t, schema) for t in tables])
            merged = merged.sort_by([("reject_id", "ascending")])
            plan = _Planned(self._root.rel(final), final)
            self._stage(plan, merged, _dictionary_columns("rejects"), stage_dir)
            plans.append(plan)
        return len(keep), plans

    def _stage_dir(self, m: str, run_id: str) -> str | None:
        if not self._root.local:
            return None  # remote objects are staged in memory and PUT whole
        d = self._root.path("_staging", m, f"{safe_token(run_id)}-{uuid.uuid4().hex[:8]}")
        os.makedirs(d, exist_ok=True)
        return d

    def _stage(
        self, plan: _Planned, table: pa.Table, dictionary: list[str], stage_dir: str | None
    ) -> None:
        if stage_dir is None:
            buf = io.BytesIO()
            write_parquet(table, buf, dictionary)
            plan.staged_bytes = buf.getvalue()
            return
        plan.staged_path = os.path.join(stage_dir, plan.rel.replace("/", "__"))
        write_parquet(table, plan.staged_path, dictionary)

    def _put(self, plan: _Planned) -> None:
        if plan.staged_path is not None:
            os.makedirs(os.path.dirname(plan.final), exist_ok=True)
            os.replace(plan.staged_path, plan.final)
        elif plan.staged_bytes is not None:
            self._root.fs.pipe_file(plan.final, plan.staged_bytes)
        else:
            self._root.remove(plan.final)

    def _clean_staging(self, m: str) -> None:
        """Remove what dead runs left in ``_staging``: all of ``m``'s, anything over an hour old.

        Called under ``m``'s lock, so nothing in ``_staging/<m>/`` belongs to a live commit:
        a writer killed mid-commit leaves no litter past the next commit of its measurement.
        """
        if not self._root.local:
            return
        shutil.rmtree(self._root.path("_staging", m), ignore_errors=True)
        base = self._root.path("_staging")
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

    def write_snapshot(
        self, name: str, table: pa.Table, key: str, *, at: datetime | None = None
    ) -> str:
        """Write ``<name>/date=YYYY-MM-DD/snap-<key>.parquet`` once, in one atomic step.

        Snapshots are immutable: when that file already exists it is left as it is.
        ``at`` (default: now) gives the date partition. Returns the path relative to the lake.
        """
        name = _check_table(name)
        if name in SPECS or name == "rejects":
            raise LakeError(f"{name} is not a snapshot table; use commit_window")
        when = (at or datetime.now(UTC)).astimezone(UTC)
        date_part = f"date={when:%Y-%m-%d}"
        final = self._root.path(name, date_part, safe_part(f"snap-{key}.parquet", what="key"))
        buf = io.BytesIO()
        write_parquet(table, buf, [RUN_ID, "acc_id"])
        self._root.create_exclusive(final, buf.getvalue())
        return self._root.rel(final)


def _check_table(name: str) -> str:
    if name not in LAKE_TABLES:
        raise LakeError(f"unknown lake table {name!r}; use one of {', '.join(LAKE_TABLES)}")
    return name


def _check_inside(table: pa.Table, window: Window, what: str) -> None:
    """Rows outside the window would survive a rerun twice; refuse them."""
    if table.num_rows == 0:
        return
    if TIME not in table.column_names:
        raise LakeError(f"{what}: the table has no {TIME!r} column; normalize before committing")
    t = table.column(TIME)
    if t.null_count:
        raise LakeError(f"{what}: {t.null_count} rows have no time; normalize before committing")
    if not pa.types.is_timestamp(t.type):
        raise LakeError(f"{what}: column 'time' is {t.type}, not {TIME_TYPE}")
    outside = table.num_rows - pc.sum(_time_mask(table, window.start_us, window.end_us)).as_py()
    if outside:
        raise LakeError(
            f"{what}: {outside} rows lie outside the window; normalize before committing"
        )
