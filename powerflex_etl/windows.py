"""Time windows: half-open UTC ranges ``[start, end)`` and how ranges split into them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from powerflex_etl.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str, *, name: str = "time") -> datetime:
    """An ISO date or datetime, UTC unless it carries an offset (CLI's ``T``)."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{name}: {text!r} is not an ISO date or datetime",
            hint="e.g. 2024-06-01 or 2024-06-01T06:00",
        )
    return as_utc(dt)


def as_utc(dt: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch."""
    delta = as_utc(dt) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, order=True)
class Window:
    """A half-open UTC time range ``start <= t < end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ConfigError(
                f"empty window: end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )

    @property
    def start_us(self) -> int:
        return to_us(self.start)

    @property
    def end_us(self) -> int:
        return to_us(self.end)

    @property
    def epoch_s(self) -> tuple[int, int]:
        """``[start, stop)`` in whole epoch seconds, as the API's ``time_filter`` wants.

        The start is floored and the end ceiled, so the asked range always covers the window;
        rows outside it are dropped client-side.
        """
        start_s = self.start_us // 1_000_000
        end_s = -((-self.end_us) // 1_000_000)
        return start_s, end_s

    def __str__(self) -> str:
        return f"[{_fmt(self.start)}, {_fmt(self.end)})"

    def halves(self) -> tuple[Window, Window]:
        """Split in two at the middle (whole seconds), for answers too large or cut."""
        mid_us = (self.start_us + self.end_us) // 2
        mid_us -= mid_us % 1_000_000
        if mid_us <= self.start_us:
            mid_us = (self.start_us + self.end_us) // 2
        mid = from_us(mid_us)
        return Window(self.start, mid), Window(mid, self.end)


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt.microsecond == 0 else dt.isoformat()


def split(start: datetime, end: datetime, hours: float) -> Iterator[Window]:
    """Split ``[start, end)`` into windows of ``hours``, aligned to multiples of it since the epoch.

    Alignment makes windows of reruns and overlapping runs coincide, so they touch the same
    lake slots.
    """
    whole = Window(start, end)
    step = int(hours * 3600 * 1_000_000)
    if step <= 0:
        raise ConfigError("window size must be positive")
    cur = whole.start_us
    while cur < whole.end_us:
        nxt = min((cur // step + 1) * step, whole.end_us)
        yield Window(from_us(cur), from_us(nxt))
        cur = nxt
