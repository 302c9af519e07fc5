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
