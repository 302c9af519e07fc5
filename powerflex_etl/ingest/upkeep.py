"""What every write does after it has written: bring the marts up to date, rebuild the catalog.

Every command that writes raw telemetry opens its lake with :func:`open_lake` (so each slot
write also records what the marts need, ``marts/slots.py``) and ends with
:func:`after_write`. Readers call :func:`ensure_current` first: a write killed between its
raw commit and its marts refresh left pending commits behind, and this repairs them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from powerflex_etl.catalog import build_for
from powerflex_etl.errors import LockError
from powerflex_etl.lake.store import Lake
from powerflex_etl.marts.refresh import RefreshSummary, refresh, sql_hash
from powerflex_etl.marts.slots import derive_slot
from powerflex_etl.settings import Settings

log = logging.getLogger("powerflex_etl.marts")

#: How long a reader waits for a running write before it reads the marts as they are.
READER_LOCK_TIMEOUT_S = 5.0


def open_lake(s: Settings) -> Lake:
    """The settings' lake, recording for the marts at every slot write."""
    return Lake(s.lake, derive=derive_slot)


def after_write(s: Settings, lake: Lake | None = None) -> tuple[RefreshSummary, Path]:
    """Reflect every pending commit in the marts, then rebuild the catalog."""
    summary = refresh(lake or open_lake(s))
    return summary, build_for(s)


def ensure_current(lake: Lake) -> RefreshSummary | None:
    """Before reading: refresh the marts when commits are pending or their SQL changed.

    Waits a few seconds at most for a write in progress (which refreshes them itself) and
    then reads the marts as they are; returns None when it did not refresh.
    """
    store = lake.derived
    manifest = store.manifest()
    has_raw = bool(lake.slot_files("ct_response")) or any(
        lake.slot_files(m) for m in ("evse_request", "evse_response")
    )
    stale = (manifest is None and has_raw) or (manifest is not None and manifest.sql_hash != sql_hash())
    if not stale and not store.pending():
        return None
    try:
        return refresh(lake, timeout_s=READER_LOCK_TIMEOUT_S)
    except LockError:
        log.warning("marts: a write is in progress; reading them as they are (it refreshes them)")
        return None
