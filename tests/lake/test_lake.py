"""Committing windows into the lake: round trip, idempotent reruns, slots, schema evolution, rejects."""

from __future__ import annotations

import os
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerflex_etl.errors import LakeError
from powerflex_etl.lake.layout import slot_starts
from powerflex_etl.lake.store import Lake
from powerflex_etl.schemas import DCM_SCHEMAS
from powerflex_etl.windows import Window
from tests.lake.test_lake_helpers import (
    DAY,
    EVSES,
    NO_REJECTS,
    M,
    at,
    ct_rows,
    grid,
    inside,
    reject_rows,
    rows_of,
    win,
)

D = "ct_response/date=2020-02-28"


@pytest.fixture
def lake(tmp_path: object) -> Lake:
    return Lake(str(tmp_path))


def test_round_trip_writes_sorted_zstd_slot_files(lake: Lake) -> None:
    w = win(0, 6)
    table = ct_rows(reversed(grid(0, 6)))  # delivered out of order
    result = lake.commit_window(M, w, table, NO_REJECTS, run_id="run-a")

    assert result.rows_written == table.num_rows
    assert result.slots == [f"{D}/part-00.parquet"]
    back = lake.read(M)
    assert rows_of(back) == rows_of(table)
    assert back.column("_run_id").to_pylist() == ["run-a"] * table.num_rows
    # the file itself is sorted by (evse_address, time), zstd, dictionary ids, statistics
    assert back.column("evse_address").to_pylist() == sorted(
        back.column("evse_address").to_pylist()
    )
    meta = pq.ParquetFile(os.path.join(lake.url, result.slots[0])).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    col = meta.row_group(0).column(names.index("evse_address"))
    assert col.compression == "ZSTD"
    assert "RLE_DICTIONARY" in col.encodings or "PLAIN_DICTIONARY" in col.encodings
    assert col.statistics is not None and col.statistics.min == EVSES[0]
    # min/max where a scan prunes by them (time, numbers, the key); not for the other text,
    # which holds the same few values in every row group
    stats = {n: meta.row_group(0).column(i).is_stats_set for i, n in enumerate(names)}
    assert stats["time"] and stats["power_kw"]
    assert not stats["acn_id"] and not stats["_run_id"]


def test_dictionary_encoded_text_as_normalize_gives_it_reads_back_as_plain_strings(
    lake: Lake,
) -> None:
    """Normalize hands text over dictionary-encoded; the files hold no Arrow schema, so
    pyarrow and DuckDB readers see strings, and old (plain) and new (dictionary) rows of an
    overlapping window merge into one slot."""
    import duckdb

    from powerflex_etl.schemas import arrow_schema, dictionary_schema

    def encoded(t: pa.Table) -> pa.Table:
        return t.cast(dictionary_schema(t.schema))

    truth = grid(0, 12, step_min=20)
    lake.commit_window(
        M, win(0, 6), encoded(ct_rows(inside(truth, win(0, 6)))), NO_REJECTS, run_id="r"
    )
    lake.commit_window(M, win(6, 12), ct_rows(inside(truth, win(6, 12))), NO_REJECTS, run_id="r")
    # overlapping both slots: the kept plain rows and the new dictionary rows merge
    lake.commit_window(
        M, win(3, 9), encoded(ct_rows(inside(truth, win(3, 9)))), NO_REJECTS, run_id="r"
    )
    back = lake.read(M)
    assert back.schema.remove_metadata() == arrow_schema(M)
    energy = "energy_delivered_kwh"  # ct_rows numbers it per table: not comparable here
    assert rows_of(back.drop_columns([energy])) == rows_of(ct_rows(truth).drop_columns([energy]))
    for rel in lake.slot_files(M):
        assert pq.read_schema(os.path.join(lake.url, rel)).field("acc_id").type == pa.string()
    glob = os.path.join(lake.url, M, "**", "*.parquet")
    kinds = duckdb.sql(f"DESCRIBE SELECT acc_id, _run_id FROM read_parquet('{glob}')").fetchall()
    assert [k[1] for k in kinds] == ["VARCHAR", "VARCHAR"]


def test_local_lake_url_is_stored_absolute(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(str(tmp_path))
    lake = Lake("lake")
    assert lake.is_local
    assert lake.url == os.path.join(os.path.realpath(str(tmp_path)), "lake")
    assert lake.table_path(M) == os.path.join(lake.url, M)


def test_rerun_of_a_window_leaves_the_same_rows(lake: Lake) -> None:
    w = win(0, 12)
    pts = grid(0, 12)
    lake.commit_window(M, w, ct_rows(pts, run_id="run-a"), NO_REJECTS, run_id="run-a")
    first = rows_of(lake.read(M))
    files = lake.slot_files(M)
    lake.commit_window(M, w, ct_rows(pts, run_id="run-b"), NO_REJECTS, run_id="run-b")
    assert rows_of(lake.read(M)) == first
    assert lake.slot_files(M) == files
    assert set(lake.read(M).column("_run_id").to_pylist()) == {"run-b"}


def test_overlapping_windows_converge(lake: Lake) -> None:
    truth = grid(0, 24, step_min=20)
    for w in (win(0, 12), win(6, 18), win(3, 24), win(0, 24)):
        lake.commit_window(M, w, ct_rows(inside(truth, w)), NO_REJECTS, run_id="r")
    assert rows_of(lake.read(M)) == rows_of(ct_rows(truth))


def test_window_spanning_slots_and_days(lake: Lake) -> None:
    w = win(3, 33)  # 03:00 day 1 .. 09:00 day 2
    pts = grid(3, 33)
    result = lake.commit_window(M, w, ct_rows(pts), NO_REJECTS, run_id="r")
    assert [s.split("/", 1)[1] for s in result.slots] == [
        "date=2020-02-28/part-00.parquet",
        "date=2020-02-28/part-06.parquet",
        "date=2020-02-28/part-12.parquet",
        "date=2020-02-28/part-18.parquet",
        "date=2020-02-29/part-00.parquet",
        "date=2020-02-29/part-06.parquet",
    ]
    assert rows_of(lake.read(M)) == rows_of(ct_rows(pts))
    # each file holds only its own 6 hours
    for rel in result.slots:
        t = pq.read_table(os.path.join(lake.url, rel)).column("time").to_pylist()
        hour = int(rel[-10:-8])
        assert {x.hour // 6 * 6 for x in t} == {hour}


def test_rows_outside_the_window_are_preserved(lake: Lake) -> None:
    day = grid(0, 24)
    lake.commit_window(M, win(0, 24), ct_rows(day, power=1.0), NO_REJECTS, run_id="a")
    w = win(7, 9)  # inside one slot, in its middle
    lake.commit_window(M, w, ct_rows(inside(day, w), power=2.0), NO_REJECTS, run_id="b")
    back = lake.read(M)
    by_key = {(r["evse_address"], r["time"]): r["power_kw"] for r in back.to_pylist()}
    assert len(by_key) == len(day) == back.num_rows
    for e, t in day:
        assert by_key[(e, t)] == (2.0 if w.start <= t < w.end else 1.0)


def test_a_smaller_answer_removes_stale_rows(lake: Lake) -> None:
    w = win(0, 6)
    lake.commit_window(M, w, ct_rows(grid(0, 6)), NO_REJECTS, run_id="a")
    fewer = [p for p in grid(0, 6) if p[0] == EVSES[0]]
    lake.commit_window(M, w, ct_rows(fewer), NO_REJECTS, run_id="b")
    assert rows_of(lake.read(M)) == rows_of(ct_rows(fewer))


def test_slot_left_empty_is_deleted_and_empty_slots_are_never_created(lake: Lake) -> None:
    lake.commit_window(M, win(0, 12), ct_rows(grid(0, 12)), NO_REJECTS, run_id="a")
    result = lake.commit_window(M, win(6, 12), ct_rows([]), NO_REJECTS, run_id="b")
    assert result.slots == [f"{D}/part-06.parquet"]
    assert lake.slot_files(M) == [f"{D}/part-00.parquet"]
    # a window with no rows where no file exists touches nothing
    assert lake.commit_window(M, win(12, 24), ct_rows([]), NO_REJECTS, run_id="c").slots == []
    assert lake.slot_files(M) == [f"{D}/part-00.parquet"]


def test_untouched_slot_file_is_not_rewritten(lake: Lake) -> None:
    lake.commit_window(M, win(0, 6), ct_rows(grid(0, 3)), NO_REJECTS, run_id="a")
    path = os.path.join(lake.url, D, "part-00.parquet")
    before = os.stat(path).st_ino
    # the window's part of the slot holds no rows, old or new: nothing to replace
    assert lake.commit_window(M, win(4, 6), ct_rows([]), NO_REJECTS, run_id="b").slots == []
    assert os.stat(path).st_ino == before


def test_extra_column_appearing_gives_older_rows_nulls(lake: Lake) -> None:
    lake.commit_window(M, win(0, 6), ct_rows(grid(0, 3)), NO_REJECTS, run_id="a")
    new_pts = grid(3, 6)
    fw = {"firmware": pa.array(["2.1.0"] * len(new_pts))}
    lake.commit_window(M, win(3, 6), ct_rows(new_pts, extra=fw), NO_REJECTS, run_id="b")
    back = lake.read(M)
    assert back.schema.field("firmware").type == pa.string()
    # extras sit before the lineage columns
    assert back.column_names[-3:] == ["firmware", "_ingested_at", "_run_id"]
    got = {r["time"]: r["firmware"] for r in back.to_pylist()}
    assert all(v is None for t, v in got.items() if t < at(3))
    assert all(v == "2.1.0" for t, v in got.items() if t >= at(3))


def test_extra_column_disappearing_is_kept_with_nulls(lake: Lake) -> None:
    pts = grid(0, 6)
    fw = {"firmware": pa.array(["2.1.0"] * len(pts))}
    lake.commit_window(M, win(0, 6), ct_rows(pts, extra=fw), NO_REJECTS, run_id="a")
    lake.commit_window(M, win(3, 6), ct_rows(inside(pts, win(3, 6))), NO_REJECTS, run_id="b")
    got = {r["time"]: r["firmware"] for r in lake.read(M).to_pylist()}
    assert len(got) == len({t for _, t in pts})
    assert all((v == "2.1.0") == (t < at(3)) for t, v in got.items())


def test_type_conflict_names_the_column_and_changes_nothing(lake: Lake) -> None:
    pts = grid(0, 6)
    lake.commit_window(
        M, win(0, 6), ct_rows(pts, extra={"fw": pa.array(["1"] * len(pts))}), NO_REJECTS, run_id="a"
    )
    before = lake.read(M)
    bad = ct_rows(pts, extra={"fw": pa.array([1.0] * len(pts))})
    with pytest.raises(LakeError, match="'fw'"):
        lake.commit_window(M, win(0, 6), bad, NO_REJECTS, run_id="b")
    assert lake.read(M).equals(before)


def test_rows_outside_the_window_are_refused(lake: Lake) -> None:
    with pytest.raises(LakeError, match="outside the window"):
        lake.commit_window(M, win(0, 6), ct_rows(grid(0, 7)), NO_REJECTS, run_id="a")
    assert lake.slot_files(M) == []


def test_unknown_measurement_is_refused(lake: Lake) -> None:
    with pytest.raises(LakeError, match="unknown"):
        lake.commit_window("../etc", win(0, 6), ct_rows([]), NO_REJECTS, run_id="a")


def test_rejects_are_stored_once_across_runs_and_windows(lake: Lake) -> None:
    w1, w2 = win(0, 6), win(6, 12)
    bad1 = reject_rows([("row-1", at(1)), ("row-2", None), ("row-1", at(1))], w1)
    r = lake.commit_window(M, w1, ct_rows([]), bad1, run_id="a")
    assert r.rejects_written == 2  # the duplicate within the answer counts once
    assert lake.commit_window(M, w1, ct_rows([]), bad1, run_id="b").rejects_written == 0
    # the same raw row delivered again in another window is the same reject
    bad2 = reject_rows([("row-1", at(1)), ("row-3", at(7))], w2)
    assert lake.commit_window(M, w2, ct_rows([]), bad2, run_id="c").rejects_written == 1
    stored = lake.read("rejects")
    assert sorted(stored.column("raw").to_pylist()) == [
        '{"raw": "row-1"}',
        '{"raw": "row-2"}',
        '{"raw": "row-3"}',
    ]
    # a reject without a time lands in its window's start slot
    assert lake.slot_files("rejects") == [
        f"rejects/{M}/date=2020-02-28/part-00.parquet",
        f"rejects/{M}/date=2020-02-28/part-06.parquet",
    ]
    # rerunning without rejects never deletes them
    lake.commit_window(M, w1, ct_rows([]), NO_REJECTS, run_id="d")
    assert lake.read("rejects").num_rows == 3


def test_write_snapshot_is_one_immutable_file(lake: Lake) -> None:
    schema = DCM_SCHEMAS["target_peak_power"]
    snap = pa.table(
        {
            "snapshot_at": pa.array([DAY], schema.field("snapshot_at").type),
            "acc_id": ["73"],
            "month": ["Jun"],
            "month_num": pa.array([6], pa.int8()),
            "target_peak_power_kw": [700.0],
            "_run_id": ["r"],
        },
        schema=schema,
    )
    rel = lake.write_snapshot("target_peak_power", snap, "r1", at=DAY)
    assert rel == "target_peak_power/date=2020-02-28/snap-r1.parquet"
    again = snap.set_column(4, "target_peak_power_kw", pa.array([1.0]))
    assert lake.write_snapshot("target_peak_power", again, "r1", at=DAY) == rel
    assert lake.read("target_peak_power").column("target_peak_power_kw").to_pylist() == [700.0]
    with pytest.raises(LakeError, match="unsafe"):
        lake.write_snapshot("target_peak_power", snap, "../../x", at=DAY)
    with pytest.raises(LakeError):
        lake.write_snapshot(M, snap, "r2", at=DAY)


def test_read_of_an_empty_table_has_its_schema(lake: Lake) -> None:
    assert lake.read(M).num_rows == 0
    assert "power_kw" in lake.read(M).column_names
    assert lake.read("rejects").column_names[1] == "reject_id"


def test_remote_lake_round_trip_on_memory_filesystem() -> None:
    lake = Lake("memory://lake-roundtrip")
    assert not lake.is_local
    assert lake.table_path(M) == "memory:///lake-roundtrip/ct_response"
    pts = grid(0, 12)
    lake.commit_window(
        M, win(0, 12), ct_rows(pts), reject_rows([("x", at(1))], win(0, 12)), run_id="a"
    )
    lake.commit_window(M, win(6, 12), ct_rows([]), NO_REJECTS, run_id="b")
    assert rows_of(lake.read(M)) == rows_of(ct_rows(inside(pts, win(0, 6))))
    assert lake.slot_files(M) == [f"{D}/part-00.parquet"]
    assert lake.read("rejects").num_rows == 1
    assert "_staging" not in str(lake.root.fs.find(lake.root.root))


# --- property: any sequence of windows leaves, per point, the answer of the last window over it ---

_TRUTH = grid(0, 48, step_min=45)


@st.composite
def _runs(draw: st.DrawFn) -> list[tuple[Window, int]]:
    """Windows (unaligned to slots, up to 30 h long) and which EVSE each answer lacks (3: none)."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, 47 * 4)) * 15
        length = draw(st.integers(1, 30 * 4)) * 15
        w = Window(at(0) + timedelta(minutes=start), at(0) + timedelta(minutes=start + length))
        out.append((w, draw(st.integers(0, 3))))
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=_runs())
def test_any_sequence_of_windows_leaves_the_last_answer(
    tmp_path_factory: pytest.TempPathFactory, runs: list[tuple[Window, int]]
) -> None:
    lake = Lake(str(tmp_path_factory.mktemp("prop")))
    expected: dict[tuple[str, object], float] = {}
    for i, (w, lacking) in enumerate(runs):
        pts = [p for p in inside(_TRUTH, w) if lacking == 3 or p[0] != EVSES[lacking]]
        lake.commit_window(M, w, ct_rows(pts, power=float(i)), NO_REJECTS, run_id=f"r{i}")
        for p in inside(_TRUTH, w):
            expected.pop(p, None)
        expected.update(dict.fromkeys(pts, float(i)))
    got = {(r["evse_address"], r["time"]): r["power_kw"] for r in lake.read(M).to_pylist()}
    assert got == expected
    assert lake.read(M).num_rows == len(expected)  # no duplicates
    # no file outside the slots the windows touched, and no empty file
    touched = {s for w, _ in runs for s in slot_starts(w)}
    assert len(lake.slot_files(M)) <= len(touched)
    assert all(
        pq.ParquetFile(os.path.join(lake.url, f)).metadata.num_rows for f in lake.slot_files(M)
    )
