"""DCM snapshots end to end: the real client against the simulator on loopback, a real lake,
the catalog's latest/history views, and the Prefect flow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.catalog import build_catalog, connect
from powerflex_etl.ingest import dcm as dcm_snapshot
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import SimulatorConfig, start_simulator

T1 = datetime(2024, 6, 3, 2, 30, tzinfo=UTC)
T2 = T1 + timedelta(days=1)
ACC = "03"  # a leading-zero id, as the lake keeps it


@pytest.fixture(scope="module")
def dcm_sim() -> Iterator[Any]:
    """The simulator with the caltech site renamed to acc_id "03" (the URL then says /3)."""
    sim = start_simulator(SimulatorConfig(seed=1, id_overrides={"caltech": {"acc_id": ACC}}))
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def settings(dcm_sim: Any, tmp_path: Path) -> Settings:
    return Settings(
        base_url=dcm_sim.url,
        username=dcm_sim.config.username,
        password=dcm_sim.config.password,
        lake=str(tmp_path / "lake"),
        retry_backoff_s=0.01,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[PowerflexClient]:
    c = PowerflexClient(settings)
    try:
        yield c
    finally:
        c.close()


def _query(lake: str, sql: str) -> list[tuple[Any, ...]]:
    build_catalog(lake)
    con = connect(lake)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_snapshot_holds_the_months_just_set_and_keeps_the_string_id(
    client: PowerflexClient, settings: Settings
) -> None:
    answer = client.set_target_peak_power(ACC, {"Jun": 700, "Jul": 555})
    out = dcm_snapshot.snapshot(client, Lake(settings.lake), [ACC], run_id="run1", at=T1)
    assert out["acc_ids"] == [ACC] and out["target_peak_power"] == 12
    rows = _query(
        settings.lake,
        "select acc_id, month, month_num, target_peak_power_kw, snapshot_at "
        "from target_peak_power order by month_num",
    )
    assert [r[0] for r in rows] == [ACC] * 12
    assert [r[2] for r in rows] == list(range(1, 13))
    got = {r[1]: r[3] for r in rows}
    assert got["Jun"] == 700 and got["Jul"] == 555
    assert got == {m: float(v) for m, v in answer.items()}
    assert {r[4] for r in rows} == {T1}


def test_external_signals_snapshot_equals_the_endpoint(
    client: PowerflexClient, settings: Settings
) -> None:
    client.set_external_signal(
        ACC, name="DCM_EVSE_Allocation", max_load=21.6, max_load_unit="kW", is_enabled=True
    )
    live = client.get_external_signal(ACC)
    dcm_snapshot.snapshot(client, Lake(settings.lake), [ACC], run_id="run1", at=T1)
    rows = _query(
        settings.lake,
        "select acc_id, name, max_load, max_load_unit, is_enabled from external_signals",
    )
    assert sorted(rows) == sorted(
        (ACC, s["name"], float(s["max_load"]), s["max_load_unit"], s["is_enabled"])
        for s in live.values()
    )
    assert (ACC, "DCM_EVSE_Allocation", 21.6, "kW", True) in rows


def test_two_snapshots_history_has_both_latest_shows_the_newest(
    client: PowerflexClient, settings: Settings
) -> None:
    lake = Lake(settings.lake)
    client.set_target_peak_power(ACC, {"Jan": 100})
    dcm_snapshot.snapshot(client, lake, [ACC], run_id="run1", at=T1)
    client.set_target_peak_power(ACC, {"Jan": 250})
    dcm_snapshot.snapshot(client, lake, [ACC], run_id="run2", at=T2)
    history = _query(
        settings.lake,
        "select snapshot_at, target_peak_power_kw from target_peak_power_history "
        "where month = 'Jan' order by snapshot_at",
    )
    assert history == [(T1, 100.0), (T2, 250.0)]
    latest = _query(
        settings.lake,
        "select snapshot_at, target_peak_power_kw from target_peak_power where month = 'Jan'",
    )
    assert latest == [(T2, 250.0)]
    signals = _query(settings.lake, "select distinct snapshot_at from external_signals_history")
    assert sorted(s[0] for s in signals) == [T1, T2]


def test_rerunning_the_same_snapshot_does_not_duplicate_rows(
    client: PowerflexClient, settings: Settings
) -> None:
    lake = Lake(settings.lake)
    dcm_snapshot.snapshot(client, lake, [ACC], run_id="run1", at=T1)
    dcm_snapshot.snapshot(client, lake, [ACC], run_id="run1", at=T1)
    rows = _query(settings.lake, "select count(*) from target_peak_power_history")
    assert rows == [(12,)]


def test_a_server_failure_on_a_later_site_writes_nothing(dcm_sim: Any, settings: Settings) -> None:
    from powerflex_etl.errors import RetryableApiError

    once = PowerflexClient(settings.model_copy(update={"max_attempts": 1}))

    class FailsOnSecondSite:
        """The real client; the server starts answering 503 before the second site's call."""

        def get_external_signal(self, acc_id: str | int, name: str | None = None) -> Any:
            return once.get_external_signal(acc_id, name)

        def get_target_peak_power(self, acc_id: str | int) -> Any:
            if acc_id == "04":
                dcm_sim.config.faults.fail_next = 5
            return once.get_target_peak_power(acc_id)

    try:
        with pytest.raises(RetryableApiError):
            dcm_snapshot.snapshot(
                FailsOnSecondSite(), Lake(settings.lake), [ACC, "04"], run_id="r", at=T1
            )
    finally:
        dcm_sim.config.faults.fail_next = 0
        once.close()
    lake_dir = Path(settings.lake)
    assert not list(lake_dir.glob("external_signals/**/*.parquet"))
    assert not list(lake_dir.glob("target_peak_power/**/*.parquet"))


def test_run_snapshot_defaults_to_the_lake_sites_and_refreshes_the_catalog(
    client: PowerflexClient, settings: Settings
) -> None:
    from powerflex_etl.ingest import run as runner

    start = datetime(2021, 6, 2, tzinfo=UTC)
    runner.run(
        settings,
        start=start.isoformat(),
        end=(start + timedelta(hours=6)).isoformat(),
        measurements=["ct_response"],
        engine="local",
        workers=1,
    )
    client.set_target_peak_power(ACC, {"Mar": 42})
    out = dcm_snapshot.run_snapshot(settings, at=T1, run_id="cli")
    assert out["acc_ids"] == [ACC] and out["target_peak_power"] == 12
    assert Path(out["catalog"]).is_file()
    con = connect(settings.lake)  # no rebuild: run_snapshot refreshed it
    try:
        got = con.execute(
            "select acc_id, target_peak_power_kw from target_peak_power where month = 'Mar'"
        ).fetchall()
    finally:
        con.close()
    assert got == [(ACC, 42.0)]


@pytest.mark.prefect
def test_flow_snapshots_every_site_of_the_lake_and_refreshes_the_catalog(
    prefect_server: str,
    client: PowerflexClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.dcm import dcm_snapshot_flow
    from powerflex_etl.ingest import run as runner

    # flows read settings from the environment, as a deployment does
    monkeypatch.setenv("POWERFLEX_BASE_URL", settings.base_url)
    monkeypatch.setenv("POWERFLEX_USERNAME", settings.username)
    monkeypatch.setenv("POWERFLEX_PASSWORD", settings.password.get_secret_value())
    monkeypatch.setenv("POWERFLEX_RETRY_BACKOFF_S", "0.01")
    start = datetime(2021, 6, 2, tzinfo=UTC)
    runner.run(
        settings,
        start=start.isoformat(),
        end=(start + timedelta(hours=6)).isoformat(),
        measurements=["ct_response"],
        engine="local",
        workers=1,
    )
    assert Lake(settings.lake).acc_ids() == [ACC]
    client.set_target_peak_power(ACC, {"Jun": 321})
    out = dcm_snapshot_flow(lake=settings.lake)
    assert out["acc_ids"] == [ACC] and out["target_peak_power"] == 12
    con = connect(settings.lake)  # the flow refreshed the catalog: no rebuild here
    try:
        got = con.execute(
            "select target_peak_power_kw from target_peak_power where acc_id = ? and month = 'Jun'",
            [ACC],
        ).fetchall()
    finally:
        con.close()
    assert got == [(321.0,)]


@pytest.mark.prefect
def test_the_flow_writes_nothing_when_any_site_fails(
    prefect_server: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow fetches each acc_id in its own task, but the policy is the library's: all or nothing."""
    from flows.dcm import dcm_snapshot_flow
    from powerflex_etl.errors import ParseError

    monkeypatch.setenv("POWERFLEX_BASE_URL", settings.base_url)
    monkeypatch.setenv("POWERFLEX_USERNAME", settings.username)
    monkeypatch.setenv("POWERFLEX_PASSWORD", settings.password.get_secret_value())
    real = dcm_snapshot.fetch

    def fails_for_04(client: Any, acc_id: str, **kw: Any) -> Any:
        if acc_id == "04":
            raise ParseError("dcm acc_id 04 get_external_signal: not an object")
        return real(client, acc_id, **kw)

    monkeypatch.setattr(dcm_snapshot, "fetch", fails_for_04)
    with pytest.raises(ParseError, match="acc_id 04"):
        dcm_snapshot_flow(acc_ids=[ACC, "04"], lake=settings.lake)
    lake_dir = Path(settings.lake)
    assert not list(lake_dir.glob("external_signals/**/*.parquet"))
    assert not list(lake_dir.glob("target_peak_power/**/*.parquet"))
