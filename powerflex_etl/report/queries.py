"""What the report shows, read from the lake's views (read-only) into small Python values.

Every query is filtered to ``[start, end)`` on the view's own time column: sessions by
``session_start``, load by ``interval_start``, telemetry by ``time``; per-day views by the
local days that range touches. Only the bounds are parameters; no data enters SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

# the widest range DuckDB's timestamptz holds comfortably: "no bound"
_MIN = datetime(1900, 1, 1, tzinfo=UTC)
_MAX = datetime(9999, 1, 1, tzinfo=UTC)
# more points than this in the load chart and it is bucketed coarser (peaks kept)
MAX_LOAD_POINTS = 6000
_BUCKETS: tuple[tuple[str, int], ...] = (("15 minutes", 15), ("1 hour", 60), ("1 day", 1440))


@dataclass(frozen=True)
class SitePeak:
    """The highest 15-minute demand of one site in the range."""

    acc_id: str
    peak_demand_kw: float
    peak_interval_start: datetime


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


class _Q:
    """A connection plus the range's parameters; remembers views that are not there."""

    def __init__(self, con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
        self.con = con
        last_day = (end - timedelta(microseconds=1)).date() if end < _MAX else date(9998, 12, 31)
        self.params: dict[str, Any] = {
            "start": start,
            "end": end,
            "start_day": start.date(),
            "end_day": last_day + timedelta(days=1),
        }
        self.missing: list[str] = []

    def run(self, view: str, sql: str) -> None:
        """Execute a statement; a missing view is remembered, not raised."""
        self.rows(view, sql)

    def rows(self, view: str, sql: str) -> list[dict[str, Any]]:
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


# each mart is evaluated once over the range into a temporary table (the marts recompute
# from Parquet on every query); every number and series is then read from these
_SNAPSHOTS: tuple[tuple[str, str, str], ...] = (
    ("charging_sessions", "_report_sessions", "session_start >= $start and session_start < $end"),
    ("site_load_15min", "_report_load", "interval_start >= $start and interval_start < $end"),
    ("evse_utilization", "_report_util", "day_local >= $start_day and day_local < $end_day"),
    (
        "monthly_peak",
        "_report_monthly",
        "month_start_local >= date_trunc('month', $start_day) and month_start_local < $end_day",
    ),
)


def load(
    con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None
) -> ReportData:
    """Query every number and chart series of the report over ``[start, end)``.

    Creates temporary tables on ``con`` (dropped before returning); the catalog itself is
    only read.
    """
    s, e = _utc(start, _MIN), _utc(end, _MAX)
    q = _Q(con, s, e)
    for view, table, where in _SNAPSHOTS:
        q.run(view, f"create or replace temp table {table} as select * from {view} where {where}")
    try:
        return _load(q, start and s, end and e)
    finally:
        for _view, table, _where in _SNAPSHOTS:
            con.execute(f"drop table if exists temp.{table}")


def _load(q: _Q, start: datetime | None, end: datetime | None) -> ReportData:
    data = ReportData(start=start, end=end)
    span = q.rows(
        "ct_response",
        "select min(time) as first_time, max(time) as last_time from ct_response "
        "where time >= $start and time < $end",
    )
    if span:
        data.first_time, data.last_time = span[0]["first_time"], span[0]["last_time"]

    head = q.rows("charging_sessions", "select count(*) as n from _report_sessions")
    data.sessions = int(head[0]["n"]) if head else 0
    energy = q.rows(
        "site_load_15min", "select coalesce(sum(energy_kwh), 0) as kwh from _report_load"
    )
    data.energy_kwh = float(energy[0]["kwh"]) if energy else 0.0
    data.peaks = [
        SitePeak(str(r["acc_id"]), float(r["peak"]), r["at"])
        for r in q.rows(
            "site_load_15min",
            "select acc_id, max(demand_kw) as peak, arg_max(interval_start, demand_kw) as at "
            "from _report_load where demand_kw is not null group by acc_id order by acc_id",
        )
    ]

    data.daily_energy = [
        {"day": _wall(r["day"]), "acc_id": r["acc_id"], "energy_kwh": r["energy_kwh"]}
        for r in q.rows(
            "site_load_15min",
            "select interval_start_local::date as day, acc_id, sum(energy_kwh) as energy_kwh "
            "from _report_load group by all order by all",
        )
    ]
    data.sessions_per_day = [
        {"day": _wall(r["day"]), "acc_id": r["acc_id"], "sessions": r["sessions"]}
        for r in q.rows(
            "charging_sessions",
            "select session_start_local::date as day, acc_id, count(*) as sessions "
            "from _report_sessions group by all order by all",
        )
    ]
    data.load_bucket, data.site_load = _site_load(q)
    data.session_stats = [
        {
            "duration_h": r["duration_h"],
            "energy_kwh": r["energy_kwh"],
            "cut": bool(r["cut"]),
        }
        for r in q.rows(
            "charging_sessions",
            "select epoch(session_end - session_start) / 3600.0 as duration_h, energy_kwh, "
            "coalesce(cut_at_start or cut_at_end, false) as cut "
            "from _report_sessions order by session_start, evse_address",
        )
    ]
    data.utilization = [
        {
            "evse_address": r["evse_address"],
            "day": _wall(r["day_local"]),
            "plugged_hours": r["plugged_hours"],
            "charging_hours": r["charging_hours"],
        }
        for r in q.rows(
            "evse_utilization",
            "select evse_address, day_local, plugged_hours, charging_hours from _report_util "
            "order by all",
        )
    ]
    data.monthly = q.rows(
        "monthly_peak",
        "select acc_id, month_start_local, peak_demand_kw, peak_interval_start, "
        "target_peak_power_kw, excess_kw, over_target from _report_monthly "
        "order by acc_id, month_start_local",
    )
    data.missing_views = q.missing
    return data


def _site_load(q: _Q) -> tuple[str, list[dict[str, Any]]]:
    """15-minute demand with the month's target; coarser buckets (max kept) on long ranges."""
    # points once the gaps are filled: every 15 minutes from each site's first to last interval
    count = q.rows(
        "site_load_15min",
        "select coalesce(sum(epoch(last - first) // 900 + 1), 0) as n from ("
        "  select min(interval_start) as first, max(interval_start) as last"
        "  from _report_load group by acc_id)",
    )
    n = int(count[0]["n"]) if count else 0
    bucket = _BUCKETS[-1][0]
    for name, minutes in _BUCKETS:
        if n * 15 / minutes <= MAX_LOAD_POINTS:
            bucket = name
            break
    # site_load_15min has no row where nobody was plugged in; the chart draws steps, so each
    # missing interval is filled with 0 kW here (else a step would hold across it)
    rows = q.rows(
        "monthly_peak",
        "with span as ("
        "  select acc_id, min(interval_start) as first, max(interval_start) as last"
        "  from _report_load group by acc_id"
        "), grid as ("
        "  select acc_id, unnest(generate_series(first, last, interval 15 minute))"
        "    as interval_start"
        "  from span"
        "), filled as ("
        "  select grid.acc_id, grid.interval_start,"
        "         coalesce(l.interval_start_local,"
        "                  timezone(coalesce(sites.tz, 'UTC'), grid.interval_start))"
        "           as interval_start_local,"
        "         coalesce(l.demand_kw, 0) as demand_kw"
        "  from grid"
        "  left join _report_load as l using (acc_id, interval_start)"
        "  left join sites on sites.acc_id = grid.acc_id"
        "), load as ("
        "  select acc_id, interval_start_local, demand_kw,"
        "         date_trunc('month', interval_start_local)::date as month_start_local"
        "  from filled"
        ") "
        f"select load.acc_id, time_bucket(interval '{bucket}', load.interval_start_local) as t,"
        " max(load.demand_kw) as demand_kw, max(targets.target_peak_power_kw) as target_kw "
        "from load left join _report_monthly as targets using (acc_id, month_start_local) "
        "group by all order by all",
    )
    return bucket, [
        {
            "t": _wall(r["t"]),
            "acc_id": r["acc_id"],
            "demand_kw": r["demand_kw"],
            "target_kw": r["target_kw"],
        }
        for r in rows
    ]
