"""Vega-Lite specs for the report, rendered offline to inline SVG with ``vl_convert``.

Specs are plain dicts built by pure functions (testable without rendering); times arrive
as naive ISO wall-clock strings, so the picture does not depend on the renderer's zone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from powerflex_etl.report.queries import ReportData

Spec = dict[str, Any]
WIDTH = 940
# the SVG's layout is measured once, here; Liberation Sans, Arial and Helvetica share their
# metrics, so labels and legends fit wherever the report is opened
_FONT = "Liberation Sans, Arial, Helvetica, sans-serif"
_CONFIG: Spec = {
    "font": _FONT,
    "padding": {"left": 5, "top": 5, "right": 20, "bottom": 5},
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e6e6e6"},
    "legend": {"labelFontSize": 11, "titleFontSize": 12},
}


@dataclass(frozen=True)
class Chart:
    """One figure of the report: its key (``data-chart``), caption and Vega-Lite spec."""

    key: str
    title: str
    caption: str
    spec: Spec | None  # None: nothing to draw in this range

    @property
    def has_data(self) -> bool:
        return self.spec is not None


def _base(values: list[dict[str, Any]], height: int = 260) -> Spec:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": values},
        "width": WIDTH,
        "height": height,
        "config": _CONFIG,
    }


# counts: whole-number ticks only (no "1.5 sessions")
_COUNT_AXIS: Spec = {
    "tickMinStep": 1,
    # the offline renderer ignores tickMinStep: blank any fractional label it still makes
    "labelExpr": "datum.value % 1 ? '' : datum.label",
    "format": "d",
}
_SITE_COLOR: Spec = {"field": "acc_id", "type": "nominal", "title": "site (acc_id)"}

# every axis of days says a day the same way: "Mon 11 Mar" (d3-time-format; %-d: no padding)
DAY_FORMAT = "%a %-d %b"


def _days(values: list[dict[str, Any]], key: str) -> int:
    return len({v[key] for v in values if v.get(key) is not None})


def day_axis(days: int) -> Spec:
    """The axis of an ordinal day field: one format; fewer labels when days are many."""
    axis: Spec = {"format": DAY_FORMAT, "formatType": "time", "labelAngle": 0}
    if days > 14:
        axis |= {"format": "%-d %b", "labelAngle": -45, "labelOverlap": "greedy"}
    return axis


def time_axis(first: str, last: str) -> Spec:
    """A temporal axis in one format, ticks at whole days (or hours on a short range).

    Vega's default mixes formats on one axis ("Mon 11", "12 PM", "March"); here every label
    is made by one pattern picked from the span of the data.
    """
    span_h = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds() / 3600
    if span_h <= 48:
        # a number, not {"interval": "hour", "step": n}: the offline Vega fails on stepped hours
        step = 3 if span_h <= 24 else 6
        return {"format": f"{DAY_FORMAT} %H:%M", "tickCount": max(2, round(span_h / step))}
    if span_h <= 16 * 24:
        return {"format": DAY_FORMAT, "tickCount": {"interval": "day", "step": 1}}
    if span_h <= 120 * 24:
        return {"format": "%-d %b", "tickCount": {"interval": "week", "step": 1}}
    return {"format": "%b %Y", "tickCount": {"interval": "month", "step": 1}}


def hours_scale(values: list[dict[str, Any]], field: str) -> tuple[int, list[int]]:
    """The top of an hours colour scale (the longest cell, whole hours) and its legend ticks."""
    top = max((math.ceil(v[field]) for v in values if v.get(field) is not None), default=1)
    top = min(max(top, 1), 24)
    step = next(s for s in (1, 2, 3, 4, 6) if top / s <= 6)
    top = -(-top // step) * step
    return top, list(range(0, top + 1, step))


def daily_energy(data: ReportData) -> Chart:
    """Energy delivered per local day, stacked by site."""
    spec = None
    if data.daily_energy:
        spec = _base(data.daily_energy) | {
            "mark": {"type": "bar"},
            "encoding": {
                "x": {
                    "field": "day",
                    "type": "ordinal",
                    "timeUnit": "yearmonthdate",
                    "title": "local day",
                    "axis": day_axis(_days(data.daily_energy, "day")),
                },
                "y": {"field": "energy_kwh", "type": "quantitative", "title": "energy (kWh)"},
                "color": _SITE_COLOR,
            },
        }
    return Chart(
        "daily_energy",
        "Daily energy",
        "Energy delivered per local day (kWh), from the 15-minute site load, stacked by site.",
        spec,
    )


def sessions_per_day(data: ReportData) -> Chart:
    """Sessions started per local day, stacked by site."""
    spec = None
    if data.sessions_per_day:
        spec = _base(data.sessions_per_day) | {
            "mark": {"type": "bar"},
            "encoding": {
                "x": {
                    "field": "day",
                    "type": "ordinal",
                    "timeUnit": "yearmonthdate",
                    "title": "local day",
                    "axis": day_axis(_days(data.sessions_per_day, "day")),
                },
                "y": {
                    "field": "sessions",
                    "type": "quantitative",
                    "title": "sessions started",
                    "axis": _COUNT_AXIS,
                },
                "color": _SITE_COLOR,
            },
        }
    return Chart(
        "sessions_per_day",
        "Sessions per day",
        "Charging sessions by the local day they started, stacked by site.",
        spec,
    )


# a target this many times the highest demand would flatten the load into the x axis
_TARGET_OFF_SCALE = 2.0


def _off_scale_target(data: ReportData) -> float | None:
    """The highest target when it is far above every demand (drawn as a note, not a line)."""
    demand = max((r["demand_kw"] or 0.0 for r in data.site_load), default=0.0)
    targets = [r["target_kw"] for r in data.site_load if r["target_kw"] is not None]
    if not targets or demand <= 0 or max(targets) <= _TARGET_OFF_SCALE * demand:
        return None
    return float(max(targets))


def site_load(data: ReportData) -> Chart:
    """Demand per site over time, with the month's target peak power as a dashed line."""
    spec = None
    off_scale = _off_scale_target(data)
    if data.site_load:
        times = [r["t"] for r in data.site_load]
        x = {
            "field": "t",
            "type": "temporal",
            "title": "local time",
            "axis": time_axis(min(times), max(times)),
        }
        y: Spec = {"field": "demand_kw", "type": "quantitative", "title": "demand (kW)"}
        layers: list[Spec] = [
            {
                "mark": {"type": "line", "strokeWidth": 1.2, "interpolate": "step-after"},
                "encoding": {"x": x, "y": y, "color": _SITE_COLOR},
            }
        ]
        if off_scale is None:
            layers.append(
                {
                    "mark": {"type": "line", "strokeDash": [6, 4], "strokeWidth": 1.5},
                    "transform": [{"filter": "datum.target_kw != null"}],
                    "encoding": {
                        "x": x,
                        "y": {"field": "target_kw", "type": "quantitative"},
                        "color": _SITE_COLOR,
                    },
                }
            )
        spec = _base(data.site_load, 300) | {"layer": layers}
        if off_scale is not None:
            # said above the plot, where it cannot cover the load
            spec["title"] = {
                "text": f"target {off_scale:,.0f} kW: above this scale",
                "anchor": "end",
                "fontSize": 11,
                "fontWeight": "normal",
                "color": "#555",
            }
    bucket = data.load_bucket
    how = (
        "15-minute mean demand"
        if bucket == "15 minutes"
        else f"the highest 15-minute demand per {bucket.removeprefix('1 ')}"
    )
    target = (
        f"the month's target peak power ({off_scale:,.0f} kW) is far above the load, so it is"
        " not drawn"
        if off_scale is not None
        else "dashed: the month's target peak power where known"
    )
    return Chart(
        "site_load",
        "Site load",
        f"Site load: {how} (kW) per site, 0 where nobody was plugged in; {target}.",
        spec,
    )


def _histogram(values: list[dict[str, Any]], field: str, title: str) -> Spec:
    return _base(values, 220) | {
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": field, "type": "quantitative", "bin": {"maxbins": 40}, "title": title},
            "y": {
                "aggregate": "count",
                "type": "quantitative",
                "title": "sessions",
                "axis": _COUNT_AXIS,
            },
            "color": {
                "field": "cut",
                "type": "nominal",
                "title": "session",
                "scale": {"domain": [False, True], "range": ["#4c78a8", "#bab0ac"]},
                "legend": {
                    "labelExpr": "datum.label == 'true' ? 'cut by the data range' : 'whole'"
                },
            },
        },
    }


def session_duration(data: ReportData) -> Chart:
    """Distribution of plug-in durations."""
    values = [r for r in data.session_stats if r["duration_h"] is not None]
    spec = _histogram(values, "duration_h", "plugged duration (hours)") if values else None
    return Chart(
        "session_duration",
        "Session duration",
        "Plugged duration per session (hours); grey: sessions cut at the start or end of the data.",
        spec,
    )


def session_energy(data: ReportData) -> Chart:
    """Distribution of energy per session."""
    values = [r for r in data.session_stats if r["energy_kwh"] is not None]
    spec = _histogram(values, "energy_kwh", "energy per session (kWh)") if values else None
    return Chart(
        "session_energy",
        "Session energy",
        "Energy delivered per session (kWh); grey: sessions cut at the start or end of the data.",
        spec,
    )


def evse_utilization(data: ReportData) -> Chart:
    """EVSE x local day heat map of plugged hours (charging hours in the tooltip-free text)."""
    spec = None
    top, ticks = hours_scale(data.utilization, "plugged_hours")
    if data.utilization:
        evses = len({r["evse_address"] for r in data.utilization})
        spec = _base(data.utilization, max(80, 14 * evses)) | {
            # white gaps between cells, so one EVSE's days read as a row
            "mark": {"type": "rect", "stroke": "white", "strokeWidth": 1},
            "encoding": {
                "x": {
                    "field": "day",
                    "type": "ordinal",
                    "timeUnit": "yearmonthdate",
                    "title": "local day",
                    "axis": day_axis(_days(data.utilization, "day")),
                },
                "y": {
                    "field": "evse_address",
                    "type": "nominal",
                    "title": "EVSE",
                    "sort": "ascending",
                },
                "color": {
                    "field": "plugged_hours",
                    "type": "quantitative",
                    "title": "plugged (h)",
                    # the scale ends at the longest cell, so 1-7 h days are not all pale
                    "scale": {"scheme": "blues", "domain": [0, top]},
                    "legend": {"values": ticks},
                },
            },
        }
    return Chart(
        "evse_utilization",
        "EVSE utilization",
        f"Hours each EVSE had a car plugged in, per local day (scale 0-{top} h, the longest day).",
        spec,
    )


CHARTS = (
    daily_energy,
    sessions_per_day,
    site_load,
    session_duration,
    session_energy,
    evse_utilization,
)


def charts(data: ReportData) -> list[Chart]:
    """Every chart of the report, in page order."""
    return [make(data) for make in CHARTS]


# namespace declarations are not fetched by anyone, but an inline <svg> in HTML does not
# need them, and without them the file holds no http(s) URL at all
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')


def render_svg(spec: Spec) -> str:
    """The chart as an inline ``<svg>`` element, rendered offline (no network, no fonts fetched)."""
    import vl_convert

    svg = str(vl_convert.vegalite_to_svg(spec))
    start = svg.find("<svg")
    return _XMLNS.sub("", svg[start:], count=2)
