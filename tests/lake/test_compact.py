"""`compact`: partitions with foreign or badly written files become the lake's own slot files.

The lake is ingested from the simulator on loopback, then "damaged" the way other writers
would: an hourly layout (``part-07.parquet`` ... beside ``part-06``) and slot files with tiny
row groups and snappy. What an analyst sees through the views must not change.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from powerflex_etl.catalog import connect
from powerflex_etl.ingest import run as runner
from powerflex_etl.ingest.housekeeping import compact_lake
from powerflex_etl.lake import crashpoints
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import KEY_COLUMNS
from powerflex_etl.settings import Settings
from powerflex_etl.simulator import RunningSimulator

M = "ct_response"
START = datetime(2021, 6, 1, tzinfo=UTC)
END = datetime(2021, 6, 3, tzinfo=UTC)  # two date partitions, eight slots

TOTALS = (
    "select count(*), sum(energy_delivered_kwh), sum(power_kw), "
    "count(distinct evse_address), min(time), max(time) from ct_response"
)


def _ingest(s: Settings) -> None:
    runner.run(
        s,
        start=START.isoformat(),
        end=END.isoformat(),
        measurements=[M],
        engine="local",
        workers=2,
    )


@pytest.fixture(scope="module")
def pristine(
    simulator: RunningSimulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One ingested lake for the module; tests work on copies of it."""
    lake = str(tmp_path_factory.mktemp("pristine") / "lake")
    _ingest(
        Settings(
            base_url=simulator.url,
            username=simulator.config.username,
            password=simulator.config.password,  # type: ignore[arg-type]
            lake=lake,
        )
    )
    yield lake


@pytest.fixture
def s(pristine: str, tmp_path: Path) -> Settings:
    """Settings on a private copy of the pristine lake (catalog dropped: it names its path)."""
    lake = tmp_path / "lake"
    shutil.copytree(pristine, lake, ignore=shutil.ignore_patterns("powerflex.duckdb*"))
    return Settings(lake=str(lake))


def _totals(s: Settings) -> tuple:
    con = connect(s.lake, catalog_path=s.catalog_path)
    try:
        row = con.execute(TOTALS).fetchone()
    finally:
        con.close()
    assert row is not None
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([(c, "ascending") for c in KEY_COLUMNS])


def _put(lake: Lake, rel: str, table: pa.Table, **kw: object) -> None:
    """Write a Parquet file the way a foreign tool would (not through the lake)."""
    path = lake.root.path(*rel.split("/"))
    if lake.is_local:
        pq.write_table(table, path, **kw)  # type: ignore[arg-type]
    else:
        with lake.root.fs.open(path, "wb") as f:
            pq.write_table(table, f, **kw)  # type: ignore[arg-type]


def _read(lake: Lake, rel: str) -> pa.Table:
    data = lake.root.read_bytes(lake.root.path(*rel.split("/")))
    assert data is not None, rel
    return pq.ParquetFile(pa.BufferReader(data)).read()


def _damage(lake: Lake) -> None:
    """date=2021-06-01: part-06 split into an hourly layout; part-12 in tiny snappy row groups."""
    six = _read(lake, f"{M}/date=2021-06-01/part-06.parquet")
    hour = pc.hour(six["time"])
    for h in range(6, 12):
        rows = six.filter(pc.equal(hour, h))
        # the hourly files are unsorted, as another tool might leave them
        rows = rows.sort_by([("time", "descending")])
        _put(lake, f"{M}/date=2021-06-01/part-{h:02d}.parquet", rows, compression="snappy")
    twelve = _read(lake, f"{M}/date=2021-06-01/part-12.parquet")
    _put(
        lake,
        f"{M}/date=2021-06-01/part-12.parquet",
        twelve,
        row_group_size=500,
        compression="snappy",
    )


def _files(lake: Lake, day: str) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in lake.root.glob([M, f"date={day}", "*.parquet"]))


def _check_compacts(s: Settings) -> None:
    lake = Lake(s.lake)
    clean = _sorted(lake.read(M))
    expected = _totals(s)
    _damage(lake)
    assert _files(lake, "2021-06-01") == [
        f"part-{h:02d}.parquet" for h in (0, 6, 7, 8, 9, 10, 11, 12, 18)
    ]
    assert _totals(s) == expected  # the damage itself changed no row the views see

    summary = compact_lake(s, [M])

    t = next(x for x in summary.tables if x.table == M)
    assert (t.partitions, t.partitions_rewritten) == (2, 1)
    assert (t.files_before, t.files_after) == (9 + 4, 4 + 4)
    assert t.rows_before == t.rows_after == clean.num_rows
    assert t.duplicates_dropped == 0
    assert _files(lake, "2021-06-01") == [
        "part-00.parquet",
        "part-06.parquet",
        "part-12.parquet",
        "part-18.parquet",
    ]
    assert _totals(s) == expected
    assert _sorted(lake.read(M)).equals(clean)  # every value of every row, lineage included
    for name in ("part-06.parquet", "part-12.parquet"):
        got = _read(lake, f"{M}/date=2021-06-01/{name}")
        assert got.equals(_sorted(got)), name  # sorted by (evse_address, time)
        meta = pq.ParquetFile(
            pa.BufferReader(lake.root.read_bytes(lake.root.path(M, "date=2021-06-01", name)) or b"")
        ).metadata
        assert meta.num_row_groups == 1
        assert meta.row_group(0).column(0).compression == "ZSTD"
    assert any(line.startswith(f"{M}: 1/2 partitions rewritten") for line in summary.lines())
    assert summary.to_dict()["tables"][0]["files_after"] == 8

    # idempotent: nothing left to do, nothing touched
    stamps = {
        p: lake.root.fs.info(p).get("ETag", lake.root.fs.info(p).get("mtime"))
        for p in lake.root.glob([M, "*", "*.parquet"])
    }
    again = compact_lake(s, [M])
    assert again.partitions_rewritten == 0
    assert _totals(s) == expected
    assert {
        p: lake.root.fs.info(p).get("ETag", lake.root.fs.info(p).get("mtime"))
        for p in lake.root.glob([M, "*", "*.parquet"])
    } == stamps


def test_compaction_keeps_every_row_and_is_idempotent(s: Settings) -> None:
    _check_compacts(s)


@pytest.mark.s3
def test_compaction_on_s3(sim_settings: Settings, s3_lake: str, tmp_path: Path) -> None:
    s = sim_settings.model_copy(
        update={"lake": s3_lake, "catalog_path": str(tmp_path / "c.duckdb")}
    )
    _ingest(s)
    _check_compacts(s)


def test_before_leaves_later_partitions_alone(s: Settings) -> None:
    lake = Lake(s.lake)
    day2 = _read(lake, f"{M}/date=2021-06-02/part-00.parquet")
    _put(lake, f"{M}/date=2021-06-02/part-00.parquet", day2, row_group_size=100)
    _damage(lake)
    summary = compact_lake(s, [M], date(2021, 6, 2))
    t = next(x for x in summary.tables if x.table == M)
    assert (t.partitions, t.partitions_rewritten) == (1, 1)
    assert len(_files(lake, "2021-06-01")) == 4
    meta = pq.ParquetFile(lake.root.path(M, "date=2021-06-02", "part-00.parquet")).metadata
    assert meta.num_row_groups > 1  # on or after --before: untouched
    assert compact_lake(s, [M]).partitions_rewritten == 1  # without --before it is done too


def test_a_foreign_copy_of_stored_rows_is_dropped_not_doubled(s: Settings) -> None:
    lake = Lake(s.lake)
    expected = _totals(s)
    n = lake.read(M).num_rows
    copy = _read(lake, f"{M}/date=2021-06-02/part-18.parquet")
    _put(lake, f"{M}/date=2021-06-02/export-0.parquet", copy.slice(0, 10))
    assert _totals(s)[0] == expected[0] + 10  # the views double those rows until compaction
    summary = compact_lake(s, [M])
    t = next(x for x in summary.tables if x.table == M)
    assert t.duplicates_dropped == 10
    assert _totals(s) == expected
    assert lake.read(M).num_rows == n


def test_a_crash_mid_compaction_loses_nothing_and_a_rerun_converges(
    s: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(s.lake)
    expected = _totals(s)
    _damage(lake)

    def crash(step: str) -> None:
        if step.startswith("compact_replaced:"):
            raise RuntimeError("killed")

    monkeypatch.setattr(crashpoints, "HOOK", crash)
    with pytest.raises(RuntimeError):
        compact_lake(s, [M])
    # the foreign files are still there; their rows may show twice, never zero times
    con = connect(s.lake)
    keys = con.execute(
        "select count(*), count(distinct (evse_address, time)) from ct_response"
    ).fetchone()
    con.close()
    assert keys is not None and keys[1] == expected[0] and keys[0] >= expected[0]
    monkeypatch.setattr(crashpoints, "HOOK", None)
    compact_lake(s, [M])
    assert _totals(s) == expected
    assert len(_files(lake, "2021-06-01")) == 4


def test_readers_during_compaction_see_the_same_rows(
    s: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slot files rewritten in place: a reader querying between any two replaces sees every row once."""
    lake = Lake(s.lake)
    expected = _totals(s)
    for p in lake.root.glob([M, "*", "*.parquet"]):
        _put(
            lake,
            lake.root.rel(p),
            pq.ParquetFile(p).read(),
            row_group_size=300,
            compression="snappy",
        )
    seen: list[tuple] = []
    errors: list[BaseException] = []
    transient: list[str] = []
    stop = threading.Event()
    asked = threading.Event()  # the compactor asks for one query after a replace
    answered = threading.Event()

    def reader() -> None:
        try:
            con = connect(s.lake)
            try:
                while not stop.is_set():
                    answering = asked.is_set()
                    asked.clear()
                    seen.append(_query_retrying(con, TOTALS, transient))
                    if answering:
                        answered.set()
            finally:
                con.close()
        except BaseException as err:
            errors.append(err)
        finally:
            answered.set()

    def after_replace(step: str) -> None:
        answered.clear()
        asked.set()
        assert answered.wait(60) and not errors, errors or "reader did not answer"

    t = threading.Thread(target=reader)
    t.start()
    monkeypatch.setattr(crashpoints, "HOOK", after_replace)
    try:
        summary = compact_lake(s, [M])
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    assert summary.partitions_rewritten == 2
    rounded = {tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in seen}
    assert rounded == {expected}
    assert len(seen) >= 8  # at least one query after each of the eight replaces
    # DuckDB may fail (it never answered wrongly) when a file it reads is replaced mid-query:
    # "Failed to read file ...", "TProtocolException: Invalid data", "don't know what type"
    assert len(transient) < len(seen), transient


def _query_retrying(con: duckdb.DuckDBPyConnection, sql: str, transient: list[str]) -> tuple:
    """One answer; a query that raced a slot replace (DuckDB reopens files) is asked again."""
    for _ in range(20):
        try:
            return con.execute(sql).fetchone() or ()
        except duckdb.Error as err:
            transient.append(str(err))
    raise AssertionError(f"20 failed attempts: {transient[-1]}")
