"""A lake where every view reads real files: a day of the simulator, a DCM snapshot, a reject,
a sites file with a real time zone. Shared read-only by the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from powerflex_etl import schemas
from powerflex_etl.catalog import build_for, connect
from powerflex_etl.ingest import dcm
from powerflex_etl.ingest import run as runner
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import RunningSimulator

#: a replayed day with real Caltech sessions (seed 1 replays real dates)
DAY = datetime(2021, 6, 2, tzinfo=UTC)
SITE_TZ = "America/Los_Angeles"


@pytest.fixture(scope="session")
def full_lake(
    simulator: RunningSimulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of the lake; tests must not write to it."""
    root = tmp_path_factory.mktemp("full")
    s = Settings(
        base_url=simulator.url,
        username=simulator.config.username,
        password=simulator.config.password,  # type: ignore[arg-type]
        retry_backoff_s=0.01,
        lake=str(root / "lake"),
    )
    runner.run(
        s,
        start=DAY.isoformat(),
        end=(DAY + timedelta(days=1)).isoformat(),
        measurements=None,
        engine="local",
        workers=2,
    )
    acc_ids = Lake(s.lake).acc_ids()
    dcm.run_snapshot(s, acc_ids, at=DAY + timedelta(days=1, hours=2))
    # the simulator sends no bad row; one reject in the lake's own layout, so rejects reads a file
    reject = {
        "measurement": "ct_response",
        "reject_id": "r-1",
        "reason": "negative energy_delivered",
        "raw": '{"energy_delivered": -5}',
        "time": DAY + timedelta(hours=1),
        "window_start": DAY,
        "window_end": DAY + timedelta(hours=6),
        "_ingested_at": DAY + timedelta(days=1),
        "_run_id": "run-reject",
    }
    path = Path(s.lake) / "rejects" / "ct_response" / "date=2021-06-02" / "part-00.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([reject], schema=schemas.REJECTS_SCHEMA), path)
    sites = "".join(f'[sites."{a}"]\nname = "Site {a}"\ntz = "{SITE_TZ}"\n\n' for a in acc_ids)
    (Path(s.lake) / "sites.toml").write_text(sites, encoding="utf-8")
    build_for(s)
    con = connect(s.lake)
    try:
        sources = con.execute("select pattern from _catalog_sources where not has_files").fetchall()
        sessions = con.execute("select count(*) from charging_sessions").fetchone()
    finally:
        con.close()
    assert sources == [], f"tables without files: {sources}"
    assert sessions is not None and sessions[0] > 0
    yield s
