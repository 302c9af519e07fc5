"""Bring the derived tables up to date with the raw lake: only what the pending commits reach.

Every command that writes raw telemetry ends with :func:`refresh` (so does ``query`` when it
finds pending commits). Under every measurement's lock, so no commit runs meanwhile:

1. the pending commits (``lake/derived.py``) name the changed slots (*seeds*); with no
   manifest yet, or one built by other SQL or rules (:func:`sql_hash`), every slot is a seed;
2. each seed slot's coverage and ct_response figures are read from its footer;
3. in chunks of consecutive seed slots, ``regions.stretches`` says per EVSE how far the
   change can reach; the kept rows of those stretches are sessionized again
   (``sessionize.py``), aggregated per session (``sql/derived/``), and replace exactly the
   derived rows of the sessions that start inside the stretches;
4. the changed partitions become new files, the manifest is swapped (one atomic step), the
   pending commits are removed.

A refresh killed anywhere leaves the old manifest in force and the pending commits in
place, so the next one redoes the work. Results equal a rebuild from nothing, row for row
(``tests/marts``).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.catalog.sqlfiles import SQL_DIR, render_refs
from powerflex_etl.lake import layout
from powerflex_etl.lake.crashpoints import reached as crash_point
from powerflex_etl.lake.derived import slot_token
from powerflex_etl.lake.store import Lake
from powerflex_etl.marts import sessionize as sz
from powerflex_etl.marts.regions import SlotCut, Stretch, stretches
from powerflex_etl.marts.slots import derive_slot, footer_records
from powerflex_etl.marts.tables import TABLES, WorkingTables, equals, in_bounds
from powerflex_etl.schemas import DERIVED_SCHEMAS, MEASUREMENTS

log = logging.getLogger("powerflex_etl.marts")

CT = "ct_response"
#: Seed slots sessionized together: a day, so memory stays flat over a long backfill.
CHUNK_SLOTS = 4
BY_SESSION: tuple[str, ...] = ("session_samples", "sessions", "session_load")
_DICT = [
    "evse_address",
    "acn_id",
    "acc_id",
    "acg_id",
    "acs_id",
    "space_number",
    "phases",
    "charging_state",
]


def derived_sql_dir(sql_dir: Path = SQL_DIR) -> Path:
    return sql_dir / "derived"


def sql_hash(sql_dir: Path = SQL_DIR) -> str:
    """What the derived tables were computed by: the derived SQL, the rules, the schemas."""
    h = hashlib.sha256(sz.RULES_VERSION.encode())
    for path in sorted(derived_sql_dir(sql_dir).glob("*.sql")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for name, schema in sorted(DERIVED_SCHEMAS.items()):
        h.update(f"{name}:{schema}".encode())
    return h.hexdigest()[:16]


@dataclass
class RefreshSummary:
    """What one refresh did."""

    lake: str
    rebuilt: bool = False
    pending: int = 0  # pending commits reflected
    seed_slots: int = 0
    stretches: int = 0
    samples: int = 0  # session samples recomputed
    sessions: int = 0  # sessions recomputed
    slots_read_whole: int = 0  # slot files without footer records, read whole
    seconds: float = 0.0
    generation: str | None = None
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def nothing_to_do(self) -> bool:
        return self.generation is None

    def line(self) -> str:
        if self.nothing_to_do:
            return "marts: up to date"
        how = "rebuilt from the raw lake" if self.rebuilt else f"{self.pending} commit(s) reflected"
        return (
            f"marts: {how}: {self.seed_slots} slot(s), {self.sessions:,} session(s) "
            f"recomputed in {self.seconds:.2f} s"
        )


def refresh(lake: Lake, *, rebuild: bool = False, timeout_s: float | None = None) -> RefreshSummary:
    """Reflect every pending commit in the derived tables (everything, with ``rebuild``).

    Holds every measurement's lock while it runs. Raises LockError when a lock cannot be
    had within ``timeout_s``.
    """
    t0 = time.perf_counter()
    summary = RefreshSummary(lake.url)
    run_id = f"marts-{uuid.uuid4().hex[:8]}"
    with lake.lock_all(timeout_s=timeout_s, run_id=run_id):
        store = lake.derived
        manifest = store.manifest()
        pending = store.pending()
        crash_point("marts_started")
        digest = sql_hash()
        full = rebuild or manifest is None or manifest.sql_hash != digest
        if full:
            seeds = {m: set(_all_slots(lake, m)) for m in MEASUREMENTS}
        else:
            seeds = {m: set() for m in MEASUREMENTS}
            for p in pending:
                seeds.setdefault(p.measurement, set()).update(p.slots)
        if not full and not pending:
            return summary
        work = WorkingTables(store, None if full else manifest)
        with _Refresh(lake, work, summary) as job:
            job.footers(seeds)
            job.sessions(sorted(set().union(*seeds.values())))
        work.flush()
        new = work.manifest(digest)
        store.write_manifest(new)
        store.clear(pending)
        store.collect(new, list(TABLES))
    summary.rebuilt = full
    summary.pending = len(pending)
    summary.seed_slots = sum(len(s) for s in seeds.values())
    summary.generation = new.generation
    summary.rows = {t: new.rows(t) for t in TABLES}
    summary.seconds = time.perf_counter() - t0
    log.info("%s", summary.line())
    return summary


def _all_slots(lake: Lake, m: str) -> list[int]:
    """Every slot start of a measurement's slot files."""
    out = []
    for path in lake.slot_files(m):
        parts = path.split("/")
        day = layout.parse_date_dir(parts[-2])
        slot = layout.slot_start(day, parts[-1]) if day is not None else None
        if slot is not None:
            out.append(slot)
    return sorted(out)


def _slot_path(lake: Lake, m: str, slot: int) -> str:
    return lake.root.path(*layout.slot_file((m,), slot))


class _Refresh:
    """The steps of one refresh over one lake (see the module docstring)."""

    def __init__(self, lake: Lake, work: WorkingTables, summary: RefreshSummary) -> None:
        self.lake = lake
        self.work = work
        self.summary = summary
        self._kept: dict[int, pa.Table] = {}
        # one DuckDB connection for every chunk: opening one costs ~25 ms of CPU
        self._duck: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> _Refresh:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._duck is not None:
            self._duck.close()
            self._duck = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._duck is None:
            self._duck = duckdb.connect()
            self._duck.execute("set TimeZone = 'UTC'")
        return self._duck

    # -- step 2: the seed slots' footers -----------------------------------------------------
    def footers(self, seeds: dict[str, set[int]]) -> None:
        """Replace the coverage (every measurement) and figures (ct_response) of seed slots."""
        for m in MEASUREMENTS:
            covs, figs = [], []
            for slot in sorted(seeds.get(m, ())):
                cov, fig = self._records(m, slot)
                covs.append(cov)
                if m == CT:
                    figs.append(fig)
            slots = sorted(seeds.get(m, ()))
            if not slots:
                continue
            slot_set = np.array(slots, dtype=np.int64)
            cov_new = pa.concat_tables(covs)

            def drop_cov(t: pa.Table, m: str = m, slots: np.ndarray = slot_set) -> np.ndarray:
                hour_slot = (
                    t["hour_start"].cast(pa.int64()).to_numpy() // layout.SLOT_US
                ) * layout.SLOT_US
                return equals(t["measurement"], m) & np.isin(hour_slot, slots)

            months = {self.work_spec_period("coverage", s) for s in slots}
            self.work.replace("coverage", months, drop_cov, cov_new)
            if m == CT:

                def drop_fig(t: pa.Table, slots: np.ndarray = slot_set) -> np.ndarray:
                    return np.isin(t["slot_start"].cast(pa.int64()).to_numpy(), slots)

                months = {self.work_spec_period("slot_figures", s) for s in slots}
                self.work.replace("slot_figures", months, drop_fig, pa.concat_tables(figs))

    def work_spec_period(self, table: str, us: int) -> str:
        from powerflex_etl.marts.tables import PARTITIONS

        return PARTITIONS[table].period(us)

    def _records(self, m: str, slot: int) -> tuple[pa.Table, pa.Table]:
        """(coverage, figures) of one slot: from its footer, else from its rows."""
        path = _slot_path(self.lake, m, slot)
        meta = self.lake.parquet_metadata(path)
        if meta is None:  # the slot is gone: it contributes nothing any more
            return slots_empty()
        cov, fig = footer_records(meta)
        if cov is not None and (m != CT or fig is not None):
            return cov, fig if fig is not None else sz.SLOT_SCHEMA.empty_table()
        rows = self._read_slot(m, slot)
        self.summary.slots_read_whole += 1
        derived = derive_slot(m, slot, rows)
        cov2, fig2 = _records_of(derived.metadata)
        if m == CT and derived.kept is not None:
            self._kept[slot] = derived.kept
        return cov2, fig2

    def _read_slot(self, m: str, slot: int) -> pa.Table:
        table = self.lake.read_if_exists(_slot_path(self.lake, m, slot))
        return table if table is not None else pa.table({"evse_address": pa.array([], pa.string())})

    # -- step 3: sessions ---------------------------------------------------------------------
    def sessions(self, seeds: list[int]) -> None:
        """Recompute the sessions the seed slots can reach, one chunk of slots at a time."""
        figures = self.work.all("slot_figures")
        # an EVSE whose every sample is gone still has its old sessions to drop
        known = set(self.work.all("sessions")["evse_address"].to_pylist())
        evses = sorted(set(figures["evse_address"].to_pylist()) | known)
        cuts = _cuts(figures)
        has_data = _slots_with_data(figures)
        first, last = _span(figures)
        for chunk in _chunks(seeds, CHUNK_SLOTS):
            found = stretches(chunk, cuts, evses)
            self.summary.stretches += len(found)
            if not found or first is None or last is None:
                continue
            kept = self._kept_rows(found, has_data, first, last)
            connected = self._connected(kept)
            samples = sz.sessionize(kept, connected)
            per_session, load = self._aggregate(samples)
            self.summary.samples += samples.num_rows
            self.summary.sessions += per_session.num_rows
            for table, rows in (
                ("session_samples", samples),
                ("sessions", per_session),
                ("session_load", load),
            ):
                self._replace_sessions(table, found, rows)
            self.work.flush()
            self._kept = {s: t for s, t in self._kept.items() if s >= max(chunk)}

    def _kept_rows(
        self, found: list[Stretch], has_data: dict[str, set[int]], first: int, last: int
    ) -> pa.Table:
        """The kept rows of every stretch, each EVSE's rows within its stretch (context included)."""
        by_slot: dict[int, list[Stretch]] = {}
        for st in found:
            for slot in st.slots(first, last):
                if slot in has_data.get(st.evse_address, ()):
                    by_slot.setdefault(slot, []).append(st)
        parts = []
        for slot, sts in sorted(by_slot.items()):
            kept = self._kept_of(slot)
            if kept.num_rows == 0:
                continue
            mask = np.zeros(kept.num_rows, dtype=bool)
            t = kept["time"].cast(pa.int64()).to_numpy()
            for st in sts:
                m = equals(kept["evse_address"], st.evse_address)
                if st.lo is not None:
                    m &= t >= st.lo
                if st.hi is not None:
                    m &= t <= st.hi
                mask |= m
            parts.append(kept.filter(pa.array(mask)))
        return pa.concat_tables(parts) if parts else sz.KEPT_SCHEMA.empty_table()

    def _kept_of(self, slot: int) -> pa.Table:
        """One ct slot's kept rows: the stored ones when their token matches the slot's."""
        if slot in self._kept:
            return self._kept[slot]
        path = _slot_path(self.lake, CT, slot)
        token = slot_token(self.lake.parquet_metadata(path))
        stored = self.lake.derived.read_kept(slot)
        if stored is not None and token is not None and stored[1] == token:
            kept = stored[0].cast(sz.KEPT_SCHEMA)
        else:
            rows = self.lake.read_if_exists(path, None)
            if rows is None:
                kept = sz.KEPT_SCHEMA.empty_table()
            else:
                self.summary.slots_read_whole += 1
                kept, _ = sz.slot_pass(rows, slot)
                if token is not None:
                    self.lake.derived.write_kept(slot, kept, token)  # next time it is read back
        self._kept[slot] = kept
        return kept

    def _connected(self, kept: pa.Table) -> dict[tuple[str, int], bool] | None:
        """evse_response's ``connected`` in the minutes of rows without a charging_state."""
        wanted = sz.undecided_minutes(kept)
        if not wanted:
            return None
        slots = sorted({layout.slot_of(minute * sz.MINUTE_US) for _, minute in wanted})
        tables = []
        for slot in slots:
            t = self.lake.read_if_exists(
                _slot_path(self.lake, "evse_response", slot), ["evse_address", "time", "connected"]
            )
            if t is not None:
                tables.append(t)
        if not tables:
            return None
        found = sz.connected_minutes(pa.concat_tables(tables, promote_options="default"))
        keys = set(wanted)
        return {k: v for k, v in found.items() if k in keys}

    def _requests(self, samples: pa.Table, sessions_end_us: int) -> pa.Table:
        """evse_request rows the sessions' spans can hold (pilot_tracking's current limit)."""
        columns = ["evse_address", "time", "current_limit_a"]
        empty = pa.table(
            {
                "evse_address": pa.array([], pa.string()),
                "time": pa.array([], sz.TIME_TYPE),
                "current_limit_a": pa.array([], pa.float64()),
            }
        )
        if samples.num_rows == 0:
            return empty
        start = int(pc.min(samples["session_start"]).cast(pa.int64()).as_py())
        evses = pa.array(sorted(set(samples["evse_address"].to_pylist())), pa.string())
        tables = []
        for slot in range(layout.slot_of(start), sessions_end_us + 1, layout.SLOT_US):
            t = self.lake.read_if_exists(_slot_path(self.lake, "evse_request", slot), None)
            if t is None:
                continue
            t = t.select([c for c in columns if c in t.column_names])
            if "current_limit_a" not in t.column_names:
                t = t.append_column("current_limit_a", pa.nulls(t.num_rows, pa.float64()))
            t = t.filter(pc.is_in(t["evse_address"].cast(pa.string()), value_set=evses))
            tables.append(t.cast(empty.schema))
        return pa.concat_tables(tables) if tables else empty

    def _aggregate(self, samples: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Per session and per session-interval figures, by ``sql/derived/``'s SQL."""
        if samples.num_rows == 0:
            return DERIVED_SCHEMAS["sessions"].empty_table(), DERIVED_SCHEMAS[
                "session_load"
            ].empty_table()
        con = self._connection()
        try:
            con.register("session_samples", samples)
            held = samples["time"].cast(pa.int64()).to_numpy() + (
                samples["duration_s"].to_numpy() * 1e6
            ).astype(np.int64)
            end_us = int(held.max())
            con.register("evse_request", self._requests(samples, end_us))
            out = []
            for name in ("sessions", "session_load"):
                sql = (derived_sql_dir() / f"{name}.sql").read_text(encoding="utf-8")
                table = con.sql(render_refs(sql)).to_arrow_table()
                out.append(table.select(DERIVED_SCHEMAS[name].names).cast(DERIVED_SCHEMAS[name]))
        finally:
            # the chunk's tables are let go; the next chunk registers its own
            for name in ("session_samples", "evse_request"):
                con.unregister(name)
        return out[0], out[1]

    def _replace_sessions(self, table: str, found: list[Stretch], rows: pa.Table) -> None:
        """Drop every row of a session starting strictly inside a stretch; add ``rows``."""
        periods: set[str] = set()
        by_evse: dict[str, list[Stretch]] = {}
        for st in found:
            periods.update(self.work.overlapping(table, st.lo, st.hi))
            by_evse.setdefault(st.evse_address, []).append(st)

        def drop(t: pa.Table) -> np.ndarray:
            mask = np.zeros(t.num_rows, dtype=bool)
            for evse, sts in by_evse.items():
                mine = equals(t["evse_address"], evse)
                if not mine.any():
                    continue
                for st in sts:
                    mask |= mine & in_bounds(t["session_start"], st.lo, st.hi)
            return mask

        self.work.replace(table, periods, drop, rows)


def slots_empty() -> tuple[pa.Table, pa.Table]:
    from powerflex_etl.marts.slots import COVERAGE_SCHEMA

    return COVERAGE_SCHEMA.empty_table(), sz.SLOT_SCHEMA.empty_table()


def _records_of(metadata: dict[str, str]) -> tuple[pa.Table, pa.Table]:
    """(coverage, figures) from the footer metadata :func:`derive_slot` made (not yet written)."""
    import json

    from powerflex_etl.marts.slots import COVERAGE_KEY, COVERAGE_SCHEMA, FIGURES_KEY, _from_json

    cov = _from_json(json.loads(metadata[COVERAGE_KEY]), COVERAGE_SCHEMA)
    fig = (
        _from_json(json.loads(metadata[FIGURES_KEY]), sz.SLOT_SCHEMA)
        if FIGURES_KEY in metadata
        else None
    )
    return (
        cov if cov is not None else COVERAGE_SCHEMA.empty_table(),
        fig if fig is not None else sz.SLOT_SCHEMA.empty_table(),
    )


def _cuts(figures: pa.Table) -> dict[str, list[SlotCut]]:
    out: dict[str, list[SlotCut]] = {}
    cols = [
        figures["evse_address"].to_pylist(),
        figures["slot_start"].cast(pa.int64()).to_pylist(),
        figures["first_unplugged"].cast(pa.int64()).to_pylist(),
        figures["last_unplugged"].cast(pa.int64()).to_pylist(),
    ]
    for evse, slot, first, last in zip(*cols, strict=True):
        out.setdefault(evse, []).append(SlotCut(slot, first, last))
    return out


def _slots_with_data(figures: pa.Table) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for evse, slot in zip(
        figures["evse_address"].to_pylist(),
        figures["slot_start"].cast(pa.int64()).to_pylist(),
        strict=True,
    ):
        out.setdefault(evse, set()).add(slot)
    return out


def _span(figures: pa.Table) -> tuple[int | None, int | None]:
    if figures.num_rows == 0:
        return None, None
    s = figures["slot_start"].cast(pa.int64())
    return int(pc.min(s).as_py()), int(pc.max(s).as_py())


def _chunks(seeds: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(seeds), size):
        yield seeds[i : i + size]
