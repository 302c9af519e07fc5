"""Commands that rewrite the lake without fetching anything, and what they refresh after."""

from __future__ import annotations

import time
from datetime import date

from powerflex_etl.catalog import build_for
from powerflex_etl.lake.compact import CompactSummary
from powerflex_etl.lake.compact import compact_lake as _compact
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings


def compact_lake(
    s: Settings, measurements: list[str] | None = None, before: date | None = None
) -> CompactSummary:
    """``powerflex-etl compact``: compact the lake's partitions, then refresh the catalog."""
    t0 = time.perf_counter()
    summary = _compact(Lake(s.lake), measurements, before)
    summary.catalog = str(build_for(s))
    summary.seconds = time.perf_counter() - t0
    return summary
