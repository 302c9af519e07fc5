"""Parquet I/O only: atomic, idempotent slot-file commits, local or through fsspec.

See CONTRACT §3 and DESIGN.md "The lake"; every path and file name is in ``layout.py``.
A slot file is the unit of atomic replacement: readers see a slot wholly old or wholly new.
Every path is built from a table name (checked against ``schemas.LAKE_TABLES``), dates and
hours, never from data values, and checked to stay under the lake root.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from powerflex_etl.errors import LakeError
from powerflex_etl.lake import layout
from powerflex_etl.lake import lock as _lock
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.derived import TOKEN_KEY, DerivedStore, SlotDeriver, new_token
from powerflex_etl.lake.fs import Root
from powerflex_etl.lake.layout import REJECTS, SLOT_US, check_table, slot_of, slot_starts
from powerflex_etl.lake.parquet import (
    conform,
    dictionary_columns,
    merge,
    unify_schema,
    write_parquet,
)
from powerflex_etl.lake.staging import StagedFile, Staging, staging_area
from powerflex_etl.lake.url import LakeUrl
from powerflex_etl.schemas import (
    KEY_COLUMNS,
    MEASUREMENTS,
    REJECTS_SCHEMA,
    SPECS,
    TIME,
    TIME_TYPE,
    arrow_schema,
    plain,
    table_schema,
    text_ranks,
)
from powerflex_etl.windows import Window

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


def _time_mask(table: pa.Table, start_us: int, end_us: int) -> pa.ChunkedArray:
    t = table.column(TIME)
    return pc.and_(
        pc.greater_equal(t, pa.scalar(start_us, TIME_TYPE)),
        pc.less(t, pa.scalar(end_us, TIME_TYPE)),
    )


def _rows_in(table: pa.Table, start_us: int, end_us: int) -> pa.Table:
    """The rows with ``start <= time < end``: ``table`` itself when that is all of them.

    A window aligned with its slot (the default 6 h) fills it alone, and filtering would
    copy every column (25 MB for a 233k-row window) to keep them all.
    """
    mask = _time_mask(table, start_us, end_us)
    return table if pc.all(mask).as_py() is not False else table.filter(mask)


def _sort_rows(table: pa.Table) -> pa.Table:
    """``table`` sorted by the key; as it is when it already is (a stable sort changes nothing).

    A window's new rows come sorted from normalize and a slot file is sorted on disk, so a
    slot that only one of them fills needs no sort: checking costs ~1/20 of sorting.
    """
    if _is_sorted(table):
        return table
    # Arrow sorts no dictionary column: the key alone is decoded, the rows are taken
    key = pa.table({c: plain(table[c]) for c in KEY_COLUMNS})
    order = pc.sort_indices(key, sort_keys=[(c, "ascending") for c in KEY_COLUMNS])
    return table.take(order)


def _is_sorted(table: pa.Table) -> bool:
    """Whether rows are in (evse_address, time) order, no key null (a null sorts last)."""
    n = table.num_rows
    if n < 2:
        return True
    first, second = KEY_COLUMNS
    e, t = table[first], table[second]
    if e.null_count or t.null_count:
        return False
    if pa.types.is_dictionary(e.type):
        # as ranks: comparing the strings themselves would decode every row twice
        r = text_ranks(e)
        us = t.combine_chunks().cast(pa.int64()).to_numpy()
        later = r[1:] > r[:-1]
        return bool((later | ((r[1:] == r[:-1]) & (us[1:] >= us[:-1]))).all())
    ok = pc.or_(
        pc.less(e[: n - 1], e[1:]),
        pc.and_(pc.equal(e[: n - 1], e[1:]), pc.less_equal(t[: n - 1], t[1:])),
    )
    return bool(pc.all(ok).as_py())


class Lake:
    """A lake at a local directory or an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(
        self,
        url: str | LakeUrl,
        storage_options: dict[str, object] | None = None,
        *,
        lock_timeout_s: float = 600.0,
        derive: SlotDeriver | None = None,
    ) -> None:
        self._root = Root(url, dict(storage_options or {}))
        self.lock_timeout_s = lock_timeout_s
        # what each slot write also records for the derived tables (marts/), if anything
        self.derive = derive
        self.derived = DerivedStore(self._root)

    @property
    def url(self) -> str:
        """The lake's address: an absolute local path or ``proto://bucket/prefix``."""
        return self._root.url

    @property
    def location(self) -> LakeUrl:
        """The lake's address, parsed."""
        return self._root.location

    @property
    def is_local(self) -> bool:
        return self._root.local

    @property
    def root(self) -> Root:
        """The filesystem plumbing (for state.py and tools)."""
        return self._root

    def table_path(self, name: str) -> str:
        """Address of a table's directory, for readers such as DuckDB."""
        return self._root.uri(check_table(name))

    # -- locking ---------------------------------------------------------------------------
    @contextmanager
    def lock(
        self, measurement: str, *, timeout_s: float | None = None, run_id: str | None = None
    ) -> Iterator[_lock.Held]:
        """One writer per measurement, across threads and processes (a lock in the lake)."""
        with _lock.hold(
            self._root,
            check_table(measurement),
            timeout_s=self.lock_timeout_s if timeout_s is None else timeout_s,
            run_id=run_id,
        ) as held:
            yield held

    @contextmanager
    def lock_all(
        self, *, timeout_s: float | None = None, run_id: str | None = None
    ) -> Iterator[list[_lock.Held]]:
        """Every measurement's lock, taken in one order (so two holders never deadlock)."""
        with ExitStack() as stack:
            yield [
                stack.enter_context(self.lock(m, timeout_s=timeout_s, run_id=run_id))
                for m in MEASUREMENTS
            ]

    def lock_holder(self, measurement: str) -> dict[str, Any] | None:
        """Who holds the measurement's lock now (pid, host, run_id, since), or None."""
        return _lock.holder(self._root, check_table(measurement))

    @contextmanager
    def staging(self, held: _lock.Held, run_id: str) -> Iterator[Staging]:
        """Stage files for ``held``'s measurement, then put each in place (see staging.py).

        Call under that measurement's lock (``held`` is what :meth:`lock` yields): what dead
        runs left in ``_staging`` is removed first, and this one's on leaving.
        """
        with staging_area(self._root, held, run_id) as stage:
            yield stage

    # -- listing -----------------------------------------------------------------------------
    def data_files(
        self, name: str, *, measurement: str | None = None, partition: str | None = None
    ) -> list[str]:
        """Paths (in the lake's filesystem) of a table's data files, sorted: what the views read.

        For ``"rejects"``, ``measurement`` narrows it to that measurement's; ``partition``
        (``"date=YYYY-MM-DD"``) to one partition. See ``layout.data_glob``.
        """
        glob = layout.data_glob(name, measurement, partition or layout.PARTITION_GLOB)
        return self._root.glob(glob)

    def partitions(self, name: str, *, measurement: str | None = None) -> list[str]:
        """The names (``date=...``) of a table's partition directories, sorted."""
        found = self._root.glob(layout.partitions_glob(name, measurement))
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in found]

    def _slot_paths(self, name: str, measurement: str | None = None) -> list[str]:
        if name in SPECS or name == REJECTS:
            return self._root.glob(layout.slot_glob(name, measurement))
        return self.data_files(name)  # a snapshot table has no slots

    def slot_files(self, measurement: str) -> list[str]:
        """Paths (relative to the lake) of a table's slot files, the ones commits merge, in order."""
        return [self._root.rel(p) for p in self._slot_paths(measurement)]

    # -- reading ---------------------------------------------------------------------------
    def _parquet(self, path: str) -> pq.ParquetFile:
        if self._root.local:
            return pq.ParquetFile(path)
        data = self._root.read_bytes(path)
        if data is None:
            raise FileNotFoundError(path)
        return pq.ParquetFile(pa.BufferReader(data))

    def parquet_metadata(self, path: str) -> pq.FileMetaData | None:
        """A file's Parquet footer, or None when it does not exist (any more)."""
        try:
            return self._parquet(path).metadata
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowInvalid) as err:
            raise LakeError(
                f"cannot read {self._root.rel(path)}: {err}; move the file aside and rerun"
            )

    def read_file(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """The rows of one file (a path in the lake's filesystem); LakeError when it is gone."""
        table = self.read_if_exists(path, columns)
        if table is None:
            raise LakeError(f"{self._root.rel(path)} vanished while being read; run again")
        return table

    def read_if_exists(self, path: str, columns: list[str] | None = None) -> pa.Table | None:
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
        """Every row of a table's slot files (``"rejects"`` for the rejects), for tests and tools."""
        tables = [self.read_file(p) for p in self._slot_paths(measurement)]
        if not tables:
            return table_schema(measurement).empty_table()
        try:
            return pa.concat_tables(tables, promote_options="default")
        except pa.ArrowInvalid as err:
            raise LakeError(f"{measurement}: files disagree on column types: {err}")

    def stats(self, name: str, *, measurement: str | None = None) -> dict[str, int]:
        """Rows (from Parquet footers, no data read), files and bytes of a table's data files.

        For ``"rejects"``, ``measurement`` narrows it to that measurement's rejects.
        """
        files = self.data_files(name, measurement=measurement if name == REJECTS else None)
        rows = size = 0
        for p in files:
            # through fs.open an object store serves only the footer's byte ranges
            with self._root.fs.open(p, "rb") as f:
                rows += pq.ParquetFile(f).metadata.num_rows
            size += int(self._root.fs.size(p))
        return {"rows": rows, "files": len(files), "bytes": size}

    def acc_ids(self) -> list[str]:
        """Every distinct, non-null ``acc_id`` in ``ct_response``'s data files, sorted.

        Reads only that column; a lake without ct_response gives ``[]``.
        """
        import pyarrow.dataset as ds

        files = self.data_files("ct_response")
        if not files:
            return []
        try:
            dataset = ds.dataset(files, filesystem=self._root.fs, format="parquet")
            column = dataset.to_table(columns=["acc_id"]).column("acc_id")
        except (OSError, pa.ArrowInvalid, KeyError) as err:
            raise LakeError(
                f"cannot read acc_id from {self.table_path('ct_response')}: {err}",
                hint="check the lake path, or pass --acc-id explicitly",
            )
        values = column.cast(pa.string()).unique().drop_null().to_pylist()
        return sorted(str(v) for v in values)

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
            with self.staging(held, run_id) as stage:
                slots, kept, changed = self._stage_slots(stage, measurement, window, table, what)
                new_rejects, reject_files = self._stage_rejects(
                    stage, measurement, window, rejects, what
                )
                crash_point("rejects_staged")
                if changed:
                    self.derived.mark_pending(measurement, changed, run_id)
                stage.put_all(slots, before="before_replace", after="after_replace")
                stage.put_all(kept, after="kept_replaced")
                result.slots = [f.rel for f in slots]
                stage.put_all(
                    reject_files, before="before_reject_replace", after="after_reject_replace"
                )
                crash_point("rejects_replaced")
                result.rejects_written = new_rejects
            crash_point("staging_removed")
        return result

    def stage_slot(
        self, stage: Staging, m: str, slot_us: int, rows: pa.Table | None
    ) -> tuple[StagedFile, list[StagedFile]]:
        """Stage measurement ``m``'s slot file (None: its removal) and what derives from it.

        The slot file's footer gets a fresh token and whatever :attr:`derive` records; the
        slot's kept rows (``lake/derived.py``) are staged with the same token. Returns the
        slot file and the derived files, to put in place in that order.
        """
        parts = layout.slot_file((m,), slot_us)
        extra: list[StagedFile] = []
        if rows is None:
            if self.derive is not None:
                extra.append(stage.stage(layout.kept_file(slot_us), None, ()))
            return stage.stage(parts, None, dictionary_columns(m)), extra
        token = new_token()
        meta = {TOKEN_KEY: token}
        if self.derive is not None:
            out = self.derive(m, slot_us, rows)
            meta.update(out.metadata)
            if out.kept is not None:
                extra.append(
                    stage.stage(layout.kept_file(slot_us), out.kept, (), {TOKEN_KEY: token})
                )
        return stage.stage(parts, rows, dictionary_columns(m), meta), extra

    def _stage_slots(
        self, stage: Staging, m: str, window: Window, table: pa.Table, what: str
    ) -> tuple[list[StagedFile], list[StagedFile], list[int]]:
        staged: list[StagedFile] = []
        derived: list[StagedFile] = []
        changed: list[int] = []
        for slot_us in slot_starts(window):
            parts = layout.slot_file((m,), slot_us)
            new = _rows_in(table, slot_us, slot_us + SLOT_US)
            old = self.read_if_exists(self._root.path(*parts))
            if old is None and new.num_rows == 0:
                continue
            kept = old
            if old is not None:
                kept = old.filter(pc.invert(_time_mask(old, window.start_us, window.end_us)))
                if kept.num_rows == old.num_rows and new.num_rows == 0:
                    continue  # nothing of this slot changes: leave the file alone
            schemas = [t.schema for t in (kept, new) if t is not None]
            schema = unify_schema(arrow_schema(m), schemas, what=what)
            tables = [conform(t, schema) for t in (kept, new) if t is not None and t.num_rows]
            merged = _sort_rows(pa.concat_tables(tables)) if tables else None
            f, extra = self.stage_slot(stage, m, slot_us, merged)  # None: the slot is removed
            staged.append(f)
            derived += extra
            changed.append(slot_us)
            crash_point(f"staged:{f.rel}")
        return staged, derived, changed

    def _stage_rejects(
        self, stage: Staging, m: str, window: Window, rejects: pa.Table, what: str
    ) -> tuple[int, list[StagedFile]]:
        if rejects.num_rows == 0:
            return 0, []
        seen: set[str] = set()
        for p in self._slot_paths(REJECTS, m):
            seen.update(self.read_file(p, ["reject_id"]).column("reject_id").to_pylist())
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
            by_slot.setdefault(slot_of(window.start_us if t is None else t), []).append(i)
        staged = []
        for slot_us, rows in sorted(by_slot.items()):
            parts = layout.slot_file(layout.table_dir(REJECTS, m), slot_us)
            old = self.read_if_exists(self._root.path(*parts))
            tables = [t for t in (old, fresh.take(rows)) if t is not None]
            merged = merge(REJECTS_SCHEMA, tables, what=what).sort_by([("reject_id", "ascending")])
            staged.append(stage.stage(parts, merged, dictionary_columns(REJECTS)))
        return len(keep), staged

    def write_snapshot(
        self, name: str, table: pa.Table, key: str, *, at: datetime | None = None
    ) -> str:
        """Write ``<name>/date=YYYY-MM-DD/snap-<key>.parquet`` once, in one atomic step.

        Snapshots are immutable: when that file already exists it is left as it is.
        ``at`` (default: now) gives the date partition. Returns the path relative to the lake.
        """
        name = check_table(name)
        if name in SPECS or name == REJECTS:
            raise LakeError(f"{name} is not a snapshot table; use commit_window")
        when = (at or datetime.now(UTC)).astimezone(UTC)
        final = self._root.path(*layout.snapshot_file(name, key, when.date()))
        buf = io.BytesIO()
        write_parquet(table, buf, dictionary_columns(name))
        self._root.create_exclusive(final, buf.getvalue())
        return self._root.rel(final)


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
