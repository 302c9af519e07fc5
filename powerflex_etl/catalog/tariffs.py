"""Time-of-use tariffs in acnportal's JSON format: read, checked whole, turned into rows.

A site names its tariff in ``sites.toml`` (``tariff = "sce_tou_ev_4_march_2019"``, one of
the schedules shipped in ``tariff_schedules/``, or a path to a JSON file of the same format).
The format (acnportal's ``signals/tariffs``): ``{"name", "effective", "schedule": [{"id",
"effective_start": "MM-DD", "effective_end": "MM-DD", "dow_mask": "WEEKDAYS" | "WEEKENDS" |
"ALL", "times": [period start hours, may be fractional], "tariffs": [USD/kWh per period],
"demand_charge": USD/kW}]}``; both month-days are inclusive, a season whose end comes before
its start wraps the year, and every time is the site's local wall-clock time.

acnportal refuses an instant that no schedule or two schedules claim, but only when it is
asked for that instant. Here the whole file is checked at once (:func:`check_coverage`):
every local day of a leap year on every weekday, and every time of day, must fall in exactly
one schedule and one period, or the file is refused with the first instant that does not —
so a bad file fails the catalog build, never one query months later, and nothing is ever
priced by a silent pick.

Pure apart from reading the file: no DuckDB here (:mod:`.tariff_tables` writes the rows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path

from powerflex_etl.errors import ConfigError

#: The schedules shipped with the package (acnportal's, unmodified; see its README.md).
SHIPPED_DIR = Path(__file__).with_name("tariff_schedules")
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
# ISO weekdays (Monday = 1) of each dow_mask
DOW_MASKS: dict[str, tuple[int, int]] = {"WEEKDAYS": (1, 5), "WEEKENDS": (6, 7), "ALL": (1, 7)}
_WEEKDAY = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# a leap year, so 02-29 is checked too; only month-days and weekdays matter, never the year
_CHECK_YEAR = 2024


class TariffError(ConfigError):
    """A tariff file or a site's ``tariff`` key that cannot be used."""

    hint = "fix the tariff file or the site's tariff key in sites.toml; the old catalog stays"


@dataclass(frozen=True)
class Period:
    """One price of a schedule: from ``start_us`` to ``end_us`` after local midnight."""

    start_us: int
    end_us: int
    price_usd_per_kwh: float

    @property
    def label(self) -> str:
        """``HH:MM-HH:MM`` (local wall clock; 24:00 is the end of the day)."""
        return f"{_clock(self.start_us)}-{_clock(self.end_us)}"


@dataclass(frozen=True)
class Schedule:
    """One ``schedule`` entry: the month-days and weekdays it claims, its periods."""

    id: str
    start: tuple[int, int]  # (month, day), inclusive
    end: tuple[int, int]  # (month, day), inclusive; before start: wraps the year
    dow_mask: str
    periods: tuple[Period, ...]
    demand_charge_usd_per_kw: float

    @property
    def isodow(self) -> tuple[int, int]:
        """First and last ISO weekday the schedule claims."""
        return DOW_MASKS[self.dow_mask]

    def month_day_ranges(self) -> list[tuple[int, int]]:
        """Its month-days as ``month * 100 + day`` ranges, inclusive; a wrap gives two."""
        lo, hi = _md(self.start), _md(self.end)
        return [(lo, hi)] if lo <= hi else [(lo, 1231), (101, hi)]


@dataclass(frozen=True)
class Tariff:
    """A whole tariff file, checked."""

    key: str  # what the site wrote: a shipped name or a path
    origin: str  # the file it was read from
    name: str
    effective: str | None
    link: str | None
    schedules: tuple[Schedule, ...]


def _clock(us: int) -> str:
    minutes = us // 60_000_000
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _md(month_day: tuple[int, int]) -> int:
    return month_day[0] * 100 + month_day[1]


def shipped_names() -> list[str]:
    """The names a site may use for a shipped schedule."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def resolve(key: str, base_dir: Path | None) -> Path:
    """The file a site's ``tariff`` key names: a shipped name, else a path.

    A key with a ``/`` or ending in ``.json`` is a path, relative to ``base_dir`` (the
    sites file's directory) unless absolute.
    """
    if "/" not in key and not key.endswith(".json"):
        path = SHIPPED_DIR / f"{key}.json"
        if not path.is_file():
            raise TariffError(
                f"tariff {key!r} is not a shipped schedule (shipped: {', '.join(shipped_names())})",
                hint='name a shipped one or give a path to a schedule JSON ("./my_tariff.json")',
            )
        return path
    path = Path(key).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _month_day(text: object, where: str) -> tuple[int, int]:
    parts = text.split("-") if isinstance(text, str) else []
    try:
        month, day = (int(p) for p in parts)
        date(_CHECK_YEAR, month, day)
    except (TypeError, ValueError):
        raise TariffError(f'{where} must be a month-day like "06-01", not {text!r}') from None
    return month, day


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TariffError(f"{where} must be a finite number, not {value!r}")
    return float(value)


def _start_us(hour: float, where: str) -> int:
    """A period's start hour as µs after midnight, exactly as the file writes it (8.5 = 08:30)."""
    if not 0 <= hour < 24:
        raise TariffError(f"{where}: a period start must be an hour in [0, 24), not {hour!r}")
    try:
        us = Decimal(repr(hour)) * HOUR_US
    except InvalidOperation:  # pragma: no cover - a finite float always converts
        raise TariffError(f"{where}: period start {hour!r} is not a number") from None
    # a start between two µs begins at the next one (acnportal compares the exact hour)
    return int(us.to_integral_value(rounding=ROUND_CEILING))


def _schedule(doc: object, where: str) -> Schedule:
    if not isinstance(doc, dict):
        raise TariffError(f"{where} must be an object")
    sid = doc.get("id")
    if not isinstance(sid, str) or not sid:
        raise TariffError(f"{where} needs a string id")
    where = f"{where} ({sid})"
    mask = doc.get("dow_mask")
    if mask not in DOW_MASKS:
        raise TariffError(f"{where}: dow_mask must be one of {', '.join(DOW_MASKS)}, not {mask!r}")
    times, prices = doc.get("times"), doc.get("tariffs")
    if not isinstance(times, list) or not isinstance(prices, list) or not times:
        raise TariffError(f"{where} needs lists times and tariffs")
    if len(times) != len(prices):
        raise TariffError(
            f"{where}: {len(times)} times but {len(prices)} tariffs; one price per period start"
        )
    starts = [_start_us(_number(t, f"{where} times"), where) for t in times]
    values = [_number(p, f"{where} tariffs") for p in prices]
    pairs = sorted(zip(starts, values, strict=True), key=lambda p: p[0])
    ends = [s for s, _ in pairs[1:]] + [DAY_US]
    periods = tuple(Period(s, e, v) for (s, v), e in zip(pairs, ends, strict=True))
    demand = doc.get("demand_charge")
    return Schedule(
        id=sid,
        start=_month_day(doc.get("effective_start"), f"{where} effective_start"),
        end=_month_day(doc.get("effective_end"), f"{where} effective_end"),
        dow_mask=str(mask),
        periods=periods,
        demand_charge_usd_per_kw=_number(demand, f"{where} demand_charge"),
    )


def parse_tariff(text: str, key: str, origin: str) -> Tariff:
    """A tariff from the text of its JSON file, its format and coverage checked.

    Raises :class:`TariffError` naming ``origin`` and what is wrong: for coverage, the
    first local instant (month-day, weekday, time) that no schedule or more than one claims.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TariffError(f"tariff file {origin}: not valid JSON: {e}") from e
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("schedule"), list)
        or not doc["schedule"]
    ):
        raise TariffError(f'tariff file {origin}: needs a non-empty list "schedule"')
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise TariffError(f'tariff file {origin}: needs a string "name"')
    try:
        schedules = tuple(_schedule(s, f"schedule[{i}]") for i, s in enumerate(doc["schedule"]))
        check_coverage(schedules)
    except TariffError as e:
        raise TariffError(f"tariff file {origin}: {e}") from None
    effective, link = doc.get("effective"), doc.get("link")
    return Tariff(
        key=key,
        origin=origin,
        name=name,
        effective=effective if isinstance(effective, str) else None,
        link=link if isinstance(link, str) else None,
        schedules=schedules,
    )


def check_coverage(schedules: tuple[Schedule, ...]) -> None:
    """Refuse the first local instant that not exactly one schedule and one period claims.

    Instants are taken in calendar order (01-01 first) and, for each month-day, Monday to
    Sunday, then by time of day: the error names the earliest one a reader can look up.
    """
    day = date(_CHECK_YEAR, 1, 1)
    while day.year == _CHECK_YEAR:
        # the same month-day on each weekday: the schedules ignore the year
        for weekday in range(1, 8):
            claim = [s for s in schedules if _claims(s, day, weekday)]
            if len(claim) != 1:
                ids = ", ".join(s.id for s in claim)
                what = f"{len(claim)} schedules ({ids})" if claim else "no schedule"
                raise TariffError(
                    f"local time {_instant(day, weekday, 0)} is claimed by {what}; "
                    "every local instant needs exactly one"
                )
            _check_periods(claim[0], day, weekday)
        day += timedelta(days=1)


def _claims(s: Schedule, day: date, isodow: int) -> bool:
    md = _md((day.month, day.day))
    first, last = s.isodow
    return first <= isodow <= last and any(lo <= md <= hi for lo, hi in s.month_day_ranges())


def _instant(day: date, isodow: int, us: int) -> str:
    """``MM-DD HH:MM (a Weekday)``: a local instant as the schedules see it (no year)."""
    return f"{day:%m-%d} {_clock(us)} (a {_WEEKDAY[isodow - 1]})"


def _check_periods(s: Schedule, day: date, isodow: int) -> None:
    first = s.periods[0]
    if first.start_us != 0:
        raise TariffError(
            f"local time {_instant(day, isodow, 0)} is in no period of schedule {s.id} "
            f"(its first starts at {_clock(first.start_us)}); times must start at 0"
        )
    for a, b in zip(s.periods, s.periods[1:], strict=False):
        if a.start_us == b.start_us:
            raise TariffError(
                f"local time {_instant(day, isodow, a.start_us)} starts 2 periods of schedule "
                f"{s.id}; every local instant needs exactly one"
            )


def read_tariff(
    key: str, base_dir: Path | None, read: Callable[[Path], str] | None = None
) -> Tariff:
    """The checked tariff a site's ``tariff`` key names (``read`` reads a path; default local)."""
    path = resolve(key, base_dir)
    reader = read or (lambda p: p.read_text(encoding="utf-8"))
    try:
        text = reader(path)
    except (OSError, UnicodeDecodeError) as e:
        raise TariffError(f"tariff file {path} cannot be read: {e.__class__.__name__}: {e}") from e
    return parse_tariff(text, key, str(path))
