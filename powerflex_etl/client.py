"""HTTP only: login/JWT refresh, retries, one typed method per PowerFlex endpoint.

INTERFACE (stub; being implemented). See CONTRACT §1.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from .settings import Settings


class PowerflexClient:
    """Thread-safe client; never pickled (each process builds its own from Settings)."""

    def __init__(self, settings: Settings) -> None:
        raise NotImplementedError

    def login(self) -> None:
        raise NotImplementedError

    def get_measurement_data(self, measurement: str, start: datetime, end: datetime) -> bytes:
        """The raw answer body for ``start <= time < end`` (not decoded here)."""
        raise NotImplementedError

    def get_external_signal(self, acc_id: str | int, name: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def set_external_signal(
        self,
        acc_id: str | int,
        *,
        name: str,
        max_load: float,
        max_load_unit: Literal["kW", "A"],
        is_enabled: bool,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def set_real_time_load(self, acc_id: str | int, kw: int) -> dict[str, Any]:
        raise NotImplementedError

    def get_target_peak_power(self, acc_id: str | int) -> dict[str, int]:
        raise NotImplementedError

    def set_target_peak_power(self, acc_id: str | int, months: Mapping[str, int]) -> dict[str, int]:
        raise NotImplementedError

    def set_max_power_schedule(
        self, acc_id: str | int, schedule: Mapping[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
