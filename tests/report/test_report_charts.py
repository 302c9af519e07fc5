"""What the report's charts show: load gaps drawn as 0 kW, a far-off target not flattening the load."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from pathlib import Path

from powerflex_etl import connect
from powerflex_etl.report import charts, queries
from tests.report.test_report import DAY0, small_lake  # noqa: F401  (a fixture)


def test_site_load_series_is_zero_where_nobody_was_plugged_in(small_lake: Path) -> None:  # noqa: F811
    data = queries.load(connect(str(small_lake)), None, None)
    points = {datetime.fromisoformat(r["t"]): r["demand_kw"] for r in data.site_load}
    times = sorted(points)
    # one point every 15 minutes from the first plug-in to the last, none missing
    assert all((b - a).total_seconds() == 900 for a, b in pairwise(times))
    # between A1's unplug (12:00) and A2's plug-in (13:00) and overnight: 0 kW, not a held step
    day0 = DAY0.replace(tzinfo=None)
    assert points[day0.replace(hour=12, minute=30)] == 0
    assert points[day0.replace(hour=20)] == 0
    assert points[day0.replace(hour=9)] > 6


def _data(target_kw: float | None) -> queries.ReportData:
    data = queries.ReportData(start=None, end=None)
    data.site_load = [
        {"t": f"2024-06-03T{h:02d}:00:00", "acc_id": "03", "demand_kw": kw, "target_kw": target_kw}
        for h, kw in [(8, 0.0), (9, 6.6), (10, 3.3)]
    ]
    return data


def test_a_near_target_is_a_dashed_line_and_a_far_one_a_note() -> None:
    near = charts.site_load(_data(8.0))
    assert near.spec is not None
    assert len(near.spec["layer"]) == 2 and "title" not in near.spec
    far = charts.site_load(_data(200.0))
    assert far.spec is not None
    # a 200 kW line would squash a 6.6 kW load into the axis: said in words instead
    assert len(far.spec["layer"]) == 1
    assert "200 kW" in far.spec["title"]["text"]
    assert "200 kW" in far.caption
    assert "dashed" in charts.site_load(_data(None)).caption
