"""How fresh the derived tables are: what `powerflex-etl marts status` prints.

Read-only: it takes no lock and changes nothing, so it answers while a write runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from powerflex_etl.lake.store import Lake
from powerflex_etl.marts.refresh import sql_hash
from powerflex_etl.marts.tables import TABLES


@dataclass
class MartsStatus:
    """The derived tables of one lake, against the raw lake and the SQL they come from."""

    lake: str
    state: str  # current | pending | sql-changed | never-built | empty
    generation: str | None = None
    refreshed_at: str | None = None
    pending_commits: int = 0
    pending_slots: dict[str, int] = field(default_factory=dict)  # measurement -> slots
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def advice(self) -> str:
        """One line: what the state means and what to do about it."""
        return {
            "current": "current: every committed window is reflected",
            "pending": (
                f"{self.pending_commits} commit(s) not reflected yet (a write in progress, or "
                "one killed before its refresh): the next write or `powerflex-etl query` "
                "reflects them, or run `powerflex-etl marts rebuild`"
            ),
            "sql-changed": (
                "the derived SQL or rules changed since the last refresh: the next write or "
                "`powerflex-etl query` rebuilds them, or run `powerflex-etl marts rebuild`"
            ),
            "never-built": "never built: run `powerflex-etl marts rebuild`",
            "empty": "the lake holds no telemetry yet: nothing to derive",
        }[self.state]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lake": self.lake,
            "state": self.state,
            "advice": self.advice(),
            "generation": self.generation,
            "refreshed_at": self.refreshed_at,
            "pending_commits": self.pending_commits,
            "pending_slots": self.pending_slots,
            "tables": self.tables,
        }


def status(lake: Lake) -> MartsStatus:
    """The derived tables' freshness: manifest, pending commits, SQL hash, rows per table."""
    store = lake.derived
    manifest = store.manifest()
    pending = store.pending()
    slots: dict[str, set[int]] = {}
    for p in pending:
        slots.setdefault(p.measurement, set()).update(p.slots)
    out = MartsStatus(
        lake.url,
        state="current",
        pending_commits=len(pending),
        pending_slots={m: len(s) for m, s in sorted(slots.items())},
    )
    if manifest is None:
        has_raw = any(lake.slot_files(m) for m in ("ct_response", "evse_request", "evse_response"))
        out.state = "never-built" if has_raw else "empty"
        return out
    out.generation = manifest.generation
    out.refreshed_at = manifest.refreshed_at
    for t in TABLES:
        periods = sorted(manifest.tables.get(t, {}))
        out.tables[t] = {
            "rows": manifest.rows(t),
            "files": len(periods),
            "first_period": periods[0] if periods else None,
            "last_period": periods[-1] if periods else None,
        }
    if manifest.sql_hash != sql_hash():
        out.state = "sql-changed"
    elif pending:
        out.state = "pending"
    return out
