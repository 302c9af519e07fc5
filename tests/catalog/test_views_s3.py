"""The catalog over an object-store lake: a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from powerflex_etl import schemas
from powerflex_etl.catalog import build_catalog, connect
from tests.catalog.test_views import SITES, T0, ct_row

pytestmark = pytest.mark.s3


def test_views_read_an_s3_lake_through_fsspec(s3_lake: str, tmp_path: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem()
    table = pa.Table.from_pylist([ct_row(0), ct_row(1)], schema=schemas.arrow_schema("ct_response"))
    with fs.open(f"{s3_lake}/ct_response/date=2024-03-01/part-00.parquet", "wb") as fh:
        pq.write_table(table, fh)
    fs.pipe(f"{s3_lake}/sites.toml", SITES.encode())
    catalog = tmp_path / "catalog.duckdb"

    assert build_catalog(s3_lake, catalog_path=str(catalog), sites_file=None) == catalog
    con = connect(s3_lake, catalog_path=str(catalog))
    assert con.execute("select acc_id, time from ct_response order by time limit 1").fetchall() == [
        ("03", T0)
    ]
    assert con.execute("select count(*) from ct_response").fetchone() == (2,)
    assert con.execute("select count(*) from rejects").fetchone() == (0,)
    assert con.execute("select tz from sites where acc_id = '03'").fetchone() == (
        "America/Los_Angeles",
    )


def test_a_tariff_path_in_an_s3_lakes_sites_file_is_read_from_the_lake(
    s3_lake: str, tmp_path: Path
) -> None:
    import json

    import s3fs

    fs = s3fs.S3FileSystem()
    schedule = {
        "id": "All",
        "effective_start": "01-01",
        "effective_end": "12-31",
        "dow_mask": "ALL",
        "times": [0, 17],
        "tariffs": [0.1, 0.3],
        "demand_charge": 12.0,
    }
    fs.pipe(
        f"{s3_lake}/tariffs/mine.json",
        json.dumps({"name": "mine", "schedule": [schedule]}).encode(),
    )
    fs.pipe(
        f"{s3_lake}/sites.toml",
        (
            b'[sites."03"]\nname = "A"\ntz = "America/Los_Angeles"\ntariff = "tariffs/mine.json"\n'
            b'[sites."04"]\nname = "B"\ntz = "UTC"\ntariff = "sce_tou_ev_8_oct_2018"\n'
        ),
    )
    catalog = tmp_path / "catalog.duckdb"
    build_catalog(s3_lake, catalog_path=str(catalog), sites_file=None)
    con = connect(s3_lake, catalog_path=str(catalog))
    assert con.execute("select acc_id, tariff_name from tariffs order by 1").fetchall() == [
        ("03", "mine"),
        ("04", "SCE TOU-EV-8"),
    ]
    assert con.execute(
        "select tou_period, price_usd_per_kwh from tariff_periods where acc_id = '03' order by 1"
    ).fetchall() == [("All 00:00-17:00", 0.1), ("All 17:00-24:00", 0.3)]
