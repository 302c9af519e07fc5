"""Watermarks and per-window commit records under ``<lake>/_state/``.

INTERFACE (stub; being implemented).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .lake import Lake
from .windows import Window


@dataclass(frozen=True)
class WindowRecord:
    measurement: str
    window: Window
    rows: int
    rejects: int
    run_id: str
    seconds: float
    committed_at: datetime


class State:
    def __init__(self, lake: Lake) -> None:
        raise NotImplementedError

    def watermark(self, measurement: str) -> datetime | None:
        raise NotImplementedError

    def advance_watermark(self, measurement: str, to: datetime) -> datetime:
        """Move forward only; returns the watermark now in force."""
        raise NotImplementedError

    def record_window(self, record: WindowRecord) -> None:
        raise NotImplementedError

    def committed_windows(self, measurement: str) -> list[WindowRecord]:
        raise NotImplementedError

    def reset(self, measurement: str | None = None) -> None:
        raise NotImplementedError
