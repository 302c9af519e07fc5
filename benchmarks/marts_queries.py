"""Analysts' questions on growing lakes: the derived tables against the views they replaced.

Builds, from the simulator (a real HTTP server in its own process, 54 EVSEs replaying real
ACN sessions), a 7-day and a 28-day lake at 10 s telemetry and a 90-day one (``--long-period``,
default 10 s), each backfilled out of order in overlapping runs (every run refreshes the
marts incrementally, as the CLI does). Then, through a read-only catalog connection, in a
fresh interpreter per question (so its peak RSS is its own):

- sessions that started in one week; the 15-minute site load of one day; one day of
  ``evse_utilization``; all of ``monthly_peak``; all sessions;
- the same questions through the views as they were before the marts (``git show
  OLD:sql/...``, rendered over the same staging views), on the 7- and 28-day lakes: their
  time, and whether the answers agree;
- a nightly ingest (one day) on top of the 7-day and the 90-day lake;
- ingest cost per point with the marts kept current against the same ingest without them.

Targets (issue 11): each question <= 1 s on the 28-day lake and within 1.5x its 7-day time;
<= 1 s and <= 500 MB peak RSS on the 90-day lake; nightly on 90 days <= 1.3x on 7 days;
ingest cost per point with marts <= 1.15x without.

Usage: python benchmarks/marts_queries.py [--work DIR] [--long-days 90] [--long-period 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

#: the last commit whose views recomputed everything from raw telemetry
OLD_VIEWS = "cd897fd^"
START = date(2021, 9, 1)

QUESTIONS: dict[str, str] = {
    "sessions of one week": (
        "select count(*), sum(energy_kwh), sum(charging_minutes), sum(idle_minutes) from charging_sessions "
        "where session_start >= timestamptz '{w0}' and session_start < timestamptz '{w1}'"
    ),
    "site load of one day": (
        "select count(*), sum(demand_kw), max(demand_kw) from site_load_15min "
        "where interval_start >= timestamptz '{d0}' and interval_start < timestamptz '{d1}'"
    ),
    "evse_utilization of one day": (
        "select count(*), sum(plugged_hours), sum(energy_kwh), sum(sessions) "
        "from evse_utilization where day_local = date '{d0}'"
    ),
    "all of monthly_peak": (
        "select count(*), sum(peak_demand_kw), max(peak_demand_kw) from monthly_peak"
    ),
    "all sessions": "select count(*), sum(energy_kwh), sum(charging_minutes), sum(idle_minutes) from charging_sessions",
}


# -- one question, in a process of its own ---------------------------------------------------
def ask(lake: str, sql: str, old: bool) -> dict[str, Any]:
    """Best of three timings of ``sql``, its answer and this process's peak RSS."""
    import duckdb

    from powerflex_etl.catalog import connect

    con = connect(lake) if not old else _old_views(lake)
    times, answer = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        answer = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    assert isinstance(con, duckdb.DuckDBPyConnection)
    return {
        "seconds": min(times),
        "answer": [
            [round(v, 6) if isinstance(v, float) else v for v in row] for row in answer or []
        ],
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM).

    Not ``ru_maxrss``: on Linux a forked child starts with its parent's maximum and keeps
    it across exec, so every question would report this benchmark's own peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _old_views(lake: str) -> Any:
    """An in-memory connection with the pre-marts views over the catalog's staging views."""
    import duckdb

    from powerflex_etl.catalog.build import default_catalog_path
    from powerflex_etl.catalog.sqlfiles import render_refs
    from powerflex_etl.lake.url import LakeUrl

    con = duckdb.connect()
    con.execute(f"attach '{default_catalog_path(LakeUrl.parse(lake))}' as cat (read_only)")
    for name in ("ct_response", "evse_request", "evse_response", "sites", "target_peak_power"):
        con.execute(f'create view "{name}" as select * from cat."{name}"')
    for tier in ("intermediate", "marts"):
        listing = subprocess.run(
            ["git", "ls-tree", "--name-only", f"{OLD_VIEWS}:sql/{tier}/"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        pending = [f"sql/{tier}/{f}" for f in listing if f.endswith(".sql")]
        # created in dependency order: retry what failed until nothing more succeeds
        while pending:
            failed = []
            for path in pending:
                sql = subprocess.run(
                    ["git", "show", f"{OLD_VIEWS}:{path}"],
                    cwd=REPO, capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                name = Path(path).stem
                try:
                    con.execute(f'create view "{name}" as {render_refs(sql)}')
                except duckdb.Error:
                    failed.append(path)
            if len(failed) == len(pending):
                raise SystemExit(f"old views do not build: {failed}")
            pending = failed
    return con


def question(lake: str, name: str, old: bool, params: dict[str, str]) -> dict[str, Any]:
    """Run one question in a fresh interpreter; its timing, answer and peak RSS."""
    sql = QUESTIONS[name].format(**params)
    args = [sys.executable, __file__, "--ask", lake, sql] + (["--old"] if old else [])
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise SystemExit(f"{name} on {lake}: {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.splitlines()[-1]))


# -- building lakes --------------------------------------------------------------------------
def runs_out_of_order(days: int, seed: int) -> list[tuple[date, date]]:
    """Runs covering ``days`` from START in shuffled chunks, some overlapping earlier ones."""
    chunk = max(1, days // 7)
    runs = [
        (START + timedelta(d), START + timedelta(min(days, d + chunk)))
        for d in range(0, days, chunk)
    ]
    rng = random.Random(seed)
    rng.shuffle(runs)
    for _ in range(2):  # overlapping reruns across a chunk boundary
        d = rng.randrange(1, days - 1)
        runs.append((START + timedelta(d - 1), START + timedelta(d + 1)))
    return runs


def build_lake(url: str, lake: str, days: int, seed: int) -> dict[str, float]:
    """Ingest ``days`` out of order; wall seconds and ct_response points ingested."""
    from powerflex_etl.ingest.run import run
    from powerflex_etl.settings import Settings

    s = Settings(base_url=url, username="demo", password="demo-password", lake=lake)
    t0, points = time.perf_counter(), 0
    for a, b in runs_out_of_order(days, seed):
        rep = run(
            s, start=a.isoformat(), end=b.isoformat(), measurements=None, engine="local", workers=2
        )
        points += sum(int(m["rows"]) for m in rep["measurements"].values())
    return {"seconds": time.perf_counter() - t0, "points": points}


def timed_ingest(url: str, lake: str, day: date, *, marts: bool) -> dict[str, Any]:
    """One day of every measurement in a fresh interpreter; wall, CPU, peak RSS, points."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(REPO)!r})
from powerflex_etl.settings import Settings
from powerflex_etl.ingest import run as r, upkeep
if not {marts!r}:  # the lake as it was before the marts: no slot records, no refresh
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.catalog import build_for
    upkeep.open_lake = lambda s: Lake(s.lake)
    upkeep.after_write = lambda s, lake=None, **k: (None, build_for(s))
s = Settings(base_url={url!r}, username="demo", password="demo-password", lake={lake!r})
t0 = time.perf_counter(); c0 = time.process_time()
rep = r.run(s, start={day.isoformat()!r}, end={(day + timedelta(1)).isoformat()!r},
            measurements=None, engine="local", workers=2)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({{"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
    "points": sum(int(m["rows"]) for m in rep["measurements"].values()),
    "peak_rss_mb": int(hwm) / 1024}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"ingest of {day} into {lake}: {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout.splitlines()[-1]))


# -- the run ---------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", help="keep the lakes here (reused when present)")
    ap.add_argument("--long-days", type=int, default=90)
    ap.add_argument("--long-period", type=float, default=10.0)
    ap.add_argument("--ask", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ask:
        print(json.dumps(ask(a.ask[0], a.ask[1], a.old)))
        return

    from _sim import start_server

    work = Path(a.work or tempfile.mkdtemp(prefix="marts-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    params = {
        "w0": "2021-09-06", "w1": "2021-09-13", "d0": "2021-09-07", "d1": "2021-09-08",
    }  # fmt: skip
    report: dict[str, Any] = {"lakes": {}, "questions": {}, "nightly": {}, "ingest": {}}
    lakes = {"7d": (7, 10.0), "28d": (28, 10.0), f"{a.long_days}d": (a.long_days, a.long_period)}
    servers = {}
    try:
        for period in sorted({p for _, p in lakes.values()}):
            servers[period] = start_server(period=period, seed=1)
        for name, (days, period) in lakes.items():
            lake = str(work / name)
            if not Path(lake, "_state").exists():
                built = build_lake(servers[period][1], lake, days, seed=days)
                report["lakes"][name] = built
                print(
                    f"built {name}: {built['points']:,} points in {built['seconds']:.0f} s",
                    flush=True,
                )
        for name in lakes:
            lake = str(work / name)
            for q in QUESTIONS:
                new = question(lake, q, False, params)
                row = {"new": new}
                if name in ("7d", "28d"):
                    row["old"] = question(lake, q, True, params)
                    row["same_answer"] = row["old"]["answer"] == new["answer"]
                report["questions"].setdefault(name, {})[q] = row
                old_s = f"{row['old']['seconds']:7.2f} s" if "old" in row else "        -"
                print(
                    f"{name:>4} {q:<28} {new['seconds']:6.3f} s {new['peak_rss_mb']:6.0f} MB"
                    f"   before: {old_s}  same answer: {row.get('same_answer', '-')}",
                    flush=True,
                )
        # nightly: the day after each lake's end, on top of it
        for name in ("7d", f"{a.long_days}d"):
            days, period = lakes[name]
            day = START + timedelta(days)
            report["nightly"][name] = timed_ingest(
                servers[period][1], str(work / name), day, marts=True
            )
        # ingest cost per point, with and without the marts, on fresh lakes (best of two)
        for marts in (True, False, True, False):
            fresh = tempfile.mkdtemp(prefix="ingest-", dir=work)
            got = timed_ingest(servers[10.0][1], fresh, date(2021, 9, 6), marts=marts)
            shutil.rmtree(fresh)
            key = "with marts" if marts else "without marts"
            best = report["ingest"].get(key)
            if best is None or got["seconds"] < best["seconds"]:
                report["ingest"][key] = got
    finally:
        for proc, _ in servers.values():
            proc.terminate()
    _verdicts(report, f"{a.long_days}d")
    out = work / "marts_queries.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"figures: {out}")


def _verdicts(r: dict[str, Any], long: str) -> None:
    q7, q28, qL = r["questions"]["7d"], r["questions"]["28d"], r["questions"][long]

    def verdict(ok: bool, text: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    for q in QUESTIONS:
        t7, t28, tL = (x[q]["new"]["seconds"] for x in (q7, q28, qL))
        verdict(t28 <= 1.0, f"{q}: {t28:.3f} s on 28 days (<= 1 s)")
        verdict(
            t28 <= 1.5 * max(t7, 0.05),
            f"{q}: 28 days / 7 days = {t28 / max(t7, 1e-9):.2f}x (<= 1.5x)",
        )
        verdict(tL <= 1.0, f"{q}: {tL:.3f} s on {long} (<= 1 s)")
        rss = qL[q]["new"]["peak_rss_mb"]
        verdict(rss <= 500, f"{q}: peak RSS {rss:.0f} MB on {long} (<= 500 MB)")
        for name, x in (("7d", q7), ("28d", q28)):
            verdict(x[q]["same_answer"], f"{q}: same answer as before the marts on {name}")
    n7, nL = r["nightly"]["7d"], r["nightly"][long]
    ratio = nL["seconds"] / n7["seconds"]
    verdict(
        ratio <= 1.3,
        f"nightly ingest: {nL['seconds']:.1f} s on {long} vs {n7['seconds']:.1f} s on 7 days = {ratio:.2f}x (<= 1.3x)",
    )
    w, wo = r["ingest"]["with marts"], r["ingest"]["without marts"]
    for k in ("seconds", "cpu_seconds"):
        per_w, per_wo = (1e6 * x[k] / x["points"] for x in (w, wo))
        verdict(
            per_w <= 1.15 * per_wo,
            f"ingest {k}: {per_w:.2f} µs/point with marts vs {per_wo:.2f} without = {per_w / per_wo:.2f}x (<= 1.15x)",
        )


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    main()
