"""End to end: the simulator on loopback -> client -> parser -> normalizer -> lake -> views.

Runs the library's local engine (the same steps the Prefect tasks run); the Prefect flow
itself is exercised once in test_flows.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from powerflex_etl.ingest import run as runner
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import LINEAGE_COLUMNS, MEASUREMENTS, SPECS
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import SimulatorConfig, start_simulator

T0 = datetime(2021, 6, 1, tzinfo=UTC)
H = timedelta(hours=1)


def ingest(
    s: Settings, start: datetime, end: datetime, measurements: list[str] | None = None
) -> dict:
    return runner.run(
        s,
        start=start.isoformat(),
        end=end.isoformat(),
        measurements=measurements,
        engine="local",
        workers=2,
    )


def lake_table(s: Settings, m: str) -> pa.Table:
    t = Lake(s.lake).read(m)
    keep = [c for c in t.column_names if c not in LINEAGE_COLUMNS and c != "date"]
    return t.select(keep).sort_by([("evse_address", "ascending"), ("time", "ascending")])


def assert_matches_truth(s: Settings, sim, m: str, start: datetime, end: datetime) -> None:
    truth = sim.truth(m, start, end)
    got = lake_table(s, m)
    got = got.filter(
        pc.and_(
            pc.greater_equal(got["time"], pa.scalar(start, pa.timestamp("us", "UTC"))),
            pc.less(got["time"], pa.scalar(end, pa.timestamp("us", "UTC"))),
        )
    )
    assert got.num_rows == truth.num_rows > 0, m
    for spec in SPECS[m]:
        if spec.kind == "number" and spec.source in truth.column_names:
            want = (pc.sum(truth[spec.source]).as_py() or 0.0) * spec.scale
            have = pc.sum(got[spec.column]).as_py() or 0.0
            assert have == pytest.approx(want, rel=1e-9, abs=1e-6), (m, spec.column)
            assert got[spec.column].null_count == truth[spec.source].null_count, (m, spec.column)
        if spec.kind == "bool" and spec.source in truth.column_names:
            assert (
                pc.sum(pc.cast(got[spec.column], pa.int64())).as_py()
                == pc.sum(truth[spec.source]).as_py()
            )
    assert set(got["evse_address"].to_pylist()) == set(truth["evse_address"].to_pylist())


def test_rows_and_unit_converted_sums_equal_the_simulators_truth(sim, sim_settings):
    start, end = T0, T0 + 12 * H
    report = ingest(sim_settings, start, end)
    assert report["ok"] and not report["failures"]
    for m in MEASUREMENTS:
        assert_matches_truth(sim_settings, sim, m, start, end)
        assert report["measurements"][m]["rejects"] == 0
    assert report["measurements"]["ct_response"]["unit_check_ok"] is True


def test_rerun_and_overlapping_windows_leave_exactly_the_same_rows(sim, sim_settings):
    ingest(sim_settings, T0, T0 + 12 * H)
    before = {m: lake_table(sim_settings, m) for m in MEASUREMENTS}
    ingest(sim_settings, T0, T0 + 12 * H)
    again = {m: lake_table(sim_settings, m) for m in MEASUREMENTS}
    for m in MEASUREMENTS:
        assert again[m].equals(before[m]), m
    # an overlapping range on other window boundaries
    s2 = sim_settings.model_copy(update={"window_hours": 4.0})
    ingest(s2, T0 + 3 * H, T0 + 15 * H)
    for m in MEASUREMENTS:
        assert_matches_truth(sim_settings, sim, m, T0, T0 + 15 * H)
        assert lake_table(sim_settings, m).slice(0, 0).schema == before[m].schema


@pytest.mark.parametrize(
    "fault",
    [
        {"split_tags": True},
        {"rfc3339": True},
        {"ignore_time_filter": True},
        {"wrap_data": True},
        {"chunked": True},
    ],
    ids=lambda f: next(iter(f)),
)
def test_answer_shapes_and_unfiltered_answers_ingest_exactly(sim, sim_settings, fault):
    for k, v in fault.items():
        setattr(sim.config.faults, k, v)
    start, end = T0 + 6 * H, T0 + 12 * H
    ingest(sim_settings, start, end)
    for m in MEASUREMENTS:
        assert_matches_truth(sim_settings, sim, m, start, end)
    # nothing outside the asked range lands, even when the server ignores time_filter
    t = lake_table(sim_settings, "ct_response")
    assert pc.min(t["time"]).as_py() >= start and pc.max(t["time"]).as_py() < end


def test_a_cut_answer_is_split_not_taken_as_complete(sim, sim_settings):
    sim.config.faults.max_rows = 2000
    start, end = T0, T0 + 6 * H
    report = ingest(sim_settings, start, end, ["ct_response"])
    assert report["measurements"]["ct_response"]["splits"] >= 1
    assert_matches_truth(sim_settings, sim, "ct_response", start, end)


def test_zero_padded_acc_id_stays_a_string(tmp_path):
    config = SimulatorConfig(seed=3, id_overrides={"caltech": {"acc_id": "03"}})
    with start_simulator(config) as sim2:
        s = Settings(
            base_url=sim2.url,
            username=config.username,
            password=config.password,
            lake=str(tmp_path / "lake"),
            retry_backoff_s=0.01,
        )
        ingest(s, T0, T0 + 6 * H, ["ct_response"])
        t = Lake(s.lake).read("ct_response")
    assert set(t["acc_id"].to_pylist()) == {"03"}


def test_a_hostile_id_cannot_escape_the_lake_and_is_rejected(tmp_path):
    config = SimulatorConfig(seed=3, id_overrides={"caltech": {"acs_id": "../../x"}})
    with start_simulator(config) as sim2:
        s = Settings(
            base_url=sim2.url,
            username=config.username,
            password=config.password,
            lake=str(tmp_path / "lake"),
            retry_backoff_s=0.01,
        )
        report = ingest(s, T0, T0 + 6 * H, ["ct_response"])
    lake = (tmp_path / "lake").resolve()
    for p in tmp_path.rglob("*"):
        assert p.resolve().is_relative_to(lake), p
    assert not (tmp_path / "x").exists()
    rejects = Lake(s.lake).read("rejects")
    assert report["measurements"]["ct_response"]["rejects"] == rejects.num_rows > 0
    assert all("unsafe" in r for r in rejects["reason"].to_pylist())


def _files_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
    }


def _cli(args: list[str], s: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("POWERFLEX_")}
    full_env.update(
        POWERFLEX_BASE_URL=s.base_url,
        POWERFLEX_USERNAME=s.username,
        POWERFLEX_PASSWORD=s.password.get_secret_value(),
        POWERFLEX_LAKE=s.lake,
        POWERFLEX_RETRY_BACKOFF_S="0.01",
        POWERFLEX_MAX_ATTEMPTS="2",
        POWERFLEX_ENGINE="local",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "powerflex_etl", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_truncated_answer_fails_one_line_and_leaves_the_lake_as_it_was(sim, sim_settings):
    ingest(sim_settings, T0, T0 + 6 * H)
    lake_root = Path(sim_settings.lake)
    before = _files_digest(lake_root / "evse_request")
    sim.config.faults.truncate = True
    sim.config.faults.truncate_measurements = {"evse_request"}
    proc = _cli(
        [
            "ingest",
            "--start",
            T0.isoformat(),
            "--end",
            (T0 + 12 * H).isoformat(),
            "--measurement",
            "evse_request",
        ],
        sim_settings,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("powerflex-etl: error:")
    assert "evse_request" in last and "2021-06-01" in last
    assert _files_digest(lake_root / "evse_request") == before


def test_no_password_or_token_in_output_lake_or_state(sim, sim_settings):
    proc = _cli(
        ["ingest", "--start", T0.isoformat(), "--end", (T0 + 6 * H).isoformat()], sim_settings
    )
    assert proc.returncode == 0, proc.stderr
    password = sim_settings.password.get_secret_value()
    blobs = [proc.stdout, proc.stderr]
    blobs += [
        p.read_bytes().decode("latin-1") for p in Path(sim_settings.lake).rglob("*") if p.is_file()
    ]
    for blob in blobs:
        assert password not in blob
        assert "eyJ" not in blob  # every JWT starts with the base64 of '{"'


def test_query_cli_reads_the_views_as_csv(sim, sim_settings):
    ingest(sim_settings, T0, T0 + 6 * H, ["ct_response"])
    proc = _cli(
        [
            "query",
            "select acc_id, count(*) as n from ct_response group by 1 order by 1",
            "--format",
            "csv",
        ],
        sim_settings,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "acc_id,n"
    assert (
        sum(int(line.split(",")[1]) for line in lines[1:])
        == lake_table(sim_settings, "ct_response").num_rows
    )


def test_incremental_run_starts_from_the_watermark_minus_lookback(sim, sim_settings):
    from powerflex_etl.lake.state import State

    ingest(sim_settings, T0, T0 + 6 * H, ["evse_response"])
    state = State(Lake(sim_settings.lake))
    assert state.watermark("evse_response") == T0 + 6 * H
    # an earlier backfill never moves it back
    ingest(sim_settings, T0 - 6 * H, T0, ["evse_response"])
    assert state.watermark("evse_response") == T0 + 6 * H
