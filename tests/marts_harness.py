"""An in-memory DuckDB with the staging relations the marts read, built from hand-made rows.

Stands in for the catalog so the views of ``sql/intermediate/`` and ``sql/marts/`` can be
golden-tested alone: each staging relation is a table with exactly the lake's columns
(``schemas``) plus the hive ``date``, and every view file is applied, in the order its
``{{ ref() }}``s give, as ``create or replace view <name> as <file>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from powerflex_etl import schemas
from powerflex_etl.catalog.sqlfiles import (
    CATALOG_TABLES,
    SQL_DIR,
    all_view_files,
    build_order,
    render_refs,
    view_files,
)

# the tiers built here as views; staging is stood in for by tables (see connect)
MARTS_TIERS = ("intermediate", "marts")
T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)

Row = Mapping[str, Any]


def ts(text: str) -> datetime:
    """A UTC datetime from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _table(schema: pa.Schema, rows: Iterable[Row]) -> pa.Table:
    rows = list(rows)
    unknown = {k for r in rows for k in r} - set(schema.names)
    if unknown:
        raise ValueError(f"columns not in the schema: {sorted(unknown)}")
    return pa.Table.from_pylist(
        [{name: r.get(name) for name in schema.names} for r in rows], schema=schema
    )


def _create(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, hive_date: bool) -> None:
    con.register("_arrow_rows", table)
    extra = ", cast(time as date) as date" if hive_date else ""
    con.execute(f"create table {name} as select *{extra} from _arrow_rows")
    con.unregister("_arrow_rows")


def apply_marts(con: duckdb.DuckDBPyConnection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Create a view per intermediate and mart file, each after the views it refs.

    The staging views and ``sites`` must already be relations of ``con``. Returns the names.
    """
    staging = [f.name for f in view_files(sql_dir, "staging")]
    files = build_order(
        all_view_files(sql_dir, MARTS_TIERS), MARTS_TIERS, [*staging, *CATALOG_TABLES]
    )
    for f in files:
        con.execute(f"create or replace view {f.name} as {render_refs(f.sql)}")
    return sorted(f.name for f in files)


def connect(
    ct: Iterable[Row] = (),
    *,
    evse_request: Iterable[Row] = (),
    evse_response: Iterable[Row] = (),
    sites: Iterable[tuple[str, str, str | None]] = (),
    targets: Iterable[Row] = (),
) -> duckdb.DuckDBPyConnection:
    """A connection holding the staging tables filled with these rows, and every mart view."""
    con = duckdb.connect()
    con.execute("set TimeZone='UTC'")
    for name, rows in (
        ("ct_response", ct),
        ("evse_request", evse_request),
        ("evse_response", evse_response),
    ):
        _create(con, name, _table(schemas.arrow_schema(name), rows), hive_date=True)
    _create(con, "rejects", _table(schemas.REJECTS_SCHEMA, []), hive_date=False)
    _create(
        con,
        "external_signals",
        _table(schemas.DCM_SCHEMAS["external_signals"], []),
        hive_date=False,
    )
    target_rows = [{"snapshot_at": T0, **r} for r in targets]
    _create(
        con,
        "target_peak_power",
        _table(schemas.DCM_SCHEMAS["target_peak_power"], target_rows),
        hive_date=False,
    )
    con.execute(
        "create table ingest_runs (run_id varchar, started_at timestamptz, finished_at timestamptz)"
    )
    con.execute("create table sites (acc_id varchar, name varchar, tz varchar)")
    for acc_id, name, tz in sites:
        con.execute("insert into sites values (?, ?, ?)", [acc_id, name, tz])
    apply_marts(con)
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts."""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


EVSE_IDS = {"acn_id": "0002", "acc_id": "03", "acg_id": "01", "acs_id": "02"}


def sample(evse: str, time: datetime, **fields: Any) -> dict[str, Any]:
    """One ct_response row for ``evse`` with default ids; fields override anything."""
    row: dict[str, Any] = {
        "evse_address": evse,
        "time": time,
        **EVSE_IDS,
        "space_number": f"S-{evse}",
        "phases": "AB",
        "evse_type": "AeroVironment",
        "voltage_v": 208.0,
    }
    row.update(fields)
    return row


def charging_run(
    evse: str,
    start: datetime,
    minutes: int,
    *,
    power_kw: float = 6.6,
    period_s: int = 60,
    energy_start_kwh: float = 0.0,
    state: str | None = "ADAPTIVE",
    pilot_a: float = 32.0,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Samples every ``period_s`` for ``minutes`` at constant power, the meter counting up.

    Each sample's energy is what was delivered before it (power held since the previous one),
    like a real cumulative meter.
    """
    current_a = power_kw * 1000 / 208.0
    rows = []
    for i in range(minutes * 60 // period_s):
        t = start + timedelta(seconds=i * period_s)
        rows.append(
            sample(
                evse,
                t,
                charging_state=state,
                power_kw=power_kw,
                current_actual_a=current_a,
                pilot_actual_a=pilot_a,
                energy_delivered_kwh=energy_start_kwh + power_kw * i * period_s / 3600,
                **fields,
            )
        )
    return rows


def unplugged(evse: str, time: datetime, **fields: Any) -> dict[str, Any]:
    """An UNPLUGGED sample: meter reset, nothing flowing (as real data shows)."""
    base = {
        "charging_state": "UNPLUGGED",
        "power_kw": 0.0,
        "current_actual_a": 0.0,
        "pilot_actual_a": 0.0,
        "energy_delivered_kwh": 0.0,
        "voltage_v": None,
    }
    base.update(fields)
    return sample(evse, time, **base)


def plug_in(
    evse: str,
    start: datetime,
    charge_minutes: int,
    idle_minutes: int = 0,
    *,
    power_kw: float = 6.6,
    period_s: int = 60,
    energy_start_kwh: float = 0.0,
    state: str | None = "ADAPTIVE",
    idle_state: str | None = "NOT CHARGING",
    **fields: Any,
) -> list[dict[str, Any]]:
    """A plug-in: charging at constant power, then plugged and idle with the meter holding.

    Mirrors the real ACN excerpt: ADAPTIVE while charging, NOT CHARGING at the final energy.
    """
    rows = charging_run(
        evse,
        start,
        charge_minutes,
        power_kw=power_kw,
        period_s=period_s,
        energy_start_kwh=energy_start_kwh,
        state=state,
        **fields,
    )
    final_kwh = energy_start_kwh + power_kw * charge_minutes / 60
    idle_start = start + timedelta(minutes=charge_minutes)
    for i in range(idle_minutes * 60 // period_s):
        idle = {
            "charging_state": idle_state,
            "power_kw": 0.0,
            "current_actual_a": 0.0,
            "pilot_actual_a": 32.0,
            "energy_delivered_kwh": final_kwh,
            **fields,
        }
        rows.append(sample(evse, idle_start + timedelta(seconds=i * period_s), **idle))
    return rows


def unplugged_run(evse: str, start: datetime, minutes: int, period_s: int = 60) -> list[Row]:
    """UNPLUGGED samples every ``period_s`` for ``minutes``."""
    return [
        unplugged(evse, start + timedelta(seconds=i * period_s))
        for i in range(minutes * 60 // period_s)
    ]
