"""The report's cost section: shown when a site has a tariff, its numbers equal to the views'.

The lake is test_report's (two EVSEs of site "03", two days), here in UTC and on SCE
TOU-EV-4: A1 charges 08:00-10:00 at 6.6 kW (mid-peak 0.0925), A2 13:00-14:00 at 3.3 kW
(on-peak 0.26668), on Monday and Tuesday 2024-06-03/04.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from powerflex_etl.catalog import connect
from powerflex_etl.report import build_report
from powerflex_etl.report.cost import COST_CHARTS
from tests.report.test_report import _metric, _parse, _write_lake

COST_KEYS = {"cost_monthly_bill", "cost_priced_load", "cost_load_duration"}
DAY_USD = 13.2 * 0.0925 + 3.3 * 0.26668


@pytest.fixture(scope="module")
def priced_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("priced")
    _write_lake(root)
    (root / "sites.toml").write_text(
        '[sites."03"]\nname = "Garage"\ntz = "UTC"\ntariff = "sce_tou_ev_4_march_2019"\n'
    )
    return root


def test_the_cost_section_draws_its_charts_and_equals_the_views(
    priced_lake: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    summary = build_report(str(priced_lake), str(out), start=None, end=None)
    page, text = _parse(out)
    assert {c.key for c in (make(_empty()) for make in COST_CHARTS)} == COST_KEYS
    assert set(page.figures) >= COST_KEYS and all(page.figures[k] == 1 for k in COST_KEYS)
    assert set(summary.charts) >= COST_KEYS
    assert page.refs == [] and "https://" not in text
    con = connect(str(priced_lake))
    try:
        (bill,) = con.execute(
            "select energy_charge_usd, demand_charge_usd, total_usd, demand_charge_at_target_usd"
            " from monthly_bill"
        ).fetchall()
        top = con.execute(
            "select session_id, energy_cost_usd from session_cost"
            " order by energy_cost_usd desc, session_start"
        ).fetchall()
    finally:
        con.close()
    assert bill[0] == pytest.approx(2 * DAY_USD)
    assert bill[1] == pytest.approx(15.51 * 6.6)
    for name, value in zip(
        ("energy_charge_usd", "demand_charge_usd", "total_usd", "demand_charge_at_target_usd"),
        bill,
        strict=True,
    ):
        (cell,) = _metric(page, name)
        assert float(str(cell["data-value"])) == pytest.approx(value)
    shown = [
        (m["data-session-id"], float(str(m["data-value"])))
        for m in _metric(page, "session_cost_usd")
    ]
    # most expensive first (equal costs may come in either order: floats summed in parallel)
    assert {sid for sid, _ in shown} == {sid for sid, _ in top}
    assert [usd for _, usd in shown] == pytest.approx([usd for _, usd in top])
    assert [usd for _, usd in shown] == pytest.approx([13.2 * 0.0925] * 2 + [3.3 * 0.26668] * 2)


def test_a_range_keeps_the_sessions_it_holds_and_the_months_it_touches(
    priced_lake: Path, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    out = tmp_path / "day1.html"
    build_report(
        str(priced_lake),
        str(out),
        start=datetime(2024, 6, 3, tzinfo=UTC),
        end=datetime(2024, 6, 4, tzinfo=UTC),
    )
    page, _ = _parse(out)
    assert len(_metric(page, "session_cost_usd")) == 2
    # the bill is the month's, whatever part of it the range covers
    (cell,) = _metric(page, "energy_charge_usd")
    assert float(str(cell["data-value"])) == pytest.approx(2 * DAY_USD)


def test_without_a_tariff_there_is_no_cost_section(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    _write_lake(root)
    out = tmp_path / "r.html"
    summary = build_report(str(root), str(out), start=None, end=None)
    page, text = _parse(out)
    assert 'id="cost"' not in text
    assert not COST_KEYS & set(page.figures) and not COST_KEYS & set(summary.charts)


def _empty():
    from powerflex_etl.report.cost import CostData

    return CostData(priced_sites=1)
