"""The lake's layout (pure rules), its one address type, and the one meaning of "data files"."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerflex_etl import schemas
from powerflex_etl.catalog import build_catalog, connect
from powerflex_etl.catalog.sqlfiles import SQL_DIR
from powerflex_etl.errors import LakeError
from powerflex_etl.lake import LakeUrl, State, layout
from powerflex_etl.lake.store import Lake
from powerflex_etl.windows import Window, to_us

M = "ct_response"


@given(st.integers(min_value=0, max_value=200_000))
def test_a_slot_name_parses_back_to_its_start(n: int) -> None:
    slot_us = n * layout.SLOT_US
    date_part, name = layout.slot_parts(slot_us)
    day = layout.parse_date_dir(date_part)
    assert day is not None
    assert name in layout.SLOT_NAMES
    assert layout.slot_start(day, name) == slot_us
    assert layout.slot_of(slot_us + layout.SLOT_US - 1) == slot_us


def test_slot_and_partition_names() -> None:
    assert {f"part-{h}.parquet" for h in ("00", "06", "12", "18")} == layout.SLOT_NAMES
    assert layout.slot_parts(to_us(datetime(2024, 6, 1, 13, tzinfo=UTC))) == (
        "date=2024-06-01",
        "part-12.parquet",
    )
    assert layout.slot_start(date(2024, 6, 1), "part-01.parquet") is None  # hourly: foreign
    assert layout.slot_start(date(2024, 6, 1), "export-0.parquet") is None
    assert layout.parse_date_dir("date=2024-06-01") == date(2024, 6, 1)
    assert layout.parse_date_dir("date=june") is None
    assert layout.parse_date_dir("2024-06-01") is None


def test_every_path_of_the_layout() -> None:
    w = Window(datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 1, 6, 0, 0, 5, tzinfo=UTC))
    assert layout.slot_file(layout.table_dir("rejects", M), to_us(w.start)) == (
        "rejects",
        M,
        "date=2024-06-01",
        "part-00.parquet",
    )
    assert layout.snapshot_file("external_signals", "r1", date(2024, 6, 1)) == (
        "external_signals",
        "date=2024-06-01",
        "snap-r1.parquet",
    )
    assert layout.watermark_file(M) == ("_state", "watermarks", f"{M}.json")
    assert layout.window_record_file(M, w) == (
        "_state",
        "windows",
        M,
        "20240601T000000Z--20240601T060000.000005Z.json",
    )
    assert layout.lock_file(M) == ("_locks", f"{M}.lock")
    assert layout.staging_dir(M, "run 1/x", "ab12") == ("_staging", M, "run_1_x-ab12")


def test_the_globs_readers_use() -> None:
    assert layout.data_glob(M) == (M, "date=*", "[!._]*.parquet")
    assert layout.data_glob("rejects") == ("rejects", "*", "date=*", "[!._]*.parquet")
    assert layout.data_glob("rejects", M, "date=2024-06-01")[:3] == (
        "rejects",
        M,
        "date=2024-06-01",
    )
    assert layout.slot_glob(M) == (M, "date=*", "part-*.parquet")
    assert layout.state_records_glob("windows") == ("_state", "windows", "*", "*.json")


def test_unknown_or_unsafe_names_are_refused() -> None:
    with pytest.raises(LakeError, match="unknown lake table"):
        layout.data_glob("../etc")
    with pytest.raises(LakeError, match="per measurement"):
        layout.table_dir("rejects", "rejects")
    with pytest.raises(LakeError, match="unsafe key"):
        layout.snapshot_file("external_signals", "../x", date(2024, 6, 1))


def test_one_address_for_one_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    here = str((tmp_path / "real").resolve())
    for spelling in ("real", "./real/", f"file://{tmp_path}/real", str(tmp_path / "link")):
        url = LakeUrl.parse(spelling)
        assert (url.url, url.is_local) == (here, True)
    remote = LakeUrl.parse("memory://bucket/prefix/")
    assert (remote.url, remote.is_local) == ("memory:///bucket/prefix", False)
    assert remote.join("ct_response") == "memory:///bucket/prefix/ct_response"
    assert Lake("memory://bucket/prefix").url == remote.url


def test_duckdb_cannot_read_a_lake_whose_path_is_a_glob(tmp_path: Path) -> None:
    assert LakeUrl.parse(str(tmp_path / "plain")).duckdb_safe()
    with pytest.raises(LakeError, match="DuckDB reads as a glob"):
        LakeUrl.parse(str(tmp_path / "lake[1]")).duckdb_safe()


def _write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_the_views_and_state_show_agree_on_a_tables_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR / "staging", sql / "staging")
    (sql / "marts").mkdir()
    schema = schemas.table_schema(M)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)

    def rows(n: int, evse: str) -> pa.Table:
        return pa.Table.from_pylist(
            [{"time": t0.replace(minute=i), "evse_address": evse} for i in range(n)], schema=schema
        )

    day = lake / M / "date=2024-03-01"
    _write(day / "part-00.parquet", rows(3, "a"))
    _write(day / "export-0.parquet", rows(2, "b"))  # foreign: read by the views, and counted
    _write(day / ".part-06.parquet", rows(5, "c"))  # hidden: someone's temporary, neither
    _write(day / "_tmp.parquet", rows(7, "d"))
    _write(lake / M / "elsewhere" / "part-00.parquet", rows(11, "e"))  # not a partition
    build_catalog(str(lake), sql_dir=sql, sites_file=None)
    in_views = connect(str(lake)).execute(f"select count(*) from {M}").fetchone()
    stats = Lake(str(lake)).stats(M)
    assert in_views == (stats["rows"],) == (5,)
    assert stats["files"] == 2
    assert State(Lake(str(lake))).summary()[M]["files"] == 2
    assert Lake(str(lake)).slot_files(M) == [f"{M}/date=2024-03-01/part-00.parquet"]
