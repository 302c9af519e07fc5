"""Golden tests of site_kpis (the portal's KPIs per local day and month) and load_duration.

Two EVSEs of one Los Angeles site report every minute; e2 goes silent for two hours on the
first day and for the whole second one. Every figure below is worked out by hand.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.marts.marts_harness import connect, plug_in, query, unplugged_run

approx = pytest.approx
LA = ZoneInfo("America/Los_Angeles")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LA).astimezone(ZoneInfo("UTC"))


def timeline(
    evse: str, start: str, end: str, sessions: list[tuple[str, int, int, float]]
) -> list[dict[str, Any]]:
    """One sample a minute from ``start`` to ``end`` (local): unplugged but for ``sessions``.

    A session is (local start, charging minutes, idle minutes, kW).
    """
    rows: list[dict[str, Any]] = []
    t = local(start)
    for s_start, charge, idle, kw in sorted(sessions):
        s = local(s_start)
        rows += unplugged_run(evse, t, int((s - t).total_seconds() // 60))
        rows += plug_in(evse, s, charge, idle, power_kw=kw)
        t = s + timedelta(minutes=charge + idle)
    return rows + unplugged_run(evse, t, int((local(end) - t).total_seconds() // 60))


@pytest.fixture(scope="module")
def site():
    e1 = timeline(
        "e1",
        "2019-07-01 00:00",
        "2019-07-02 10:00",
        [
            ("2019-07-01 10:00", 90, 30, 6.6),
            ("2019-07-01 14:00", 5, 0, 6.0),  # 0.5 kWh: a microsession
            ("2019-07-02 08:00", 60, 0, 4.0),
        ],
    )
    e2 = [
        r
        # silent 15:00-17:00 UTC (08:00-10:00 local) and after local midnight
        for r in timeline(
            "e2", "2019-07-01 00:00", "2019-07-02 00:00", [("2019-07-01 12:00", 60, 0, 7.2)]
        )
        if not local("2019-07-01 08:00") <= r["time"] < local("2019-07-01 10:00")
    ]
    return connect(e1 + e2, sites=[("03", "Garage", "America/Los_Angeles")])


def kpis(con, grain: str) -> dict[date, dict[str, Any]]:
    rows = query(
        con, f"select * from site_kpis where grain = '{grain}' order by period_start_local"
    )
    assert {r["acc_id"] for r in rows} == {"03"}
    return {r["period_start_local"]: r for r in rows}


def test_daily_kpis(site) -> None:
    days = kpis(site, "day")
    assert sorted(days) == [date(2019, 7, 1), date(2019, 7, 2)]
    one, two = days[date(2019, 7, 1)], days[date(2019, 7, 2)]
    assert one["evse_count"] == 2
    assert (one["sessions"], one["microsessions"]) == (3, 1)
    # 24 local hours for each EVSE; e2 sent nothing in two of them
    assert one["evse_hours"] == 48
    assert one["hours_without_telemetry"] == 2
    assert one["hours_without_telemetry_per_evse"] == approx(1.0)
    assert one["uptime_pct"] == approx(100 * 46 / 48)
    # plugged: e1 2 h + 5 min, e2 1 h
    assert one["plugged_hours"] == approx(3 + 5 / 60)
    assert one["utilization_pct"] == approx(100 * (3 + 5 / 60) / 48)
    assert one["mean_charging_minutes"] == approx((90 + 5 + 60) / 3)
    assert one["mean_idle_minutes"] == approx(30 / 3)
    assert one["energy_kwh"] == approx(6.6 * 1.5 + 0.5 + 7.2)
    # the hour with the most energy: e2's 7.2 kWh at noon (e1's 10:00 hour has 6.6)
    assert one["peak_hour_start_local"] == datetime(2019, 7, 1, 12, 0)
    assert one["peak_hour_kw"] == approx(7.2)
    # day two: the site's telemetry ends in its 09:00 hour; e2 sent nothing all day
    assert two["evse_hours"] == 20
    assert (two["hours_without_telemetry"], two["uptime_pct"]) == (10, approx(50.0))
    assert (two["sessions"], two["microsessions"]) == (1, 0)
    assert two["utilization_pct"] == approx(100 * 1 / 20)
    assert two["peak_hour_start_local"] == datetime(2019, 7, 2, 8, 0)
    assert two["peak_hour_kw"] == approx(4.0)


def test_monthly_kpis_aggregate_the_sessions_and_hours_not_the_daily_figures(site) -> None:
    (july,) = kpis(site, "month").values()
    assert july["period_start_local"] == date(2019, 7, 1)
    assert (july["sessions"], july["microsessions"]) == (4, 1)
    assert july["evse_hours"] == 68
    assert july["hours_without_telemetry"] == 12
    assert july["hours_without_telemetry_per_evse"] == approx(6.0)
    assert july["uptime_pct"] == approx(100 * 56 / 68)
    assert july["plugged_hours"] == approx(4 + 5 / 60)
    assert july["utilization_pct"] == approx(100 * (4 + 5 / 60) / 68)
    assert july["mean_charging_minutes"] == approx((90 + 5 + 60 + 60) / 4)
    assert july["mean_idle_minutes"] == approx(30 / 4)
    assert july["energy_kwh"] == approx(6.6 * 1.5 + 0.5 + 7.2 + 4.0)
    assert july["peak_hour_start_local"] == datetime(2019, 7, 1, 12, 0)


def test_load_duration_sorts_the_months_quarter_hours_with_zeros_between_loads(site) -> None:
    rows = query(site, "select * from load_duration order by rank")
    # 07-01 10:00 to 07-02 08:45 local: 23 hours of quarter hours, loaded or not
    assert len(rows) == 92
    assert [r["rank"] for r in rows] == list(range(1, 93))
    assert {r["month_start_local"] for r in rows} == {date(2019, 7, 1)}
    demands = [r["demand_kw"] for r in rows]
    assert (
        demands
        == [approx(7.2)] * 4 + [approx(6.6)] * 6 + [approx(4.0)] * 4 + [approx(2.0)] + [0] * 77
    )
    # ties share their hours at or above: the peak lasts an hour, 6.6 kW or more 2.5 hours
    assert [r["hours_at_or_above"] for r in rows[:15]] == [1.0] * 4 + [2.5] * 6 + [3.5] * 4 + [3.75]
    assert rows[-1]["hours_at_or_above"] == 23.0
    assert rows[4]["pct_of_peak"] == approx(100 * 6.6 / 7.2)
    # the earliest of tied intervals ranks first
    assert [r["interval_start_local"] for r in rows[:4]] == [
        datetime(2019, 7, 1, 12, m) for m in (0, 15, 30, 45)
    ]
