"""A refresh's working copy of the derived tables: partitions read on demand, written once.

Each derived table is split into periods (a UTC day or month of one column); a refresh reads
the partitions it changes, writes each changed one as a new immutable file and, at the end,
hands back the manifest that names them (``lake/derived.py`` swaps it in). Files this refresh
wrote and then superseded itself are deleted at once: no manifest ever named them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.lake import layout
from powerflex_etl.lake.derived import DerivedStore, Manifest
from powerflex_etl.schemas import DERIVED_SCHEMAS
from powerflex_etl.windows import to_us


@dataclass(frozen=True)
class Partitioning:
    """How one derived table is split: by the day or month of ``column``; its sort order."""

    column: str
    monthly: bool
    order: tuple[str, ...]

    def period(self, us: int) -> str:
        return layout.month_period(us) if self.monthly else layout.day_period(us)

    def periods_of(self, us: np.ndarray) -> np.ndarray:
        """:meth:`period` of every element of ``us`` (vectorised: refreshes touch 10^4+ rows)."""
        unit = "M" if self.monthly else "D"
        keys = us.astype("datetime64[us]").astype(f"datetime64[{unit}]")
        uniq, inverse = np.unique(keys, return_inverse=True)
        names = np.array([str(k) for k in uniq], dtype=object)
        return names[inverse] if len(us) else np.array([], dtype=object)

    def bounds(self, period: str) -> tuple[int, int]:
        """[start, end) of a period name, µs."""
        if self.monthly:
            y, m = (int(x) for x in period.split("-"))
            start = datetime(y, m, 1, tzinfo=UTC)
            end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
            return to_us(start), to_us(end)
        start = datetime.fromisoformat(period).replace(tzinfo=UTC)
        return to_us(start), to_us(start) + 86_400_000_000


PARTITIONS: dict[str, Partitioning] = {
    "session_samples": Partitioning("session_start", False, ("evse_address", "time")),
    "sessions": Partitioning("session_start", True, ("evse_address", "session_start")),
    "session_load": Partitioning(
        "session_start", True, ("evse_address", "session_start", "interval_start")
    ),
    "coverage": Partitioning("hour_start", True, ("measurement", "evse_address", "hour_start")),
    "slot_figures": Partitioning("slot_start", True, ("evse_address", "slot_start")),
}
TABLES: tuple[str, ...] = tuple(PARTITIONS)


def _us(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


class WorkingTables:
    """The derived tables as a refresh changes them (see the module docstring)."""

    def __init__(self, store: DerivedStore, manifest: Manifest | None) -> None:
        self.store = store
        self.generation = uuid.uuid4().hex[:16]
        self.files: dict[str, dict[str, str]] = {
            t: dict(manifest.tables.get(t, {})) if manifest else {} for t in TABLES
        }
        self.counts: dict[str, dict[str, int]] = {
            t: dict(manifest.counts.get(t, {})) if manifest else {} for t in TABLES
        }
        self._rows: dict[tuple[str, str], pa.Table] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._written: set[str] = set()
        self._count = 0

    def periods(self, table: str) -> list[str]:
        """Every period the table has rows in (stored or changed in this refresh)."""
        return sorted(set(self.files[table]) | {p for t, p in self._rows if t == table})

    def get(self, table: str, period: str) -> pa.Table:
        """One partition's rows (empty when it has none)."""
        key = (table, period)
        if key not in self._rows:
            rel = self.files[table].get(period)
            schema = DERIVED_SCHEMAS[table]
            self._rows[key] = (
                self.store.read_part(rel).cast(schema) if rel else schema.empty_table()
            )
        return self._rows[key]

    def all(self, table: str) -> pa.Table:
        """Every row of a small table (slot_figures), read once."""
        parts = [self.get(table, p) for p in self.periods(table)]
        return pa.concat_tables(parts) if parts else DERIVED_SCHEMAS[table].empty_table()

    def replace(
        self,
        table: str,
        periods: Iterable[str],
        drop: Callable[[pa.Table], np.ndarray],
        new: pa.Table,
    ) -> None:
        """In ``periods`` (plus those of ``new``), drop the rows ``drop`` marks, add ``new``."""
        spec = PARTITIONS[table]
        new = new.cast(DERIVED_SCHEMAS[table])
        new_periods = spec.periods_of(_us(new[spec.column]))
        for period in sorted(set(periods) | set(new_periods.tolist())):
            old = self.get(table, period)
            keep = old.filter(pa.array(~drop(old))) if old.num_rows else old
            add = new.filter(pa.array(new_periods == period)) if new.num_rows else new
            if keep.num_rows == old.num_rows and add.num_rows == 0:
                continue
            rows = pa.concat_tables([keep, add])
            self._rows[(table, period)] = rows.sort_by([(c, "ascending") for c in spec.order])
            self._dirty.add((table, period))

    def overlapping(self, table: str, lo: int | None, hi: int | None) -> list[str]:
        """The periods of ``table`` that hold times strictly between lo and hi (None: open)."""
        spec = PARTITIONS[table]
        out = []
        for p in self.periods(table):
            start, end = spec.bounds(p)
            if (hi is None or start < hi) and (lo is None or end > lo):
                out.append(p)
        return out

    def flush(self) -> None:
        """Write every changed partition as a new file; forget the rows (memory stays flat)."""
        for table, period in sorted(self._dirty):
            rows = self._rows[(table, period)]
            old = self.files[table].get(period)
            if rows.num_rows:
                self._count += 1
                gen = f"{self.generation}-{self._count:06d}"
                self.files[table][period] = self.store.write_part(table, period, rows, gen)
                self.counts[table][period] = rows.num_rows
                self._written.add(self.files[table][period])
            else:
                self.files[table].pop(period, None)
                self.counts[table].pop(period, None)
            if old in self._written:  # never named by a manifest: nobody can be reading it
                self.store.root.remove(self.store.root.path(*old.split("/")))
                self._written.discard(old)
        self._dirty.clear()
        self._rows.clear()

    def manifest(self, sql_hash: str) -> Manifest:
        """The manifest naming every current file (call after :meth:`flush`)."""
        return Manifest(
            generation=self.generation,
            sql_hash=sql_hash,
            refreshed_at=datetime.now(UTC).isoformat(),
            tables={t: dict(sorted(v.items())) for t, v in self.files.items()},
            counts={t: dict(sorted(v.items())) for t, v in self.counts.items()},
        )


def in_bounds(col: pa.ChunkedArray | pa.Array, lo: int | None, hi: int | None) -> np.ndarray:
    """Whether each time lies strictly between lo and hi (None: unbounded)."""
    us = _us(col)
    mask = np.ones(len(us), dtype=bool)
    if lo is not None:
        mask &= us > lo
    if hi is not None:
        mask &= us < hi
    return mask


def equals(col: pa.ChunkedArray | pa.Array, value: str) -> np.ndarray:
    """Whether each label equals ``value``."""
    return np.asarray(pc.fill_null(pc.equal(col, value), False).to_numpy(zero_copy_only=False))
