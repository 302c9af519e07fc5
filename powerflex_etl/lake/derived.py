"""Where the derived tables live, and how a commit tells them it changed the raw lake.

Three kinds of file (paths in ``layout.py``), each written whole in one atomic step:

- **pending commits** ``_state/pending/<m>/<token>.json``: written by a commit *before* it
  replaces any slot file, naming the slots it changes; removed by the marts refresh once the
  derived tables reflect them. A commit killed anywhere leaves its file behind, so the next
  refresh (every write runs one; so does ``query``) recomputes those slots: the derived
  tables can lag the raw lake, never silently disagree with it.
- **derived files** ``_derived/<table>/<period>/<generation>.parquet``: immutable; a refresh
  writes new ones and then swaps the **manifest** ``_state/marts.json`` that lists the
  current file of every (table, period). One manifest replace switches every derived table
  at once, so no reader sees half a refresh; superseded files are deleted an hour later,
  when no catalog built before the swap can still be reading them.
- **kept rows** ``_derived/kept/date=.../part-HH.parquet``: what sessionizing needs of one
  ct_response slot (``marts/sessionize.py``), written beside the slot file by the same commit
  and carrying the slot file's token: a kept file whose token is not its slot's is stale and
  is made again from the slot file.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from powerflex_etl.errors import LakeError
from powerflex_etl.lake import layout
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.fs import Root
from powerflex_etl.lake.parquet import write_parquet_bytes

#: Key-value metadata of a slot file (and of its kept file): the write's token.
TOKEN_KEY = "powerflex:token"
#: Superseded derived files are deleted once this old (a catalog built before may read them).
KEEP_SUPERSEDED_S = 3600.0
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SlotDerived:
    """What a slot write records for the derived tables: footer metadata, and kept rows."""

    metadata: dict[str, str]
    kept: pa.Table | None = None


#: Called with (measurement, slot start µs, the slot's rows) for every slot file written.
SlotDeriver = Callable[[str, int, pa.Table], SlotDerived]


def new_token() -> str:
    """A fresh token for one slot file write."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Pending:
    """One commit the derived tables do not reflect yet."""

    path: str  # in the lake's filesystem
    measurement: str
    slots: tuple[int, ...]  # slot starts, µs


@dataclass
class Manifest:
    """The current derived files: table -> period -> path relative to the lake."""

    generation: str
    sql_hash: str
    refreshed_at: str
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # rows per file

    def rows(self, table: str) -> int:
        """Rows the table holds."""
        return sum(self.counts.get(table, {}).values())

    def files(self, table: str) -> list[str]:
        """The table's current files (relative to the lake), in period order."""
        return [rel for _, rel in sorted(self.tables.get(table, {}).items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "generation": self.generation,
            "sql_hash": self.sql_hash,
            "refreshed_at": self.refreshed_at,
            "tables": self.tables,
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            generation=str(d["generation"]),
            sql_hash=str(d["sql_hash"]),
            refreshed_at=str(d["refreshed_at"]),
            tables={str(t): {str(p): str(r) for p, r in v.items()} for t, v in d["tables"].items()},
            counts={
                str(t): {str(p): int(n) for p, n in v.items()}
                for t, v in d.get("counts", {}).items()
            },
        )


class DerivedStore:
    """The derived tables' files of one lake (``root``); see the module docstring."""

    def __init__(self, root: Root) -> None:
        self.root = root

    # -- pending commits ----------------------------------------------------------------------
    def mark_pending(self, measurement: str, slots: list[int], run_id: str) -> None:
        """Record, before a commit replaces anything, the slots it is about to change."""
        body = {
            "measurement": measurement,
            "slots": sorted(set(slots)),
            "run_id": run_id,
            "at": datetime.now(UTC).isoformat(),
        }
        path = self.root.path(*layout.pending_file(measurement, new_token()))
        self.root.write_atomic(path, json.dumps(body).encode())
        crash_point(f"pending_written:{measurement}")

    def pending(self) -> list[Pending]:
        """Every pending commit (unreadable files count as pending everything they name)."""
        out = []
        for p in self.root.glob(list(layout.pending_glob())):
            raw = self.root.read_bytes(p)
            if raw is None:
                continue  # cleared meanwhile
            try:
                d = json.loads(raw)
                out.append(Pending(p, str(d["measurement"]), tuple(int(s) for s in d["slots"])))
            except (ValueError, KeyError, TypeError):
                raise LakeError(
                    f"pending commit {self.root.rel(p)} is not readable",
                    hint="run `powerflex-etl marts rebuild`, which recomputes everything",
                )
        return out

    def clear(self, done: list[Pending]) -> None:
        """Remove pending commits the derived tables now reflect."""
        for p in done:
            self.root.remove(p.path)
        crash_point("pending_cleared")

    # -- manifest -----------------------------------------------------------------------------
    def manifest(self) -> Manifest | None:
        """The current manifest, or None before the first refresh."""
        raw = self.root.read_bytes(self.root.path(*layout.marts_manifest_file()))
        if raw is None:
            return None
        try:
            return Manifest.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # unreadable: the next refresh rebuilds everything

    def write_manifest(self, manifest: Manifest) -> None:
        """Swap in a new manifest: every derived table changes at once."""
        crash_point("before_manifest")
        body = json.dumps(manifest.to_json(), sort_keys=True).encode()
        self.root.write_atomic(self.root.path(*layout.marts_manifest_file()), body)
        crash_point("after_manifest")

    # -- derived files ------------------------------------------------------------------------
    def read_part(self, rel: str) -> pa.Table:
        """One derived file's rows."""
        data = self.root.read_bytes(self.root.path(*rel.split("/")))
        if data is None:
            raise LakeError(
                f"derived file {rel} is missing",
                hint="run `powerflex-etl marts rebuild`",
            )
        return pq.read_table(pa.BufferReader(data))

    def write_part(self, table: str, period: str, rows: pa.Table, generation: str) -> str:
        """Write one new derived file (never replacing one); its path relative to the lake."""
        parts = layout.derived_file(table, period, generation)
        self.root.write_atomic(self.root.path(*parts), write_parquet_bytes(rows, ()))
        rel = "/".join(parts)
        crash_point(f"derived_written:{rel}")
        return rel

    def collect(self, manifest: Manifest, tables: list[str]) -> int:
        """Delete derived files no manifest names any more, once they are old enough."""
        current = {rel for t in tables for rel in manifest.files(t)}
        cutoff = time.time() - KEEP_SUPERSEDED_S
        removed = 0
        for t in tables:
            for p in self.root.glob(list(layout.derived_files_glob(t))):
                if self.root.rel(p) in current:
                    continue
                try:
                    if self.root.modified(p) < cutoff and self.root.remove(p):
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    # -- kept rows ----------------------------------------------------------------------------
    def read_kept(self, slot_us: int) -> tuple[pa.Table, str | None] | None:
        """A slot's kept rows and the token they were made with, or None when absent."""
        data = self.root.read_bytes(self.root.path(*layout.kept_file(slot_us)))
        if data is None:
            return None
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (OSError, pa.ArrowInvalid):
            return None  # made again from the slot file
        meta = table.schema.metadata or {}
        token = meta.get(TOKEN_KEY.encode())
        return table.replace_schema_metadata(None), token.decode() if token else None

    def write_kept(self, slot_us: int, kept: pa.Table | None, token: str) -> None:
        """Replace (or, with None, remove) a slot's kept rows outside a commit (a repair)."""
        path = self.root.path(*layout.kept_file(slot_us))
        if kept is None:
            self.root.remove(path)
            return
        self.root.write_atomic(path, write_parquet_bytes(kept, (), {TOKEN_KEY: token}))


def slot_token(meta: pq.FileMetaData | None) -> str | None:
    """The token in a slot file's footer (None for files written without one)."""
    kv = meta.metadata if meta is not None else None
    value = (kv or {}).get(TOKEN_KEY.encode())
    return value.decode() if value else None


def footer_json(meta: pq.FileMetaData | None, key: str) -> Any:
    """A JSON value stored under ``key`` in a slot file's footer, or None."""
    kv = meta.metadata if meta is not None else None
    value = (kv or {}).get(key.encode())
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None
