"""What the report shows, read from the ``report_*`` views (``sql/report/``) into small values.

Each view is read once, filtered to ``[start, end)`` at its own grain, where filtering
after the view's SQL is the same as filtering the marts before it: sessions by
``session_start``, load by ``interval_start`` (15-minute rows), per-day and per-month rows by
the local days and months the range touches. Only the bounds are parameters; no data enters
SQL text. What is left here folds those rows: counts and sums per day, each site's peak, and
the load chart's trim and coarser buckets. The telemetry span is the one aggregate in SQL
here, ``min``/``max`` over the staging view ``ct_response``: no grain makes a bound exact to
the sample a filter, and it keeps the span in a catalog built before the report views.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

# the widest range DuckDB's timestamptz holds comfortably: "no bound"
_MIN = datetime(1900, 1, 1, tzinfo=UTC)
_MAX = datetime(9999, 1, 1, tzinfo=UTC)
# more points than this in the load chart and it is bucketed coarser (peaks kept)
MAX_LOAD_POINTS = 6000
# bucket, its minutes, and the report_site_load column holding each interval's bucket
_BUCKETS: tuple[tuple[str, int, str], ...] = (
    ("15 minutes", 15, "bucket_15min_local"),
    ("1 hour", 60, "bucket_1h_local"),
    ("1 day", 1440, "bucket_1d_local"),
)


@dataclass(frozen=True)
class SitePeak:
    """The highest 15-minute demand of one site in the range."""

    acc_id: str
    peak_demand_kw: float
    peak_interval_start: datetime
    # the same instant in the site's zone (sites.toml), naive wall time; UTC without a zone
    peak_interval_start_local: datetime | None = None


@dataclass
class ReportData:
    """Everything the page shows; rows are plain dicts ready for a Vega-Lite ``values``."""

    start: datetime | None
    end: datetime | None
    first_time: datetime | None = None
    last_time: datetime | None = None
    sessions: int = 0
    energy_kwh: float = 0.0
    peaks: list[SitePeak] = field(default_factory=list)
    daily_energy: list[dict[str, Any]] = field(default_factory=list)
    sessions_per_day: list[dict[str, Any]] = field(default_factory=list)
    site_load: list[dict[str, Any]] = field(default_factory=list)
    load_bucket: str = "15 minutes"
    session_stats: list[dict[str, Any]] = field(default_factory=list)
    utilization: list[dict[str, Any]] = field(default_factory=list)
    monthly: list[dict[str, Any]] = field(default_factory=list)
    # the catalog's sites table (sites.toml): acc_id, name, tz
    sites: list[dict[str, Any]] = field(default_factory=list)
    missing_views: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the range holds no telemetry and no session."""
        return self.first_time is None and self.sessions == 0


def _utc(t: datetime | None, default: datetime) -> datetime:
    if t is None:
        return default
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _wall(t: Any) -> str | None:
    """A timestamp as naive ISO wall time: Vega parses it as-is, whatever the renderer's zone."""
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.replace(tzinfo=None).isoformat(timespec="seconds")
    if isinstance(t, date):
        return f"{t.isoformat()}T00:00:00"
    return str(t)


def _nulls_last(v: Hashable) -> tuple[int, Hashable]:
    """A sort key putting None after every value, as DuckDB's ``order by`` does."""
    return (1, 0) if v is None else (0, v)


class _Q:
    """A connection plus the range's parameters; remembers views that are not there."""

    def __init__(self, con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
        self.con = con
        last_day = (end - timedelta(microseconds=1)).date() if end < _MAX else date(9998, 12, 31)
        start_day = start.date()
        self.params: dict[str, Any] = {
            "start": start,
            "end": end,
            "start_day": start_day,
            "start_month": start_day.replace(day=1),
            "end_day": last_day + timedelta(days=1),
        }
        self.missing: list[str] = []

    def rows(self, view: str, sql: str) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts; a missing view is remembered and gives no rows."""
        try:
            used = set(re.findall(r"\$(\w+)", sql))
            cur = self.con.execute(sql, {k: v for k, v in self.params.items() if k in used})
        except duckdb.CatalogException:
            # a catalog built before this view existed: the section says so instead of failing
            if view not in self.missing:
                self.missing.append(view)
            return []
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# (view, its columns the report reads, the range filter, the order): each read exactly once
_READS: dict[str, tuple[str, str, str, str]] = {
    "sessions": (
        "report_sessions",
        "day_local, acc_id, duration_h, energy_kwh, cut",
        "session_start >= $start and session_start < $end",
        "session_start, evse_address",
    ),
    "site_load": (
        "report_site_load",
        "acc_id, interval_start, interval_start_local, day_local, month_start_local, "
        "bucket_15min_local, "
        "bucket_1h_local, bucket_1d_local, has_load, demand_kw, energy_kwh",
        "interval_start >= $start and interval_start < $end",
        "acc_id, interval_start",
    ),
    "utilization": (
        "report_evse_utilization",
        "evse_address, day_local, plugged_hours, charging_hours",
        "day_local >= $start_day and day_local < $end_day",
        "all",
    ),
    "monthly": (
        "report_monthly_peak",
        "acc_id, month_start_local, peak_demand_kw, peak_interval_start, "
        "target_peak_power_kw, excess_kw, over_target",
        "month_start_local >= $start_month and month_start_local < $end_day",
        "acc_id, month_start_local",
    ),
}


def _read(q: _Q, key: str) -> list[dict[str, Any]]:
    view, columns, where, order = _READS[key]
    return q.rows(view, f"select {columns} from {view} where {where} order by {order}")


def load(
    con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None
) -> ReportData:
    """Query every number and chart series of the report over ``[start, end)``.

    Only reads: each ``report_*`` view once, ``ct_response`` for the span of samples, and
    the catalog's ``sites`` table for the names and zones the page shows.
    """
    s, e = _utc(start, _MIN), _utc(end, _MAX)
    q = _Q(con, s, e)
    data = ReportData(start=start and s, end=end and e)
    span = q.rows(
        "ct_response",
        "select min(time) as first_time, max(time) as last_time from ct_response "
        "where time >= $start and time < $end",
    )
    if span:
        data.first_time, data.last_time = span[0]["first_time"], span[0]["last_time"]

    sessions = _read(q, "sessions")
    data.sessions = len(sessions)
    per_day = Counter((r["day_local"], r["acc_id"]) for r in sessions)
    data.sessions_per_day = [
        {"day": _wall(day), "acc_id": acc_id, "sessions": n}
        for (day, acc_id), n in sorted(
            per_day.items(), key=lambda kv: (_nulls_last(kv[0][0]), _nulls_last(kv[0][1]))
        )
    ]
    data.session_stats = [
        {"duration_h": r["duration_h"], "energy_kwh": r["energy_kwh"], "cut": bool(r["cut"])}
        for r in sessions
    ]

    grid = _read(q, "site_load")
    loaded = [r for r in grid if r["has_load"]]
    data.energy_kwh = math.fsum(r["energy_kwh"] for r in loaded if r["energy_kwh"] is not None)
    data.peaks = _peaks(loaded)
    data.daily_energy = _daily_energy(loaded)
    data.utilization = [
        {
            "evse_address": r["evse_address"],
            "day": _wall(r["day_local"]),
            "plugged_hours": r["plugged_hours"],
            "charging_hours": r["charging_hours"],
        }
        for r in _read(q, "utilization")
    ]
    data.monthly = _read(q, "monthly")
    data.sites = q.rows("sites", "select acc_id, name, tz from sites order by acc_id")
    data.load_bucket, data.site_load = _site_load(grid, data.monthly)
    data.missing_views = q.missing
    return data


def _peaks(loaded: Iterable[dict[str, Any]]) -> list[SitePeak]:
    """Each site's highest 15-minute demand; a tie goes to the earliest interval."""
    best: dict[str | None, dict[str, Any]] = {}
    for r in loaded:
        if r["demand_kw"] is None:
            continue
        top = best.get(r["acc_id"])
        if top is None or (-r["demand_kw"], r["interval_start"]) < (
            -top["demand_kw"],
            top["interval_start"],
        ):
            best[r["acc_id"]] = r
    return [
        SitePeak(
            str(acc_id), float(r["demand_kw"]), r["interval_start"], r.get("interval_start_local")
        )
        for acc_id, r in sorted(best.items(), key=lambda kv: _nulls_last(kv[0]))
    ]


def _daily_energy(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Energy per site and local day."""
    days: dict[tuple[Any, Any], list[float]] = {}
    for r in loaded:
        kwh = days.setdefault((r["day_local"], r["acc_id"]), [])
        if r["energy_kwh"] is not None:
            kwh.append(r["energy_kwh"])
    return [
        {"day": _wall(day), "acc_id": acc_id, "energy_kwh": math.fsum(kwh) if kwh else None}
        for (day, acc_id), kwh in sorted(
            days.items(), key=lambda kv: (_nulls_last(kv[0][0]), _nulls_last(kv[0][1]))
        )
    ]


def _site_load(
    grid: list[dict[str, Any]], monthly: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """15-minute demand with the month's target; coarser buckets (max kept) on long ranges.

    ``grid`` is report_site_load in the range, ordered by site and interval. Each site keeps
    the intervals from its first to its last with load in the range (0 kW between, where
    nobody was plugged in: the chart draws steps, and a step would hold across a gap).
    """
    kept: list[dict[str, Any]] = []
    site: list[dict[str, Any]] = []
    for i, r in enumerate(grid):
        site.append(r)
        if i + 1 == len(grid) or grid[i + 1]["acc_id"] != r["acc_id"]:
            with_load = [j for j, x in enumerate(site) if x["has_load"]]
            if with_load:
                kept.extend(site[with_load[0] : with_load[-1] + 1])
            site = []
    bucket, column = _BUCKETS[-1][0], _BUCKETS[-1][2]
    for name, minutes, col in _BUCKETS:
        if len(kept) * 15 / minutes <= MAX_LOAD_POINTS:
            bucket, column = name, col
            break
    # the month's target as the report's monthly table shows it (the months the range touches)
    targets = {
        (m["acc_id"], m["month_start_local"]): m["target_peak_power_kw"]
        for m in monthly
        if m["acc_id"] is not None
    }
    points: dict[tuple[Any, Any], list[Any]] = {}
    for r in kept:
        target = targets.get((r["acc_id"], r["month_start_local"]))
        point = points.setdefault((r["acc_id"], r[column]), [r["demand_kw"], target])
        point[0] = max(point[0], r["demand_kw"])
        if target is not None and (point[1] is None or target > point[1]):
            point[1] = target
    return bucket, [
        {"t": _wall(t), "acc_id": acc_id, "demand_kw": demand, "target_kw": target}
        for (acc_id, t), (demand, target) in sorted(
            points.items(), key=lambda kv: (_nulls_last(kv[0][0]), kv[0][1])
        )
    ]
