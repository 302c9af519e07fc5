"""Parquet I/O only: atomic, idempotent slot-file commits, local or through fsspec.

INTERFACE (stub; being implemented). See CONTRACT §3 and DESIGN.md "The lake".

Layout::

    <lake>/<measurement>/date=YYYY-MM-DD/part-HH.parquet    HH in 00,06,12,18 (6-hour slots)
    <lake>/rejects/<measurement>/date=YYYY-MM-DD/part-HH.parquet
    <lake>/_state/...        (state.py)
    <lake>/_locks/<measurement>.lock
    <lake>/_staging/<run_id>/...   (private, same filesystem, then os.replace into place)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa

from .windows import Window

SLOT_HOURS = 6


@dataclass
class CommitResult:
    measurement: str
    window: Window
    rows_written: int = 0  # rows of this window now in the lake
    rejects_written: int = 0  # new rejects (ones not already stored)
    slots: list[str] = field(default_factory=list)  # slot files replaced/created/removed


class Lake:
    """A lake at a local directory or an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(self, url: str, storage_options: dict[str, object] | None = None) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def is_local(self) -> bool:
        raise NotImplementedError

    @contextmanager
    def lock(self, measurement: str, *, timeout_s: float = 600.0) -> Iterator[None]:
        """One writer per measurement, across threads and processes (a lock in the lake)."""
        raise NotImplementedError
        yield

    def commit_window(
        self, measurement: str, window: Window, table: pa.Table, rejects: pa.Table, *, run_id: str
    ) -> CommitResult:
        """Replace the window's rows in every slot it touches; keep rows outside it.

        Takes the lock itself. Each slot file is staged, then replaced by one ``os.replace``
        (one PUT on object storage). A failure leaves every slot as it was or as it will be.
        """
        raise NotImplementedError

    def read(self, measurement: str) -> pa.Table:
        """Every row of a measurement (``"rejects"`` for the rejects), for tests and tools."""
        raise NotImplementedError
