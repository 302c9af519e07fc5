"""Pure: a parsed answer -> (clean lake table, rejects table) for one window. No I/O.

INTERFACE (stub; being implemented). See CONTRACT §2 "Which rows, in which order".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from .influx import ParsedAnswer
from .windows import Window


@dataclass(frozen=True)
class Scope:
    """Optional client-side scoping: keep only rows whose ids are listed (empty = all)."""

    acn_id: tuple[str, ...] = ()
    acc_id: tuple[str, ...] = ()
    acs_id: tuple[str, ...] = ()


@dataclass
class NormalizeStats:
    rows_in: int = 0
    outside_window: int = 0
    out_of_scope: int = 0
    rejected: int = 0
    duplicates: int = 0
    rows_out: int = 0
    # None when the check could not run (no rows with power, voltage and current)
    unit_check: str | None = None
    unit_check_ok: bool = True


@dataclass
class NormalizeResult:
    table: (
        pa.Table
    )  # schemas.arrow_schema(measurement, extra) exactly, sorted by (evse_address, time)
    rejects: pa.Table  # schemas.REJECTS_SCHEMA
    stats: NormalizeStats = field(default_factory=NormalizeStats)


def normalize(
    parsed: ParsedAnswer,
    window: Window,
    *,
    run_id: str,
    ingested_at: datetime,
    power_unit: str = "kW",
    scope: Scope | None = None,
) -> NormalizeResult:
    """Window filter, validation -> rejects, unit conversion, dedup (last delivered wins)."""
    raise NotImplementedError
