"""A real lake holding hand-made rows, its marts refreshed, opened like an analyst would.

:func:`connect` commits the rows through the lake (so every slot write records what the
derived tables need), refreshes the marts and builds the catalog: the golden tests of
``sql/intermediate/``, ``sql/marts/`` and ``marts/`` see exactly what a user sees.
:func:`apply_marts` applies the view files to relations of an existing connection.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from powerflex_etl import schemas
from powerflex_etl.catalog import build_catalog
from powerflex_etl.catalog import connect as catalog_connect
from powerflex_etl.catalog.sqlfiles import (
    CATALOG_TABLES,
    SQL_DIR,
    all_view_files,
    build_order,
    render_refs,
    view_files,
)
from powerflex_etl.lake.layout import SLOT_US
from powerflex_etl.lake.store import Lake
from powerflex_etl.marts.refresh import refresh
from powerflex_etl.marts.slots import derive_slot
from powerflex_etl.windows import Window, from_us

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


def _commit_all(lake: Lake, measurement: str, table: pa.Table) -> None:
    """Commit ``table``'s rows as the lake's only rows of ``measurement`` (one window)."""
    if table.num_rows == 0:
        return
    us = table["time"].cast(pa.int64()).to_numpy()
    lo = int(us.min()) // SLOT_US * SLOT_US
    hi = (int(us.max()) // SLOT_US + 1) * SLOT_US
    window = Window(from_us(lo), from_us(hi))
    lake.commit_window(
        measurement, window, table, schemas.REJECTS_SCHEMA.empty_table(), run_id="golden"
    )


def connect(
    ct: Iterable[Row] = (),
    *,
    evse_request: Iterable[Row] = (),
    evse_response: Iterable[Row] = (),
    sites: Iterable[tuple[str, str, str | None]] = (),
    targets: Iterable[Row] = (),
    tariffs: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a real lake holding exactly these rows, marts refreshed.

    The rows go through the lake's commit (so each slot write records what the marts need),
    one marts refresh, and a catalog build: the golden tests see what an analyst sees.
    ``tariffs`` gives sites their ``tariff`` key; ``files`` are written beside sites.toml
    (a tariff JSON a key names by a relative path).
    """
    root = Path(tempfile.mkdtemp(prefix="marts-golden-"))
    _TEMP_DIRS.append(root)
    path = str(root / "lake")
    lake = Lake(path, derive=derive_slot)
    for name, rows in (
        ("ct_response", ct),
        ("evse_request", evse_request),
        ("evse_response", evse_response),
    ):
        _commit_all(lake, name, _table(schemas.arrow_schema(name), rows))
    (root / "lake").mkdir(exist_ok=True)
    site_rows = list(sites)
    keys = dict(tariffs or {})
    for name, text in (files or {}).items():
        (root / "lake" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / name).write_text(text)
    if site_rows:
        text = "".join(
            f'[sites."{acc}"]\nname = "{name}"\ntz = "{tz or "UTC"}"\n'
            + (f'tariff = "{keys[acc]}"\n' if acc in keys else "")
            for acc, name, tz in site_rows
        )
        (root / "lake" / "sites.toml").write_text(text)
    target_rows = [{"snapshot_at": T0, **r} for r in targets]
    if target_rows:
        table = _table(schemas.DCM_SCHEMAS["target_peak_power"], target_rows)
        lake.write_snapshot("target_peak_power", table, "golden", at=T0)
    refresh(lake)
    build_catalog(path, sites_file=None)
    return catalog_connect(path)


_TEMP_DIRS: list[Path] = []


@atexit.register
def _clean() -> None:
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


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
