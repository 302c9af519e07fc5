"""End to end on a replayed real month: Caltech, September 2021, SCE TOU-EV-4.

The simulator replays the real Caltech ACN sessions (seed 0: real dates replay themselves;
the public file ends on 2021-09-14, so the rest of the month replays the days the simulator
maps there), the local engine ingests September's local month through the library into a
fresh lake whose sites.toml gives the site ``America/Los_Angeles`` and TOU-EV-4, and the
bill is checked against a reference computed here, apart from the views:

- the energy charge is the sum over the month's 15-minute energies of energy x the price
  the hand-written TOU-EV-4 rules (``tariff_reference.py``, themselves checked against
  acnportal's published test cases) give at the interval's local start, the local time
  taken with Python's zoneinfo rather than DuckDB's ICU;
- the demand charge is 15.51 USD/kW x the month's highest 15-minute demand;
- the sessions' costs add up to the energy charge of the intervals they charged in.

Five-minute samples (acnportal's own simulation period) of ct_response alone, the one
measurement the load and so the bill come from, keep the month (470k points) to about 25 s
here; ``docs/analytics.md`` gives the same month's bill at the real cadence.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from powerflex_etl.catalog import connect
from powerflex_etl.ingest.run import LocalEngine
from powerflex_etl.settings import Settings
from powerflex_etl.simulator.config import SimulatorConfig
from powerflex_etl.simulator.runner import start_simulator
from tests.marts.tariff_reference import DEMAND_CHARGE_USD_PER_KW, tou_ev_4

LA = ZoneInfo("America/Los_Angeles")
SITE = "0039"  # Caltech's clusterID, the acc_id the simulator serves
# local September 2021 in Los Angeles, in UTC (PDT all month), within the 6-hour slots
START = datetime(2021, 9, 1, 6, tzinfo=UTC)
END = datetime(2021, 10, 1, 12, tzinfo=UTC)
PERIOD_S = 300.0
CT = "ct_response"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def september(tmp_path_factory: pytest.TempPathFactory):
    lake = tmp_path_factory.mktemp("cost-real") / "lake"
    lake.mkdir()
    (lake / "sites.toml").write_text(
        f'[sites."{SITE}"]\nname = "Caltech"\ntz = "America/Los_Angeles"\n'
        'tariff = "sce_tou_ev_4_march_2019"\n'
    )
    config = SimulatorConfig(seed=0, sample_period_s=PERIOD_S, sites=("caltech",))
    with start_simulator(config) as sim:
        s = Settings(
            base_url=sim.url,
            username=config.username,
            password=SecretStr(config.password),
            lake=str(lake),
        )
        LocalEngine().ingest(
            s, start=START.isoformat(), end=END.isoformat(), measurements=[CT], workers=2
        )
    con = connect(str(lake))
    yield con
    con.close()


def _month(con, sql: str) -> list[dict]:
    cur = con.execute(sql, {"site": SITE})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_the_september_bill_is_the_rate_sheet_applied_to_the_15_minute_energies(september) -> None:
    loads = _month(
        september,
        "select interval_start, energy_kwh, demand_kw from site_load_15min where acc_id = $site",
    )
    sept = [
        r
        for r in loads
        if r["interval_start"].astimezone(LA).date().replace(day=1) == date(2021, 9, 1)
    ]
    assert len(sept) > 1000  # a real month of charging, most quarter hours loaded
    energy = math.fsum(r["energy_kwh"] for r in sept)
    charge = math.fsum(
        r["energy_kwh"] * tou_ev_4(r["interval_start"].astimezone(LA).replace(tzinfo=None))
        for r in sept
    )
    peak = max(r["demand_kw"] for r in sept)
    (bill,) = _month(
        september,
        "select * from monthly_bill where acc_id = $site and month_start_local = date '2021-09-01'",
    )
    assert bill["tariff_name"] == "SCE TOU-EV-4"
    assert bill["energy_kwh"] == pytest.approx(energy, rel=1e-9)
    assert bill["energy_charge_usd"] == pytest.approx(charge, rel=1e-9)
    assert bill["peak_demand_kw"] == pytest.approx(peak, rel=1e-12)
    assert bill["demand_charge_usd_per_kw"] == DEMAND_CHARGE_USD_PER_KW
    assert bill["demand_charge_usd"] == pytest.approx(DEMAND_CHARGE_USD_PER_KW * peak, rel=1e-12)
    assert bill["total_usd"] == pytest.approx(charge + DEMAND_CHARGE_USD_PER_KW * peak, rel=1e-9)
    # every period of the schedule was used: on-peak weekdays, off-peak weekends
    periods = _month(
        september,
        "select distinct tou_period from energy_cost_15min where acc_id = $site"
        " and interval_start_local >= timestamp '2021-09-01' and interval_start_local < timestamp '2021-10-01'",
    )
    assert {p["tou_period"] for p in periods} >= {
        "Summer-Weekday 00:00-08:00",
        "Summer-Weekday 08:00-12:00",
        "Summer-Weekday 12:00-18:00",
        "Summer-Weekend 00:00-24:00",
    }


def test_session_costs_add_up_to_the_energy_charge_of_their_intervals(september) -> None:
    (totals,) = _month(
        september,
        "select (select sum(energy_cost_usd) from session_cost where acc_id = $site) as sessions,"
        " (select sum(energy_kwh) from session_cost where acc_id = $site) as session_kwh,"
        " (select sum(energy_cost_usd) from energy_cost_15min where acc_id = $site) as intervals,"
        " (select sum(energy_kwh) from energy_cost_15min where acc_id = $site) as interval_kwh,"
        " (select count(*) from session_cost where acc_id = $site) as n",
    )
    assert totals["n"] > 200
    assert totals["sessions"] == pytest.approx(totals["intervals"], rel=1e-9)
    assert totals["session_kwh"] == pytest.approx(totals["interval_kwh"], rel=1e-9)


def test_the_portal_kpis_of_the_month(september) -> None:
    (kpi,) = _month(
        september,
        "select * from site_kpis where acc_id = $site and grain = 'month'"
        " and period_start_local = date '2021-09-01'",
    )
    assert kpi["evse_count"] == 54  # acnportal's Caltech network: every EVSE reports
    assert kpi["hours_without_telemetry"] == 0 and kpi["uptime_pct"] == 100.0
    assert 0 < kpi["microsessions"] < kpi["sessions"]
    assert 0 < kpi["utilization_pct"] < 100
    (bill,) = _month(
        september,
        "select energy_kwh from monthly_bill where acc_id = $site and month_start_local = date '2021-09-01'",
    )
    assert kpi["energy_kwh"] == pytest.approx(bill["energy_kwh"], rel=1e-9)
    curve = _month(
        september,
        "select rank, demand_kw from load_duration where acc_id = $site"
        " and month_start_local = date '2021-09-01' order by rank",
    )
    assert curve[0]["demand_kw"] == pytest.approx(kpi_peak(september))
    assert all(a["demand_kw"] >= b["demand_kw"] for a, b in itertools.pairwise(curve))


def kpi_peak(con) -> float:
    (row,) = _month(
        con,
        "select peak_demand_kw from monthly_bill where acc_id = $site"
        " and month_start_local = date '2021-09-01'",
    )
    return float(row["peak_demand_kw"])
