"""The Prefect engine against a server that revokes tokens early: the flow's login and all
its tasks share the run's one token, so logins stay one per N windows, as on the local engine.

On the session's Prefect server, in this process (the CLI's runs on Prefect's temporary
server are in tests/cli/test_fail_fast.py).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from powerflex_etl.ingest import run as runner
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import MEASUREMENTS

pytestmark = pytest.mark.prefect

T0 = datetime(2021, 6, 4, tzinfo=UTC)


@pytest.fixture
def flow_env(sim_settings, monkeypatch):
    # flows read settings from the environment, as a deployment does
    monkeypatch.setenv("POWERFLEX_BASE_URL", sim_settings.base_url)
    monkeypatch.setenv("POWERFLEX_USERNAME", sim_settings.username)
    monkeypatch.setenv("POWERFLEX_PASSWORD", sim_settings.password.get_secret_value())
    monkeypatch.setenv("POWERFLEX_RETRY_BACKOFF_S", "0.01")
    return sim_settings.model_copy(update={"window_hours": 3.0})


def _logins(sim) -> int:
    return sum(r["path"] == "/login" for r in sim.requests_seen())


def test_the_flows_tasks_share_one_token_revoked_after_four_uses(prefect_server, sim, flow_env):
    sim.config.faults.token_max_uses = 4
    sim.config.faults.single_session = True
    base = _logins(sim)
    report = runner.run(
        flow_env,
        start=T0.isoformat(),
        end=(T0 + timedelta(days=1)).isoformat(),
        measurements=None,
        engine="prefect",
        workers=4,
    )
    windows = 8 * len(MEASUREMENTS)
    assert report["ok"] and sum(t["windows"] for t in report["measurements"].values()) == windows
    for m in MEASUREMENTS:
        truth = sim.truth(m, T0, T0 + timedelta(days=1))
        assert Lake(flow_env.lake).read(m).num_rows == truth.num_rows > 0, m
    # the flow's login and every task's calls draw on one token: one login per four windows
    assert _logins(sim) - base == math.ceil(windows / 4) == 6
