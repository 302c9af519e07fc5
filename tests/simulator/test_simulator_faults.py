"""Every fault switch does what it says, and the answer shapes stay valid InfluxDB JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from powerflex_etl.simulator import RunningSimulator

START = datetime(2021, 6, 1, 17, tzinfo=UTC)
END = START + timedelta(hours=1)
BODY = {"measurement": "ct_response", "time_filter": [START.timestamp(), END.timestamp()]}


def _headers(sim: RunningSimulator) -> dict[str, str]:
    tok = requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
    )
    return {"Authorization": f"Bearer {tok.json()['access_token']}"}


def _get(sim: RunningSimulator, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(
        f"{sim.url}/get_measurement_data", json=body or BODY, headers=_headers(sim), timeout=30
    )


def _docs(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _values(doc: dict[str, Any]) -> list[list[Any]]:
    return [row for s in doc["results"][0].get("series", []) for row in s["values"]]


def test_fail_next_gives_exactly_n_503s_and_spares_login(sim: RunningSimulator) -> None:
    h = _headers(sim)
    sim.config.faults.fail_next = 2
    codes = [
        requests.post(
            f"{sim.url}/get_measurement_data", json=BODY, headers=h, timeout=10
        ).status_code
        for _ in range(3)
    ]
    assert codes == [503, 503, 200]
    sim.config.faults.fail_next = 1
    assert requests.post(
        f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
    ).ok
    assert sim.config.faults.fail_next == 1


def test_rate_limit_next_carries_retry_after(sim: RunningSimulator) -> None:
    h = _headers(sim)
    sim.config.faults.rate_limit_next = 1
    sim.config.faults.retry_after_s = 2
    r = requests.get(f"{sim.url}/get_target_peak_power_kW/2", headers=h, timeout=10)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert (
        requests.get(f"{sim.url}/get_target_peak_power_kW/2", headers=h, timeout=10).status_code
        == 200
    )


@pytest.mark.parametrize(("field", "status"), [("error_rate", 503), ("rate_limit_rate", 429)])
def test_rates_answer_that_fraction(sim: RunningSimulator, field: str, status: int) -> None:
    h = _headers(sim)
    setattr(sim.config.faults, field, 0.5)
    codes = [
        requests.get(f"{sim.url}/get_target_peak_power_kW/2", headers=h, timeout=10).status_code
        for _ in range(60)
    ]
    assert set(codes) == {200, status}
    assert 10 <= codes.count(status) <= 50


def test_truncate_gives_a_prefix_that_is_not_json(sim: RunningSimulator) -> None:
    full = _get(sim).content
    sim.config.faults.truncate = True
    cut = _get(sim).content
    assert 0 < len(cut) < len(full) and full.startswith(cut)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


def test_truncate_only_named_measurements(sim: RunningSimulator) -> None:
    sim.config.faults.truncate = True
    sim.config.faults.truncate_measurements = {"evse_request"}
    assert _get(sim).json()["results"][0]["series"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(_get(sim, {**BODY, "measurement": "evse_request"}).content)


def test_rfc3339_times(sim: RunningSimulator) -> None:
    sim.config.faults.rfc3339 = True
    rows = _values(_get(sim).json())
    truth = sim.truth("ct_response", START, END)["time"].to_pylist()
    parsed = [datetime.fromisoformat(r[0].replace("Z", "+00:00")).timestamp() for r in rows]
    assert all(r[0].endswith("Z") and "T" in r[0] for r in rows)
    assert parsed == pytest.approx(truth, abs=1e-6)


def test_split_tags_one_series_per_evse_ids_in_tags(sim: RunningSimulator) -> None:
    sim.config.faults.split_tags = True
    series = _get(sim).json()["results"][0]["series"]
    assert len(series) == 54
    for s in series:
        assert set(s["tags"]) == {"acn_id", "acc_id", "acg_id", "acs_id", "evse_address"}
        assert not set(s["tags"]) & set(s["columns"])
    assert sum(len(s["values"]) for s in series) == sim.truth("ct_response", START, END).num_rows


def test_split_tags_keeps_one_series_per_evse_across_days(sim: RunningSimulator) -> None:
    sim.config.faults.split_tags = True
    body = {
        **BODY,
        "measurement": "evse_request",
        "time_filter": [START.timestamp(), START.timestamp() + 86400],
    }
    series = _get(sim, body).json()["results"][0]["series"]
    assert len(series) == len({s["tags"]["evse_address"] for s in series}) == 54


def test_wrap_data(sim: RunningSimulator) -> None:
    plain = _get(sim).json()
    sim.config.faults.wrap_data = True
    assert _get(sim).json() == {"data": plain}


def test_ignore_time_filter_serves_the_whole_day(sim: RunningSimulator) -> None:
    sim.config.faults.ignore_time_filter = True
    rows = _values(_get(sim).json())
    day = START.replace(hour=0)
    assert len(rows) == sim.truth("ct_response", day, day + timedelta(days=1)).num_rows > 0
    assert min(r[0] for r in rows) < START.timestamp()


def test_chunked_documents_last_one_complete(sim: RunningSimulator) -> None:
    sim.config.faults.chunked = True
    docs = _docs(_get(sim).text)
    assert len(docs) > 1
    assert all(d["results"][0]["partial"] is True for d in docs[:-1])
    assert "partial" not in docs[-1]["results"][0]
    assert sum(len(_values(d)) for d in docs) == sim.truth("ct_response", START, END).num_rows


def test_max_rows_cuts_with_partial_and_nothing_after(sim: RunningSimulator) -> None:
    sim.config.faults.max_rows = 100
    docs = _docs(_get(sim).text)
    assert sum(len(_values(d)) for d in docs) == 100
    assert docs[-1]["results"][0]["partial"] is True
    assert docs[-1]["results"][0]["series"][-1]["partial"] is True


def test_max_rows_above_the_answer_is_complete(sim: RunningSimulator) -> None:
    sim.config.faults.max_rows = 10**9
    docs = _docs(_get(sim).text)
    assert "partial" not in docs[-1]["results"][0]


def test_chunked_empty_answer(sim: RunningSimulator) -> None:
    sim.config.faults.chunked = True
    r = _get(sim, {**BODY, "time_filter": [START.timestamp(), START.timestamp()]})
    assert _docs(r.text) == [{"results": [{"statement_id": 0}]}]


def test_latency_delays_the_answer_without_failing_it(sim: RunningSimulator) -> None:
    sim.config.faults.latency_s = 0.05
    r = _get(sim)
    assert r.ok and r.elapsed.total_seconds() >= 0.05
