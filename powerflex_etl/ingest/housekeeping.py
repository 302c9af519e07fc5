"""Commands that rewrite the lake without fetching anything, and what they refresh after."""

from __future__ import annotations

import time
from datetime import date

from powerflex_etl.ingest.upkeep import after_write, open_lake
from powerflex_etl.lake.compact import CompactSummary
from powerflex_etl.lake.compact import compact_lake as _compact
from powerflex_etl.settings import Settings


def compact_lake(
    s: Settings, measurements: list[str] | None = None, before: date | None = None
) -> CompactSummary:
    """``powerflex-etl compact``: compact the lake's partitions, then refresh the marts and catalog."""
    t0 = time.perf_counter()
    lake = open_lake(s)
    summary = _compact(lake, measurements, before)
    summary.catalog = str(after_write(s, lake)[1])
    summary.seconds = time.perf_counter() - t0
    return summary
