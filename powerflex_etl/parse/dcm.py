"""Pure: the Demand Charge Mitigation endpoints' answers -> Arrow tables. No I/O.

Each snapshot of one ``acc_id`` becomes two small tables with exactly the columns of
``schemas.DCM_SCHEMAS``: one row per signal (:func:`external_signals_table`) and one per month
(:func:`target_peak_power_table`). They validate as they go, so nothing is written from an
answer that cannot be trusted. Fetching, the all-or-nothing write and the catalog refresh
are ``ingest/dcm.py``; where the files go, ``lake/layout.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from powerflex_etl.errors import ConfigError, ParseError
from powerflex_etl.schemas import DCM_SCHEMAS, MONTHS, RUN_ID

_MONTH_NUM = {m.lower(): i for i, m in enumerate(MONTHS, start=1)}
LOAD_UNITS: tuple[str, ...] = ("kW", "A")

# an acc_id ends up in a file name: only what is safe there, whatever the API says
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")

EXTERNAL_SIGNALS_ENDPOINT = "get_external_signal"
TARGET_PEAK_ENDPOINT = "get_target_peak_power_kW"


def check_acc_id(acc_id: str) -> str:
    """``acc_id`` unchanged if it can name a file safely; a ConfigError otherwise."""
    if not isinstance(acc_id, str) or not _SAFE_ID.match(acc_id):
        raise ConfigError(
            f"dcm: acc_id {acc_id!r} cannot be stored safely",
            hint="use the site's id as the lake shows it, e.g. 03 (letters, digits, _ or -)",
        )
    return acc_id


def _utc(at: datetime) -> datetime:
    # CONTRACT §5: a time without a zone is UTC
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _bad(acc_id: str, endpoint: str, what: str) -> ParseError:
    return ParseError(
        f"dcm acc_id {acc_id} {endpoint}: {what}",
        hint="nothing was written for this acc_id; check the API's answer and retry",
    )


def _number(value: object, acc_id: str, endpoint: str, field: str) -> float | None:
    """A finite float from a JSON number (null stays null); anything else is an error."""
    if value is None:
        return None
    # bool is an int in Python but never a load or a power
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(acc_id, endpoint, f"{field} is not a number: {value!r}"[:200])
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise _bad(acc_id, endpoint, f"{field} must be a finite number >= 0, got {value!r}")
    return out


def _signals(answer: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The answer's signals as (name, signal) pairs; a single-signal answer is one pair."""
    if "max_load" in answer and not isinstance(answer.get("max_load"), Mapping):
        return [(str(answer.get("name", "")), answer)]
    return [(str(k), v) for k, v in answer.items()]


def external_signals_table(acc_id: str, answer: object, *, run_id: str, at: datetime) -> pa.Table:
    """Rows of ``DCM_SCHEMAS["external_signals"]`` from a ``get_external_signal`` answer.

    ``answer`` is ``{name: {name, max_load, max_load_unit, is_enabled}}`` (all signals)
    or one signal. Raises :class:`ParseError` naming the acc_id and endpoint when a
    value cannot be trusted (non-numeric load, unknown unit, non-boolean flag).
    """
    ep = EXTERNAL_SIGNALS_ENDPOINT
    if not isinstance(answer, Mapping):
        raise _bad(acc_id, ep, f"expected a JSON object, got {type(answer).__name__}")
    names: list[str] = []
    loads: list[float | None] = []
    units: list[str | None] = []
    enabled: list[bool | None] = []
    for key, sig in _signals(answer):
        if not isinstance(sig, Mapping):
            raise _bad(acc_id, ep, f"signal {key!r} is not an object")
        name = sig.get("name", key)
        if not isinstance(name, str) or not name:
            raise _bad(acc_id, ep, f"signal {key!r} has no usable name")
        unit = sig.get("max_load_unit")
        if unit is not None and unit not in LOAD_UNITS:
            raise _bad(acc_id, ep, f"signal {name!r}: max_load_unit {unit!r} is not kW or A")
        flag = sig.get("is_enabled")
        if flag is not None and not isinstance(flag, bool):
            raise _bad(acc_id, ep, f"signal {name!r}: is_enabled {flag!r} is not true/false")
        names.append(name)
        loads.append(_number(sig.get("max_load"), acc_id, ep, f"signal {name!r} max_load"))
        units.append(unit)
        enabled.append(flag)
    n = len(names)
    schema = DCM_SCHEMAS["external_signals"]
    return pa.table(
        {
            "snapshot_at": pa.array([_utc(at)] * n, schema.field("snapshot_at").type),
            "acc_id": pa.array([acc_id] * n, pa.string()),
            "name": pa.array(names, pa.string()),
            "max_load": pa.array(loads, pa.float64()),
            "max_load_unit": pa.array(units, pa.string()),
            "is_enabled": pa.array(enabled, pa.bool_()),
            RUN_ID: pa.array([run_id] * n, pa.string()),
        },
        schema=schema,
    )


def target_peak_power_table(acc_id: str, answer: object, *, run_id: str, at: datetime) -> pa.Table:
    """Rows of ``DCM_SCHEMAS["target_peak_power"]`` (in calendar order) from ``{"Jan": kW, ...}``.

    Month names are matched case-insensitively and stored as the API spells them
    ("Jan".."Dec"); months the answer omits get no row. Unknown month names and
    non-numeric values raise :class:`ParseError` naming the acc_id and endpoint.
    """
    ep = TARGET_PEAK_ENDPOINT
    if not isinstance(answer, Mapping):
        raise _bad(acc_id, ep, f"expected a JSON object, got {type(answer).__name__}")
    by_num: dict[int, float | None] = {}
    for key, value in answer.items():
        num = _MONTH_NUM.get(str(key).strip().lower())
        if num is None:
            raise _bad(acc_id, ep, f"unknown month {str(key)[:40]!r} (expected Jan..Dec)")
        if num in by_num:
            raise _bad(acc_id, ep, f"month {MONTHS[num - 1]} given twice")
        by_num[num] = _number(value, acc_id, ep, f"{MONTHS[num - 1]} target")
    nums = sorted(by_num)
    n = len(nums)
    schema = DCM_SCHEMAS["target_peak_power"]
    return pa.table(
        {
            "snapshot_at": pa.array([_utc(at)] * n, schema.field("snapshot_at").type),
            "acc_id": pa.array([acc_id] * n, pa.string()),
            "month": pa.array([MONTHS[i - 1] for i in nums], pa.string()),
            "month_num": pa.array(nums, pa.int8()),
            "target_peak_power_kw": pa.array([by_num[i] for i in nums], pa.float64()),
            RUN_ID: pa.array([run_id] * n, pa.string()),
        },
        schema=schema,
    )
