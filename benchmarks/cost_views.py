"""The cost and KPI views on a 28-day lake: each must answer in under a second.

Builds the benchmark lake once (or reuses ``--lake``): the simulator (the Caltech ACN site,
54 EVSEs; seed 0, the real sessions on their real dates) at 10 s samples in its own process
on loopback, and one ``powerflex-etl ingest --engine local`` (the library's steps, no Prefect
server to start) over the last 28 days of the public Caltech file, 2021-08-17 .. 2021-09-14
(450 real sessions), into a fresh lake whose sites.toml puts the site in America/Los_Angeles
on SCE TOU-EV-4. Then each view is read whole (``select *``, every row fetched into Arrow)
through ``powerflex_etl.connect``, a fresh connection per run as an analyst's query would
have: one cold run, then ``--runs`` warm runs. Baseline beside each: the same read of
``site_load_15min``, the load every cost view prices. PASS when every view's median warm run
is under one second.

    .venv/bin/python benchmarks/cost_views.py [--days 28] [--period 10] [--lake DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _sim import start_server

START = datetime(2021, 8, 17, tzinfo=UTC)
SEED = 0
USER, PASSWORD = "demo", "demo-password"  # the simulator's defaults
SITES_TOML = (
    '[sites."0039"]\nname = "Caltech"\ntz = "America/Los_Angeles"\n'
    'tariff = "sce_tou_ev_4_march_2019"\n'
)
BASELINE = "site_load_15min"
VIEWS = (
    "tariff_price_15min",
    "energy_cost_15min",
    "monthly_bill",
    "session_cost",
    "site_kpis",
    "load_duration",
)
LIMIT_S = 1.0


def build_lake(lake: Path, days: int, period: float) -> float:
    """Ingest ``days`` from START into ``lake`` in a fresh process; returns its seconds."""
    lake.mkdir(parents=True, exist_ok=True)
    (lake / "sites.toml").write_text(SITES_TOML)
    server, url = start_server(period=period, seed=SEED)
    try:
        env = {
            **os.environ,
            "POWERFLEX_BASE_URL": url,
            "POWERFLEX_USERNAME": USER,
            "POWERFLEX_PASSWORD": PASSWORD,
            "POWERFLEX_LAKE": str(lake),
        }
        end = START + timedelta(days=days)
        cmd = [
            sys.executable, "-m", "powerflex_etl", "ingest",
            "--start", START.date().isoformat(), "--end", end.date().isoformat(),
            "--workers", "2", "--engine", "local",
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    finally:
        server.kill()
        server.wait()


def time_view(lake: str, view: str, runs: int) -> dict[str, float]:
    """Rows, cold seconds and warm seconds (each run a fresh connection) of ``select * from view``."""
    from powerflex_etl import connect

    times = []
    rows = 0
    for _ in range(runs + 1):
        con = connect(lake)
        try:
            t0 = time.perf_counter()
            rows = con.sql(f'select * from "{view}"').to_arrow_table().num_rows
            times.append(time.perf_counter() - t0)
        finally:
            con.close()
    warm = times[1:]
    return {
        "rows": rows,
        "cold": times[0],
        "best": min(warm),
        "median": statistics.median(warm),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--period", type=float, default=10.0, help="simulator sample period, s")
    ap.add_argument("--lake", help="reuse (or build into) this lake instead of a temporary one")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    tmp = None
    if args.lake:
        lake = Path(args.lake).resolve()
    else:
        tmp = tempfile.TemporaryDirectory(prefix="cost-bench-")
        lake = Path(tmp.name) / "lake"
    if not (lake / "ct_response").is_dir():
        print(f"building a {args.days}-day lake at {args.period:g} s samples in {lake} ...")
        seconds = build_lake(lake, args.days, args.period)
        print(f"  ingest took {seconds:.0f} s")
    from powerflex_etl import connect

    con = connect(str(lake))
    points = con.execute("select count(*) from ct_response").fetchone()
    sessions = con.execute("select count(*) from charging_sessions").fetchone()
    con.close()
    print(
        f"lake {lake}: {points[0] if points else 0:,} ct_response points,"
        f" {sessions[0] if sessions else 0:,} sessions; load {os.getloadavg()[0]:.1f}"
    )
    base = time_view(str(lake), BASELINE, args.runs)
    print(
        f"\n{'view':<22}{'rows':>10}{'cold s':>9}{'best s':>9}{'median s':>10}"
        f"   baseline {BASELINE}: median {base['median']:.3f} s, {base['rows']:,} rows"
    )
    failed = []
    for view in VIEWS:
        r = time_view(str(lake), view, args.runs)
        verdict = "PASS" if r["median"] < LIMIT_S else "FAIL"
        if verdict == "FAIL":
            failed.append(view)
        print(
            f"{view:<22}{r['rows']:>10,}{r['cold']:>9.3f}{r['best']:>9.3f}{r['median']:>10.3f}"
            f"   {r['median'] / base['median']:5.1f}x baseline  {verdict} (< {LIMIT_S:g} s)"
        )
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if tmp is not None:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
