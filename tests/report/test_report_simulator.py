"""The report over a lake ingested from the simulator (real ACN sessions replayed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powerflex_etl.catalog import connect
from powerflex_etl.ingest import run as runner
from powerflex_etl.report import build_report
from powerflex_etl.settings import Settings
from tests.report.test_report import CHART_KEYS, _metric, _parse

T0 = datetime(2021, 6, 2, tzinfo=UTC)


@pytest.fixture
def ingested(sim_settings: Settings) -> Settings:
    runner.run(
        sim_settings,
        start=T0.isoformat(),
        end=(T0 + timedelta(days=2)).isoformat(),
        measurements=None,
        engine="local",
        workers=2,
    )
    return sim_settings


def test_report_over_ingested_sessions_matches_the_views(
    ingested: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    summary = build_report(ingested.lake, str(out), start=None, end=None)
    page, text = _parse(out)
    con = connect(ingested.lake)
    try:
        sessions, sites = con.execute(
            "select count(*), count(distinct acc_id) from charging_sessions"
        ).fetchone() or (0, 0)
        kwh = (con.execute("select sum(energy_kwh) from site_load_15min").fetchone() or [0])[0]
        peaks = dict(
            con.execute("select acc_id, max(demand_kw) from site_load_15min group by 1").fetchall()
        )
    finally:
        con.close()
    # real replayed sessions: the report is about something
    assert sessions > 0 and kwh > 0 and sites >= 1
    assert summary.sessions == sessions
    assert int(str(_metric(page, "sessions")[0]["data-value"])) == sessions
    assert float(str(_metric(page, "energy_kwh")[0]["data-value"])) == pytest.approx(kwh)
    assert summary.peak_demand_kw == pytest.approx(peaks)
    assert set(summary.charts) == CHART_KEYS
    assert all(page.figures[k] >= 1 for k in CHART_KEYS)
    assert page.refs == [] and "https://" not in text and "http://" not in text
    print(f"report: {summary.bytes} bytes, {summary.seconds:.2f} s, {sessions} sessions")
