"""Housekeeping: rewrite date partitions whose files are not what the lake's writer makes.

Where small files really come from. This lake's writer never accumulates them: a window
rewrites its whole 6-hour slot file (``part-00/06/12/18.parquet``), so a measurement's date
partition holds at most four files, each written once with zstd and ~128k-row groups.
Partitions go wrong only when something else wrote into them:

* *foreign files*: any other ``*.parquet`` in a partition, e.g. ``part-01.parquet`` of an
  hourly layout, or files copied in by another tool. The views read them (``*.parquet``)
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

import math
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.errors import LakeError
from powerflex_etl.ingest.plan import check_measurements
from powerflex_etl.lake import crashpoints
from powerflex_etl.lake.store import (
    ROW_GROUP_ROWS,
    SLOT_HOURS,
    SLOT_US,
    Lake,
    _Planned,
    conform,
    slot_parts,
    unify_schema,
)
from powerflex_etl.schemas import KEY_COLUMNS, REJECTS_SCHEMA, RUN_ID, SPECS, TIME, arrow_schema
from powerflex_etl.settings import Settings
from powerflex_etl.windows import to_us

CANONICAL = frozenset(f"part-{h:02d}.parquet" for h in range(0, 24, SLOT_HOURS))


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
    s: Settings, measurements: list[str] | None = None, before: date | None = None
) -> CompactSummary:
    """Compact the measurements' partitions (and their rejects) dated before ``before``.

    Rewrites only partitions that need it (foreign files, or slot files with many small
    row groups or another codec); rows are unchanged. Then refreshes the DuckDB catalog.
    Raises :class:`LakeError` when there is no lake, or a file cannot be read (nothing of
    that partition is changed then).
    """
    t0 = time.perf_counter()
    targets = check_measurements(measurements)
    lake = Lake(s.lake)
    if lake.is_local and not os.path.isdir(lake.url):
        raise LakeError(f"compact: no lake at {lake.url}", hint="pass --lake or run ingest first")
    summary = CompactSummary(lake.url, before)
    for m in targets:
        for prefix in ([m], ["rejects", m]):
            summary.tables.append(_compact_table(lake, m, prefix, before))
    from powerflex_etl.catalog.build import build_catalog

    summary.catalog = str(build_catalog(s.lake, catalog_path=s.catalog_path))
    summary.seconds = time.perf_counter() - t0
    return summary


# -- one table ---------------------------------------------------------------------------


@dataclass
class _File:
    path: str
    name: str
    rows: int
    healthy: bool


def _partition_day(dirname: str) -> date | None:
    if not dirname.startswith("date="):
        return None
    try:
        return date.fromisoformat(dirname[len("date=") :])
    except ValueError:
        return None  # not ours: leave it alone


def _scan(lake: Lake, prefix: list[str], dirname: str) -> list[_File]:
    root = lake.root
    out = []
    for p in root.glob([*prefix, dirname, "*.parquet"]):
        name = p.rsplit("/", 1)[-1]
        try:
            meta = lake._parquet(p).metadata
        except FileNotFoundError:
            continue  # replaced or removed since the listing
        except (OSError, pa.ArrowInvalid) as err:
            raise LakeError(
                f"compact: cannot read {root.rel(p)}: {err}; move the file aside and rerun"
            )
        codecs = {
            meta.row_group(i).column(j).compression
            for i in range(meta.num_row_groups)
            for j in range(meta.num_columns)
        }
        wanted = max(1, math.ceil(meta.num_rows / ROW_GROUP_ROWS))
        healthy = meta.num_row_groups <= wanted and codecs <= {"ZSTD"}
        out.append(_File(p, name, meta.num_rows, healthy))
    return out


def _needs_work(files: list[_File]) -> bool:
    return any(f.name not in CANONICAL or not f.healthy for f in files)


def _compact_table(lake: Lake, m: str, prefix: list[str], before: date | None) -> TableCompaction:
    root = lake.root
    result = TableCompaction("/".join(prefix))
    for d in root.glob([*prefix, "date=*"]):
        dirname = d.rstrip("/").rsplit("/", 1)[-1]
        day = _partition_day(dirname)
        if day is None or (before is not None and day >= before):
            continue
        files = _scan(lake, prefix, dirname)
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
        with lake.lock(m, run_id=f"compact-{uuid.uuid4().hex[:8]}") as held:
            # scanned again under the lock: an ingest may have changed the partition meanwhile
            files = _scan(lake, prefix, dirname)
            before_rows = sum(f.rows for f in files)
            result.files_before += len(files)
            result.rows_before += before_rows
            if not _needs_work(files):
                result.files_after += len(files)
                result.rows_after += before_rows
                continue
            after_files, after_rows, dropped = _rewrite(lake, m, prefix, day, files, held.check)
        result.partitions_rewritten += 1
        result.files_after += after_files
        result.rows_after += after_rows
        result.duplicates_dropped += dropped
    return result


def _slot_of_name(day: date, name: str) -> int:
    hour = int(name[len("part-") : len("part-") + 2])
    return to_us(datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


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


def _dictionary(prefix: list[str], m: str) -> list[str]:
    if prefix[0] == "rejects":
        return ["measurement", "reason", RUN_ID]
    return [f.column for f in SPECS[m] if f.kind in ("id", "state")] + [RUN_ID]


def _rewrite(
    lake: Lake,
    m: str,
    prefix: list[str],
    day: date,
    files: list[_File],
    check: Callable[[], None],
) -> tuple[int, int, int]:
    """Rewrite one partition (under the lock). Returns (files, rows, duplicates dropped) after."""
    root = lake.root
    rejects = prefix[0] == "rejects"
    keys = ["reject_id"] if rejects else list(KEY_COLUMNS)
    base = REJECTS_SCHEMA if rejects else arrow_schema(m)
    day_slot = to_us(datetime(day.year, day.month, day.day, tzinfo=UTC))
    # per target slot: the slot file's own rows first (they win over a foreign copy), then foreign
    parts: dict[int, list[pa.Table]] = {}
    present: set[int] = set()
    foreign: list[str] = []
    for f in sorted(files, key=lambda f: (f.name not in CANONICAL, f.name)):
        table = lake._read_file(f.path)
        if f.name in CANONICAL:
            slot = _slot_of_name(day, f.name)
            parts.setdefault(slot, []).insert(0, table)
            present.add(slot)
        else:
            foreign.append(f.path)
            for slot, rows in _split_by_slot(table, day_slot).items():
                parts.setdefault(slot, []).append(rows)
    # foreign rows may belong to a slot of another date partition: merge with its file too
    for slot in parts:
        if slot not in present:
            date_part, name = slot_parts(slot)
            other = lake._read_if_exists(root.path(*prefix, date_part, name))
            if other is not None:
                parts[slot].insert(0, other)
    # staged where the lake stages a commit of ``m``: a killed compaction's files are then
    # removed by the next commit of ``m``, under its lock
    stage_dir = lake._stage_dir(m, f"compact-{uuid.uuid4().hex[:8]}")
    try:
        staged: list[_Planned] = []
        dropped = 0
        here: set[str] = set()
        for slot, tables in sorted(parts.items()):
            date_part, name = slot_parts(slot)
            final = root.path(*prefix, date_part, name)
            schema = unify_schema(
                base, [t.schema for t in tables], what=f"compact {root.rel(final)}"
            )
            merged = pa.concat_tables([conform(t, schema) for t in tables])
            merged, n_dropped = _dedupe(merged, keys)
            dropped += n_dropped
            merged = merged.sort_by([(c, "ascending") for c in keys])
            if merged.num_rows and date_part == f"date={day.isoformat()}":
                here.add(name)
            plan = _Planned(root.rel(final), final)
            if merged.num_rows:  # else: nothing staged, the slot file is removed
                lake._stage(plan, merged, _dictionary(prefix, m), stage_dir)
            staged.append(plan)
        for plan in staged:
            check()
            lake._put(plan)
            crashpoints.reached(f"compact_replaced:{plan.rel}")
        for path in foreign:
            check()
            root.remove(path)
            crashpoints.reached(f"compact_removed:{root.rel(path)}")
    finally:
        if stage_dir is not None:
            shutil.rmtree(stage_dir, ignore_errors=True)
    # rows moved to another date's partition (a foreign file in the wrong place) are
    # counted here, where they were found
    return len(here), sum(f.rows for f in files) - dropped, dropped
