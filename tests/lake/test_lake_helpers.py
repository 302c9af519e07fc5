"""Builders shared by the lake, state and lock tests (no tests here).

Ids are the shape of real PowerFlex records (``powerflex/2020-2-28df_session...csv`` in
the shared real data: site 33, sub-site 73, stations ``33-73-211-9xx``, spaces ``B41-xx``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from powerflex_etl.schemas import LINEAGE_COLUMNS, REJECTS_SCHEMA, TIME_TYPE, arrow_schema
from powerflex_etl.windows import Window

M = "ct_response"
EVSES = ("33-73-211-956", "33-73-211-963", "33-73-211-967")
DAY = datetime(2020, 2, 28, tzinfo=UTC)


def at(hours: float, day: datetime = DAY) -> datetime:
    """``day`` plus ``hours`` (fractions allowed)."""
    return day + timedelta(hours=hours)


def win(start_h: float, end_h: float) -> Window:
    return Window(at(start_h), at(end_h))


def ct_rows(
    points: Iterable[tuple[str, datetime]],
    *,
    run_id: str = "run-a",
    power: float = 6.6,
    extra: dict[str, pa.Array] | None = None,
) -> pa.Table:
    """A normalized ct_response table, one row per (evse_address, time)."""
    pts = list(points)
    n = len(pts)
    extra = extra or {}
    schema = arrow_schema(M, pa.schema([pa.field(k, v.type) for k, v in extra.items()]))
    cols: dict[str, pa.Array] = {f.name: pa.nulls(n, f.type) for f in schema}
    cols["time"] = pa.array([t for _, t in pts], TIME_TYPE)
    cols["evse_address"] = pa.array([e for e, _ in pts], pa.string())
    cols["acn_id"] = pa.array(["33"] * n, pa.string())
    cols["acc_id"] = pa.array(["73"] * n, pa.string())
    cols["space_number"] = pa.array(["B41-" + e[-2:] for e, _ in pts], pa.string())
    cols["charging_state"] = pa.array(["ADAPTIVE"] * n, pa.string())
    cols["energy_delivered_kwh"] = pa.array([i * 0.01 for i in range(n)], pa.float64())
    cols["voltage_v"] = pa.array([208.0] * n, pa.float64())
    cols["current_actual_a"] = pa.array([31.7] * n, pa.float64())
    cols["power_kw"] = pa.array([power] * n, pa.float64())
    cols["_ingested_at"] = pa.array([datetime.now(UTC)] * n, TIME_TYPE)
    cols["_run_id"] = pa.array([run_id] * n, pa.string())
    cols.update(extra)
    return pa.table(cols, schema=schema)


def grid(start_h: float, end_h: float, step_min: int = 30) -> list[tuple[str, datetime]]:
    """Every EVSE every ``step_min`` minutes over ``[start_h, end_h)``."""
    out = []
    t = at(start_h)
    while t < at(end_h):
        out += [(e, t) for e in EVSES]
        t += timedelta(minutes=step_min)
    return out


def inside(points: Iterable[tuple[str, datetime]], w: Window) -> list[tuple[str, datetime]]:
    return [(e, t) for e, t in points if w.start <= t < w.end]


def reject_rows(
    raws: Iterable[tuple[str, datetime | None]], w: Window, *, run_id: str = "run-a"
) -> pa.Table:
    """Rejects for raw rows given as (raw text, its time or None)."""
    rs = list(raws)
    n = len(rs)
    ids = [hashlib.sha256(f"{M}\n{raw}".encode()).hexdigest()[:32] for raw, _ in rs]
    return pa.table(
        {
            "measurement": pa.array([M] * n),
            "reject_id": pa.array(ids),
            "reason": pa.array(["negative energy_delivered"] * n),
            "raw": pa.array([json.dumps({"raw": raw}) for raw, _ in rs]),
            "time": pa.array([t for _, t in rs], TIME_TYPE),
            "window_start": pa.array([w.start] * n, TIME_TYPE),
            "window_end": pa.array([w.end] * n, TIME_TYPE),
            "_ingested_at": pa.array([datetime.now(UTC)] * n, TIME_TYPE),
            "_run_id": pa.array([run_id] * n),
        },
        schema=REJECTS_SCHEMA,
    )


NO_REJECTS = REJECTS_SCHEMA.empty_table()


def rows_of(table: pa.Table) -> list[dict[str, object]]:
    """The rows a user compares: lineage dropped, sorted by (evse_address, time)."""
    t = table.drop_columns([c for c in LINEAGE_COLUMNS if c in table.column_names])
    rows = t.to_pylist()
    return sorted(rows, key=lambda r: (str(r["evse_address"]), r["time"]))


def snapshot_files(root: str) -> dict[str, bytes]:
    """Every data file under the lake (not _staging/_locks/_state), path -> bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in ("_staging", "_locks", "_state"):
            continue
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out
