"""Golden tests of the cost views: energy_cost_15min, session_cost, monthly_bill.

Small known loads (4 kW for whole quarter hours: 1 kWh each) on real lakes, priced by the
shipped SCE TOU-EV-4 and by small hand-made schedules, in America/Los_Angeles: acnportal's
own test instants, period starts on and between hours (08:30), weekday against weekend, the
summer/winter boundary, local billing months and both DST changes. Expected prices come from
``tariff_reference.py`` (rules written from the rate sheet) or are written out by hand.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.marts.marts_harness import connect, plug_in, query, ts, unplugged
from tests.marts.tariff_reference import ACNPORTAL_CASES, tou_ev_4, tou_ev_4_series

approx = pytest.approx
LA = ZoneInfo("America/Los_Angeles")
SHIPPED = Path(__file__).resolve().parents[2] / "powerflex_etl" / "catalog" / "tariff_schedules"


def session(
    evse: str,
    start: datetime,
    minutes: int,
    power_kw: float = 4.0,
    period_s: int = 60,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Constant power from ``start`` (UTC) for ``minutes``, then an UNPLUGGED sample."""
    rows = plug_in(evse, start, minutes, power_kw=power_kw, period_s=period_s, **fields)
    return [*rows, unplugged(evse, start + timedelta(minutes=minutes), **fields)]


def local(text: str) -> datetime:
    """A UTC datetime from a Los Angeles wall-clock 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=LA).astimezone(ZoneInfo("UTC"))


def schedule_json(name: str, *schedules: dict[str, object]) -> str:
    return json.dumps({"name": name, "effective": "2019-01-01", "schedule": list(schedules)})


def all_year(sid: str, times: list[float], prices: list[float], demand: float, mask: str = "ALL"):
    return {
        "id": sid,
        "effective_start": "01-01",
        "effective_end": "12-31",
        "dow_mask": mask,
        "times": times,
        "tariffs": prices,
        "demand_charge": demand,
    }


def test_the_reference_rules_give_acnportals_own_test_cases() -> None:
    for start, length, minutes, expected in ACNPORTAL_CASES:
        assert tou_ev_4_series(start, length, minutes) == expected, start


# ---- SCE TOU-EV-4 on site 03 (Los Angeles); site 05 has no tariff -----------------------


@pytest.fixture(scope="module")
def tou4():
    rows = [
        # Monday 2019-07-01 07:00-13:00 PDT: off-peak, 08:00 mid-peak, 12:00 on-peak
        *session("e1", local("2019-07-01 07:00"), 360),
        # Friday 22:00 to Saturday 13:00 PDT: the weekend is off-peak all day
        *session("e1", local("2019-07-05 22:00"), 900),
        # Monday 2019-09-30 22:00 PDT to Tuesday 10-01 09:00: the season changes at midnight
        *session("e1", local("2019-09-30 22:00"), 660),
        # a second EVSE 12:00-14:00 PDT on 07-01 at 6 kW: July's peak is 10 kW at 12:00-13:00
        *session("e2", local("2019-07-01 12:00"), 120, power_kw=6.0),
        # another site, without a tariff
        *session("x1", ts("2019-07-01 12:00"), 60, acc_id="05"),
    ]
    return connect(
        rows,
        sites=[("03", "Garage", "America/Los_Angeles"), ("05", "Elsewhere", "UTC")],
        tariffs={"03": "sce_tou_ev_4_march_2019"},
        targets=[
            {"acc_id": "03", "month": "Jul", "month_num": 7, "target_peak_power_kw": 8.0},
            {"acc_id": "03", "month": "Oct", "month_num": 10, "target_peak_power_kw": 20.0},
        ],
    )


def test_every_interval_is_priced_by_the_rate_sheet_at_its_local_start(tou4) -> None:
    rows = query(
        tou4, "select * from energy_cost_15min where acc_id = '03' order by interval_start"
    )
    assert len(rows) == 24 + 60 + 44 + 4  # one row per loaded quarter hour (e2's overlap S1's)
    for r in rows:
        assert r["interval_start_local"] == r["interval_start"].astimezone(LA).replace(tzinfo=None)
        assert r["price_usd_per_kwh"] == tou_ev_4(r["interval_start_local"]), r["interval_start"]
        assert r["energy_cost_usd"] == approx(r["energy_kwh"] * r["price_usd_per_kwh"])


@pytest.mark.parametrize(
    ("at_local", "price", "period"),
    [
        ("2019-07-01 07:45", 0.05623, "Summer-Weekday 00:00-08:00"),
        ("2019-07-01 08:00", 0.0925, "Summer-Weekday 08:00-12:00"),  # a period starts at its hour
        ("2019-07-01 09:30", 0.0925, "Summer-Weekday 08:00-12:00"),
        ("2019-07-01 12:00", 0.26668, "Summer-Weekday 12:00-18:00"),
        ("2019-07-05 22:45", 0.0925, "Summer-Weekday 18:00-23:00"),  # Friday evening
        ("2019-07-05 23:00", 0.05623, "Summer-Weekday 23:00-24:00"),
        ("2019-07-06 12:00", 0.05623, "Summer-Weekend 00:00-24:00"),  # Saturday noon
        ("2019-09-30 23:45", 0.05623, "Summer-Weekday 23:00-24:00"),  # last summer interval
        ("2019-10-01 00:00", 0.06087, "Winter-Weekday 00:00-08:00"),  # first winter one
        ("2019-10-01 08:00", 0.07492, "Winter-Weekday 08:00-12:00"),
    ],
)
def test_prices_at_acnportals_instants_and_boundaries(tou4, at_local, price, period) -> None:
    (row,) = query(
        tou4,
        "select * from energy_cost_15min where acc_id = '03' and interval_start_local = "
        f"timestamp '{at_local}'",
    )
    assert (row["price_usd_per_kwh"], row["tou_period"]) == (price, period)
    assert row["energy_kwh"] >= 1.0 - 1e-9
    assert row["energy_cost_usd"] == approx(row["energy_kwh"] * price)


def test_a_site_without_a_tariff_has_its_load_but_no_price(tou4) -> None:
    rows = query(tou4, "select * from energy_cost_15min where acc_id = '05'")
    assert len(rows) == 4
    assert {(r["price_usd_per_kwh"], r["energy_cost_usd"], r["tou_period"]) for r in rows} == {
        (None, None, None)
    }
    (bill,) = query(tou4, "select * from monthly_bill where acc_id = '05'")
    assert bill["energy_kwh"] == approx(4.0)
    assert bill["tariff_name"] is None
    assert bill["energy_charge_usd"] is None and bill["demand_charge_usd"] is None
    (cost,) = query(tou4, "select * from session_cost where acc_id = '05'")
    assert cost["energy_kwh"] == approx(4.0) and cost["energy_cost_usd"] is None


def test_monthly_bill_in_local_months_with_the_demand_charge_and_the_target(tou4) -> None:
    bills = {
        r["month_start_local"]: r
        for r in query(tou4, "select * from monthly_bill where acc_id = '03'")
    }
    assert sorted(bills) == [date(2019, 7, 1), date(2019, 9, 1), date(2019, 10, 1)]
    july, sept, october = bills[date(2019, 7, 1)], bills[date(2019, 9, 1)], bills[date(2019, 10, 1)]
    assert july["tariff_name"] == "SCE TOU-EV-4"
    # July: 24 + 60 + 12 kWh; 07:00-08:00 off, 08:00-12:00 mid, 12:00-13:00 on (4 kWh each
    # hour), the weekend session 1 h mid + 14 h off, e2's 12 kWh on-peak
    july_usd = 4 * 0.05623 + 16 * 0.0925 + 4 * 0.26668 + 4 * 0.0925 + 56 * 0.05623 + 12 * 0.26668
    assert july["energy_kwh"] == approx(96.0)
    assert july["energy_charge_usd"] == approx(july_usd)
    assert july["peak_demand_kw"] == approx(10.0)
    assert july["demand_charge_usd_per_kw"] == 15.51
    assert july["demand_charge_usd"] == approx(155.1)
    assert july["total_usd"] == approx(july_usd + 155.1)
    # DCM held to 8 kW would have billed 8 kW
    assert july["target_peak_power_kw"] == 8.0
    assert july["demand_charge_at_target_usd"] == approx(8 * 15.51)
    # the two hours before local midnight of 09-30 are September's: summer mid, then off
    assert sept["energy_kwh"] == approx(8.0)
    assert sept["energy_charge_usd"] == approx(4 * 0.0925 + 4 * 0.05623)
    assert sept["target_peak_power_kw"] is None and sept["demand_charge_at_target_usd"] is None
    # October: winter off-peak until 08:00, then mid-peak; a peak under the target stays
    assert october["energy_kwh"] == approx(36.0)
    assert october["energy_charge_usd"] == approx(32 * 0.06087 + 4 * 0.07492)
    assert october["peak_demand_kw"] == approx(4.0)
    assert october["demand_charge_at_target_usd"] == approx(october["demand_charge_usd"])
    # the bill's peak is monthly_peak's
    peaks = query(
        tou4, "select month_start_local, peak_demand_kw from monthly_peak where acc_id = '03'"
    )
    assert {p["month_start_local"]: p["peak_demand_kw"] for p in peaks} == {
        m: b["peak_demand_kw"] for m, b in bills.items()
    }


def test_session_costs_price_their_own_quarter_hours(tou4) -> None:
    rows = {
        (r["evse_address"], r["session_start_local"]): r
        for r in query(tou4, "select * from session_cost where acc_id = '03'")
    }
    first = rows[("e1", datetime(2019, 7, 1, 7, 0))]
    assert first["energy_kwh"] == approx(24.0)
    assert first["energy_cost_usd"] == approx(4 * 0.05623 + 16 * 0.0925 + 4 * 0.26668)
    assert first["avg_price_usd_per_kwh"] == approx(first["energy_cost_usd"] / 24.0)
    on_peak = rows[("e2", datetime(2019, 7, 1, 12, 0))]
    assert on_peak["energy_cost_usd"] == approx(12 * 0.26668)
    assert on_peak["avg_price_usd_per_kwh"] == approx(0.26668)
    ids = query(tou4, "select session_id, session_start from charging_sessions where acc_id = '03'")
    assert {r["session_id"] for r in rows.values()} == {r["session_id"] for r in ids}


def test_session_costs_add_up_to_the_energy_charge(tou4) -> None:
    (sums,) = query(
        tou4,
        "select (select sum(energy_cost_usd) from session_cost where acc_id = '03') as sessions,"
        " (select sum(energy_charge_usd) from monthly_bill where acc_id = '03') as bills,"
        " (select sum(energy_cost_usd) from energy_cost_15min where acc_id = '03') as intervals",
    )
    assert sums["sessions"] == approx(sums["intervals"], rel=1e-12)
    assert sums["bills"] == approx(sums["intervals"], rel=1e-12)


def test_samples_straddling_quarter_hours_are_priced_where_their_energy_falls() -> None:
    # 70 s samples never land on a quarter hour: every sample across one spills into the next
    rows = [
        *session("e1", local("2019-07-01 11:31"), 58, period_s=70),
        *session("e2", local("2019-07-01 11:52"), 33, power_kw=7.0, period_s=70),
    ]
    con = connect(
        rows,
        sites=[("03", "Garage", "America/Los_Angeles")],
        tariffs={"03": "sce_tou_ev_4_march_2019"},
    )
    intervals = query(con, "select * from energy_cost_15min order by interval_start")
    assert {r["price_usd_per_kwh"] for r in intervals} == {0.0925, 0.26668}
    for r in intervals:
        assert r["price_usd_per_kwh"] == tou_ev_4(r["interval_start_local"])
    total = sum(r["energy_cost_usd"] for r in intervals)
    sessions = query(con, "select * from session_cost")
    assert len(sessions) == 2
    assert sum(s["energy_cost_usd"] for s in sessions) == approx(total, rel=1e-12)
    assert sum(s["energy_kwh"] for s in sessions) == approx(sum(r["energy_kwh"] for r in intervals))


# ---- hand-made schedules: fractional hours, DST, the demand charge's first day ------------


def _pge_fixed() -> str:
    """The shipped PG&E A-10 with its winter masks made WEEKDAYS/WEEKENDS (as their ids say)."""
    doc = json.loads((SHIPPED / "pge_a10_tou_aug_2019.json").read_text())
    doc["schedule"][2]["dow_mask"] = "WEEKDAYS"
    doc["schedule"][3]["dow_mask"] = "WEEKENDS"
    return json.dumps(doc)


def test_a_period_starting_between_hours_prices_from_its_quarter_hour() -> None:
    con = connect(
        [
            *session("e1", local("2019-07-01 08:00"), 60),
            *session("e1", local("2019-07-01 21:00"), 60),
        ],
        sites=[("03", "Garage", "America/Los_Angeles")],
        tariffs={"03": "tariffs/pge_a10_fixed.json"},
        files={"tariffs/pge_a10_fixed.json": _pge_fixed()},
    )
    got = {
        r["interval_start_local"].strftime("%H:%M"): r["price_usd_per_kwh"]
        for r in query(con, "select * from energy_cost_15min")
    }
    # acnportal: 08:25 is 0.14903 (it lies in the 08:15 interval), 08:30 is 0.1771
    assert got == {
        "08:00": 0.14903, "08:15": 0.14903, "08:30": 0.1771, "08:45": 0.1771,
        "21:00": 0.1771, "21:15": 0.1771, "21:30": 0.14903, "21:45": 0.14903,
    }  # fmt: skip
    (bill,) = query(con, "select * from monthly_bill")
    assert (bill["tariff_name"], bill["demand_charge_usd_per_kw"]) == ("PGE A-10 TOU", 19.99)


DST_TARIFF = schedule_json("every day 1.5 h", all_year("All", [0, 1.5, 3], [0.1, 0.2, 0.3], 10.0))


def test_both_dst_changes_price_by_the_local_clock() -> None:
    con = connect(
        [
            # 2019-03-10: 00:00 PST to 05:00 PDT, four real hours; 02:00-03:00 never happens
            *session("e1", ts("2019-03-10 08:00"), 240),
            # 2019-11-03: 00:00 PDT to 04:00 PST, five real hours; 01:00-02:00 happens twice
            *session("e1", ts("2019-11-03 07:00"), 300),
        ],
        sites=[("03", "Garage", "America/Los_Angeles")],
        tariffs={"03": "dst.json"},
        files={"dst.json": DST_TARIFF},
    )
    rows = query(con, "select * from energy_cost_15min order by interval_start")
    spring = [r for r in rows if r["interval_start"] < ts("2019-06-01 00:00")]
    fall = [r for r in rows if r["interval_start"] >= ts("2019-06-01 00:00")]
    # spring: 00:00-01:15 at 0.1, 01:30 and 01:45 at 0.2, then 03:00 PDT onwards at 0.3
    assert [r["interval_start_local"].strftime("%H:%M") for r in spring][7:9] == ["01:45", "03:00"]
    assert [r["price_usd_per_kwh"] for r in spring] == [0.1] * 6 + [0.2] * 2 + [0.3] * 8
    # fall: each 01:xx label twice (PDT, then PST), priced by its local hour both times
    labels = [r["interval_start_local"].strftime("%H:%M") for r in fall]
    assert labels[4:12] == ["01:00", "01:15", "01:30", "01:45"] * 2
    assert [r["price_usd_per_kwh"] for r in fall] == (
        [0.1] * 6 + [0.2] * 2 + [0.1] * 2 + [0.2] * 2 + [0.2] * 4 + [0.3] * 4
    )
    bills = {r["month_start_local"]: r for r in query(con, "select * from monthly_bill")}
    assert bills[date(2019, 3, 1)]["energy_charge_usd"] == approx(6 * 0.1 + 2 * 0.2 + 8 * 0.3)
    assert bills[date(2019, 11, 1)]["energy_kwh"] == approx(20.0)
    assert bills[date(2019, 11, 1)]["energy_charge_usd"] == approx(8 * 0.1 + 8 * 0.2 + 4 * 0.3)
    assert bills[date(2019, 11, 1)]["demand_charge_usd"] == approx(10.0 * 4.0)


def test_the_demand_charge_is_the_rate_in_force_on_the_months_first_local_day() -> None:
    weekday_weekend = schedule_json(
        "demand by weekday",
        all_year("Weekday", [0], [0.1], 30.0, "WEEKDAYS"),
        all_year("Weekend", [0], [0.05], 10.0, "WEEKENDS"),
    )
    con = connect(
        [
            # Monday 2019-06-03: a weekday peak, but June began on a Saturday
            *session("e1", local("2019-06-03 12:00"), 60),
            # July 2019 began on a Monday; this peak is on a Saturday
            *session("e1", local("2019-07-06 12:00"), 60, power_kw=8.0),
        ],
        sites=[("03", "Garage", "America/Los_Angeles")],
        tariffs={"03": "./demand.json"},
        files={"demand.json": weekday_weekend},
    )
    bills = {r["month_start_local"]: r for r in query(con, "select * from monthly_bill")}
    june, july = bills[date(2019, 6, 1)], bills[date(2019, 7, 1)]
    assert (june["demand_charge_usd_per_kw"], june["demand_charge_usd"]) == (10.0, approx(40.0))
    assert (july["demand_charge_usd_per_kw"], july["demand_charge_usd"]) == (30.0, approx(240.0))
    # energy is still priced by each interval's own day
    assert june["energy_charge_usd"] == approx(4 * 0.1)
    assert july["energy_charge_usd"] == approx(8 * 0.05)
