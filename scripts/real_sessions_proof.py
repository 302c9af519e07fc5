"""Proof on real data, full week: does charging_sessions find the real Caltech ACN sessions?

Replays the real sessions of a week (seed 0: real dates replay themselves) through the
simulator on loopback, at one-minute samples and at the real 3-5 s cadence, ingests each
through the library into a fresh lake and compares (``powerflex_etl.proof``).
Prints the figures per cadence and exits 1 if any requirement fails.

    .venv/bin/python scripts/real_sessions_proof.py [--start 2021-09-06] [--days 7]
        [--period 60 --period 5] [--json]

The default week, 2021-09-06 .. 2021-09-13 UTC, is the busiest whole week the public
Caltech file holds. A 5 s week is ~6.5M ct_response points (and as many evse_response):
about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from powerflex_etl.proof import ProofFigures, run_proof


def _print(f: ProofFigures, seconds: float) -> None:
    print(
        f"\n== {f.sample_period_s:g} s samples, {f.start:%Y-%m-%d %H:%M} .. {f.end:%Y-%m-%d %H:%M}"
        f" UTC: {f.ct_response_points:,} ct_response points, {seconds:.0f} s"
    )
    print(f"real sessions wholly inside:      {f.real_sessions}")
    print(f"  recovered (once, start, energy): {f.recovered}")
    print(
        f"real sessions cut by the range:   {f.real_cut} (found once and flagged: {f.found_cut_flagged})"
    )
    print(f"charging_sessions rows:           {f.found_sessions}")
    print(f"sessions where nobody plugged in: {f.phantom}")
    print(
        f"max start error:                  {f.max_start_error_s:.1f} s"
        f" ({f.max_start_error_s / f.sample_period_s:.2f} sample periods; limit 2)"
    )
    print(
        f"max energy error vs telemetry:    {f.max_energy_error_vs_telemetry_pct:.4f} % (limit 0.5 %)"
    )
    print(
        f"energy vs real kWhDelivered:      max {f.max_energy_error_vs_kwh_delivered_pct:.4f} %,"
        f" mean {f.mean_energy_error_vs_kwh_delivered_pct:.4f} %,"
        f" {f.within_half_pct_of_kwh_delivered}/{f.recovered} within 0.5 %;"
        f" {f.energy_kwh_found:.3f} kWh found vs {f.kwh_delivered_real:.3f} kWh real"
    )
    print(
        f"15-minute load vs the meters:     {f.integrated_kwh:.3f} kWh integrated power"
        f" vs {f.metered_kwh:.3f} kWh metered"
        f" ({(f.integrated_kwh - f.metered_kwh) / f.metered_kwh * 100 if f.metered_kwh else 0:+.3f} %)"
    )
    for p in f.problems:
        print(f"  PROBLEM: {p}")
    print("PASS" if f.ok else "FAIL")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2021-09-06", help="UTC date or datetime")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--period", type=float, action="append", help="sample period in s (repeat)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON lines too")
    args = ap.parse_args()
    start = datetime.fromisoformat(args.start)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    end = start + timedelta(days=args.days)
    ok = True
    for period in args.period or [60.0, 5.0]:
        t = time.perf_counter()
        figures = run_proof(start, end, sample_period_s=period, workers=args.workers)
        _print(figures, time.perf_counter() - t)
        if args.json:
            print(json.dumps(figures.to_dict(), default=str))
        ok = ok and figures.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
