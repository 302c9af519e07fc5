"""Golden tests of the 15-minute load marts, monthly peak, utilization and coverage."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from tests.marts.marts_harness import (
    connect,
    plug_in,
    query,
    sample,
    ts,
    unplugged,
    unplugged_run,
)

approx = pytest.approx
LA = [("03", "Garage", "America/Los_Angeles")]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def half_hour_at(evse: str, start: datetime, **fields: Any) -> list[dict[str, Any]]:
    """6.6 kW for 22.5 minutes from ``start`` (30 s samples), then unplugged."""
    return [
        *[
            sample(
                evse,
                start + timedelta(seconds=30 * i),
                charging_state="ADAPTIVE",
                power_kw=6.6,
                current_actual_a=31.7,
                pilot_actual_a=32.0,
                energy_delivered_kwh=6.6 * 30 * i / 3600,
                **fields,
            )
            for i in range(45)
        ],
        unplugged(evse, start + timedelta(seconds=30 * 45), **fields),
    ]


def test_demand_is_energy_over_the_interval_summed_over_evses() -> None:
    t0 = ts("2024-01-15 10:00")
    # two EVSEs at 6.6 kW for all of 10:00-10:15 and half of 10:15-10:30
    con = connect(half_hour_at("e1", t0) + half_hour_at("e2", t0))
    rows = query(con, "select * from site_load_15min order by interval_start")
    assert [r["interval_start"] for r in rows] == [t0, t0 + minutes(15)]
    full, half = rows
    assert full["demand_kw"] == approx(13.2)
    assert full["energy_kwh"] == approx(3.3)
    assert half["demand_kw"] == approx(6.6)
    assert half["energy_kwh"] == approx(1.65)
    assert (full["evse_count"], half["evse_count"]) == (2, 2)
    assert full["max_power_kw"] == approx(13.2)
    assert full["interval_start_local"] == datetime(2024, 1, 15, 10, 0)


def test_a_sample_straddling_a_boundary_is_split_between_intervals() -> None:
    t0 = ts("2024-01-15 10:14")
    rows = [
        sample("e1", t0, charging_state="ADAPTIVE", power_kw=6.0, energy_delivered_kwh=0.0),
        sample("e1", t0 + minutes(2), charging_state="ADAPTIVE", power_kw=6.0),
        unplugged("e1", t0 + minutes(4)),
    ]
    got = query(connect(rows), "select * from site_load_15min order by interval_start")
    # 10:14-10:18 at 6 kW: 1 minute in the first interval, 3 in the second
    assert [r["energy_kwh"] for r in got] == [approx(0.1), approx(0.3)]
    assert [r["demand_kw"] for r in got] == [approx(0.4), approx(1.2)]


def test_phase_loads_sum_to_the_site_load_without_double_counting() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = []
    for evse, phase in [("e1", "AB"), ("e2", "AB"), ("e3", "BC"), ("e4", "CA")]:
        rows += [
            *plug_in(evse, t0, 15, phases=phase),
            unplugged(evse, t0 + minutes(15), phases=phase),
        ]
    con = connect(rows)
    phases = query(
        con,
        "select phases, demand_kw, evse_count from phase_load_15min"
        " where interval_start = '2024-01-15 10:00:00+00' order by phases",
    )
    assert [(p["phases"], p["demand_kw"], p["evse_count"]) for p in phases] == [
        ("AB", approx(13.2), 2),
        ("BC", approx(6.6), 1),
        ("CA", approx(6.6), 1),
    ]
    (site,) = query(
        con, "select demand_kw from site_load_15min where interval_start = '2024-01-15 10:00:00+00'"
    )
    assert site["demand_kw"] == approx(26.4)


def test_monthly_peak_against_the_target_and_without_one() -> None:
    rows = []
    # site 03: 13.2 kW peak on Jan 20 (target 10); site 04: 6.6 kW (no target known)
    for day, evses in [("2024-01-10 10:00", ["a1"]), ("2024-01-20 18:00", ["a1", "a2"])]:
        for evse in evses:
            rows += [*plug_in(evse, ts(day), 15), unplugged(evse, ts(day) + minutes(15))]
    rows += plug_in("b1", ts("2024-01-05 08:00"), 15, acc_id="04")
    rows.append(unplugged("b1", ts("2024-01-05 08:15"), acc_id="04"))
    targets = [
        {"acc_id": "03", "month": "Jan", "month_num": 1, "target_peak_power_kw": 10.0},
        {"acc_id": "03", "month": "Feb", "month_num": 2, "target_peak_power_kw": 5.0},
    ]
    got = query(connect(rows, targets=targets), "select * from monthly_peak order by acc_id")
    site3, site4 = got
    assert site3["month_start_local"] == date(2024, 1, 1)
    assert site3["month_num"] == 1
    assert site3["peak_demand_kw"] == approx(13.2)
    assert site3["peak_interval_start"] == ts("2024-01-20 18:00")
    assert site3["target_peak_power_kw"] == 10.0
    assert site3["excess_kw"] == approx(3.2)
    assert site3["over_target"] is True
    assert site4["peak_demand_kw"] == approx(6.6)
    assert (site4["target_peak_power_kw"], site4["excess_kw"], site4["over_target"]) == (
        None,
        None,
        None,
    )


def test_monthly_peak_under_its_target_has_no_excess() -> None:
    t0 = ts("2024-02-10 10:00")
    rows = [*plug_in("a1", t0, 15), unplugged("a1", t0 + minutes(15))]
    targets = [{"acc_id": "03", "month": "Feb", "month_num": 2, "target_peak_power_kw": 20.0}]
    (m,) = query(connect(rows, targets=targets), "select * from monthly_peak")
    assert (m["excess_kw"], m["over_target"]) == (0.0, False)


def test_billing_month_is_local_time() -> None:
    # 2024-04-01 06:30 UTC is 2024-03-31 23:30 PDT: March's bill
    t0 = ts("2024-04-01 06:30")
    rows = [*plug_in("a1", t0, 15), unplugged("a1", t0 + minutes(15))]
    (m,) = query(connect(rows, sites=LA), "select * from monthly_peak")
    assert (m["month_start_local"], m["month_num"]) == (date(2024, 3, 1), 3)
    assert m["peak_interval_start"] == t0
    assert m["peak_interval_start_local"] == datetime(2024, 3, 31, 23, 30)


def _plugged_all_day(start: datetime, hours: int) -> list[dict[str, Any]]:
    # plugged and idle (car full) for hours, 5-minute samples, then unplugged
    rows = plug_in("e1", start, 0, hours * 60, period_s=300, energy_start_kwh=0.0)
    return rows + unplugged_run("e1", start + timedelta(hours=hours), 10, period_s=300)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # spring forward: 2024-03-10 has 23 local hours (08:00 UTC to 07:00 UTC next day)
        (
            ts("2024-03-10 06:00"),
            [(date(2024, 3, 9), 2.0), (date(2024, 3, 10), 23.0), (date(2024, 3, 11), 2.0)],
        ),
        # fall back: 2024-11-03 has 25 local hours (07:00 UTC to 08:00 UTC next day)
        (
            ts("2024-11-03 06:00"),
            [(date(2024, 11, 2), 1.0), (date(2024, 11, 3), 25.0), (date(2024, 11, 4), 1.0)],
        ),
    ],
    ids=["2024-03-10", "2024-11-03"],
)
def test_utilization_days_follow_local_time_across_dst(
    start: datetime, expected: list[tuple[date, float]]
) -> None:
    rows = _plugged_all_day(start, 27)
    got = query(connect(rows, sites=LA), "select * from evse_utilization order by day_local")
    assert [(d["day_local"], d["plugged_hours"]) for d in got] == [
        (day, approx(hours)) for day, hours in expected
    ]
    assert [d["sessions"] for d in got] == [1, 0, 0]
    assert all(d["charging_hours"] == 0 for d in got)


def test_fall_back_repeats_local_interval_starts_but_not_utc_ones() -> None:
    t0 = ts("2024-11-03 08:00")
    rows = [*plug_in("e1", t0, 120), unplugged("e1", t0 + minutes(120))]
    got = query(
        connect(rows, sites=LA),
        "select interval_start, interval_start_local from site_load_15min"
        " where interval_start in ('2024-11-03 08:15:00+00', '2024-11-03 09:15:00+00')"
        " order by interval_start",
    )
    # 01:15 PDT then 01:15 PST: two billing intervals, one wall-clock label
    assert [r["interval_start_local"] for r in got] == [datetime(2024, 11, 3, 1, 15)] * 2


def test_utilization_counts_energy_and_charging_hours() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0 - minutes(2), 2),
        *plug_in("e1", t0, 60, 30),
        *plug_in("e1", t0 + minutes(90), 30, 30),
        *unplugged_run("e1", t0 + minutes(150), 2),
    ]
    (d,) = query(connect(rows), "select * from evse_utilization")
    assert d["day_local"] == date(2024, 1, 15)
    assert d["plugged_hours"] == approx(2.5)
    assert d["charging_hours"] == approx(1.5)
    assert d["energy_kwh"] == approx(9.9)
    assert d["sessions"] == 2


def test_coverage_counts_samples_per_measurement_and_hour() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = plug_in("e1", t0, 60, 30)
    request = [{"evse_address": "e1", "time": t0 + minutes(m)} for m in (5, 10, 70)]
    got = query(
        connect(rows, evse_request=request),
        "select * from coverage_hourly order by measurement, hour_start",
    )
    assert [
        (r["measurement"], r["hour_start"], r["samples"], r["first_time"], r["last_time"])
        for r in got
    ] == [
        ("ct_response", t0, 60, t0, t0 + minutes(59)),
        ("ct_response", t0 + minutes(60), 30, t0 + minutes(60), t0 + minutes(89)),
        ("evse_request", t0, 2, t0 + minutes(5), t0 + minutes(10)),
        ("evse_request", t0 + minutes(60), 1, t0 + minutes(70), t0 + minutes(70)),
    ]


@pytest.mark.parametrize(
    ("end", "sites"),
    [
        (ts("2024-01-16 00:00"), []),  # unplugged exactly at UTC midnight
        (ts("2024-01-16 08:00"), LA),  # ... exactly at local (PST) midnight
        (ts("2024-01-15 18:00"), []),  # ... exactly on a 6-hour slot boundary
    ],
    ids=["utc-midnight", "local-midnight", "slot-boundary"],
)
def test_no_row_for_the_interval_or_day_after_the_last_sample(
    end: datetime, sites: list[tuple[str, str, str]]
) -> None:
    start = end - minutes(45)
    rows = [
        *unplugged_run("e1", start - minutes(2), 2),
        *plug_in("e1", start, charge_minutes=30, idle_minutes=15),
        unplugged("e1", end),
    ]
    con = connect(rows, sites=sites)
    load = query(con, "select * from site_load_15min order by interval_start")
    assert [r["interval_start"] for r in load] == [start + minutes(15 * i) for i in range(3)]
    assert [r["energy_kwh"] for r in load] == [approx(1.65), approx(1.65), approx(0.0)]
    evse = query(con, "select * from evse_load_15min order by interval_start")
    assert [r["plugged_seconds"] for r in evse] == [approx(900)] * 3
    (day,) = query(con, "select * from evse_utilization")
    assert (day["plugged_hours"], day["charging_hours"], day["sessions"]) == (
        approx(0.75),
        approx(0.5),
        1,
    )


def test_no_row_after_the_last_sample_when_the_data_ends_mid_session() -> None:
    # the lake's last sample is 23:59 and the car is still plugged: nothing is held past it
    start = ts("2024-01-15 23:15")
    rows = [*unplugged_run("e1", start - minutes(2), 2), *plug_in("e1", start, 30, 15)]
    con = connect(rows)
    load = query(con, "select * from site_load_15min order by interval_start")
    assert [r["interval_start"] for r in load] == [start + minutes(15 * i) for i in range(3)]
    assert load[-1]["interval_start"] == ts("2024-01-15 23:45")
    (day,) = query(con, "select * from evse_utilization")
    assert day["day_local"] == date(2024, 1, 15)
    assert day["plugged_hours"] == approx(44 / 60)


def test_spring_forward_skips_an_hour_of_local_interval_starts() -> None:
    # 2024-03-10: 02:00 PST jumps to 03:00 PDT, at 10:00 UTC
    t0 = ts("2024-03-10 09:30")
    rows = [*plug_in("e1", t0, 60), unplugged("e1", t0 + minutes(60))]
    got = query(
        connect(rows, sites=LA),
        "select interval_start, interval_start_local from site_load_15min order by 1",
    )
    assert [r["interval_start_local"] for r in got] == [
        datetime(2024, 3, 10, 1, 30),
        datetime(2024, 3, 10, 1, 45),
        datetime(2024, 3, 10, 3, 0),
        datetime(2024, 3, 10, 3, 15),
    ]
