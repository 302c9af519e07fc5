"""Input checks for the DCM endpoints: a body is refused before sending, naming the bad value.

Pure; the client and the CLI (which checks before even logging in) share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from powerflex_etl.errors import ConfigError
from powerflex_etl.schemas import MONTHS

SIGNAL_UNITS: tuple[str, ...] = ("kW", "A")
_HHMMSS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


def acc_path(acc_id: str | int) -> str:
    """``acc_id`` as the URL wants it: integer form (``"03"`` -> ``"3"``)."""
    if isinstance(acc_id, int) and not isinstance(acc_id, bool) and acc_id >= 0:
        return str(acc_id)
    if isinstance(acc_id, str):
        text = acc_id.strip()
        if text.isascii() and text.isdigit():
            return str(int(text))
    raise ConfigError(
        f"acc_id {acc_id!r} is not a site number", hint="the API takes acc_id as an integer, e.g. 3"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_months(months: Mapping[str, int]) -> dict[str, int]:
    """``{"Jun": 700}`` with canonical month names (Jan..Dec) and whole kW values."""
    if not months:
        raise ConfigError("no month given for the target peak power", hint="e.g. --month Jun=700")
    out: dict[str, int] = {}
    for key, value in months.items():
        name = str(key).strip().capitalize()
        if name not in MONTHS:
            raise ConfigError(f"{key!r} is not a month", hint=f"use one of {', '.join(MONTHS)}")
        if not _is_int(value) or value < 0:
            raise ConfigError(
                f"target peak power for {name} must be a whole kW >= 0, not {value!r}"
            )
        out[name] = int(value)
    return out


def check_signal(name: str, max_load: float, unit: str, is_enabled: bool) -> dict[str, Any]:
    """The body of ``/set_external_signal``, checked."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("an external signal needs a name", hint="e.g. DCM_EVSE_Allocation")
    if unit not in SIGNAL_UNITS:
        raise ConfigError(f"max_load_unit {unit!r} is not kW or A")
    if (
        isinstance(max_load, bool)
        or not isinstance(max_load, int | float)
        or not (0 <= max_load < float("inf"))
    ):
        raise ConfigError(f"max_load {max_load!r} must be a number >= 0")
    if not isinstance(is_enabled, bool):
        raise ConfigError(f"is_enabled must be true or false, not {is_enabled!r}")
    return {"name": name, "max_load": max_load, "max_load_unit": unit, "is_enabled": is_enabled}


def check_schedule(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/set_max_power_schedule`` body in the shape live clients send (CONTRACT §1)."""
    if not isinstance(schedule, Mapping):
        raise ConfigError("a max-power schedule must be a JSON object")
    definition = schedule.get("definition")
    if not isinstance(definition, list) or not definition:
        raise ConfigError('a max-power schedule needs a non-empty "definition" list')
    for i, entry in enumerate(definition):
        where = f"definition[{i}]"
        days = entry.get("days") if isinstance(entry, Mapping) else None
        if (
            not isinstance(days, list)
            or not days
            or not all(_is_int(d) and 1 <= d <= 7 for d in days)
        ):
            raise ConfigError(f'{where}: "days" must be a list of 1..7')
        slots = entry.get("schedule")
        if not isinstance(slots, list) or not slots:
            raise ConfigError(f'{where}: "schedule" must be a non-empty list')
        for j, slot in enumerate(slots):
            ok = (
                isinstance(slot, Mapping)
                and isinstance(slot.get("start_time"), str)
                and _HHMMSS.match(slot["start_time"]) is not None
                and isinstance(slot.get("max_power"), int | float)
                and not isinstance(slot.get("max_power"), bool)
                and slot["max_power"] >= 0
            )
            if not ok:
                raise ConfigError(
                    f'{where}.schedule[{j}]: needs "start_time" HH:MM:SS and "max_power" >= 0'
                )
    units = schedule.get("max_power_units", "kW")
    if units not in SIGNAL_UNITS:
        raise ConfigError(f"max_power_units {units!r} is not kW or A")
    if "is_enabled" in schedule and not isinstance(schedule["is_enabled"], bool):
        raise ConfigError('"is_enabled" must be true or false')
    return dict(schedule)
