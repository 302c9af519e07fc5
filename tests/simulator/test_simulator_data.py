"""The simulator's rows: what a window holds, reproducibly, and how it follows real sessions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerflex_etl.simulator import RunningSimulator, SimulatorConfig, source
from powerflex_etl.simulator.generate import STATES

DAY0 = datetime(2021, 6, 1, tzinfo=UTC)
MEASUREMENTS = ("ct_response", "evse_request", "evse_response")


def _fetch(sim: RunningSimulator, measurement: str, start: float, end: float) -> dict:  # type: ignore[type-arg]
    tok = requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
    )
    h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    body = {"measurement": measurement, "time_filter": [start, end]}
    r = requests.post(f"{sim.url}/get_measurement_data", json=body, headers=h, timeout=30)
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def _rows(doc: dict) -> pa.Table:  # type: ignore[type-arg]
    series = doc["results"][0].get("series", [])
    cols = series[0]["columns"] if series else []
    values = [row for s in series for row in s["values"]]
    return pa.table({c: [r[i] for r in values] for i, c in enumerate(cols)})


def test_served_rows_equal_truth(sim: RunningSimulator) -> None:
    for m in MEASUREMENTS:
        start, end = DAY0 + timedelta(hours=17), DAY0 + timedelta(hours=19)
        served = _rows(_fetch(sim, m, start.timestamp(), end.timestamp()))
        truth = sim.truth(m, start, end)
        assert served.column_names == truth.column_names
        assert served.num_rows == truth.num_rows > 0
        for c in truth.column_names:
            want = truth[c].to_pylist()
            got = served[c].to_pylist()
            assert got == want, f"{m}.{c} differs"


def test_time_filter_start_inclusive_end_exclusive(sim: RunningSimulator) -> None:
    t = sim.truth("ct_response", DAY0, DAY0 + timedelta(hours=1))["time"].to_numpy()
    pick = float(np.sort(t)[len(t) // 2])
    # a window starting exactly on a sample holds it; one ending there does not
    after = _rows(_fetch(sim, "ct_response", pick, pick + 30))["time"].to_pylist()
    before = _rows(_fetch(sim, "ct_response", pick - 30, pick))["time"].to_pylist()
    assert pick in after and pick not in before
    assert all(pick <= x < pick + 30 for x in after)
    assert all(pick - 30 <= x < pick for x in before)


def test_rows_are_deterministic_for_a_seed() -> None:
    cfg = SimulatorConfig(seed=3, sample_period_s=60.0)
    a = source.truth(cfg, "ct_response", DAY0.timestamp(), DAY0.timestamp() + 7200)
    b = source.truth(
        SimulatorConfig(seed=3, sample_period_s=60.0),
        "ct_response",
        DAY0.timestamp(),
        DAY0.timestamp() + 7200,
    )
    c = source.truth(
        SimulatorConfig(seed=4, sample_period_s=60.0),
        "ct_response",
        DAY0.timestamp(),
        DAY0.timestamp() + 7200,
    )
    assert a.equals(b)
    assert not a.equals(c)


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([("evse_address", "ascending"), ("time", "ascending")])


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    a=st.floats(0, 1.5 * 86400, allow_nan=False),
    b=st.floats(0, 1.5 * 86400, allow_nan=False),
    c=st.floats(0, 1.5 * 86400, allow_nan=False),
    m=st.sampled_from(MEASUREMENTS),
)
def test_window_additivity(a: float, b: float, c: float, m: str) -> None:
    lo, mid, hi = sorted((a, b, c))
    cfg = SimulatorConfig(seed=1, sample_period_s=600.0)
    base = DAY0.timestamp()
    whole = source.truth(cfg, m, base + lo, base + hi)
    parts = pa.concat_tables(
        [source.truth(cfg, m, base + lo, base + mid), source.truth(cfg, m, base + mid, base + hi)]
    )
    assert _sorted(whole).equals(_sorted(parts))


def test_session_energy_reproduces_real_kwh(sim: RunningSimulator) -> None:
    start, end = DAY0, DAY0 + timedelta(days=5)
    sessions = sim.sessions(start, end).to_pylist()
    ct = sim.truth("ct_response", start, end)
    inside = [s for s in sessions if s["session_start"] >= start and s["session_end"] < end]
    assert len(inside) >= 10
    for s in inside:
        sel = pc.and_(
            pc.equal(ct["evse_address"], s["evse_address"]),
            pc.and_(
                pc.greater_equal(ct["time"], s["session_start"].timestamp()),
                pc.less(ct["time"], s["session_end"].timestamp()),
            ),
        )
        energy_kwh = pc.max(ct.filter(sel)["energy_delivered"]).as_py() / 1e6
        # at most one 60 s sample of charging can be missed before the plug-out
        assert abs(energy_kwh - s["kwh_delivered"]) <= max(0.02 * s["kwh_delivered"], 0.2), s[
            "session_id"
        ]
        assert s["energy_kwh_served"] == s["kwh_delivered"]


def test_sessions_are_real_acn_sessions(sim: RunningSimulator) -> None:
    real = json.loads(
        open("/work/shared/data/real/acn_data/acndata_sessions_cal_dec2020_may2023.json").read()  # noqa: SIM115
    )["_items"]
    by_id = {s["sessionID"]: s for s in real}
    got = sim.sessions(DAY0, DAY0 + timedelta(days=3)).to_pylist()
    assert got
    for s in got:
        r = by_id[s["session_id"]]
        assert s["kwh_delivered"] == r["kWhDelivered"]
        assert s["space_number"] == r["spaceID"] != "11900388"
        duration = (s["session_end"] - s["session_start"]).total_seconds()
        assert duration <= 48 * 3600


def test_ct_response_values_are_physical(sim: RunningSimulator) -> None:
    ct = sim.truth("ct_response", DAY0, DAY0 + timedelta(days=1)).to_pandas()
    assert set(ct["charging_state"]) <= set(STATES)
    assert {"ADAPTIVE", "IDLE", "UNPLUGGED"} <= set(ct["charging_state"])
    v = ct["voltage"].dropna() / 1000
    assert v.between(208, 240).all()
    assert ct["voltage"].isna().any()
    both = ct.dropna(subset=["voltage"])
    expected = both["voltage"] / 1000 * both["mamps_actual"] / 1000 / 1000
    assert np.allclose(both["power"], expected, atol=2e-3)
    charging = ct[ct["charging_state"] == "ADAPTIVE"]
    assert (charging["mamps_actual"] > 0).all() and (charging["pilot_actual"] >= 6).all()
    unplugged = ct[ct["charging_state"] == "UNPLUGGED"]
    assert (unplugged["energy_delivered"] == 0).all()
    # sub-second fractions, like the real telemetry
    assert (ct["time"] % 1 != 0).mean() > 0.99


def test_ids_are_zero_padded_strings_from_real_stations(sim: RunningSimulator) -> None:
    ct = sim.truth("evse_response", DAY0, DAY0 + timedelta(hours=1)).to_pandas()
    assert set(ct["acn_id"]) == {"0002"} and set(ct["acc_id"]) == {"0039"}
    row = ct[ct["space_number"] == "CA-305"].iloc[0]
    # ACN stationID 2-39-131-30 serves space CA-305
    assert row["evse_address"] == "0002-0039-0131-0030"
    assert ct["evse_address"].nunique() == 54


def test_id_overrides_and_second_site() -> None:
    cfg = SimulatorConfig(
        sites=("caltech", "office001"), id_overrides={"caltech": {"acc_id": "03"}}
    )
    t = source.truth(cfg, "evse_request", DAY0.timestamp(), DAY0.timestamp() + 3600).to_pandas()
    assert set(t["acc_id"]) == {"03", "0102"}
    assert t["evse_address"].nunique() == 62
