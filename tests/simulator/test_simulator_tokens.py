"""The simulator's token revocation and 403 faults do what they say, seen over plain HTTP."""

from __future__ import annotations

import requests

from powerflex_etl.simulator import RunningSimulator

ACC = "39"


def _login(sim: RunningSimulator) -> dict[str, str]:
    tok = requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
    )
    return {"Authorization": f"Bearer {tok.json()['access_token']}"}


def _status(sim: RunningSimulator, headers: dict[str, str]) -> int:
    url = f"{sim.url}/get_target_peak_power_kW/{ACC}"
    return requests.get(url, headers=headers, timeout=10).status_code


def test_a_token_is_refused_once_used_n_times(sim: RunningSimulator) -> None:
    sim.config.faults.token_max_uses = 3
    h = _login(sim)
    assert [_status(sim, h) for _ in range(5)] == [200, 200, 200, 401, 401]
    assert _status(sim, _login(sim)) == 200  # a new login, a new allowance


def test_one_session_per_account_a_login_revokes_the_tokens_before_it(
    sim: RunningSimulator,
) -> None:
    first = _login(sim)
    second = _login(sim)
    assert _status(sim, first) == _status(sim, second) == 200  # off: both stay valid
    sim.config.faults.single_session = True
    third = _login(sim)
    assert (_status(sim, first), _status(sim, second), _status(sim, third)) == (401, 401, 200)


def test_revoke_tokens_and_a_login_elsewhere_every_n_calls(sim: RunningSimulator) -> None:
    h = _login(sim)
    sim.revoke_tokens()
    assert _status(sim, h) == 401
    sim.config.faults.foreign_login_every = 2
    h = _login(sim)
    # the count is of accepted calls on the whole server; whichever lands on a multiple of 2
    # revokes every token, so of three calls at most two pass before the 401
    codes = [_status(sim, h) for _ in range(3)]
    assert codes[-1] == 401 and codes.count(200) in (1, 2)


def test_a_forbidden_measurement_is_a_403(sim: RunningSimulator) -> None:
    sim.config.faults.forbidden = {"evse_request"}
    h = _login(sim)
    for m, code in (("evse_request", 403), ("ct_response", 200)):
        r = requests.post(
            f"{sim.url}/get_measurement_data",
            json={"measurement": m, "time_filter": [1622505600, 1622509200]},
            headers=h,
            timeout=30,
        )
        assert r.status_code == code, m
    assert (
        "may not read evse_request"
        in requests.post(
            f"{sim.url}/get_measurement_data",
            json={"measurement": "evse_request", "time_filter": [1622505600, 1622509200]},
            headers=h,
            timeout=30,
        ).json()["error"]
    )
