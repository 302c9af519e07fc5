"""One self-contained HTML page: inline CSS and SVG only, nothing fetched when it is opened."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from powerflex_etl.report.charts import Chart
from powerflex_etl.report.queries import ReportData, SitePeak

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1180px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.sites{font-size:1.05rem;margin:.2rem 0}
.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.95rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.7rem 1rem;min-width:8rem}
.card .v{font-size:1.5rem;font-weight:600}.card .l{color:#666;font-size:.85rem}
figure{margin:1.5rem 0}figcaption{color:#444;font-size:.9rem;margin-top:.3rem}
.empty{color:#a33;font-weight:600}.note{color:#666;font-size:.9rem}
svg{max-width:100%;height:auto}
"""


def _t(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _exact(value: object) -> str:
    """A value as ``data-value`` holds it: ISO for times, repr for numbers."""
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else repr(value)


def _attrs(name: str, value: object, **attrs: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f' data-metric="{escape(name)}"{extra} data-value="{escape(_exact(value))}"'


def _metric(name: str, value: object, text: str, **attrs: str) -> str:
    """A table cell carrying its exact value in ``data-value`` for tools and tests."""
    return f'<td class="num"{_attrs(name, value, **attrs)}>{escape(text)}</td>'


def site_zone(data: ReportData) -> str | None:
    """The one time zone of every site in the report (sites.toml), or None (then UTC)."""
    zones = {s["tz"] for s in data.sites if s.get("tz")}
    known = {s["acc_id"] for s in data.sites}
    if len(zones) != 1 or any(p.acc_id not in known for p in data.peaks):
        return None
    return zones.pop()


def _in_zone(t: datetime, tz: str | None) -> str:
    if tz is None:
        return t.astimezone(UTC).strftime("%a %-d %b %Y %H:%M UTC")
    return t.astimezone(ZoneInfo(tz)).strftime("%a %-d %b %Y %H:%M %Z")


def describe_range(start: datetime | None, end: datetime | None, tz: str | None = None) -> str:
    """The asked range in words: ``all data in the lake``, ``from ...``, ``up to ...`` or both."""
    if start is None and end is None:
        return "all data in the lake"
    if end is None:
        assert start is not None
        return f"from {_in_zone(start, tz)}"
    if start is None:
        return f"up to {_in_zone(end, tz)} (exclusive)"
    return f"{_in_zone(start, tz)} to {_in_zone(end, tz)} (end exclusive)"


def _card(value: str, label: str, metric: str = "") -> str:
    return f'<div class="card"{metric}><div class="v">{escape(value)}</div><div class="l">{escape(label)}</div></div>'


def _wall(p: SitePeak) -> str:
    """When a site's peak interval started, in the site's zone when known."""
    if p.peak_interval_start_local is not None:
        return p.peak_interval_start_local.strftime("%a %-d %b %H:%M")
    return _t(p.peak_interval_start)


def _against_target(data: ReportData) -> dict[str, Any] | None:
    """The month furthest over (else closest to) its target, of those with a known target."""
    with_target = [
        r
        for r in data.monthly
        if r["target_peak_power_kw"] is not None and r["peak_demand_kw"] is not None
    ]
    if not with_target:
        return None
    return max(with_target, key=lambda r: r["peak_demand_kw"] - r["target_peak_power_kw"])


def _headline(data: ReportData) -> str:
    """Cards: sessions, energy, the highest peak, the month nearest or over its target."""
    cards = [
        _card(f"{data.sessions:,}", "charging sessions started", _attrs("sessions", data.sessions)),
        _card(_num(data.energy_kwh), "kWh delivered", _attrs("energy_kwh", data.energy_kwh)),
    ]
    top = max(data.peaks, key=lambda p: p.peak_demand_kw, default=None)
    if top is not None:
        # one site: its card is the per-site figure; several: the table below holds them
        metric = _attrs("peak_demand_kw", top.peak_demand_kw, acc_id=top.acc_id)
        site = f" (site {top.acc_id})" if len(data.peaks) > 1 else ""
        cards.append(
            _card(
                f"{_num(top.peak_demand_kw)} kW",
                f"peak 15-min demand{site}, {_wall(top)}",
                metric if len(data.peaks) == 1 else "",
            )
        )
    month = _against_target(data)
    if month is not None:
        gap = month["peak_demand_kw"] - month["target_peak_power_kw"]
        when = f"{month['month_start_local']:%B %Y}" if month["month_start_local"] else "-"
        cards.append(
            _card(
                f"{'+' if gap > 0 else '−'}{_num(abs(gap))} kW",
                f"{'over' if gap > 0 else 'below'} the {when} target "
                f"({_num(month['target_peak_power_kw'], 0)} kW)"
                + (f", site {month['acc_id']}" if len(data.peaks) > 1 else ""),
            )
        )
    tz = site_zone(data)
    first, last = ("-" if t is None else _in_zone(t, tz) for t in (data.first_time, data.last_time))
    span = (
        f'<p class="meta">Telemetry from <span{_attrs("first_time", data.first_time)}>'
        f"{escape(first)}</span> to <span{_attrs('last_time', data.last_time)}>"
        f"{escape(last)}</span> (last sample).</p>"
    )
    peak_table = ""
    if len(data.peaks) > 1:
        peaks = "".join(
            f"<tr><td>{escape(p.acc_id)}</td>"
            + _metric(
                "peak_demand_kw", p.peak_demand_kw, _num(p.peak_demand_kw, 2), acc_id=p.acc_id
            )
            + f"<td>{escape(_wall(p))}</td></tr>"
            for p in data.peaks
        )
        peak_table = (
            "<h3>Peak 15-minute demand per site</h3><table><thead><tr><th>site (acc_id)</th>"
            f"<th>peak demand (kW)</th><th>interval start</th></tr></thead><tbody>{peaks}"
            "</tbody></table>"
        )
    return (
        f'<section id="headline"><h2>Headline</h2><div class="cards">{"".join(cards)}</div>'
        f"{span}{peak_table}</section>"
    )


def _sites(data: ReportData) -> str:
    """Who the report is about: each site of sites.toml that has data, with its zone."""
    with_data = {p.acc_id for p in data.peaks}
    shown = [s for s in data.sites if s["acc_id"] in with_data]
    if not shown:
        return ""
    names = "; ".join(f"{s['name']} (site {s['acc_id']}, {s['tz']})" for s in shown)
    return f'<p class="sites">{escape(names)}</p>'


def _monthly(data: ReportData) -> str:
    if not data.monthly:
        return ""
    body = "".join(
        "<tr>"
        f"<td>{escape(str(r['acc_id']))}</td><td>{escape(str(r['month_start_local'])[:7])}</td>"
        f'<td class="num">{_num(r["peak_demand_kw"], 2)}</td>'
        f'<td class="num">{_num(r["target_peak_power_kw"], 0)}</td>'
        f'<td class="num">{_num(r["excess_kw"], 2)}</td>'
        f"<td>{'yes' if r['over_target'] else ('no' if r['over_target'] is not None else '-')}</td>"
        "</tr>"
        for r in data.monthly
    )
    return (
        '<section id="monthly_peak"><h2>Monthly peak vs target</h2><table><thead><tr>'
        "<th>site</th><th>month (local)</th><th>peak demand (kW)</th><th>target (kW)</th>"
        f"<th>excess (kW)</th><th>over target</th></tr></thead><tbody>{body}</tbody></table></section>"
    )


def _figure(chart: Chart, svg: str | None) -> str:
    inner = svg if svg is not None else '<p class="empty">No data in this range.</p>'
    return (
        f'<figure data-chart="{escape(chart.key)}"><h2>{escape(chart.title)}</h2>{inner}'
        f"<figcaption>{escape(chart.caption)}</figcaption></figure>"
    )


def page(
    data: ReportData,
    figures: Iterable[tuple[Chart, str | None]],
    *,
    lake: str,
    generated_at: datetime,
    sections: Iterable[str] = (),
) -> str:
    """The whole HTML document; ``sections`` (already HTML) go after the monthly peaks."""
    asked = describe_range(data.start, data.end, site_zone(data))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>PowerFlex charging report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>PowerFlex charging report</h1>",
        _sites(data),
        f'<p class="meta">{escape(asked[0].upper() + asked[1:])} · lake <code>{escape(lake)}</code>'
        f" · generated {escape(_t(generated_at))}</p>",
    ]
    if data.empty:
        parts.append(
            '<p class="empty" data-empty="true">No data: the lake holds no telemetry or sessions '
            "in this range. Ingest some (powerflex-etl ingest) or widen --start/--end.</p>"
        )
    if data.missing_views:
        parts.append(
            '<p class="note">Views missing from the catalog (rebuild it with a newer version): '
            f"{escape(', '.join(data.missing_views))}.</p>"
        )
    parts.append(_headline(data))
    parts.extend(_figure(chart, svg) for chart, svg in figures)
    parts.append(_monthly(data))
    parts.extend(sections)
    parts.append(
        '<p class="note">Times in charts are local to each site where a time zone is known '
        "(sites.toml), else UTC. Energy and demand come from ct_response; sessions from "
        "charging_sessions (see docs/analytics.md).</p></body></html>"
    )
    return "\n".join(p for p in parts if p)
