"""Crash-consistency harness: run the library's commit path in a subprocess, SIGKILL it at a
named crash point, then check what it left and that a rerun converges.

The workload (no Prefect, no network): a lake holding an earlier ingest ("gen1": 24 h of
``ct_response`` and ``evse_response``) is re-ingested over an overlapping, longer range
("gen2", different values, 03:00 to 03:00 the next day) in 12-hour windows through ``run.run_windows`` (fetch ->
parse -> normalize -> ``Lake.commit_window`` -> window record; watermarks at the end), then
the catalog is rebuilt. The first window starts mid-slot, so slot files mix kept and new
rows. The API answers come from :class:`StubClient`: InfluxDB 1.7 JSON with a few bad rows
per window (so rejects are written too), ids shaped like the real PowerFlex records used
in ``tests/lake/test_lake_helpers.py``.

Run as ``python -m tests.lake.crash_harness <lake> <catalog>`` with ``POWERFLEX_CRASH_AT`` set:
the library kills the process at that point (see ``powerflex_etl/crashpoints.py``).
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from powerflex_etl.catalog import connect, default_catalog_path
from powerflex_etl.ingest.plan import plan_run
from powerflex_etl.ingest.run import run_windows
from powerflex_etl.ingest.summary import RunResult
from powerflex_etl.ingest.upkeep import after_write, ensure_current
from powerflex_etl.lake import crashpoints
from powerflex_etl.lake.layout import SLOT_US
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.lake.url import LakeUrl
from powerflex_etl.marts.refresh import refresh
from powerflex_etl.marts.slots import derive_slot
from powerflex_etl.marts.tables import TABLES as DERIVED_TABLES
from powerflex_etl.schemas import KEY_COLUMNS, LINEAGE_COLUMNS, TIME, arrow_schema
from powerflex_etl.settings import Settings
from powerflex_etl.windows import to_us

REPO = Path(__file__).resolve().parents[2]
MEASUREMENTS = ("ct_response", "evse_response")
TABLES = (*MEASUREMENTS, "rejects")
DAY = datetime(2020, 2, 28, tzinfo=UTC)
GEN1 = (DAY, DAY + timedelta(hours=24))
GEN2 = (DAY + timedelta(hours=3), DAY + timedelta(hours=27))
WINDOW_HOURS = 12.0
EVSES = ("33-73-211-956", "33-73-211-963", "33-73-211-967")
STEP_S = 600
RUN_IDS = {"gen1": "gen1", "gen2": "gen2"}


# -- the workload --------------------------------------------------------------------------
class StubClient:
    """Answers ``get_measurement_data`` with deterministic InfluxDB 1.7 JSON for one window.

    ``gen`` changes the values (so an old and a new slot file differ) and the bad rows (so
    each generation brings new rejects). Per window: one row with a negative energy or an
    unknown charging state, one row without a time, and one duplicated row.
    """

    def __init__(self, gen: int) -> None:
        self.gen = gen

    def get_measurement_data(self, measurement: str, start: datetime, end: datetime) -> bytes:
        cols, rows = _rows(measurement, start, end, self.gen)
        series = {"name": measurement, "columns": cols, "values": rows}
        return json.dumps({"results": [{"statement_id": 0, "series": [series]}]}).encode()

    def get_measurement_answer(self, measurement: str, start: datetime, end: datetime) -> bytearray:
        # what ingestion asks for: the same answer in a buffer the parser may work in
        return bytearray(self.get_measurement_data(measurement, start, end))

    def close(self) -> None:
        return None


def _rows(
    measurement: str, start: datetime, end: datetime, gen: int
) -> tuple[list[str], list[list[Any]]]:
    ids = ["evse_address", "acn_id", "acc_id", "space_number"]
    t0 = int(start.timestamp()) // STEP_S * STEP_S
    times = [t for t in range(t0, int(end.timestamp()), STEP_S) if t >= start.timestamp()]
    amps = 16_000 * gen  # mA
    rows: list[list[Any]] = []
    if measurement == "ct_response":
        cols = ["time", *ids, "charging_state", "energy_delivered", "mamps_actual", "voltage"]
        cols.append("power")
        for t in times:
            for i, e in enumerate(EVSES):
                energy = (t - GEN1[0].timestamp()) * 10.0 * gen + i
                volts = 208_000
                power_kw = volts * amps / 1e9  # mV * mA -> kW
                ids_of = [e, "33", "73", f"B41-{e[-2:]}"]
                rows.append([t, *ids_of, "ADAPTIVE", energy, amps, volts, power_kw])
        if times:
            bad = list(rows[0])
            bad[0], bad[6] = times[-1] + 1.5, -1.0 * gen  # negative energy: a reject
            rows.append(bad)
            untimed = list(rows[1])
            untimed[0] = None  # no time: a reject without a slot of its own
            untimed[7] = amps + 1
            rows.append(untimed)
            rows.append(list(rows[2]))  # a duplicate: stored once
    else:
        cols = ["time", *ids, "charging_state", "connected", "contactor", "mamps_last"]
        for t in times:
            for e in EVSES:
                rows.append([t, e, "33", "73", f"B41-{e[-2:]}", "ADAPTIVE", 1, 1, amps])
        if times:
            bad = list(rows[0])
            bad[0], bad[5] = times[-1] + 2.5, f"EXPLODED-{gen}"  # unknown state: a reject
            rows.append(bad)
    return cols, rows


def settings_for(lake: str, catalog: str) -> Settings:
    """Settings of the workload: 12-hour windows, the catalog outside an S3 lake."""
    return Settings(lake=lake, window_hours=WINDOW_HOURS, catalog_path=catalog)


def run_generation(
    lake_url: str,
    catalog: str,
    gen: int,
    *,
    run_id: str,
    lock_timeout_s: float = 600.0,
    build: bool = True,
) -> RunResult:
    """Ingest generation ``gen`` (1: the earlier lake, 2: the crashed run), then (``build``)
    refresh the marts and the catalog as every writing command does."""
    s = settings_for(lake_url, catalog)
    lake = Lake(lake_url, lock_timeout_s=lock_timeout_s, derive=derive_slot)
    state = State(lake)
    start, end = GEN1 if gen == 1 else GEN2
    work = plan_run(state, MEASUREMENTS, start, end, settings=s)
    result = run_windows(
        work,
        settings=s,
        lake=lake,
        state=state,
        client=StubClient(gen),  # type: ignore[arg-type]
        run_id=run_id,
        workers=1,  # one window at a time: the n-th crash point is the same on every run
    )
    if result.failures:
        raise result.failures[0][2]
    if build:
        after_write(s, lake)  # the marts, then the catalog, as every writing command does
    else:
        refresh(lake)  # the marts only: a catalog build costs many requests on loopback S3
    return result


def upload(local_lake: str, url: str) -> None:
    """Copy a local lake's data and state (not its locks or catalog) to an object-store lake."""
    lake = Lake(url)
    for dirpath, _, files in os.walk(local_lake):
        rel_dir = os.path.relpath(dirpath, local_lake)
        top = rel_dir.split(os.sep)[0]
        if top in ("_locks", "_staging") or rel_dir == ".":
            continue
        for name in files:
            parts = [*rel_dir.split(os.sep), name]
            with open(os.path.join(dirpath, name), "rb") as f:
                lake.root.fs.pipe_file(lake.root.path(*parts), f.read())


def kill_run(lake_url: str, catalog: str, point: str, env: dict[str, str] | None = None) -> int:
    """Run generation 2 in a subprocess told to SIGKILL itself at ``point``; its return code."""
    full = {**os.environ, **(env or {}), crashpoints.ENV_VAR: point}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.lake.crash_harness", lake_url, catalog],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"crash run at {point} failed: {proc.stderr[-2000:]}")
    return proc.returncode


# -- what a lake holds ---------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """A lake's content, lineage aside: rows per table, per slot file, watermarks, records."""

    rows: dict[str, list[tuple[Any, ...]]]
    slots: dict[str, list[tuple[Any, ...]]]  # path relative to the lake -> sorted rows
    watermarks: dict[str, datetime | None]
    windows: dict[str, list[tuple[datetime, datetime]]]
    derived: dict[str, list[tuple[Any, ...]]]  # the marts' derived tables, by the manifest


def _identity(table: pa.Table) -> list[tuple[Any, ...]]:
    """Sorted rows without the lineage columns, so two runs' rows compare equal."""
    keep = sorted(c for c in table.column_names if c not in LINEAGE_COLUMNS)
    cols = [table.column(c).to_pylist() for c in keep]
    return sorted(zip(*cols, strict=True), key=repr)


def _read_slot(lake: Lake, rel: str) -> pa.Table:
    root = lake.root
    path = root.path(*rel.split("/"))
    if root.local:
        return pq.read_table(path)
    data = root.read_bytes(path)
    assert data is not None, f"{rel} vanished"
    return pq.read_table(pa.BufferReader(data))


def snapshot(lake: Lake) -> Snapshot:
    """Read every table, slot file, watermark and window record (each file must be readable)."""
    state = State(lake)
    slots: dict[str, list[tuple[Any, ...]]] = {}
    for name in TABLES:
        for rel in lake.slot_files(name):
            slots[rel] = _identity(_read_slot(lake, rel))
    rows = {name: _identity(lake.read(name)) for name in TABLES}
    return Snapshot(
        rows=rows,
        slots=slots,
        watermarks={m: state.watermark(m) for m in MEASUREMENTS},
        windows={
            m: [(r.window.start, r.window.end) for r in state.committed_windows(m)]
            for m in MEASUREMENTS
        },
        derived=derived_rows(lake),
    )


def derived_rows(lake: Lake) -> dict[str, list[tuple[Any, ...]]]:
    """Every derived table's rows, read through the current manifest (each file readable)."""
    manifest = lake.derived.manifest()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in DERIVED_TABLES:
        files = manifest.files(name) if manifest else []
        tables = [lake.derived.read_part(rel) for rel in files]
        out[name] = _identity(pa.concat_tables(tables)) if tables else []
    return out


def _parquet_under(lake: Lake) -> list[str]:
    """Every Parquet file readers could see (not the private staging area)."""
    root = lake.root
    if root.local:
        found = glob.glob(os.path.join(glob.escape(root.root), "**", "*.parquet"), recursive=True)
        return [p for p in found if "/_staging/" not in p]
    root.fs.invalidate_cache()
    return [str(p) for p in root.fs.find(root.root) if str(p).endswith(".parquet")]


# -- the checks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """The lake before the crashed run (gen1) and after an uninterrupted one (gen1 + gen2)."""

    before: Snapshot
    after: Snapshot


def check_after_crash(lake_url: str, catalog: str, expected: Expected) -> None:
    """What a SIGKILLed run must leave: readable files, open views, whole slots, honest state."""
    lake = Lake(lake_url, lock_timeout_s=5.0)
    for path in _parquet_under(lake):
        if lake.root.local:
            pq.read_metadata(path)
        else:
            pq.read_metadata(pa.BufferReader(lake.root.read_bytes(path) or b""))
    got = snapshot(lake)
    before, after = expected.before, expected.after
    # each slot wholly old or wholly new: never a mix, never a gap
    for rel in sorted(set(got.slots) | set(before.slots) | set(after.slots)):
        if rel.startswith("rejects/"):
            continue
        versions = [s.slots.get(rel) for s in (before, after)]
        assert got.slots.get(rel) in versions, f"slot {rel} is neither old nor new"
    for m in MEASUREMENTS:
        table = lake.read(m)
        keys = list(zip(*(table.column(c).to_pylist() for c in KEY_COLUMNS), strict=True))
        assert len(keys) == len(set(keys)), f"{m}: a row is doubled"
        for rel in lake.slot_files(m):
            t = _read_slot(lake, rel)
            times = [to_us(x) for x in t.column(TIME).to_pylist()]
            assert len({x // SLOT_US for x in times}) <= 1, f"{rel} holds rows of another slot"
    # rejects: never doubled, never lost, only ones an uninterrupted run would have
    rejects = lake.read("rejects")
    ids = rejects.column("reject_id").to_pylist()
    assert len(ids) == len(set(ids)), "a reject is stored twice"
    assert set(before.rows["rejects"]) <= set(got.rows["rejects"]) <= set(after.rows["rejects"])
    _check_state(lake, got, expected)
    # the dead writer's lock is free: the kernel dropped the flock, or its lease is stale
    for m in MEASUREMENTS:
        assert lake.lock_holder(m) is None, f"{m}: the dead writer still holds the lock"
    # the marts: a reader repairs what the dead run left pending, and then they are exactly
    # what a rebuild from the raw lake gives
    ensure_current(lake)
    assert lake.derived.pending() == [], "commits still pending after a reader's repair"
    repaired = derived_rows(lake)
    refresh(lake, rebuild=True)
    assert derived_rows(lake) == repaired, "the marts after a crash differ from a rebuild"
    # the views open (the catalog is rebuilt when the lake outgrew it) and show the lake
    con = connect(lake_url, catalog_path=catalog)
    try:
        for m in MEASUREMENTS:
            (n,) = con.execute(f"select count(*) from {m}").fetchone() or (0,)
            assert n == len(got.rows[m]), f"view {m} shows {n} rows, the lake {len(got.rows[m])}"
        con.execute("select count(*) from charging_sessions").fetchall()
    finally:
        con.close()


def _check_state(lake: Lake, got: Snapshot, expected: Expected) -> None:
    """Watermarks never behind gen1 nor ahead of the data; each record after its data."""
    state = State(lake)
    for m in MEASUREMENTS:
        mark, old = got.watermarks[m], expected.before.watermarks[m]
        assert old is not None and mark is not None and mark >= old, f"{m}: watermark went back"
        if mark > old:
            # moved by the crashed run: everything before it must be that run's data
            new = [r for r in expected.after.rows[m] if _row_time(r, m) < mark]
            have = [r for r in got.rows[m] if _row_time(r, m) < mark]
            assert have == new, f"{m}: watermark {mark} is ahead of the data"
        rows = lake.read(m)
        for rec in state.committed_windows(m):
            if rec.run_id != RUN_IDS["gen2"]:
                continue
            w = rec.window
            inside = [
                rid
                for t, rid in zip(
                    rows.column(TIME).to_pylist(), rows.column("_run_id").to_pylist(), strict=True
                )
                if w.start <= t < w.end
            ]
            assert len(inside) == rec.rows and set(inside) <= {rec.run_id}, (
                f"{m}: window record {w} written before its data"
            )


def _row_time(row: tuple[Any, ...], m: str) -> datetime:
    # rows are tuples in sorted column order (see _identity); find "time" by the schema
    names = sorted(c for c in arrow_schema(m).names if c not in LINEAGE_COLUMNS)
    value: datetime = row[names.index(TIME)]
    return value


def check_converged(lake_url: str, catalog: str, expected: Expected) -> None:
    """After the rerun: exactly an uninterrupted run's rows, state, and no litter."""
    lake = Lake(lake_url)
    got = snapshot(lake)
    after = expected.after
    for name in TABLES:
        assert got.rows[name] == after.rows[name], f"{name}: the rerun did not converge"
    assert got.slots == after.slots
    assert got.watermarks == after.watermarks
    assert got.windows == after.windows
    assert got.derived == after.derived, "the marts did not converge"
    assert lake.derived.pending() == []
    if lake.root.local:
        litter = [
            p
            for p in glob.glob(os.path.join(lake.url, "_staging", "**"), recursive=True)
            if os.path.isfile(p)
        ]
        assert litter == [], f"staging left behind: {litter}"
        temps = glob.glob(os.path.join(glob.escape(lake.url), "**", ".*.tmp*"), recursive=True)
        assert temps == [], f"temporary files left behind: {temps}"
    where = default_catalog_path(LakeUrl.parse(lake_url), catalog)
    temps = glob.glob(os.path.join(glob.escape(str(where.parent)), f".{where.name}.*"))
    assert temps == [], f"temporary catalogs left behind: {temps}"
    if lake.root.local:  # on S3 the views were checked after the crash (slow to read there)
        con = connect(lake_url, catalog_path=catalog)
        try:
            for m in MEASUREMENTS:
                (n,) = con.execute(f"select count(*) from {m}").fetchone() or (0,)
                assert n == len(after.rows[m])
        finally:
            con.close()


if __name__ == "__main__":
    # the crashed run: POWERFLEX_CRASH_AT in the environment decides where it dies
    run_generation(sys.argv[1], sys.argv[2], 2, run_id=RUN_IDS["gen2"])
