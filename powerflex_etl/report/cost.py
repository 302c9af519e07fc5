"""The report's cost section: the monthly bill, price-coloured load, load duration, top sessions.

Shown only when some site has a tariff (``tariff`` in sites.toml): without one there is
nothing to price. Reads the ``report_*`` cost views (``sql/report/``) at their own grains,
like :mod:`.queries`: intervals and sessions by their UTC start in ``[start, end)``, bills
and load-duration curves by the local months the range touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

import duckdb

from powerflex_etl.report.charts import _SITE_COLOR, Chart, _base
from powerflex_etl.report.page import _metric, _num
from powerflex_etl.report.queries import _MAX, _MIN, _Q, MAX_LOAD_POINTS, _utc, _wall

TOP_SESSIONS = 10
# points per load-duration curve drawn (the curve is smooth; a month has 2,880 quarter hours)
CURVE_POINTS = 400

_READS: dict[str, str] = {
    "bills": "select * from report_monthly_bill where month_start_local >= $start_month"
    " and month_start_local < $end_day order by acc_id, month_start_local",
    "load": "select acc_id, interval_start, interval_start_local, bucket_1h_local, demand_kw,"
    " energy_kwh, price_usd_per_kwh, energy_cost_usd from report_energy_cost"
    " where interval_start >= $start and interval_start < $end order by acc_id, interval_start",
    "curve": "select acc_id, month_start_local, rank, hours_at_or_above, demand_kw"
    " from report_load_duration where month_start_local >= $start_month"
    " and month_start_local < $end_day order by acc_id, month_start_local, rank",
    "sessions": "select * from report_session_cost where session_start >= $start"
    f" and session_start < $end order by energy_cost_usd desc, session_start limit {TOP_SESSIONS}",
}


@dataclass
class CostData:
    """What the cost section shows; empty lists when no site is priced."""

    priced_sites: int = 0
    bills: list[dict[str, Any]] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    load_bucket: str = "15 minutes"
    curve: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)


def _priced_sites(con: duckdb.DuckDBPyConnection) -> int:
    try:
        row = con.execute("select count(*) from tariffs").fetchone()
    except duckdb.CatalogException:  # a catalog built before tariffs existed
        return 0
    return int(row[0]) if row else 0


def load_cost(
    con: duckdb.DuckDBPyConnection, start: datetime | None, end: datetime | None
) -> CostData:
    """The cost section's rows over ``[start, end)``; nothing is read when no site is priced."""
    data = CostData(priced_sites=_priced_sites(con))
    if not data.priced_sites:
        return data
    q = _Q(con, _utc(start, _MIN), _utc(end, _MAX))
    data.bills = q.rows("report_monthly_bill", _READS["bills"])
    data.load_bucket, data.load = _price_load(q.rows("report_energy_cost", _READS["load"]))
    data.curve = _thin_curves(q.rows("report_load_duration", _READS["curve"]))
    data.sessions = q.rows("report_session_cost", _READS["sessions"])
    return data


def _price_load(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Demand and price per interval; per hour (peak demand, mean price) on long ranges."""
    if len(rows) <= MAX_LOAD_POINTS:
        return "15 minutes", [
            {
                "acc_id": r["acc_id"],
                "t": _wall(r["interval_start_local"]),
                "minutes": 15,
                "demand_kw": r["demand_kw"],
                "price": r["price_usd_per_kwh"],
            }
            for r in rows
        ]
    hours: dict[tuple[Any, Any], list[float]] = {}
    for r in rows:
        h = hours.setdefault((r["acc_id"], r["bucket_1h_local"]), [0.0, 0.0, 0.0])
        h[0] = max(h[0], r["demand_kw"] or 0.0)
        h[1] += r["energy_kwh"] or 0.0
        h[2] += r["energy_cost_usd"] or 0.0
    return "1 hour", [
        {
            "acc_id": acc_id,
            "t": _wall(t),
            "minutes": 60,
            "demand_kw": peak,
            "price": cost / kwh if kwh else None,
        }
        for (acc_id, t), (peak, kwh, cost) in sorted(
            hours.items(), key=lambda kv: (kv[0][0], kv[0][1])
        )
    ]


def _thin_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (site, month) curve cut to about :data:`CURVE_POINTS` ranks, its first and last kept."""
    curves: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in rows:
        curves.setdefault((r["acc_id"], r["month_start_local"]), []).append(r)
    out = []
    for (acc_id, month), points in curves.items():
        step = max(1, len(points) // CURVE_POINTS)
        kept = points[::step]
        if kept[-1] is not points[-1]:
            kept.append(points[-1])
        label = f"{acc_id} {str(month)[:7]}"
        out += [
            {"curve": label, "hours": float(p["hours_at_or_above"]), "demand_kw": p["demand_kw"]}
            for p in kept
        ]
    return out


# ---- charts ------------------------------------------------------------------------------


def bill_chart(data: CostData) -> Chart:
    """Energy and demand charge per site and month, stacked; a tick at the bill with DCM's target."""
    spec = None
    if data.bills:
        values: list[dict[str, Any]] = []
        for b in data.bills:
            month = f"{str(b['month_start_local'])[:7]} · {b['acc_id']}"
            values.append({"month": month, "part": "energy charge", "usd": b["energy_charge_usd"]})
            values.append({"month": month, "part": "demand charge", "usd": b["demand_charge_usd"]})
            if b["demand_charge_at_target_usd"] is not None:
                at_target = (b["energy_charge_usd"] or 0.0) + b["demand_charge_at_target_usd"]
                values.append({"month": month, "part": "bill at the DCM target", "usd": at_target})
        x = {
            "field": "month",
            "type": "ordinal",
            "title": "local month · site",
            "axis": {"labelAngle": 0},
            "scale": {"paddingInner": 0.5, "paddingOuter": 0.25},
        }
        spec = _base(values, 240) | {
            "layer": [
                {
                    "mark": {"type": "bar"},
                    "transform": [{"filter": "datum.part != 'bill at the DCM target'"}],
                    "encoding": {
                        "x": x,
                        "y": {"field": "usd", "type": "quantitative", "title": "USD"},
                        "color": {"field": "part", "type": "nominal", "title": "charge"},
                    },
                },
                {
                    "mark": {"type": "tick", "thickness": 3, "color": "#222", "size": 80},
                    "transform": [{"filter": "datum.part == 'bill at the DCM target'"}],
                    "encoding": {"x": x, "y": {"field": "usd", "type": "quantitative"}},
                },
            ]
        }
    return Chart(
        "cost_monthly_bill",
        "Monthly bill",
        "Energy charge and demand charge per local billing month (USD); black tick: the bill"
        " had the peak been held to the month's DCM target, where the target is known.",
        spec,
    )


def priced_load_chart(data: CostData) -> Chart:
    """Demand over local time, each bar coloured by the price it was billed at."""
    spec = None
    if data.load:
        spec = _base(data.load, 260) | {
            "transform": [
                {
                    "calculate": "timeOffset('minutes', datetime(datum.t), datum.minutes)",
                    "as": "t_end",
                }
            ],
            "mark": {"type": "rect"},
            "encoding": {
                "x": {"field": "t", "type": "temporal", "title": "local time"},
                "x2": {"field": "t_end"},
                "y": {"field": "demand_kw", "type": "quantitative", "title": "demand (kW)"},
                "color": {
                    "field": "price",
                    "type": "quantitative",
                    "title": "USD/kWh",
                    "scale": {"scheme": "orangered"},
                },
            },
        }
        if len({r["acc_id"] for r in data.load}) > 1:
            spec["encoding"]["row"] = _SITE_COLOR | {"title": "site"}
    how = "15-minute demand" if data.load_bucket == "15 minutes" else "the hour's highest demand"
    return Chart(
        "cost_priced_load",
        "Load by price",
        f"Site load ({how}, kW), coloured by the tariff's price at that local time (USD/kWh;"
        " per hour: the energy-weighted mean).",
        spec,
    )


def load_duration_chart(data: CostData) -> Chart:
    """Each month's 15-minute demands, highest first, against the hours they last."""
    spec = None
    if data.curve:
        spec = _base(data.curve, 240) | {
            "mark": {"type": "line", "interpolate": "step-before"},
            "encoding": {
                "x": {"field": "hours", "type": "quantitative", "title": "hours at or above"},
                "y": {"field": "demand_kw", "type": "quantitative", "title": "demand (kW)"},
                "color": {"field": "curve", "type": "nominal", "title": "site, month"},
            },
        }
    return Chart(
        "cost_load_duration",
        "Load duration",
        "Each month's 15-minute demands sorted from the highest: how many hours the site spent"
        " at or above each demand (0 kW where nobody was plugged in).",
        spec,
    )


COST_CHARTS = (bill_chart, priced_load_chart, load_duration_chart)


def cost_charts(data: CostData) -> list[Chart]:
    """The section's charts (none when no site is priced)."""
    return [make(data) for make in COST_CHARTS] if data.priced_sites else []


# ---- html --------------------------------------------------------------------------------


def _usd(v: float | None) -> str:
    return _num(v, 2)


def _bill_table(data: CostData) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{escape(str(b['acc_id']))}</td><td>{escape(str(b['month_start_local'])[:7])}</td>"
        f"<td>{escape(str(b['tariff_name']))}</td>"
        f'<td class="num">{_num(b["energy_kwh"], 1)}</td>'
        + _metric(
            "energy_charge_usd",
            b["energy_charge_usd"],
            _usd(b["energy_charge_usd"]),
            acc_id=str(b["acc_id"]),
        )
        + f'<td class="num">{_num(b["peak_demand_kw"], 2)}</td>'
        + _metric(
            "demand_charge_usd",
            b["demand_charge_usd"],
            _usd(b["demand_charge_usd"]),
            acc_id=str(b["acc_id"]),
        )
        + _metric("total_usd", b["total_usd"], _usd(b["total_usd"]), acc_id=str(b["acc_id"]))
        + f'<td class="num">{_num(b["target_peak_power_kw"], 0)}</td>'
        + _metric(
            "demand_charge_at_target_usd",
            b["demand_charge_at_target_usd"],
            _usd(b["demand_charge_at_target_usd"]),
            acc_id=str(b["acc_id"]),
        )
        + "</tr>"
        for b in data.bills
    )
    return (
        "<h3>Monthly bill</h3><table><thead><tr><th>site</th><th>month (local)</th>"
        "<th>tariff</th><th>energy (kWh)</th><th>energy charge (USD)</th><th>peak (kW)</th>"
        "<th>demand charge (USD)</th><th>total (USD)</th><th>DCM target (kW)</th>"
        f"<th>demand charge at target (USD)</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _session_table(data: CostData) -> str:
    if not data.sessions:
        return ""
    rows = "".join(
        "<tr>"
        f"<td>{escape(str(s['evse_address']))}</td>"
        f"<td>{escape(str(s['session_start_local'])[:16])}</td>"
        f'<td class="num">{_num(s["energy_kwh"], 2)}</td>'
        + _metric(
            "session_cost_usd",
            s["energy_cost_usd"],
            _usd(s["energy_cost_usd"]),
            session_id=str(s["session_id"]),
        )
        + f'<td class="num">{_num(s["avg_price_usd_per_kwh"], 4)}</td>'
        + "</tr>"
        for s in data.sessions
    )
    return (
        f"<h3>The {TOP_SESSIONS} most expensive sessions</h3><table><thead><tr><th>EVSE</th>"
        "<th>start (local)</th><th>energy (kWh)</th><th>energy cost (USD)</th>"
        f"<th>mean price (USD/kWh)</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def cost_section(data: CostData, figures: list[tuple[Chart, str | None]]) -> str:
    """The section's HTML (empty when no site has a tariff)."""
    if not data.priced_sites:
        return ""
    parts = [
        '<section id="cost"><h2>What charging costs</h2>',
        '<p class="note">Priced by each site\'s tariff in sites.toml, in its local time: energy'
        " at the price in force at each 15-minute interval's start, demand at the rate in force"
        " on the month's first day times the month's peak 15-minute demand.</p>",
    ]
    for chart, svg in figures:
        inner = svg if svg is not None else '<p class="empty">No priced load in this range.</p>'
        parts.append(
            f'<figure data-chart="{escape(chart.key)}"><h3>{escape(chart.title)}</h3>{inner}'
            f"<figcaption>{escape(chart.caption)}</figcaption></figure>"
        )
    if data.bills:
        parts.append(_bill_table(data))
    parts.append(_session_table(data))
    parts.append("</section>")
    return "".join(parts)
