"""The lake on object storage: a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from powerflex_etl.errors import PowerflexError
from powerflex_etl.ingest import run as runner
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import LINEAGE_COLUMNS, MEASUREMENTS

pytestmark = pytest.mark.s3

T0 = datetime(2021, 6, 3, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def s3_settings(sim_settings, s3_lake, tmp_path):
    return sim_settings.model_copy(
        update={"lake": s3_lake, "catalog_path": str(tmp_path / "catalog.duckdb")}
    )


def _rows(s, m):
    t = Lake(s.lake).read(m)
    keep = [c for c in t.column_names if c not in LINEAGE_COLUMNS and c != "date"]
    return t.select(keep).sort_by([("evse_address", "ascending"), ("time", "ascending")])


def _ingest(s, start, end, ms=None):
    return runner.run(
        s, start=start.isoformat(), end=end.isoformat(), measurements=ms, engine="local", workers=2
    )


def test_ingest_to_s3_is_exact_and_idempotent_and_queryable(sim, s3_settings):
    _ingest(s3_settings, T0, T0 + 12 * H)
    first = {m: _rows(s3_settings, m) for m in MEASUREMENTS}
    for m in MEASUREMENTS:
        assert first[m].num_rows == sim.truth(m, T0, T0 + 12 * H).num_rows > 0
    _ingest(s3_settings, T0 + 3 * H, T0 + 9 * H)
    for m in MEASUREMENTS:
        assert _rows(s3_settings, m).equals(first[m]), m

    import powerflex_etl

    con = powerflex_etl.connect(s3_settings.lake, catalog_path=s3_settings.catalog_path)
    (n,) = con.execute("select count(*) from ct_response").fetchone()
    assert n == first["ct_response"].num_rows
    assert con.execute("select count(distinct acc_id) from ct_response").fetchone()[0] >= 1


def test_a_failed_window_leaves_the_s3_lake_unchanged(sim, s3_settings):
    import s3fs

    _ingest(s3_settings, T0, T0 + 6 * H, ["evse_request"])
    fs = s3fs.S3FileSystem()
    prefix = s3_settings.lake.removeprefix("s3://") + "/evse_request"
    before = {p: fs.info(p)["ETag"] for p in fs.find(prefix)}
    sim.config.faults.truncate = True
    sim.config.faults.truncate_measurements = {"evse_request"}
    s = s3_settings.model_copy(update={"max_attempts": 1})
    with pytest.raises(PowerflexError) as info:
        _ingest(s, T0, T0 + 6 * H, ["evse_request"])
    assert "evse_request" in str(info.value)
    fs.invalidate_cache()
    assert {p: fs.info(p)["ETag"] for p in fs.find(prefix)} == before
