"""The data contract: per measurement, which API fields become which lake columns, in which unit.

Declared once; the parser, the normalizer, the lake and the views all read it from here
(CONTRACT §2). A lake value is ``source value * scale``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.errors import ConfigError

#: The API's month names (target peak power keys), January first.
MONTHS: tuple[str, ...] = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip

Kind = Literal["id", "number", "bool", "state"]

CHARGING_STATES: tuple[str, ...] = ("UNPLUGGED", "ADAPTIVE", "IDLE", "READY", "NOT CHARGING")
MEASUREMENTS: tuple[str, ...] = ("ct_response", "evse_request", "evse_response")


def check_measurements(measurements: Iterable[str] | None) -> list[str]:
    """The measurements asked for (all when none), validated, in contract order."""
    asked = list(measurements or MEASUREMENTS)
    unknown = [m for m in asked if m not in MEASUREMENTS]
    if unknown:
        raise ConfigError(
            f"unknown measurement {unknown[0]!r}", hint=f"use one of {', '.join(MEASUREMENTS)}"
        )
    return [m for m in MEASUREMENTS if m in asked]


TIME = "time"
INGESTED_AT = "_ingested_at"
RUN_ID = "_run_id"
LINEAGE_COLUMNS: tuple[str, ...] = (INGESTED_AT, RUN_ID)
TIME_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class FieldSpec:
    """One API field and the lake column it becomes."""

    source: str
    column: str
    kind: Kind
    scale: float = 1.0
    # a negative value cannot be trusted (energy, currents): the row is rejected
    non_negative: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        if self.kind in ("id", "state"):
            return pa.string()
        if self.kind == "bool":
            return pa.bool_()
        return pa.float64()


# ids and labels: strings, as sent ("03" stays "03"); order is the lake's column order
_IDS = [
    FieldSpec("evse_address", "evse_address", "id"),
    FieldSpec("acn_id", "acn_id", "id"),
    FieldSpec("acc_id", "acc_id", "id"),
    FieldSpec("acg_id", "acg_id", "id"),
    FieldSpec("acs_id", "acs_id", "id"),
    FieldSpec("space_number", "space_number", "id"),
    FieldSpec("evse_type", "evse_type", "id"),
]
_STATE = FieldSpec("charging_state", "charging_state", "state")
_VERSION = FieldSpec("version", "version", "id")

SPECS: dict[str, tuple[FieldSpec, ...]] = {
    "ct_response": (
        *_IDS,
        FieldSpec("phases", "phases", "id"),
        _STATE,
        _VERSION,
        FieldSpec("energy_delivered", "energy_delivered_kwh", "number", 1e-6, non_negative=True),
        FieldSpec("mamps_actual", "current_actual_a", "number", 1e-3, non_negative=True),
        FieldSpec("pilot_actual", "pilot_actual_a", "number", 1.0, non_negative=True),
        FieldSpec("voltage", "voltage_v", "number", 1e-3),
        # scale of power depends on the power_unit setting; see power_scale()
        FieldSpec("power", "power_kw", "number", 1.0),
        FieldSpec("peak_rate", "peak_rate", "number", 1.0),
    ),
    "evse_request": (
        *_IDS,
        _STATE,
        _VERSION,
        FieldSpec("mamps_last", "current_last_a", "number", 1e-3, non_negative=True),
        FieldSpec("mamps_limit", "current_limit_a", "number", 1e-3, non_negative=True),
        FieldSpec("mamps_rampdown", "current_rampdown_a", "number", 1e-3, non_negative=True),
    ),
    "evse_response": (
        *_IDS,
        _STATE,
        _VERSION,
        FieldSpec("connected", "connected", "bool"),
        FieldSpec("contactor", "contactor", "bool"),
        FieldSpec("mamps_last", "current_last_a", "number", 1e-3, non_negative=True),
        FieldSpec("response_period", "response_period", "number", 1.0),
    ),
}

_POWER_SCALE = {"kW": 1.0, "W": 1e-3, "mW": 1e-6}


def power_scale(unit: str) -> float:
    """Factor turning the API's ``power`` (in ``unit``) into kW."""
    return _POWER_SCALE[unit]


def source_kinds(measurement: str) -> dict[str, Kind]:
    """API field name -> kind, for the parser's typed decoding (``time`` excluded)."""
    return {f.source: f.kind for f in SPECS[measurement]}


def arrow_schema(measurement: str, extra: pa.Schema | None = None) -> pa.Schema:
    """The lake schema: time, the contract's columns, extra (unknown) fields, lineage."""
    fields = [pa.field(TIME, TIME_TYPE, nullable=False)]
    fields += [pa.field(f.column, f.arrow_type) for f in SPECS[measurement]]
    known = {f.name for f in fields} | set(LINEAGE_COLUMNS)
    if extra is not None:
        fields += [f for f in extra if f.name not in known]
    fields += [pa.field(INGESTED_AT, TIME_TYPE), pa.field(RUN_ID, pa.string())]
    return pa.schema(fields)


#: Text as lake tables hold it in memory: dictionary-encoded, as the parser types it and as
#: Parquet stores it. Files are written without Arrow's own schema, so every reader sees
#: plain strings (``lake/parquet.py``); in memory, ``string`` and this are the same column.
TEXT_TYPE = pa.dictionary(pa.int32(), pa.string())


def is_text(t: pa.DataType) -> bool:
    """Plain or dictionary-encoded strings: one logical type in the lake."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def plain_type(t: pa.DataType) -> pa.DataType:
    """A column type as the lake's schema names it: text of any encoding is ``string``."""
    return pa.string() if is_text(t) else t


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with text as plain strings: what readers of the files see."""
    return pa.schema([f.with_type(plain_type(f.type)) for f in schema], metadata=schema.metadata)


def plain(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A dictionary-encoded column decoded (plain strings for text); others as they are."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def text_ranks(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per row of a dictionary-encoded text column with no nulls, its value's rank (0 first).

    Rows compare as their strings do (bytewise, as Arrow sorts): comparing or sorting the
    ranks stands in for the strings at the cost of integers. Only the few distinct values
    are ranked; the rows are never decoded. Dense ranks, so a value a dictionary happens
    to hold twice is still one rank.
    """
    enc = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    dense = pc.rank(enc.dictionary, sort_keys="ascending", tiebreaker="dense").to_numpy()
    ranks = (dense - 1).astype(np.uint16 if len(enc.dictionary) < 2**16 else np.int64)
    return ranks[enc.indices.to_numpy()]


def dictionary_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every string column dictionary-encoded (:data:`TEXT_TYPE`)."""
    return pa.schema(
        [f.with_type(TEXT_TYPE) if pa.types.is_string(f.type) else f for f in schema],
        metadata=schema.metadata,
    )


REJECTS_SCHEMA = pa.schema(
    [
        pa.field("measurement", pa.string(), nullable=False),
        # stable id of (measurement, raw row): the same bad row is stored once
        pa.field("reject_id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        # the row's own time when it parsed, else null
        pa.field(TIME, TIME_TYPE),
        pa.field("window_start", TIME_TYPE),
        pa.field("window_end", TIME_TYPE),
        pa.field(INGESTED_AT, TIME_TYPE),
        pa.field(RUN_ID, pa.string()),
    ]
)

# columns that identify a row: one row per (evse_address, time) per measurement
KEY_COLUMNS: tuple[str, ...] = ("evse_address", TIME)

# Demand Charge Mitigation snapshots: one row per signal / month per snapshot
DCM_SCHEMAS: dict[str, pa.Schema] = {
    "external_signals": pa.schema(
        [
            pa.field("snapshot_at", TIME_TYPE, nullable=False),
            pa.field("acc_id", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("max_load", pa.float64()),
            pa.field("max_load_unit", pa.string()),
            pa.field("is_enabled", pa.bool_()),
            pa.field(RUN_ID, pa.string()),
        ]
    ),
    "target_peak_power": pa.schema(
        [
            pa.field("snapshot_at", TIME_TYPE, nullable=False),
            pa.field("acc_id", pa.string(), nullable=False),
            pa.field("month", pa.string(), nullable=False),  # "Jan".."Dec", as the API names them
            pa.field("month_num", pa.int8(), nullable=False),  # 1..12
            pa.field("target_peak_power_kw", pa.float64()),
            pa.field(RUN_ID, pa.string()),
        ]
    ),
}

# every table the lake holds, by its directory name under <lake>/
LAKE_TABLES: tuple[str, ...] = (*MEASUREMENTS, "rejects", *DCM_SCHEMAS)


def table_schema(name: str) -> pa.Schema:
    """The Arrow schema of any lake table (a measurement, ``rejects``, a DCM snapshot)."""
    if name in SPECS:
        return arrow_schema(name)
    if name == "rejects":
        return REJECTS_SCHEMA
    return DCM_SCHEMAS[name]


# -- derived tables (``marts/``): what every write keeps current, so the marts read them ----

_LABELS = ("acn_id", "acc_id", "acg_id", "acs_id", "space_number", "phases", "charging_state")


def _fields(*pairs: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in pairs])


#: Derived table name -> its Arrow schema (the columns of the views over it, in order).
DERIVED_SCHEMAS: dict[str, pa.Schema] = {
    # every ct_response sample inside a session (the view session_samples)
    "session_samples": _fields(
        ("evse_address", pa.string()),
        (TIME, TIME_TYPE),
        *[(c, pa.string()) for c in _LABELS],
        ("energy_delivered_kwh", pa.float64()),
        ("current_actual_a", pa.float64()),
        ("pilot_actual_a", pa.float64()),
        ("power_kw", pa.float64()),
        ("charging", pa.bool_()),
        ("session_start", TIME_TYPE),
        ("duration_s", pa.float64()),
        ("first_of_evse", pa.bool_()),
        ("last_of_evse", pa.bool_()),
    ),
    # one row per session: what charging_sessions and pilot_tracking show
    "sessions": _fields(
        ("evse_address", pa.string()),
        ("session_start", TIME_TYPE),
        *[(c, pa.string()) for c in _LABELS[:5]],
        ("session_end", TIME_TYPE),
        ("max_energy_kwh", pa.float64()),
        ("first_energy_kwh", pa.float64()),
        ("peak_power_kw", pa.float64()),
        ("charging_minutes", pa.float64()),
        ("idle_minutes", pa.float64()),
        ("samples", pa.int64()),
        ("cut_at_start", pa.bool_()),
        ("cut_at_end", pa.bool_()),
        ("charging_samples", pa.int64()),
        ("mean_abs_pilot_error_a", pa.float64()),
        ("p95_abs_pilot_error_a", pa.float64()),
        ("within_pilot_share", pa.float64()),
        ("mean_current_pilot_ratio", pa.float64()),
        ("mean_current_limit_a", pa.float64()),
    ),
    # per session and 15-minute interval of its samples: energy in it and what spills over
    "session_load": _fields(
        ("evse_address", pa.string()),
        ("session_start", TIME_TYPE),
        ("interval_start", TIME_TYPE),
        ("acc_id", pa.string()),
        ("phases", pa.string()),
        ("own_kwh", pa.float64()),
        ("spill_kwh", pa.float64()),
        ("max_power_kw", pa.float64()),
        ("spill_max_power_kw", pa.float64()),
        ("own_s", pa.float64()),
        ("spill_s", pa.float64()),
        ("own_charging_s", pa.float64()),
        ("spill_charging_s", pa.float64()),
    ),
    # per measurement, EVSE and UTC hour: how much telemetry the lake holds
    "coverage": _fields(
        ("measurement", pa.string()),
        ("evse_address", pa.string()),
        ("hour_start", TIME_TYPE),
        ("samples", pa.int64()),
        ("first_time", TIME_TYPE),
        ("last_time", TIME_TYPE),
        # the site the EVSE reported for in that hour (its first sample's): which EVSEs a
        # site has, for its uptime and utilization (site_kpis)
        ("acc_id", pa.string()),
    ),
    # per EVSE and 6-hour slot of ct_response: where a recompute may stop (marts/regions.py)
    "slot_figures": _fields(
        ("evse_address", pa.string()),
        ("slot_start", TIME_TYPE),
        ("samples", pa.int64()),
        ("first_time", TIME_TYPE),
        ("last_time", TIME_TYPE),
        ("median_period_s", pa.float64()),
        ("first_unplugged", TIME_TYPE),
        ("last_unplugged", TIME_TYPE),
    ),
}
