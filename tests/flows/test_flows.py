"""The Prefect flow against a real (temporary) Prefect server and the simulator."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powerflex_etl.ingest import run as runner
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import MEASUREMENTS

T0 = datetime(2021, 6, 2, tzinfo=UTC)

pytestmark = pytest.mark.prefect


@pytest.fixture
def flow_env(sim_settings, monkeypatch):
    # flows read settings from the environment, as a deployment does
    monkeypatch.setenv("POWERFLEX_BASE_URL", sim_settings.base_url)
    monkeypatch.setenv("POWERFLEX_USERNAME", sim_settings.username)
    monkeypatch.setenv("POWERFLEX_PASSWORD", sim_settings.password.get_secret_value())
    monkeypatch.setenv("POWERFLEX_RETRY_BACKOFF_S", "0.01")
    return sim_settings


def test_prefect_flow_ingests_every_measurement_and_publishes_a_summary(
    prefect_server, sim, flow_env
):
    from prefect.client.orchestration import get_client

    report = runner.run(
        flow_env,
        start=T0.isoformat(),
        end=(T0 + timedelta(hours=12)).isoformat(),
        measurements=None,
        engine="prefect",
        workers=3,
    )
    assert report["ok"]
    lake = Lake(flow_env.lake)
    for m in MEASUREMENTS:
        truth = sim.truth(m, T0, T0 + timedelta(hours=12))
        assert report["measurements"][m]["rows"] == truth.num_rows == lake.read(m).num_rows
        assert report["measurements"][m]["windows"] == 2

    async def artifacts():
        async with get_client() as c:
            return await c.read_artifacts()

    import asyncio

    arts = asyncio.run(artifacts())
    assert any(a.key == "powerflex-ingest-summary" for a in arts)
    # the catalog was refreshed by the flow
    assert (Path(flow_env.lake) / "powerflex.duckdb").exists()
    # nothing secret in Prefect's home (its SQLite database holds parameters, logs, artifacts)
    home = Path(os.environ["PREFECT_HOME"])
    password = flow_env.password.get_secret_value().encode()
    for p in home.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert password not in data, p
            assert b"eyJhbGciOiJIUzI1NiIs" not in data, p


def test_a_failing_window_fails_the_flow_with_a_one_line_error(prefect_server, sim, flow_env):
    from powerflex_etl.errors import PowerflexError

    sim.config.faults.truncate = True
    sim.config.faults.truncate_measurements = {"ct_response"}
    os.environ["POWERFLEX_MAX_ATTEMPTS"] = "1"
    try:
        with pytest.raises(PowerflexError) as info:
            from flows.ingest import with_workers

            with_workers(2)(
                start=T0.isoformat(),
                end=(T0 + timedelta(hours=6)).isoformat(),
                measurements=["ct_response"],
                task_retry_delay_s=0,
            )
    finally:
        del os.environ["POWERFLEX_MAX_ATTEMPTS"]
    msg = info.value.one_line()
    assert "ct_response" in msg and "2021-06-02" in msg and "\n" not in msg
    assert not list(Path(flow_env.lake).glob("ct_response/*/*.parquet"))


def test_a_backfill_flow_keeps_at_most_workers_windows_in_flight(
    prefect_server, sim, flow_env, monkeypatch
):
    """Prefect's default thread pool has no bound: the flow itself must keep memory flat."""
    import threading

    from prefect.task_runners import ThreadPoolTaskRunner

    from flows import backfill as backfill_mod
    from powerflex_etl.ingest import window as pipeline

    real = pipeline.ingest_window
    cond = threading.Condition()
    state = {"in": 0, "max": 0, "calls": 0}

    def counting(*args, **kwargs):
        with cond:
            state["in"] += 1
            state["calls"] += 1
            state["max"] = max(state["max"], state["in"])
            cond.notify_all()
            # hold the window until a second one is in flight, so an unbounded pool would show
            # every window at once; bounded wait so the last, lone window still finishes
            cond.wait_for(lambda: state["in"] >= 2, timeout=5)
        try:
            return real(*args, **kwargs)
        finally:
            with cond:
                state["in"] -= 1

    monkeypatch.setattr(pipeline, "ingest_window", counting)
    flow = backfill_mod.backfill_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=32))
    report = flow(
        start=T0.isoformat(),
        end=(T0 + timedelta(hours=24)).isoformat(),
        measurements=["ct_response", "evse_request"],
        window_hours=3,
        lake=flow_env.lake,
        workers=2,
    )
    assert report["ok"] and state["calls"] == 16
    assert state["max"] == 2
    assert report["seconds"] > 0


def test_each_window_line_reaches_the_run_logs_once(prefect_server, sim, flow_env):
    """The library logs a window once; under Prefect that same line is the task run's log."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    from flows.ingest import with_workers

    report = with_workers(2)(
        start=T0.isoformat(),
        end=(T0 + timedelta(hours=12)).isoformat(),
        measurements=["evse_request"],
        lake=flow_env.lake,
    )

    async def logs():
        await APILogHandler.aflush()
        async with get_client() as c:
            return await c.read_logs()

    ours = [
        log
        for log in asyncio.run(logs())
        if log.flow_run_id and log.flow_run_id.hex.startswith(report["run_id"])
    ]
    lines = [log for log in ours if log.message.startswith("evse_request [")]
    assert len(lines) == report["measurements"]["evse_request"]["windows"] == 2
    assert all(log.name == "powerflex_etl.ingest" and log.task_run_id for log in lines)
    assert len({log.message for log in lines}) == 2
