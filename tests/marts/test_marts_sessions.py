"""Golden tests of charging_sessions and pilot_tracking on small hand-made telemetry."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
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


def sessions(con: Any) -> list[dict[str, Any]]:
    return query(con, "select * from charging_sessions order by evse_address, session_start")


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_simple_session_is_one_row_with_its_energy_and_times() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0 - minutes(2), 2),
        *plug_in("e1", t0, charge_minutes=60, idle_minutes=30),
        *unplugged_run("e1", t0 + minutes(90), 2),
    ]
    (s,) = sessions(connect(rows))
    assert s["session_start"] == t0
    # ends when the first UNPLUGGED sample is seen
    assert s["session_end"] == t0 + minutes(90)
    assert s["energy_kwh"] == approx(6.6)
    assert s["peak_power_kw"] == approx(6.6)
    assert s["charging_minutes"] == approx(60)
    assert s["idle_minutes"] == approx(30)
    assert s["samples"] == 90
    assert (s["cut_at_start"], s["cut_at_end"]) == (False, False)
    assert (s["acn_id"], s["acc_id"], s["acg_id"], s["acs_id"]) == ("0002", "03", "01", "02")
    assert s["space_number"] == "S-e1"
    epoch_us = int(t0.timestamp()) * 1_000_000
    assert s["session_id"] == hashlib.md5(f"e1|{epoch_us}".encode()).hexdigest()
    # no site time zone: local equals UTC wall time
    assert s["session_start_local"] == t0.replace(tzinfo=None)


def test_session_id_is_stable_when_later_data_arrives() -> None:
    t0 = ts("2024-01-15 10:00")
    first = [*unplugged_run("e1", t0 - minutes(2), 2), *plug_in("e1", t0, 30)]
    later = [*first, *plug_in("e1", t0 + minutes(30), 0, 20, energy_start_kwh=3.3)]
    a, b = sessions(connect(first)), sessions(connect(later))
    assert a[0]["session_id"] == b[0]["session_id"]
    assert a[0]["cut_at_end"] is True


def test_back_to_back_plug_ins_split_where_the_meter_resets() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0 - minutes(2), 2),
        *plug_in("e1", t0, charge_minutes=30, idle_minutes=10),
        # the next car: energy back to 0 with no UNPLUGGED sample between
        *plug_in("e1", t0 + minutes(40), charge_minutes=20, idle_minutes=5),
        *unplugged_run("e1", t0 + minutes(65), 2),
    ]
    a, b = sessions(connect(rows))
    assert (a["session_start"], a["session_end"]) == (t0, t0 + minutes(40))
    assert (b["session_start"], b["session_end"]) == (t0 + minutes(40), t0 + minutes(65))
    assert (a["energy_kwh"], b["energy_kwh"]) == (approx(3.3), approx(2.2))
    assert (a["charging_minutes"], a["idle_minutes"]) == (approx(30), approx(10))
    assert (b["charging_minutes"], b["idle_minutes"]) == (approx(20), approx(5))
    assert a["session_id"] != b["session_id"]


def test_gap_with_energy_continuing_is_one_session_and_gap_time_is_capped() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0 - minutes(2), 2),
        *plug_in("e1", t0, charge_minutes=30),
        # 30 minutes without telemetry; the car kept charging, so the meter moved on
        *plug_in("e1", t0 + minutes(60), charge_minutes=30, idle_minutes=5, energy_start_kwh=6.6),
        *unplugged_run("e1", t0 + minutes(95), 2),
    ]
    (s,) = sessions(connect(rows))
    assert s["session_start"] == t0
    assert s["session_end"] == t0 + minutes(95)
    # the meter, not the samples, says what was delivered
    assert s["energy_kwh"] == approx(9.9)
    # 60 one-minute samples, but the one before the gap counts 3 minutes (3x median), not 31
    assert s["charging_minutes"] == approx(29 + 3 + 30)
    assert s["idle_minutes"] == approx(5)


def test_gap_across_an_energy_reset_is_two_sessions() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0 - minutes(2), 2),
        *plug_in("e1", t0, charge_minutes=30),
        # telemetry back after 30 minutes: a new car, its meter from 0
        *plug_in("e1", t0 + minutes(60), charge_minutes=10),
        *unplugged_run("e1", t0 + minutes(70), 2),
    ]
    a, b = sessions(connect(rows))
    assert a["session_end"] == t0 + minutes(29 + 3)
    assert a["energy_kwh"] == approx(6.6 * 29 / 60)
    assert b["session_start"] == t0 + minutes(60)
    assert b["energy_kwh"] == approx(6.6 * 9 / 60)


def test_a_lone_noisy_plugged_sample_is_not_a_session() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0, 5),
        sample(
            "e1",
            t0 + minutes(5),
            charging_state="NOT CHARGING",
            energy_delivered_kwh=0.0,
            current_actual_a=0.0,
            power_kw=0.0,
        ),
        *unplugged_run("e1", t0 + minutes(6), 5),
    ]
    con = connect(rows)
    assert sessions(con) == []
    assert query(con, "select * from evse_utilization") == []


def test_one_plugged_sample_with_current_is_a_session() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0, 5),
        *plug_in("e1", t0 + minutes(5), charge_minutes=1),
        *unplugged_run("e1", t0 + minutes(6), 5),
    ]
    (s,) = sessions(connect(rows))
    assert (s["samples"], s["charging_minutes"]) == (1, approx(1))


def _null_state_rows(evse: str, t0: datetime) -> list[dict[str, Any]]:
    # like the real 2020-12-02 excerpt: no state, no voltage; zeros before and after
    zeros = {"charging_state": None, "voltage_v": None, "power_kw": 0.0, "current_actual_a": 0.0}
    return [
        *(sample(evse, t0 + minutes(i), energy_delivered_kwh=0.0, **zeros) for i in range(5)),
        *plug_in(evse, t0 + minutes(5), 30, 5, state=None, idle_state=None, voltage_v=None),
        *(sample(evse, t0 + minutes(40 + i), energy_delivered_kwh=0.0, **zeros) for i in range(5)),
    ]


def test_null_states_fall_back_to_energy_current_and_connected() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = _null_state_rows("e1", t0) + _null_state_rows("e2", t0)
    # evse_response says e2's car was connected from 10:02:20 (other timestamps than ct's)
    response = [
        {
            "evse_address": "e2",
            "time": t0 + minutes(i) + timedelta(seconds=20),
            "connected": 2 <= i < 40,
        }
        for i in range(45)
    ]
    e1, e2 = sessions(connect(rows, evse_response=response))
    assert (e1["session_start"], e1["session_end"]) == (t0 + minutes(5), t0 + minutes(40))
    assert (e1["charging_minutes"], e1["idle_minutes"]) == (approx(30), approx(5))
    assert e1["energy_kwh"] == approx(3.3)
    # connected samples with zero energy are plugged too: e2's session starts 3 minutes early
    assert (e2["session_start"], e2["session_end"]) == (t0 + minutes(2), t0 + minutes(40))
    assert (e2["charging_minutes"], e2["idle_minutes"]) == (approx(30), approx(8))


@pytest.mark.parametrize(
    "start",
    [ts("2024-01-15 23:30"), ts("2024-01-16 05:30")],
    ids=["across-midnight-and-00-slot", "across-06-slot"],
)
def test_a_session_across_midnight_or_a_slot_boundary_is_one_session(start: datetime) -> None:
    rows = [
        *unplugged_run("e1", start - minutes(2), 2),
        *plug_in("e1", start, charge_minutes=45, idle_minutes=15),
        *unplugged_run("e1", start + minutes(60), 2),
    ]
    con = connect(rows)
    (s,) = sessions(con)
    assert (s["session_start"], s["session_end"]) == (start, start + minutes(60))
    assert s["energy_kwh"] == approx(6.6 * 45 / 60)
    days = query(con, "select * from evse_utilization order by day_local")
    if start.hour == 23:
        # plugged 30 minutes each side of midnight; counted as a session on its start day
        assert [(d["plugged_hours"], d["charging_hours"], d["sessions"]) for d in days] == [
            (approx(0.5), approx(0.5), 1),
            (approx(0.5), approx(0.25), 0),
        ]


def test_sessions_cut_by_the_edges_of_the_data_are_flagged_not_dropped() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        # the lake's first sample for e1 is already 2.0 kWh into a session
        *plug_in("e1", t0, charge_minutes=30, idle_minutes=5, energy_start_kwh=2.0),
        *unplugged_run("e1", t0 + minutes(35), 10),
        # still plugged at the last sample the lake holds
        *plug_in("e1", t0 + minutes(45), charge_minutes=10),
    ]
    first, last = sessions(connect(rows))
    assert (first["cut_at_start"], first["cut_at_end"]) == (True, False)
    # only what the lake saw: max minus the starting value
    assert first["energy_kwh"] == approx(3.3)
    assert (last["cut_at_start"], last["cut_at_end"]) == (False, True)
    # its last sample has no successor: the session ends at it, counting nothing after
    assert last["session_end"] == t0 + minutes(54)
    assert last["charging_minutes"] == approx(9)
    assert last["energy_kwh"] == approx(6.6 * 9 / 60)


def test_local_session_start_uses_the_site_time_zone() -> None:
    t0 = ts("2024-07-01 02:00")
    rows = [unplugged("e1", t0 - minutes(1))]
    rows += [*plug_in("e1", t0, 10), unplugged("e1", t0 + minutes(10))]
    (s,) = sessions(connect(rows, sites=[("03", "Garage", "America/Los_Angeles")]))
    # PDT is UTC-7: 02:00 UTC is 19:00 the evening before
    assert s["session_start_local"] == datetime(2024, 6, 30, 19, 0)
    assert s["session_end_local"] == datetime(2024, 6, 30, 19, 10)


def test_pilot_tracking_measures_how_current_followed_the_pilot() -> None:
    t0 = ts("2024-01-15 10:00")
    pairs = [(16.0, 16.0), (15.0, 16.0), (17.5, 16.0), (8.0, 16.0)]
    rows = [unplugged("e1", t0 - minutes(1))]
    rows += [
        sample(
            "e1",
            t0 + minutes(i),
            charging_state="ADAPTIVE",
            current_actual_a=current,
            pilot_actual_a=pilot,
            power_kw=current * 0.208,
            energy_delivered_kwh=0.1 * i,
        )
        for i, (current, pilot) in enumerate(pairs)
    ]
    # idle samples (no current) are not tracking: they must not count
    rows += plug_in("e1", t0 + minutes(4), 0, 3, energy_start_kwh=0.4)
    rows.append(unplugged("e1", t0 + minutes(7)))
    request = [
        {"evse_address": "e1", "time": t0 + minutes(m), "current_limit_a": limit}
        for m, limit in [(0, 16.0), (2, 16.0), (5, 20.0), (30, 99.0)]
    ]
    (p,) = query(connect(rows, evse_request=request), "select * from pilot_tracking")
    assert p["charging_samples"] == 4
    # |current - pilot| = 0, 1, 1.5, 8
    assert p["mean_abs_pilot_error_a"] == approx(2.625)
    assert p["p95_abs_pilot_error_a"] == approx(1.5 + 0.85 * 6.5)
    # at or below pilot + 1 A: all but the 17.5 A sample
    assert p["within_pilot_share"] == approx(0.75)
    assert p["mean_current_pilot_ratio"] == approx((1 + 15 / 16 + 17.5 / 16 + 0.5) / 4)
    # evse_request limits inside the session only (the 99 A one is after it)
    assert p["mean_current_limit_a"] == approx(52 / 3)


def test_pilot_tracking_has_one_row_per_session_with_its_id() -> None:
    t0 = ts("2024-01-15 10:00")
    rows = [
        *unplugged_run("e1", t0 - minutes(2), 2),
        *plug_in("e1", t0, 0, 10),  # plugged, never charged
        *unplugged_run("e1", t0 + minutes(10), 2),
        *plug_in("e1", t0 + minutes(12), 5, 5),
        *unplugged_run("e1", t0 + minutes(22), 2),
    ]
    con = connect(rows)
    got = query(con, "select session_id, charging_samples from pilot_tracking order by 1")
    ids = query(con, "select session_id from charging_sessions order by 1")
    assert [g["session_id"] for g in got] == [i["session_id"] for i in ids]
    assert sorted(g["charging_samples"] for g in got) == [0, 5]


@pytest.mark.parametrize(
    ("start", "local_start", "local_end"),
    [
        # fall back: 01:30 PDT to 01:30 PST, one hour later by the clock of the world
        (ts("2024-11-03 08:30"), datetime(2024, 11, 3, 1, 30), datetime(2024, 11, 3, 1, 30)),
        # spring forward: 01:30 PST to 03:30 PDT
        (ts("2024-03-10 09:30"), datetime(2024, 3, 10, 1, 30), datetime(2024, 3, 10, 3, 30)),
    ],
    ids=["2024-11-03", "2024-03-10"],
)
def test_a_session_across_a_dst_change_keeps_its_real_length(
    start: datetime, local_start: datetime, local_end: datetime
) -> None:
    rows = [
        *unplugged_run("e1", start - minutes(2), 2),
        *plug_in("e1", start, charge_minutes=40, idle_minutes=20),
        *unplugged_run("e1", start + minutes(60), 2),
    ]
    (s,) = sessions(connect(rows, sites=[("03", "Garage", "America/Los_Angeles")]))
    assert (s["session_start_local"], s["session_end_local"]) == (local_start, local_end)
    assert s["session_end"] - s["session_start"] == minutes(60)
    assert (s["charging_minutes"], s["idle_minutes"]) == (approx(40), approx(20))
