"""When ``connect`` rebuilds the catalog by itself: a sites file added, edited or removed, a
lake moved or copied, a catalog in a storage format older DuckDBs cannot read."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from powerflex_etl.catalog import build, build_catalog, connect
from powerflex_etl.lake.layout import CATALOG_NAME
from tests.catalog.test_views import ct_row, write_rows

SITES_LA = '[sites."03"]\nname = "Caltech garage"\ntz = "America/Los_Angeles"\n'
SITES_NY = '[sites."03"]\nname = "Caltech garage"\ntz = "America/New_York"\n'


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    """The staging views and one mart that shows a local time, the way the marts compute it."""
    d = tmp_path / "sql"
    shutil.copytree(build.SQL_DIR / "staging", d / "staging")
    (d / "marts").mkdir()
    (d / "marts" / "local_times.sql").write_text(
        "select s.acc_id, timezone(coalesce(sites.tz, 'UTC'), s.time) as time_local\n"
        "from {{ ref('ct_response') }} as s\n"
        "left join {{ ref('sites') }} as sites on sites.acc_id = s.acc_id\n"
    )
    return d


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    d = tmp_path / "lake"
    d.mkdir()
    write_rows(d, "ct_response", "2024-03-01", [ct_row(0)])  # 2024-03-01 00:00 UTC
    return d


def _local_hour(lake: Path, **kw: str) -> int:
    con = connect(str(lake), **kw)
    try:
        row = con.execute("select hour(time_local) from local_times").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def _meta(lake: Path) -> dict[str, str | None]:
    con = duckdb.connect(str(lake / CATALOG_NAME), read_only=True)
    try:
        return dict(con.execute("select key, value from _catalog").fetchall())
    finally:
        con.close()


def test_a_sites_file_added_edited_or_removed_rebuilds_the_catalog(
    lake: Path, sql_dir: Path
) -> None:
    build_catalog(str(lake), sql_dir=sql_dir)
    assert _local_hour(lake) == 0  # no sites file: local columns are UTC
    assert _meta(lake)["sites_sha256"] is None
    (lake / "sites.toml").write_text(SITES_LA)  # added after the catalog exists
    assert _local_hour(lake) == 16  # 2024-02-29 16:00 in Los Angeles
    first = _meta(lake)["sites_sha256"]
    assert first is not None and len(first) == 64
    (lake / "sites.toml").write_text(SITES_NY)
    assert _local_hour(lake) == 19
    assert _meta(lake)["sites_sha256"] not in (None, first)
    (lake / "sites.toml").unlink()
    assert _local_hour(lake) == 0
    assert _meta(lake)["sites_sha256"] is None


def test_an_unchanged_sites_file_does_not_rebuild(lake: Path, sql_dir: Path) -> None:
    (lake / "sites.toml").write_text(SITES_LA)
    path = build_catalog(str(lake), sql_dir=sql_dir)
    before = path.stat().st_ino, path.stat().st_mtime_ns
    (lake / "sites.toml").write_text(SITES_LA)  # touched, same text
    assert _local_hour(lake) == 16
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == before


def test_a_sites_file_asked_for_is_used_and_its_edits_are_followed(
    lake: Path, sql_dir: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(SITES_NY)
    build_catalog(str(lake), sql_dir=sql_dir)
    assert _local_hour(lake, sites_file=str(mine)) == 19
    assert _meta(lake)["sites_file"] == str(mine)
    mine.write_text(SITES_LA)
    # without sites_file, the catalog keeps following the file it was built with
    assert _local_hour(lake) == 16


def test_a_moved_lake_is_rebuilt_for_its_new_place(
    lake: Path, sql_dir: Path, tmp_path: Path
) -> None:
    build_catalog(str(lake), sql_dir=sql_dir)
    moved = tmp_path / "moved"
    shutil.move(lake, moved)
    # plain DuckDB reads the views' absolute paths: it fails, naming where the lake was
    plain = duckdb.connect(str(moved / CATALOG_NAME), read_only=True)
    with pytest.raises(duckdb.Error, match=str(lake / "ct_response")):
        plain.execute("select count(*) from ct_response").fetchall()
    plain.close()
    # connect notices the lake moved and rebuilds; plain DuckDB then reads the new place
    assert connect(str(moved)).execute("select count(*) from ct_response").fetchone() == (1,)
    assert _meta(moved)["lake"] == str(moved)
    plain = duckdb.connect(str(moved / CATALOG_NAME), read_only=True)
    assert plain.execute("select count(*) from ct_response").fetchone() == (1,)
    plain.close()


def test_a_copied_lake_reads_its_own_files_once_connect_rebuilt_it(
    lake: Path, sql_dir: Path, tmp_path: Path
) -> None:
    build_catalog(str(lake), sql_dir=sql_dir)
    copy = tmp_path / "copy"
    shutil.copytree(lake, copy)
    write_rows(copy, "ct_response", "2024-03-02", [ct_row(60 * 24)])
    con = connect(str(copy))
    assert con.execute("select count(*) from ct_response").fetchone() == (2,)
    assert connect(str(lake)).execute("select count(*) from ct_response").fetchone() == (1,)


def test_a_catalog_in_another_storage_format_is_rewritten_in_the_readable_one(
    lake: Path, sql_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(build, "STORAGE_VERSION", "v2.0.0")  # what the catalog was before
        path = build_catalog(str(lake), sql_dir=sql_dir)
    assert _storage_tag(path) == "v2.0.0+"
    assert connect(str(lake)).execute("select count(*) from ct_response").fetchone() == (1,)
    assert _storage_tag(path) == "v1.0.0+"
    assert _meta(lake)["storage_version"] == build.STORAGE_VERSION


def _storage_tag(path: Path) -> str:
    con = duckdb.connect()
    try:
        con.execute(f"attach '{path}' as c (read_only)")
        row = con.execute(
            "select tags['storage_version'] from duckdb_databases() where database_name = 'c'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])
