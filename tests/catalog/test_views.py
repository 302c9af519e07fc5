"""The DuckDB catalog: views over a lake written here with pyarrow (independent of lake.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from powerflex_etl import schemas
from powerflex_etl.catalog import CatalogError, build_catalog, connect
from powerflex_etl.catalog.sqlfiles import SQL_DIR
from powerflex_etl.errors import ConfigError, LakeError
from powerflex_etl.lake.layout import CATALOG_NAME
from powerflex_etl.settings import Settings

T0 = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
STAGING_VIEWS = sorted(p.stem for p in (SQL_DIR / "staging").glob("*.sql"))


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    """The repository's staging SQL and an empty marts tier (marts have their own tests)."""
    d = tmp_path / "sql"
    shutil.copytree(SQL_DIR / "staging", d / "staging")
    (d / "marts").mkdir()
    return d


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    d = tmp_path / "lake"
    d.mkdir()
    return d


def write_rows(
    lake: Path, table: str, day: str, rows: list[dict[str, Any]], *, part: str = "part-00"
) -> Path:
    """One slot file of ``table`` (a measurement or DCM snapshot) the way the lake lays it out."""
    schema = schemas.table_schema(table)
    extra = [k for r in rows for k in r if k not in schema.names]
    if extra:  # a field the API started sending: kept as an extra column, like normalize does
        extra_schema = pa.Table.from_pylist([{k: r.get(k) for k in extra} for r in rows]).schema
        schema = schemas.arrow_schema(table, extra_schema)
    path = lake / table / f"date={day}" / f"{part}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def ct_row(minute: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "time": T0 + timedelta(minutes=minute),
        "evse_address": "CA-301",
        "acn_id": "0002",
        "acc_id": "03",
        "charging_state": "ADAPTIVE",
        "energy_delivered_kwh": 1.25,
        "current_actual_a": 16.0,
        "voltage_v": 208.0,
        "power_kw": 3.3,
        "_ingested_at": T0 + timedelta(days=1),
        "_run_id": "run-1",
    }
    row.update(kw)
    return row


def rows_of(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    con.execute(sql)
    names = [d[0] for d in con.description or []]
    return [dict(zip(names, r, strict=True)) for r in con.fetchall()]


def test_empty_lake_has_every_view_with_the_schema_columns(lake: Path, sql_dir: Path) -> None:
    path = build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert path == lake / CATALOG_NAME
    con = connect(str(lake))
    views = {
        r[0]
        for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()
    }
    assert set(STAGING_VIEWS) <= views
    assert {"ct_response", "evse_request", "evse_response", "rejects", "ingest_runs"} <= views
    for m in (*schemas.MEASUREMENTS, "rejects", "external_signals_history"):
        table = "external_signals" if m == "external_signals_history" else m
        con.execute(f"select * from {m}")
        assert [d[0] for d in con.description or []] == [*schemas.table_schema(table).names, "date"]
        assert con.fetchall() == []
    assert con.execute("select count(*) from ingest_runs").fetchone() == (0,)


@pytest.mark.parametrize("table", schemas.LAKE_TABLES)
def test_empty_relation_has_the_types_duckdb_gives_real_files(
    table: str, lake: Path, sql_dir: Path, tmp_path: Path
) -> None:
    """Views must not change type when the first file lands (marts bind against both)."""
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    empty = duckdb.connect(str(lake / CATALOG_NAME), read_only=True)
    view = f"{table}_history" if table in schemas.DCM_SCHEMAS else table
    before = empty.execute(f"describe {view}").fetchall()
    empty.close()
    path = (
        lake
        / table
        / ("ct_response" if table == "rejects" else "")
        / "date=2024-03-01"
        / "p.parquet"
    )
    path.parent.mkdir(parents=True)
    pq.write_table(schemas.table_schema(table).empty_table(), path)
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    con = duckdb.connect(str(lake / CATALOG_NAME), read_only=True)
    after = con.execute(f"describe {view}").fetchall()
    assert [(r[0], r[1]) for r in after] == [(r[0], r[1]) for r in before]


def test_rows_come_back_exactly_with_ids_as_strings_and_utc_times(
    lake: Path, sql_dir: Path
) -> None:
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0), ct_row(1, charging_state=None)])
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    con = connect(str(lake))
    got = rows_of(con, "select * from ct_response order by time")
    assert [r["time"] for r in got] == [T0, T0 + timedelta(minutes=1)]
    assert all(r["time"].utcoffset() == timedelta(0) for r in got)
    assert [r["acc_id"] for r in got] == ["03", "03"]
    assert [r["acn_id"] for r in got] == ["0002", "0002"]
    assert [r["charging_state"] for r in got] == ["ADAPTIVE", None]
    assert got[0]["energy_delivered_kwh"] == 1.25
    assert got[0]["date"].isoformat() == "2024-03-01"
    assert con.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)


def test_connect_shows_utc_whatever_the_process_time_zone(lake: Path, sql_dir: Path) -> None:
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0)])
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    code = (
        "import powerflex_etl, sys; con = powerflex_etl.connect(sys.argv[1]);"
        "print(con.execute('select cast(time as varchar) from ct_response').fetchone()[0])"
    )
    env = {**os.environ, "TZ": "America/Los_Angeles"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(lake)], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "2024-03-01 00:00:00+00"


def test_a_column_added_later_is_queryable_and_null_for_old_rows(lake: Path, sql_dir: Path) -> None:
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0)])
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    # the API starts sending a new field; the catalog is not rebuilt in between
    write_rows(lake, "ct_response", "2024-03-02", [ct_row(60 * 24, temperature_c=31.5)])
    con = connect(str(lake))
    got = con.execute(
        "select date, acc_id, temperature_c from ct_response order by time"
    ).fetchall()
    assert [(d.isoformat(), a, t) for d, a, t in got] == [
        ("2024-03-01", "03", None),
        ("2024-03-02", "03", 31.5),
    ]


def test_catalog_works_read_only_from_another_directory(
    lake: Path, sql_dir: Path, tmp_path: Path
) -> None:
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0), ct_row(1)])
    path = build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True);"
        "print(con.execute('select count(*), min(acc_id) from ct_response').fetchone())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "(2, '03')"


def test_a_reader_holding_the_catalog_never_blocks_a_rebuild(lake: Path, sql_dir: Path) -> None:
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0)])
    path = build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    # another process, like `duckdb -readonly`, holds the catalog open across the rebuild
    reader_code = (
        "import duckdb, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print('open', flush=True)\n"
        "for line in sys.stdin:\n"
        "    print(con.execute('select count(*) from ct_response').fetchone()[0], flush=True)\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", reader_code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None and reader.stdout is not None
    try:
        assert reader.stdout.readline().strip() == "open"
        write_rows(lake, "ct_response", "2024-03-01", [ct_row(0), ct_row(1)])
        write_rows(lake, "evse_request", "2024-03-01", [{"time": T0, "evse_address": "CA-301"}])
        assert build_catalog(str(lake), sql_dir=sql_dir, sites_file=None) == path
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "2"  # still works, reading the same lake
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert reader.returncode == 0
    con = connect(str(lake))
    assert con.execute("select count(*) from evse_request").fetchone() == (1,)
    assert not [p.name for p in lake.iterdir() if p.name.endswith((".tmp", ".wal"))]


def test_lake_path_with_a_single_quote(tmp_path: Path, sql_dir: Path) -> None:
    lake = tmp_path / "it's a lake"
    lake.mkdir()
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0)])
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert connect(str(lake)).execute("select acc_id from ct_response").fetchall() == [("03",)]


def test_lake_path_with_glob_characters_is_refused_clearly(tmp_path: Path, sql_dir: Path) -> None:
    lake = tmp_path / "lake[1]"
    lake.mkdir()
    with pytest.raises(LakeError, match=r"lake\[1\].*glob"):
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)


def test_a_missing_local_lake_is_an_error_not_a_new_directory(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="no lake at"):
        build_catalog(str(tmp_path / "nope"), sites_file=None)
    assert not (tmp_path / "nope").exists()


def test_connect_rebuilds_a_catalog_the_lake_has_outgrown(lake: Path, sql_dir: Path) -> None:
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    # a writer that did not refresh the catalog
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0)])
    con = connect(str(lake))
    assert con.execute("select acc_id from ct_response").fetchall() == [("03",)]
    # and the rebuild kept the SQL directory the catalog was built from
    assert con.execute("select value from _catalog where key = 'sql_dir'").fetchone() == (
        str(sql_dir.resolve()),
    )


def test_connect_builds_a_missing_catalog(lake: Path) -> None:
    assert not (lake / CATALOG_NAME).exists()
    try:
        con = connect(str(lake))
    except CatalogError as e:  # the marts tier belongs to another module; say why, don't hide it
        pytest.fail(f"the repository's sql/ does not build on an empty lake: {e}")
    assert (lake / CATALOG_NAME).is_file()
    assert con.execute("select count(*) from ct_response").fetchone() == (0,)
    with pytest.raises(duckdb.Error, match="read-only"):
        con.execute("create table x(a int)")


def test_rejects_view_reads_every_measurement(lake: Path, sql_dir: Path) -> None:
    for m, reason in (("ct_response", "negative energy"), ("evse_request", "no time")):
        path = lake / "rejects" / m / "date=2024-03-01" / "part-00.parquet"
        path.parent.mkdir(parents=True)
        row = {
            "measurement": m,
            "reject_id": f"id-{m}",
            "reason": reason,
            "raw": '{"acc_id": "03"}',
        }
        pq.write_table(pa.Table.from_pylist([row], schema=schemas.REJECTS_SCHEMA), path)
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    got = (
        connect(str(lake))
        .execute("select measurement, reason, raw from rejects order by 1")
        .fetchall()
    )
    assert got == [
        ("ct_response", "negative energy", '{"acc_id": "03"}'),
        ("evse_request", "no time", '{"acc_id": "03"}'),
    ]


def test_dcm_views_keep_history_and_show_the_latest_snapshot(lake: Path, sql_dir: Path) -> None:
    def sig(at: datetime, acc: str, load: float) -> dict[str, Any]:
        return {"snapshot_at": at, "acc_id": acc, "name": "site_limit", "max_load": load}

    write_rows(lake, "external_signals", "2024-03-01", [sig(T0, "03", 100.0), sig(T0, "04", 5.0)])
    later = T0 + timedelta(days=1)
    write_rows(lake, "external_signals", "2024-03-02", [sig(later, "03", 80.0)])
    months = [
        {
            "snapshot_at": T0,
            "acc_id": "03",
            "month": "Mar",
            "month_num": 3,
            "target_peak_power_kw": 700.0,
        }
    ]
    write_rows(lake, "target_peak_power", "2024-03-01", months)
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    con = connect(str(lake))
    assert con.execute("select count(*) from external_signals_history").fetchone() == (3,)
    assert con.execute("select acc_id, max_load from external_signals order by 1").fetchall() == [
        ("03", 80.0),
        ("04", 5.0),
    ]
    assert con.execute(
        "select month_num, target_peak_power_kw from target_peak_power"
    ).fetchall() == [(3, 700.0)]


def test_ingest_runs_reads_the_window_records(lake: Path, sql_dir: Path) -> None:
    record = {
        "measurement": "ct_response",
        "window_start": "2024-03-01T00:00:00+00:00",
        "window_end": "2024-03-01T06:00:00Z",
        "rows": 360,
        "rejects": 2,
        "run_id": "run-1",
        "seconds": 1.5,
        "committed_at": "2024-03-02T10:00:00.250000+00:00",
    }
    path = lake / "_state" / "windows" / "ct_response" / "1709251200.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    got = rows_of(connect(str(lake)), "select * from ingest_runs")
    assert got == [
        {
            **record,
            "window_start": T0,
            "window_end": T0 + timedelta(hours=6),
            "committed_at": datetime(2024, 3, 2, 10, 0, 0, 250000, tzinfo=UTC),
        }
    ]


SITES = """
[sites."03"]
name = "Caltech garage"
tz = "America/Los_Angeles"

[sites."1"]
name = "JPL"
tz = "US/Pacific"
"""


def test_sites_table_from_the_lake_sites_file(lake: Path, sql_dir: Path) -> None:
    (lake / "sites.toml").write_text(SITES)
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    got = connect(str(lake)).execute("select * from sites order by acc_id").fetchall()
    assert got == [("03", "Caltech garage", "America/Los_Angeles"), ("1", "JPL", "US/Pacific")]


def test_sites_file_setting_wins_and_a_bad_zone_is_refused(
    lake: Path, sql_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (lake / "sites.toml").write_text(SITES)
    other = tmp_path / "mine.toml"
    other.write_text('[sites."07"]\nname = "Office \'A\'"\ntz = "Europe/Paris"\n')
    monkeypatch.setenv("POWERFLEX_SITES_FILE", str(other))
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=Settings().sites_file)
    assert connect(str(lake)).execute("select * from sites").fetchall() == [
        ("07", "Office 'A'", "Europe/Paris")
    ]
    other.write_text('[sites."07"]\nname = "x"\ntz = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=Settings().sites_file)


def test_no_sites_file_gives_an_empty_sites_table(lake: Path, sql_dir: Path) -> None:
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    con = connect(str(lake))
    assert con.execute("select count(*) from sites").fetchone() == (0,)
    assert [r[0] for r in con.execute("describe sites").fetchall()] == ["acc_id", "name", "tz"]


def test_marts_bind_whatever_their_name_order(lake: Path, sql_dir: Path) -> None:
    # a_summary depends on z_base, which sorts after it: the ref orders them
    (sql_dir / "marts" / "a_summary.sql").write_text(
        "with base as (select * from {{ ref('z_base') }})\n\n"
        "select acc_id, count(*) as n from base group by acc_id\n"
    )
    (sql_dir / "marts" / "z_base.sql").write_text(
        "select s.*, sites.tz from {{ ref('ct_response') }} as s\n"
        "left join {{ ref('sites') }} as sites using (acc_id);\n"
    )
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0), ct_row(1)])
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert connect(str(lake)).execute("select * from a_summary").fetchall() == [("03", 2)]


def test_a_view_read_without_its_ref_is_named_with_what_to_do(lake: Path, sql_dir: Path) -> None:
    # the order comes from the refs alone: an undeclared read of a later view does not bind
    (sql_dir / "marts" / "a_summary.sql").write_text("select count(*) as n from z_base")
    (sql_dir / "marts" / "z_base.sql").write_text("select * from {{ ref('ct_response') }}")
    with pytest.raises(CatalogError, match=r"marts/a_summary\.sql: Catalog Error.*z_base") as e:
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert "ref('name')" in e.value.one_line()


def test_a_view_reading_a_broken_one_is_named_too(lake: Path, sql_dir: Path) -> None:
    (sql_dir / "marts" / "a_broken.sql").write_text("select no_such_column from ct_response")
    (sql_dir / "marts" / "b_reader.sql").write_text("select * from {{ ref('a_broken') }}")
    with pytest.raises(
        CatalogError, match=r"a_broken\.sql: Binder Error.*b_reader\.sql: reads a_broken"
    ):
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {"marts/a.sql": "select * from {{ ref('nowhere') }}"},
            r"a\.sql: ref\('nowhere'\) names no view",
        ),
        (
            {
                "marts/a.sql": "select * from {{ ref('b') }}",
                "marts/b.sql": "select * from {{ ref('c') }}",
                "marts/c.sql": "select * from {{ ref('a') }}",
            },
            r"a\.sql: ref\(\) cycle a -> b -> c -> a",
        ),
        ({"marts/a.sql": "select * from {{ ref('a') }}"}, r"a\.sql: ref\(\) cycle a -> a"),
        (
            {
                "staging/early.sql": "select * from {{ ref('late') }}",
                "marts/late.sql": "select 1 as x",
            },
            r"early\.sql: ref\('late'\) reads the marts tier from staging",
        ),
        ({"marts/sites.sql": "select 1 as x"}, r"sites\.sql: sites is a table the catalog creates"),
        (
            {"intermediate/ct_response.sql": "select 1 as x"},
            r"ct_response is in both staging and intermediate",
        ),
    ],
    ids=["unknown", "cycle", "self", "later-tier", "shadows-sites", "twice"],
)
def test_refs_that_cannot_be_ordered_are_a_catalog_error_naming_the_file(
    lake: Path, sql_dir: Path, files: dict[str, str], error: str
) -> None:
    path = build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    before = path.read_bytes()
    for name, text in files.items():
        (sql_dir / name).parent.mkdir(exist_ok=True)
        (sql_dir / name).write_text(text)
    with pytest.raises(CatalogError, match=error):
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert path.read_bytes() == before


def test_every_view_of_the_repository_reads_through_refs_in_tier_order(lake: Path) -> None:
    from powerflex_etl.catalog.sqlfiles import TIERS, all_view_files, build_order

    files = all_view_files(SQL_DIR)
    assert {f.tier for f in files} == set(TIERS)
    assert [f.tier for f in build_order(files)] == sorted((f.tier for f in files), key=TIERS.index)
    assert {"session_samples", "evse_load_15min"} == {
        f.name for f in files if f.tier == "intermediate"
    }
    build_catalog(str(lake), sites_file=None)
    con = connect(str(lake))
    sql = "select view_name from duckdb_views() where database_name = 'powerflex'"
    views = {r[0] for r in con.execute(sql).fetchall()}
    assert views == {f.name for f in files}


def test_a_mart_that_never_binds_is_named_and_the_old_catalog_stays(
    lake: Path, sql_dir: Path
) -> None:
    path = build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    before = path.read_bytes()
    (sql_dir / "marts" / "broken.sql").write_text("select no_such_column from ct_response")
    with pytest.raises(CatalogError, match=r"marts/broken\.sql: Binder Error.*no_such_column") as e:
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert "\n" not in str(e.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in lake.iterdir()) == [CATALOG_NAME]


def test_unknown_source_is_a_catalog_error(lake: Path, sql_dir: Path) -> None:
    (sql_dir / "marts" / "bad.sql").write_text("select * from {{ source('nope') }}")
    with pytest.raises(CatalogError, match=r"bad\.sql.*source\('nope'\)"):
        build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)


def test_object_store_lake_through_fsspec(tmp_path: Path, sql_dir: Path) -> None:
    """The object-store path, offline: fsspec's memory filesystem stands in for s3."""
    import fsspec

    fs = fsspec.filesystem("memory")
    url = "memory://views-test-lake"
    table = pa.Table.from_pylist([ct_row(0)], schema=schemas.arrow_schema("ct_response"))
    with fs.open(f"{url}/ct_response/date=2024-03-01/part-00.parquet", "wb") as fh:
        pq.write_table(table, fh)
    fs.pipe(f"{url}/sites.toml", SITES.encode())
    try:
        catalog = tmp_path / "cache" / "cat.duckdb"
        assert (
            build_catalog(url, catalog_path=str(catalog), sql_dir=sql_dir, sites_file=None)
            == catalog
        )
        con = connect(url, catalog_path=str(catalog))
        assert con.execute("select acc_id, time from ct_response").fetchall() == [("03", T0)]
        assert con.execute("select count(*) from sites").fetchone() == (2,)
    finally:
        fs.rm(url, recursive=True)


def test_connect_in_the_same_process_sees_a_rebuilt_catalog(lake: Path, sql_dir: Path) -> None:
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    first = connect(str(lake))
    assert first.execute("select count(*) from ct_response").fetchone() == (0,)
    write_rows(lake, "ct_response", "2024-03-01", [ct_row(0)])
    build_catalog(str(lake), sql_dir=sql_dir, sites_file=None)
    assert connect(str(lake)).execute("select count(*) from ct_response").fetchone() == (1,)
    assert first.execute("select count(*) from ct_response").fetchone() == (0,)


def test_a_missing_sql_directory_is_an_error_not_an_empty_catalog(
    lake: Path, tmp_path: Path
) -> None:
    with pytest.raises(CatalogError, match="no SQL views"):
        build_catalog(str(lake), sql_dir=tmp_path / "nowhere", sites_file=None)
    assert not (lake / CATALOG_NAME).exists()
