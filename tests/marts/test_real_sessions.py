"""Proof on real data, short range: real Caltech ACN sessions replayed, ingested, found.

The full week runs in scripts/real_sessions_proof.py; the figures are in docs/analytics.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from powerflex_etl.proof import ProofFigures, run_proof

# 2021-06-07 (a Monday): sessions from 00:14 to past midnight, two back on one EVSE
DAY = datetime(2021, 6, 7, tzinfo=UTC)


def _assert_proven(f: ProofFigures) -> None:
    assert f.problems == []
    assert f.recovered == f.real_sessions
    assert f.phantom == 0
    assert 0 <= f.max_start_error_s <= 2 * f.sample_period_s
    assert f.max_energy_error_vs_telemetry_pct <= 0.5
    # a session cut by the range is found and flagged, never dropped or doubled
    assert f.real_cut >= 3
    assert f.found_cut_flagged >= f.real_cut - 1
    # the 15-minute load integrates the same energy the meters counted
    assert f.integrated_kwh == pytest.approx(f.metered_kwh, rel=0.005)


def test_one_minute_samples_over_a_day_recover_every_real_session(tmp_path) -> None:
    f = run_proof(DAY, DAY + timedelta(days=1), sample_period_s=60, lake=tmp_path / "lake")
    _assert_proven(f)
    assert f.real_sessions >= 5
    # the simulated meter reaches the real kWhDelivered once charging is done
    assert f.within_half_pct_of_kwh_delivered == f.recovered


def test_five_second_samples_over_six_hours_recover_every_real_session(tmp_path) -> None:
    start = DAY + timedelta(hours=15)
    f = run_proof(start, start + timedelta(hours=6), sample_period_s=5, lake=tmp_path / "lake")
    _assert_proven(f)
    assert f.real_sessions >= 4
    assert f.ct_response_points > 200_000
