"""The HTML report: self-contained, every chart drawn, numbers equal to the views', empty lake ok.

The small lake is written directly with the contract's Arrow schema (two EVSEs of site "03",
60 s samples over two days, one plug-in per EVSE per day) so these tests need no server.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from powerflex_etl.catalog import build_catalog, connect
from powerflex_etl.parse import dcm
from powerflex_etl.report import build_report
from powerflex_etl.report.charts import CHARTS
from powerflex_etl.schemas import arrow_schema

DAY0 = datetime(2024, 6, 3, tzinfo=UTC)
CHART_KEYS = {
    "daily_energy",
    "sessions_per_day",
    "site_load",
    "session_duration",
    "session_energy",
    "evse_utilization",
}
# (evse, plug hour, charge hours, unplug hour, kW) per day
PLUGINS = [("A1", 8, 2, 12, 6.6), ("A2", 13, 1, 15, 3.3)]


def _rows(days: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for day in range(days):
        for evse, plug, charge_h, unplug, kw in PLUGINS:
            energy = 0.0
            for minute in range(24 * 60):
                t = DAY0 + timedelta(days=day, minutes=minute)
                hour = minute / 60
                plugged = plug <= hour < unplug
                charging = plugged and hour < plug + charge_h
                if charging:
                    energy += kw / 60
                elif not plugged:
                    energy = 0.0
                rows.append(
                    {
                        "time": t,
                        "evse_address": evse,
                        "acn_id": "0002",
                        "acc_id": "03",
                        "acg_id": "1",
                        "acs_id": "1",
                        "space_number": evse,
                        "evse_type": "AV",
                        "phases": "AB",
                        "charging_state": "ADAPTIVE"
                        if charging
                        else ("IDLE" if plugged else "UNPLUGGED"),
                        "version": "1",
                        "energy_delivered_kwh": energy,
                        "current_actual_a": kw * 1000 / 208 if charging else 0.0,
                        "pilot_actual_a": 32.0 if plugged else 0.0,
                        "voltage_v": 208.0,
                        "power_kw": kw if charging else 0.0,
                        "peak_rate": None,
                        "_ingested_at": DAY0,
                        "_run_id": "test",
                    }
                )
    return rows


def _write_lake(root: Path, days: int = 2) -> None:
    schema = arrow_schema("ct_response")
    slots: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(days):
        t: datetime = r["time"]
        slots[(f"{t:%Y-%m-%d}", t.hour // 6 * 6)].append(r)
    for (day, hh), rows in slots.items():
        path = root / "ct_response" / f"date={day}" / f"part-{hh:02d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    targets = dcm.target_peak_power_table(
        "03", {m: 8 for m in dcm.MONTHS}, run_id="t", at=DAY0 - timedelta(days=1)
    )
    path = root / "target_peak_power" / "date=2024-06-02" / "snap-test.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(targets, path)
    build_catalog(str(root))


class _Page(HTMLParser):
    """Collects figures, svgs inside them, resource references and data-metric cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: dict[str, int] = {}
        self._figure: str | None = None
        self.refs: list[str] = []
        self.metrics: list[dict[str, str | None]] = []
        self.empty_notice = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self._figure = a.get("data-chart") or ""
            self.figures[self._figure] = 0
        if tag == "svg" and self._figure is not None:
            self.figures[self._figure] += 1
        for key in ("src", "href", "xlink:href", "action", "data"):
            if a.get(key):
                self.refs.append(str(a[key]))
        if tag in ("script", "link", "iframe", "img", "object"):
            self.refs.append(f"<{tag}>")
        if "data-metric" in a:
            self.metrics.append(a)
        if a.get("data-empty") == "true":
            self.empty_notice = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    p = _Page()
    p.feed(text)
    p.close()
    return p, text


def _metric(page: _Page, name: str) -> list[dict[str, str | None]]:
    return [m for m in page.metrics if m["data-metric"] == name]


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    _write_lake(root)
    return root


def test_report_has_every_chart_as_inline_svg_and_nothing_from_the_network(
    small_lake: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    summary = build_report(str(small_lake), str(out), start=None, end=None)
    page, text = _parse(out)
    assert set(page.figures) == CHART_KEYS == {f.__name__ for f in CHARTS}
    assert all(n >= 1 for n in page.figures.values()), page.figures
    assert sorted(summary.charts) == sorted(CHART_KEYS)
    assert page.refs == []
    assert "http://" not in text and "https://" not in text
    assert "@import" not in text
    # only local fragment references (an SVG gradient), never a fetched resource
    assert re.findall(r"url\((?!#)", text) == []
    assert not page.empty_notice
    assert summary.bytes == len(out.read_bytes())


def test_headline_numbers_equal_the_views(small_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    summary = build_report(str(small_lake), str(out), start=None, end=None)
    page, _ = _parse(out)
    con = connect(str(small_lake))
    try:
        sessions = con.execute("select count(*) from charging_sessions").fetchone()
        kwh = con.execute("select sum(energy_kwh) from site_load_15min").fetchone()
        span = con.execute("select min(time), max(time) from ct_response").fetchone()
        peaks = dict(
            con.execute("select acc_id, max(demand_kw) from site_load_15min group by 1").fetchall()
        )
    finally:
        con.close()
    assert sessions and kwh and span
    # what the data was built with: 2 plug-ins a day for 2 days, 6.6*2 + 3.3*1 kWh a day
    assert sessions[0] == 4
    assert kwh[0] == pytest.approx(2 * (6.6 * 2 + 3.3), rel=1e-3)
    assert int(str(_metric(page, "sessions")[0]["data-value"])) == sessions[0] == summary.sessions
    # DuckDB sums floats in parallel: equal up to summation order
    assert float(str(_metric(page, "energy_kwh")[0]["data-value"])) == pytest.approx(kwh[0])
    assert summary.energy_kwh == pytest.approx(kwh[0])
    first = datetime.fromisoformat(str(_metric(page, "first_time")[0]["data-value"]))
    last = datetime.fromisoformat(str(_metric(page, "last_time")[0]["data-value"]))
    assert (first, last) == (span[0], span[1])
    assert first == DAY0 and last == DAY0 + timedelta(days=2, minutes=-1)
    shown = {m["data-acc-id"]: float(str(m["data-value"])) for m in _metric(page, "peak_demand_kw")}
    assert shown == peaks == summary.peak_demand_kw
    assert peaks["03"] == pytest.approx(6.6)


def test_range_filter_keeps_only_sessions_started_inside(small_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "day2.html"
    summary = build_report(
        str(small_lake), str(out), start=DAY0 + timedelta(days=1), end=DAY0 + timedelta(days=2)
    )
    page, _ = _parse(out)
    assert summary.sessions == 2
    assert summary.energy_kwh == pytest.approx(6.6 * 2 + 3.3, rel=1e-3)
    assert summary.first_time == DAY0 + timedelta(days=1)
    assert int(str(_metric(page, "sessions")[0]["data-value"])) == 2


def test_a_range_without_data_says_so(small_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.html"
    summary = build_report(
        str(small_lake), str(out), start=datetime(2030, 1, 1), end=datetime(2030, 2, 1)
    )
    page, _ = _parse(out)
    assert summary.empty and summary.sessions == 0 and summary.charts == []
    assert page.empty_notice
    assert set(page.figures) == CHART_KEYS


def test_empty_lake_gives_a_valid_report(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    out = tmp_path / "out" / "report.html"
    summary = build_report(str(lake), str(out), start=None, end=None)
    page, text = _parse(out)
    assert summary.empty and summary.sessions == 0 and summary.energy_kwh == 0
    assert page.empty_notice and "No data" in text
    assert _metric(page, "sessions")[0]["data-value"] == "0"
    assert set(page.figures) == CHART_KEYS and all(n == 0 for n in page.figures.values())
    assert text.rstrip().endswith("</html>")


def test_start_after_end_is_a_clear_error(small_lake: Path, tmp_path: Path) -> None:
    from powerflex_etl.errors import PowerflexError

    with pytest.raises(PowerflexError, match=r"start .* is not before end"):
        build_report(str(small_lake), str(tmp_path / "x.html"), start=DAY0, end=DAY0)
    assert not (tmp_path / "x.html").exists()


def test_summary_is_json_ready(small_lake: Path, tmp_path: Path) -> None:
    import json

    summary = build_report(str(small_lake), str(tmp_path / "r.html"), start=None, end=None)
    d = json.loads(json.dumps(summary.to_dict()))
    assert d["sessions"] == 4 and d["first_time"] == DAY0.isoformat()
    assert d["peak_demand_kw"] == {"03": pytest.approx(6.6)}


def test_a_catalog_without_the_marts_still_gives_a_report(tmp_path: Path) -> None:
    import shutil

    from powerflex_etl.catalog import sqlfiles as views

    lake = tmp_path / "lake"
    _write_lake(lake)
    # a catalog built from the staging views only, as an older version would have left it
    sql = views.SQL_DIR
    shutil.copytree(sql / "staging", tmp_path / "sql" / "staging")
    (tmp_path / "sql" / "marts").mkdir()
    build_catalog(str(lake), sql_dir=tmp_path / "sql")
    out = tmp_path / "r.html"
    summary = build_report(str(lake), str(out), start=None, end=None)
    page, text = _parse(out)
    assert summary.sessions == 0 and summary.first_time == DAY0
    assert "charging_sessions" in text and "Views missing" in text
    assert set(page.figures) == CHART_KEYS
