"""Housekeeping: rewrite date partitions whose files are not what the lake's writer makes.

Where small files really come from. This lake's writer never accumulates them: a window
rewrites its whole 6-hour slot file (``part-00/06/12/18.parquet``), so a measurement's date
partition holds at most four files, each written once with zstd and ~128k-row groups.
Partitions go wrong only when something else wrote into them:

* *foreign files*: any other ``*.parquet`` in a partition, e.g. ``part-01.parquet`` of an
  hourly layout, or files copied in by another tool. The views read them (every data file,
  ``layout.data_glob``)
  but ``commit_window`` never does, so a rerun of their window would double their rows;
* *badly written slot files*: the canonical name, but many small row groups or another codec.

Compaction folds every foreign file's rows into the canonical slot file of their time,
rewrites badly written slot files, sorts by (evse_address, time) (rejects by reject_id),
and writes zstd — under the measurement's lake lock, so no ingest writes meanwhile.
Rows are unchanged; only a row that a foreign file repeats with the same key as a row
already in the slot (evse_address, time; for rejects reject_id) is dropped, the slot's own
copy winning, and counted as ``duplicates_dropped``.

Order of operations, and what a reader or a crash can see:

1. everything is read and every new slot file is staged (local: a file under
   ``<lake>/_staging/``, same filesystem; object store: bytes in memory). A failure here
   changes nothing.
2. each slot file is put in place by one ``os.replace`` (one PUT on object storage). A
   slot is one file, so a reader sees it wholly old or wholly new: a badly written slot
   file rewritten in place (the common case) is atomic for readers and crashes alike.
3. only then is each foreign file deleted (one unlink / DELETE each).

Merging *two* files into one cannot be atomic for a reader that lists ``*.parquet``
without a manifest (that would need a directory rename, which this lake never does): some
instant must either show a foreign file's rows twice or not at all. This order picks
*twice, never lost*: between steps 2 and 3 a reader may see the rows of a foreign file
twice, and a crash there leaves them twice until ``compact`` runs again, which converges
(the duplicates are dropped by key and the foreign file deleted). No row is ever absent.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.errors import LakeError
from powerflex_etl.lake import layout
from powerflex_etl.lake.layout import REJECTS, SLOT_NAMES, SLOT_US
from powerflex_etl.lake.parquet import dictionary_columns, merge, well_written
from powerflex_etl.lake.staging import StagedFile, Staging
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import (
    KEY_COLUMNS,
    REJECTS_SCHEMA,
    TIME,
    arrow_schema,
    check_measurements,
)


@dataclass
class TableCompaction:
    """What compaction found and did in one table (a measurement, or its rejects)."""

    table: str
    partitions: int = 0
    partitions_rewritten: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    duplicates_dropped: int = 0


@dataclass
class CompactSummary:
    """The result of :func:`compact_lake`, for the CLI (:meth:`lines`) and JSON (:meth:`to_dict`)."""

    lake: str
    before: date | None
    tables: list[TableCompaction] = field(default_factory=list)
    catalog: str | None = None
    seconds: float = 0.0

    @property
    def partitions_rewritten(self) -> int:
        return sum(t.partitions_rewritten for t in self.tables)

    def lines(self) -> list[str]:
        """Human-readable lines: one per table, then a total."""
        scope = f" before {self.before.isoformat()}" if self.before else ""
        out = [f"compact {self.lake}{scope}"]
        for t in self.tables:
            dup = (
                f", {t.duplicates_dropped:,} duplicate rows dropped" if t.duplicates_dropped else ""
            )
            out.append(
                f"{t.table}: {t.partitions_rewritten}/{t.partitions} partitions rewritten, "
                f"files {t.files_before:,} -> {t.files_after:,}, "
                f"rows {t.rows_before:,} -> {t.rows_after:,}{dup}"
            )
        done = "nothing to do" if not self.partitions_rewritten else "done"
        out.append(f"{done} in {self.seconds:.2f} s; catalog {self.catalog or 'not rebuilt'}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        d = asdict(self)
        d["before"] = self.before.isoformat() if self.before else None
        return d


def compact_lake(
    lake: Lake, measurements: list[str] | None = None, before: date | None = None
) -> CompactSummary:
    """Compact the measurements' partitions (and their rejects) dated before ``before``.

    Rewrites only partitions that need it (foreign files, or slot files with many small
    row groups or another codec); rows are unchanged. The caller refreshes what reads the
    lake (``ingest.housekeeping.compact`` does). Raises :class:`LakeError` when there is no
    lake, or a file cannot be read (nothing of that partition is changed then).
    """
    t0 = time.perf_counter()
    targets = check_measurements(measurements)
    if lake.is_local and not os.path.isdir(lake.url):
        raise LakeError(f"compact: no lake at {lake.url}", hint="pass --lake or run ingest first")
    summary = CompactSummary(lake.url, before)
    for m in targets:
        for name in (m, REJECTS):
            summary.tables.append(_compact_table(lake, m, name, before))
    summary.seconds = time.perf_counter() - t0
    return summary


# -- one table ---------------------------------------------------------------------------


@dataclass
class _File:
    path: str
    name: str
    rows: int
    healthy: bool


def _scan(lake: Lake, name: str, m: str, partition: str) -> list[_File]:
    out = []
    for p in lake.data_files(name, measurement=m, partition=partition):
        try:
            meta = lake.parquet_metadata(p)
        except LakeError as err:
            raise LakeError(f"compact: {err}")
        if meta is None:
            continue  # replaced or removed since the listing
        out.append(_File(p, p.rsplit("/", 1)[-1], meta.num_rows, well_written(meta)))
    return out


def _needs_work(files: list[_File]) -> bool:
    return any(f.name not in SLOT_NAMES or not f.healthy for f in files)


def _compact_table(lake: Lake, m: str, name: str, before: date | None) -> TableCompaction:
    """Compact table ``name`` (``m`` itself, or ``"rejects"``: ``m``'s rejects)."""
    result = TableCompaction("/".join(layout.table_dir(name, m)))
    for partition in lake.partitions(name, measurement=m):
        day = layout.parse_date_dir(partition)
        if day is None or (before is not None and day >= before):
            continue
        files = _scan(lake, name, m, partition)
        if not files:
            continue
        result.partitions += 1
        if not _needs_work(files):
            n = sum(f.rows for f in files)
            result.files_before += len(files)
            result.files_after += len(files)
            result.rows_before += n
            result.rows_after += n
            continue
        run_id = f"compact-{uuid.uuid4().hex[:8]}"
        with lake.lock(m, run_id=run_id) as held:
            # scanned again under the lock: an ingest may have changed the partition meanwhile
            files = _scan(lake, name, m, partition)
            before_rows = sum(f.rows for f in files)
            result.files_before += len(files)
            result.rows_before += before_rows
            if not _needs_work(files):
                result.files_after += len(files)
                result.rows_after += before_rows
                continue
            # staged where the lake stages a commit of ``m``: a killed compaction's files are
            # then removed by the next commit of ``m``, under its lock
            with lake.staging(held, run_id) as stage:
                after_files, after_rows, dropped = _rewrite(lake, stage, m, name, day, files)
        result.partitions_rewritten += 1
        result.files_after += after_files
        result.rows_after += after_rows
        result.duplicates_dropped += dropped
    return result


def _split_by_slot(table: pa.Table, default_slot: int) -> dict[int, pa.Table]:
    """A foreign file's rows, per slot of their time (rows without a time: ``default_slot``)."""
    if table.num_rows == 0:
        return {}
    if TIME not in table.column_names:
        raise LakeError(f"compact: a file has no {TIME!r} column; move it aside and rerun")
    t = table.column(TIME)
    if not pa.types.is_timestamp(t.type):
        raise LakeError(
            f"compact: column {TIME!r} is {t.type}, not a timestamp; move the file aside"
        )
    us = pc.cast(pc.cast(t, pa.timestamp("us", tz="UTC")), pa.int64())
    slots = pc.multiply(
        pc.divide(us, pa.scalar(SLOT_US, pa.int64())), pa.scalar(SLOT_US, pa.int64())
    )
    slots = pc.fill_null(slots, pa.scalar(default_slot, pa.int64()))
    out = {}
    for slot in pc.unique(slots).to_pylist():
        out[int(slot)] = table.filter(pc.equal(slots, pa.scalar(slot, pa.int64())))
    return out


def _dedupe(table: pa.Table, keys: list[str]) -> tuple[pa.Table, int]:
    """``table`` with the first row of each key kept, in order; and how many were dropped."""
    n = table.num_rows
    if n == 0:
        return table, 0
    idx = table.select(keys).append_column("__row", pa.array(range(n), pa.int64()))
    first = idx.group_by(keys, use_threads=False).aggregate([("__row", "min")]).column("__row_min")
    if len(first) == n:
        return table, 0
    keep = pc.take(first, pc.sort_indices(first))
    return table.take(keep), n - len(first)


def _rewrite(
    lake: Lake, stage: Staging, m: str, name: str, day: date, files: list[_File]
) -> tuple[int, int, int]:
    """Rewrite one partition (under the lock). Returns (files, rows, duplicates dropped) after."""
    directory = layout.table_dir(name, m)
    keys = ["reject_id"] if name == REJECTS else list(KEY_COLUMNS)
    base = REJECTS_SCHEMA if name == REJECTS else arrow_schema(m)
    # per target slot: the slot file's own rows first (they win over a foreign copy), then foreign
    parts: dict[int, list[pa.Table]] = {}
    present: set[int] = set()
    foreign: list[str] = []
    for f in sorted(files, key=lambda f: (f.name not in SLOT_NAMES, f.name)):
        table = lake.read_file(f.path)
        slot = layout.slot_start(day, f.name)
        if slot is not None:
            parts.setdefault(slot, []).insert(0, table)
            present.add(slot)
        else:
            foreign.append(f.path)
            for slot, rows in _split_by_slot(table, layout.day_start(day)).items():
                parts.setdefault(slot, []).append(rows)
    # foreign rows may belong to a slot of another date partition: merge with its file too
    for slot in parts:
        if slot not in present:
            other = lake.read_if_exists(lake.root.path(*layout.slot_file(directory, slot)))
            if other is not None:
                parts[slot].insert(0, other)
    staged: list[StagedFile] = []
    derived: list[StagedFile] = []
    dropped = 0
    here: set[str] = set()
    for slot, tables in sorted(parts.items()):
        target = layout.slot_file(directory, slot)
        merged = merge(base, tables, what=f"compact {'/'.join(target)}")
        merged, n_dropped = _dedupe(merged, keys)
        dropped += n_dropped
        merged = merged.sort_by([(c, "ascending") for c in keys])
        date_part, slot_name = layout.slot_parts(slot)
        if merged.num_rows and date_part == layout.date_dir(day):
            here.add(slot_name)
        rows = merged if merged.num_rows else None  # an empty result removes the slot file
        if name == REJECTS:
            staged.append(stage.stage(target, rows, dictionary_columns(name)))
        else:
            slot_file, extra = lake.stage_slot(stage, m, slot, rows)
            staged.append(slot_file)
            derived += extra
    if name != REJECTS:
        # folding foreign rows in can change what the marts show
        lake.derived.mark_pending(m, sorted(parts), stage.run_id)
    stage.put_all(staged, after="compact_replaced")
    stage.put_all(derived, after="kept_replaced")
    for path in foreign:
        stage.remove(path, after="compact_removed")
    # rows moved to another date's partition (a foreign file in the wrong place) are
    # counted here, where they were found
    return len(here), sum(f.rows for f in files) - dropped, dropped
