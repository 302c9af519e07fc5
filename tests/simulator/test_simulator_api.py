"""The simulator speaks PowerFlex's API as the vendor document shows it (plain HTTP)."""

from __future__ import annotations

from typing import Any

import jwt
import requests

from powerflex_etl.simulator import RunningSimulator

MONTHS = ["Apr", "Aug", "Dec", "Feb", "Jan", "Jul", "Jun", "Mar", "May", "Nov", "Oct", "Sep"]


def _login(sim: RunningSimulator) -> dict[str, str]:
    r = requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
    )
    assert r.status_code == 200
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _post(
    sim: RunningSimulator, path: str, body: Any, headers: dict[str, str]
) -> requests.Response:
    return requests.post(f"{sim.url}{path}", json=body, headers=headers, timeout=10)


def test_login_returns_an_hs256_jwt_valid_one_day(sim: RunningSimulator) -> None:
    r = requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
    )
    token = r.json()["access_token"]
    assert set(r.json()) == {"access_token"}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 86400


def test_bad_password_is_401_json(sim: RunningSimulator) -> None:
    r = requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "wrong"}, timeout=10
    )
    assert r.status_code == 401
    assert "error" in r.json()


def test_missing_or_forged_token_is_401(sim: RunningSimulator) -> None:
    body = {"measurement": "ct_response", "time_filter": [1622505600, 1622509200]}
    assert _post(sim, "/get_measurement_data", body, {}).status_code == 401
    forged = jwt.encode(
        {"exp": 2**40, "iat": 0},
        "not-the-server-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    r = _post(sim, "/get_measurement_data", body, {"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert "error" in r.json()


def test_expired_token_is_401(sim: RunningSimulator) -> None:
    # a negative lifetime makes the server issue a token whose exp is already past
    sim.config.token_lifetime_s = -5
    headers = _login(sim)
    r = requests.get(f"{sim.url}/get_target_peak_power_kW/2", headers=headers, timeout=10)
    assert r.status_code == 401


def test_password_never_recorded(sim: RunningSimulator) -> None:
    _login(sim)
    logged = [r for r in sim.requests_seen() if r["path"] == "/login"]
    assert logged and all(r["body"]["password"] == "***" for r in logged)


def test_get_external_signal_all_and_by_name(sim: RunningSimulator) -> None:
    h = _login(sim)
    signal = {
        "is_enabled": True,
        "max_load": 21.616,
        "max_load_unit": "kW",
        "name": "DCM_EVSE_Allocation",
    }
    assert _post(sim, "/get_external_signal/1", {}, h).json() == {"DCM_EVSE_Allocation": signal}
    assert _post(sim, "/get_external_signal/1", {"name": "DCM_EVSE_Allocation"}, h).json() == signal
    missing = _post(sim, "/get_external_signal/1", {"name": "nope"}, h)
    assert missing.status_code == 404 and "error" in missing.json()


def test_set_external_signal_echoes_and_persists(sim: RunningSimulator) -> None:
    h = _login(sim)
    body = {"max_load": 21.6, "max_load_unit": "kW", "is_enabled": True, "name": "Site_Cap"}
    r = _post(sim, "/set_external_signal/5", body, h)
    assert r.status_code == 200 and r.json() == body
    assert _post(sim, "/get_external_signal/5", {"name": "Site_Cap"}, h).json() == body


def test_set_external_signal_rejects_bad_values(sim: RunningSimulator) -> None:
    h = _login(sim)
    good = {"max_load": 10, "max_load_unit": "A", "is_enabled": False, "name": "X"}
    for bad in (
        {**good, "max_load_unit": "MW"},
        {**good, "max_load": "ten"},
        {**good, "is_enabled": "yes"},
    ):
        r = _post(sim, "/set_external_signal/5", bad, h)
        assert r.status_code in (400, 422) and "error" in r.json()


def test_set_real_time_load(sim: RunningSimulator) -> None:
    h = _login(sim)
    assert _post(sim, "/set_real_time_load/2", {"real_time_load_kW": 1100}, h).status_code == 200
    assert _post(sim, "/set_real_time_load/2", {"real_time_load_kW": 1.5}, h).status_code == 400


def test_target_peak_power_vendor_example(sim: RunningSimulator) -> None:
    h = _login(sim)
    got = requests.get(f"{sim.url}/get_target_peak_power_kW/7", headers=h, timeout=10).json()
    assert sorted(got) == MONTHS
    assert got["Feb"] == 123 and got["Jan"] == 200
    after = _post(
        sim, "/set_target_peak_power_kW/7", {"target_peak_power": {"Jun": 700, "Jul": 555}}, h
    ).json()
    assert after == {**got, "Jun": 700, "Jul": 555}
    assert (
        requests.get(f"{sim.url}/get_target_peak_power_kW/7", headers=h, timeout=10).json() == after
    )


def test_target_peak_power_rejects_unknown_month_and_non_integers(sim: RunningSimulator) -> None:
    h = _login(sim)
    for bad in ({"Juin": 5}, {"Jun": 7.5}, {"Jun": "7"}):
        assert (
            _post(sim, "/set_target_peak_power_kW/8", {"target_peak_power": bad}, h).status_code
            == 400
        )
    assert (
        requests.get(f"{sim.url}/get_target_peak_power_kW/8", headers=h, timeout=10).json()["Jun"]
        == 200
    )


def test_set_max_power_schedule(sim: RunningSimulator) -> None:
    h = _login(sim)
    body = {
        "definition": [
            {
                "days": [1, 2, 3, 4, 5, 6, 7],
                "schedule": [{"start_time": "08:00:00", "max_power": 13}],
            }
        ],
        "max_power_units": "kW",
        "is_enabled": True,
        "timezone": "US/Pacific",
    }
    assert _post(sim, "/set_max_power_schedule/3", body, h).json() == body
    bad = {
        **body,
        "definition": [{"days": [8], "schedule": [{"start_time": "25:00:00", "max_power": 1}]}],
    }
    assert _post(sim, "/set_max_power_schedule/3", bad, h).status_code == 400


def test_measurement_answer_is_influxdb_json(sim: RunningSimulator) -> None:
    h = _login(sim)
    r = _post(
        sim,
        "/get_measurement_data",
        {"measurement": "evse_response", "time_filter": [1622505600, 1622509200]},
        h,
    )
    series = r.json()["results"][0]["series"]
    assert r.json()["results"][0]["statement_id"] == 0
    assert [s["name"] for s in series] == ["evse_response"]
    cols = series[0]["columns"]
    assert cols[0] == "time" and {
        "connected",
        "contactor",
        "mamps_last",
        "response_period",
        "acc_id",
    } <= set(cols)
    assert all(len(row) == len(cols) and isinstance(row[0], float) for row in series[0]["values"])


def test_empty_window_and_bad_requests(sim: RunningSimulator) -> None:
    h = _login(sim)
    empty = _post(
        sim,
        "/get_measurement_data",
        {"measurement": "ct_response", "time_filter": [1622505600, 1622505600]},
        h,
    )
    assert empty.json() == {"results": [{"statement_id": 0}]}
    for bad in (
        {"measurement": "nope", "time_filter": [0, 10]},
        {"measurement": "ct_response"},
        {"measurement": "ct_response", "time_filter": [10, 0]},
        {"measurement": "ct_response", "time_filter": ["a", "b"]},
    ):
        r = _post(sim, "/get_measurement_data", bad, h)
        assert r.status_code == 400 and "error" in r.json()


def test_acc_id_in_urls_is_an_integer(sim: RunningSimulator) -> None:
    h = _login(sim)
    assert _post(sim, "/get_external_signal/abc", {}, h).status_code == 404
