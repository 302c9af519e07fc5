"""One self-contained HTML page: inline CSS and SVG only, nothing fetched when it is opened."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape

from powerflex_etl.report.charts import Chart
from powerflex_etl.report.queries import ReportData

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1180px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.95rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.7rem 1rem;min-width:10rem}
.card .v{font-size:1.5rem;font-weight:600}.card .l{color:#666;font-size:.85rem}
figure{margin:1.5rem 0}figcaption{color:#444;font-size:.9rem;margin-top:.3rem}
.empty{color:#a33;font-weight:600}.note{color:#666;font-size:.9rem}
svg{max-width:100%;height:auto}
"""


def _t(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _metric(name: str, value: object, text: str, **attrs: str) -> str:
    """A table cell carrying its exact value in ``data-value`` for tools and tests."""
    exact = (
        value.isoformat() if isinstance(value, datetime) else ("" if value is None else repr(value))
    )
    extra = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<td class="num" data-metric="{escape(name)}"{extra} data-value="{escape(exact)}">'
        f"{escape(text)}</td>"
    )


def _headline(data: ReportData) -> str:
    cards = [
        ("sessions", f"{data.sessions:,}"),
        ("energy delivered (kWh)", _num(data.energy_kwh)),
        ("highest site peak (kW)", _num(max((p.peak_demand_kw for p in data.peaks), default=None))),
        ("sites", f"{len(data.peaks):,}"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="l">{escape(label)}</div></div>'
        for label, v in cards
    )
    rows = [
        f"<tr><th>sessions started</th>{_metric('sessions', data.sessions, f'{data.sessions:,}')}</tr>",
        f"<tr><th>energy delivered (kWh)</th>{_metric('energy_kwh', data.energy_kwh, _num(data.energy_kwh, 3))}</tr>",
        f"<tr><th>first sample</th>{_metric('first_time', data.first_time, _t(data.first_time))}</tr>",
        f"<tr><th>last sample</th>{_metric('last_time', data.last_time, _t(data.last_time))}</tr>",
    ]
    peaks = "".join(
        f"<tr><td>{escape(p.acc_id)}</td>"
        + _metric("peak_demand_kw", p.peak_demand_kw, _num(p.peak_demand_kw, 2), acc_id=p.acc_id)
        + f"<td>{escape(_t(p.peak_interval_start))}</td></tr>"
        for p in data.peaks
    )
    peak_table = (
        "<h3>Peak 15-minute demand per site</h3><table><thead><tr><th>site (acc_id)</th>"
        f"<th>peak demand (kW)</th><th>interval start</th></tr></thead><tbody>{peaks}</tbody></table>"
        if data.peaks
        else ""
    )
    return (
        f'<section id="headline"><h2>Headline</h2><div class="cards">{card_html}</div>'
        f'<table class="metrics"><tbody>{"".join(rows)}</tbody></table>{peak_table}</section>'
    )


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
    asked = f"{_t(data.start) if data.start else 'the beginning'} to {_t(data.end) if data.end else 'now'} (end exclusive)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>PowerFlex charging report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>PowerFlex charging report</h1>",
        f'<p class="meta">Lake <code>{escape(lake)}</code> · range {escape(asked)} · '
        f"generated {escape(_t(generated_at))}</p>",
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
