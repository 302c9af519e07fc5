"""What a run is called and what it did: the run id, one window's summary, the run report.

Everything here is small and plain, so it can be a task result on any engine.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from powerflex_etl.errors import PowerflexError
    from powerflex_etl.windows import Window


def new_run_id(flow_run_id: object | None = None) -> str:
    """The run id (lineage column ``_run_id``): the engine's own run id if it has one, else fresh.

    16 hex characters either way, so a Prefect flow run's rows can be found from its id.
    """
    return str(flow_run_id or uuid.uuid4().hex).replace("-", "")[:16]


#: The counts of a WindowSummary that add up across sub-windows and across a run.
COUNTS: tuple[str, ...] = (
    "points",
    "rows",
    "rejects",
    "new_rejects",
    "duplicates",
    "outside_window",
    "out_of_scope",
    "slots",
    "splits",
    "bytes",
)
_TOTALS = ("windows", *COUNTS)


@dataclass
class WindowSummary:
    """What one committed window did; small enough to be a task result."""

    measurement: str
    window_start: str
    window_end: str
    points: int = 0  # rows delivered by the API (after the parser)
    rows: int = 0  # rows committed for the window
    rejects: int = 0  # rejects found in the answer
    new_rejects: int = 0  # rejects not stored before
    duplicates: int = 0
    outside_window: int = 0
    out_of_scope: int = 0
    slots: int = 0
    splits: int = 0  # how many times the window had to be split
    bytes: int = 0
    seconds: float = 0.0
    unit_check: str | None = None
    unit_check_ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain values."""
        return asdict(self)

    def absorb(self, other: WindowSummary) -> None:
        """Add a sub-window's counts (after a split)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.unit_check and (self.unit_check is None or not other.unit_check_ok):
            self.unit_check, self.unit_check_ok = other.unit_check, other.unit_check_ok


@dataclass(frozen=True)
class WindowDone:
    """One finished window, as the orchestrator reports it to a progress callback."""

    measurement: str
    window: Window
    summary: WindowSummary | None  # None when it failed
    error: PowerflexError | None
    done: int  # windows finished so far in this run, this one included
    total: int  # windows this run runs (committed ones skipped)


@dataclass
class RunResult:
    """Every window of a run: the summaries, the failures (in plan order), the watermarks moved."""

    run_id: str
    summaries: list[WindowSummary]
    failures: list[tuple[str, Window, PowerflexError]]
    watermarks: dict[str, str]
    seconds: float
    # windows of the plan not run because they were already committed (a resumed backfill)
    skipped_committed: int = 0
    # the failure that ended the run early (no window started after it), if one did
    stopped: PowerflexError | None = None

    @property
    def ok(self) -> bool:
        """No window failed."""
        return not self.failures

    def report(self) -> dict[str, Any]:
        """The run's summary: per-measurement totals, the unit check, failures, watermarks."""
        per: dict[str, dict[str, Any]] = {}
        for s in sorted(self.summaries, key=lambda x: (x.measurement, x.window_start)):
            t = per.setdefault(s.measurement, dict.fromkeys(_TOTALS, 0))
            t["windows"] += 1
            for k in COUNTS:
                t[k] += getattr(s, k)
            if s.unit_check and (not s.unit_check_ok or "unit_check" not in t):
                t["unit_check"], t["unit_check_ok"] = s.unit_check, s.unit_check_ok
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "measurements": per,
            "failures": [e.one_line() for _, _, e in self.failures],
            "watermarks": self.watermarks,
            "skipped_committed": self.skipped_committed,
        }
