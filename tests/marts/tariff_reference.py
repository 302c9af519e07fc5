"""An independent reference for SCE TOU-EV-4: the rate sheet as hand-written rules.

Written from the schedule's published periods, not from the JSON loader or the SQL, so the
cost views are checked against something they do not share code with; acnportal's own test
cases (``ACNPORTAL_CASES``, from its ``signals/tariffs/tests/test_tou_tariff.py``) check the
rules themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

DEMAND_CHARGE_USD_PER_KW = 15.51  # the same all year on TOU-EV-4


def tou_ev_4(local: datetime) -> float:
    """USD/kWh at a local wall-clock time: summer is June-September, weekends are flat."""
    summer = 6 <= local.month <= 9
    hour = local.hour + local.minute / 60 + local.second / 3600
    if local.weekday() >= 5:
        return 0.05623 if summer else 0.06087
    off, mid, on = (0.05623, 0.0925, 0.26668) if summer else (0.06087, 0.07492, 0.0869)
    if 12 <= hour < 18:
        return on
    if 8 <= hour < 23:
        return mid
    return off


def tou_ev_4_series(start: datetime, length: int, minutes: int) -> list[float]:
    """acnportal's ``get_tariffs``: the price at ``start`` and every ``minutes`` after."""
    return [tou_ev_4(start + i * timedelta(minutes=minutes)) for i in range(length)]


#: acnportal's published expectations for sce_tou_ev_4_march_2019: (start, length, minutes, prices)
ACNPORTAL_CASES: list[tuple[datetime, int, int, list[float]]] = [
    (datetime(2019, 7, 1, 9, 30), 1, 5, [0.0925]),
    (datetime(2019, 7, 1, 8), 1, 5, [0.0925]),
    (datetime(2019, 7, 1, 12), 12, 5, [0.26668] * 12),
    (datetime(2019, 7, 1, 7), 24, 5, [0.05623] * 12 + [0.0925] * 12),
    (datetime(2019, 7, 5, 23, 30), 9 * 12, 5, [0.05623] * 9 * 12),
    (datetime(2019, 9, 30, 23), 24, 5, [0.05623] * 12 + [0.06087] * 12),
]
