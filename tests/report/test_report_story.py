"""The report reads as a story: each number once, the range in words, scales that fit the data,
one date format per axis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from powerflex_etl import connect
from powerflex_etl.report import build_report, charts, queries
from powerflex_etl.report.page import describe_range
from tests.report.test_report import _parse, small_lake  # noqa: F401  (a fixture)

T = datetime(2019, 3, 11, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "tz", "text"),
    [
        (None, None, None, "all data in the lake"),
        (T, None, None, "from Mon 11 Mar 2019 07:00 UTC"),
        (None, T, None, "up to Mon 11 Mar 2019 07:00 UTC (exclusive)"),
        (
            T,
            datetime(2019, 3, 18, 7, tzinfo=UTC),
            "America/Los_Angeles",
            "Mon 11 Mar 2019 00:00 PDT to Mon 18 Mar 2019 00:00 PDT (end exclusive)",
        ),
    ],
)
def test_the_range_in_words(start, end, tz, text) -> None:
    assert describe_range(start, end, tz) == text


@pytest.mark.parametrize(
    ("hours", "top", "ticks"),
    [
        ([1.0, 6.2], 8, [0, 2, 4, 6, 8]),
        ([0.5, 3.5], 4, [0, 1, 2, 3, 4]),
        ([2.0, 24.0], 24, [0, 4, 8, 12, 16, 20, 24]),
        ([], 1, [0, 1]),
    ],
)
def test_the_hours_scale_ends_at_the_longest_cell(hours, top, ticks) -> None:
    assert charts.hours_scale([{"h": h} for h in hours], "h") == (top, ticks)


@pytest.mark.parametrize(
    ("last", "fmt"),
    [
        ("2019-03-11T18:00:00", "%a %-d %b %H:%M"),
        ("2019-03-18T00:00:00", "%a %-d %b"),
        ("2019-05-01T00:00:00", "%-d %b"),
        ("2020-03-01T00:00:00", "%b %Y"),
    ],
)
def test_a_time_axis_has_one_format_for_its_span(last, fmt) -> None:
    assert charts.time_axis("2019-03-11T00:00:00", last)["format"] == fmt


def test_every_axis_of_days_or_times_has_an_explicit_format(small_lake: Path) -> None:  # noqa: F811
    data = queries.load(connect(str(small_lake)), None, None)
    dated = 0
    for chart in charts.charts(data):
        assert chart.spec is not None
        layers = chart.spec.get("layer", [chart.spec])
        for layer in layers:
            x = layer["encoding"]["x"]
            if x["field"] in ("day", "t"):
                dated += 1
                # Vega's default multi-format axis mixes "Mon 11", "12 PM" and "March"
                assert x["axis"]["format"].startswith("%"), chart.key
    assert dated >= 5


def test_the_heat_map_scale_fits_the_hours(small_lake: Path) -> None:  # noqa: F811
    data = queries.load(connect(str(small_lake)), None, None)
    spec = charts.evse_utilization(data).spec
    assert spec is not None
    top = max(r["plugged_hours"] for r in data.utilization)
    assert top == pytest.approx(4.0)  # A1 is plugged 08:00-12:00 every day
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 4]


def test_the_headline_shows_each_number_once_and_the_target(
    small_lake: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "r.html"
    build_report(str(small_lake), str(out), start=None, end=None)
    page, html = _parse(out)
    names = [m["data-metric"] for m in page.metrics]
    for name in ("sessions", "energy_kwh", "first_time", "last_time", "peak_demand_kw"):
        assert names.count(name) == 1, (name, names)
    assert "sessions started</th>" not in html  # the old table that repeated the cards
    # the small lake's site peaks at 6.6 kW against an 8 kW June target
    assert "−1.4 kW" in html and "below the June 2024 target (8 kW)" in html
    assert "All data in the lake" in html and "the beginning" not in html
