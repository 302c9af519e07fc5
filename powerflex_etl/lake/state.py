"""Watermarks and per-window commit records under ``<lake>/_state/``.

Files (paths in ``layout.py``; flat JSON, so DuckDB can read ``_state/windows/*/*.json``)::

    _state/watermarks/<m>.json                 {"measurement", "watermark", "updated_at"}
    _state/windows/<m>/<start>--<end>.json     one WindowRecord per committed window

Each file is written whole in one atomic step (local: temp + ``os.replace``; object store:
one PUT). A window record is written after the window's data; rewriting a window
overwrites its record. Watermarks only move forward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from powerflex_etl.errors import LakeError
from powerflex_etl.lake import layout
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.procs import remove_dead_temps
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import MEASUREMENTS
from powerflex_etl.windows import Window, as_utc


@dataclass(frozen=True)
class WindowRecord:
    measurement: str
    window: Window
    rows: int
    rejects: int
    run_id: str
    seconds: float
    committed_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The flat JSON form stored in the lake."""
        return {
            "measurement": self.measurement,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "rows": self.rows,
            "rejects": self.rejects,
            "run_id": self.run_id,
            "seconds": self.seconds,
            "committed_at": as_utc(self.committed_at).isoformat(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WindowRecord:
        return cls(
            measurement=str(d["measurement"]),
            window=Window(
                datetime.fromisoformat(d["window_start"]), datetime.fromisoformat(d["window_end"])
            ),
            rows=int(d["rows"]),
            rejects=int(d["rejects"]),
            run_id=str(d["run_id"]),
            seconds=float(d["seconds"]),
            committed_at=as_utc(datetime.fromisoformat(d["committed_at"])),
        )


class State:
    """Watermarks (forward only) and committed-window records of one lake."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._root = lake.root

    def _watermark_path(self, m: str) -> str:
        return self._root.path(*layout.watermark_file(m))

    def _record_path(self, m: str, window: Window) -> str:
        return self._root.path(*layout.window_record_file(m, window))

    def _load(self, path: str) -> dict[str, Any] | None:
        raw = self._root.read_bytes(path)
        if raw is None:
            return None
        try:
            d = json.loads(raw)
        except ValueError:
            raise LakeError(
                f"state file {self._root.rel(path)} is not JSON; delete it or run `state reset`"
            )
        return d if isinstance(d, dict) else None

    def _dump(self, path: str, d: dict[str, Any]) -> None:
        self._root.write_atomic(path, json.dumps(d, sort_keys=True).encode())

    def watermark(self, measurement: str) -> datetime | None:
        """The end of the committed range for ``measurement``, or None before any run."""
        d = self._load(self._watermark_path(measurement))
        if not d or not d.get("watermark"):
            return None
        return as_utc(datetime.fromisoformat(d["watermark"]))

    def advance_watermark(self, measurement: str, to: datetime) -> datetime:
        """Move forward only; returns the watermark now in force."""
        # under the measurement's lock: two advancers must not interleave read and write
        with self.lake.lock(measurement):
            self._remove_dead_temps(measurement)
            current = self.watermark(measurement)
            to = as_utc(to)
            if current is not None and current >= to:
                return current
            crash_point(f"before_watermark:{measurement}")
            self._dump(
                self._watermark_path(measurement),
                {
                    "measurement": measurement,
                    "watermark": to.isoformat(),
                    "updated_at": datetime.now(UTC).isoformat(),
                },
            )
            crash_point(f"after_watermark:{measurement}")
            return to

    def _remove_dead_temps(self, m: str) -> None:
        """Drop the temp copies that writers killed mid-write left (once per run, locally)."""
        if self._root.local:
            for d in layout.state_dirs(m):
                remove_dead_temps(self._root.path(*d))

    def record_window(self, record: WindowRecord) -> None:
        """Store the record of a committed window (call after its data is in place)."""
        path = self._record_path(record.measurement, record.window)
        crash_point("before_state")
        self._dump(path, record.to_json())
        crash_point("after_state")

    def committed_windows(self, measurement: str) -> list[WindowRecord]:
        """Every recorded window of ``measurement``, by (start, end)."""
        paths = self._root.glob(layout.state_records_glob("windows", measurement))
        records = [WindowRecord.from_json(d) for p in paths if (d := self._load(p))]
        return sorted(records, key=lambda r: (r.window.start, r.window.end))

    def reset(self, measurement: str | None = None) -> None:
        """Forget watermarks and window records (of one measurement or all); never data."""
        if measurement is None:
            targets = [
                *self._root.glob(layout.watermarks_glob()),
                *self._root.glob(layout.state_records_glob("windows")),
            ]
        else:
            targets = [
                self._watermark_path(measurement),
                *self._root.glob(layout.state_records_glob("windows", measurement)),
            ]
        for p in targets:
            self._root.remove(p)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per measurement, for ``state show``: watermark, last commit, rows, files, lock holder."""
        out: dict[str, dict[str, Any]] = {}
        for m in MEASUREMENTS:
            mark = self.watermark(m)
            records = self.committed_windows(m)
            last = max(records, key=lambda r: r.committed_at, default=None)
            stats = self.lake.stats(m)
            rejects = self.lake.stats("rejects", measurement=m)
            out[m] = {
                "watermark": mark.isoformat() if mark else None,
                "windows": len(records),
                "last_commit": last.to_json() if last else None,
                "rows": stats["rows"],
                "files": stats["files"],
                "bytes": stats["bytes"],
                "rejects": rejects["rows"],
                "lock_holder": self.lake.lock_holder(m),
            }
        return out
