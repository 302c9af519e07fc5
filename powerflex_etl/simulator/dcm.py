"""Demand Charge Mitigation state of one server instance, validated like the vendor's API."""

from __future__ import annotations

import re
import threading
from typing import Any

from powerflex_etl.schemas import MONTHS

# the vendor document's example values
DEFAULT_TARGETS: dict[str, int] = {m: (123 if m == "Feb" else 200) for m in MONTHS}
DEFAULT_SIGNAL: dict[str, Any] = {
    "is_enabled": True,
    "max_load": 21.616,
    "max_load_unit": "kW",
    "name": "DCM_EVSE_Allocation",
}
_HHMMSS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


class BadRequest(ValueError):
    """The body does not have the documented shape; the message says which key."""


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_signal(body: object) -> dict[str, Any]:
    """A valid ``set_external_signal`` body, normalised to the four documented keys."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("name must be a non-empty string")
    if not _is_number(body.get("max_load")) or body["max_load"] < 0:
        raise BadRequest("max_load must be a non-negative number")
    if body.get("max_load_unit") not in ("kW", "A"):
        raise BadRequest("max_load_unit must be 'kW' or 'A'")
    if not isinstance(body.get("is_enabled"), bool):
        raise BadRequest("is_enabled must be true or false")
    return {
        "is_enabled": body["is_enabled"],
        "max_load": body["max_load"],
        "max_load_unit": body["max_load_unit"],
        "name": name,
    }


def check_targets(body: object) -> dict[str, int]:
    """The months of a valid ``set_target_peak_power_kW`` body."""
    if not isinstance(body, dict) or not isinstance(body.get("target_peak_power"), dict):
        raise BadRequest("target_peak_power must be an object of month -> integer kW")
    update = body["target_peak_power"]
    for month, value in update.items():
        if month not in MONTHS:
            raise BadRequest(f"unknown month {month!r}; use one of {', '.join(MONTHS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"target for {month} must be a non-negative integer")
    return dict(update)


def check_schedule(body: object) -> dict[str, Any]:
    """A valid ``set_max_power_schedule`` body (the shape live clients send)."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    definition = body.get("definition")
    if not isinstance(definition, list) or not definition:
        raise BadRequest("definition must be a non-empty list")
    for entry in definition:
        if not isinstance(entry, dict):
            raise BadRequest("each definition entry must be an object")
        days = entry.get("days")
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and 1 <= d <= 7 for d in days)
        ):
            raise BadRequest("days must be a list of integers 1..7")
        sched = entry.get("schedule")
        if not isinstance(sched, list) or not sched:
            raise BadRequest("schedule must be a non-empty list")
        for step in sched:
            if not isinstance(step, dict) or not isinstance(step.get("start_time"), str):
                raise BadRequest("each schedule step needs start_time 'HH:MM:SS'")
            if not _HHMMSS.match(step["start_time"]):
                raise BadRequest(f"start_time {step['start_time']!r} is not HH:MM:SS")
            if not _is_number(step.get("max_power")) or step["max_power"] < 0:
                raise BadRequest("max_power must be a non-negative number")
    if body.get("max_power_units") not in ("kW", "A"):
        raise BadRequest("max_power_units must be 'kW' or 'A'")
    if not isinstance(body.get("is_enabled"), bool):
        raise BadRequest("is_enabled must be true or false")
    if not isinstance(body.get("timezone"), str) or not body["timezone"]:
        raise BadRequest("timezone must be an IANA zone name")
    return dict(body)


class DcmState:
    """Per-acc_id signals, monthly targets, real-time load and schedule, in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.signals: dict[int, dict[str, dict[str, Any]]] = {}
        self.targets: dict[int, dict[str, int]] = {}
        self.real_time_load: dict[int, int] = {}
        self.schedules: dict[int, dict[str, Any]] = {}

    def get_signals(self, acc: int) -> dict[str, dict[str, Any]]:
        """All signals of ``acc`` (the vendor's example one until others are set)."""
        with self._lock:
            sig = self.signals.setdefault(acc, {DEFAULT_SIGNAL["name"]: dict(DEFAULT_SIGNAL)})
            return {k: dict(v) for k, v in sig.items()}

    def set_signal(self, acc: int, signal: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the signal named ``signal["name"]``; returns it."""
        self.get_signals(acc)
        with self._lock:
            self.signals[acc][signal["name"]] = dict(signal)
        return signal

    def get_targets(self, acc: int) -> dict[str, int]:
        """The 12 monthly targets of ``acc`` (vendor example values until set)."""
        with self._lock:
            return dict(self.targets.setdefault(acc, dict(DEFAULT_TARGETS)))

    def set_targets(self, acc: int, update: dict[str, int]) -> dict[str, int]:
        """Apply a partial update; returns all 12 months."""
        self.get_targets(acc)
        with self._lock:
            self.targets[acc].update(update)
            return dict(self.targets[acc])
