"""30-day backfill of a 54-station site at 60 s sampling: memory must stay flat with range length.

The simulator (the Caltech ACN site: 54 EVSEs) runs in its own process on loopback; each
backfill runs `powerflex-etl backfill` in a fresh subprocess on a fresh lake, and its peak
RSS is read from the kernel's rusage for that one child (``os.wait4``). Baseline: the same
command over 7 days. PASS when the 30-day peak RSS is within 20% of the 7-day one.

    .venv/bin/python benchmarks/backfill_30d.py [--days 7 30] [--workers 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from _sim import start_server

START = datetime(2021, 6, 1, tzinfo=UTC)
USER, PASSWORD = "demo", "demo-password"  # the simulator's defaults


def run_backfill(url: str, days: int, workers: int, lake: str) -> dict[str, object]:
    """One `powerflex-etl backfill` in a fresh process: wall time, points, peak RSS."""
    env = {
        **os.environ,
        "POWERFLEX_BASE_URL": url,
        "POWERFLEX_USERNAME": USER,
        "POWERFLEX_PASSWORD": PASSWORD,
        "POWERFLEX_LAKE": lake,
    }
    end = START + timedelta(days=days)
    cmd = [
        sys.executable,
        "-m",
        "powerflex_etl",
        "backfill",
        "--start",
        START.date().isoformat(),
        "--end",
        end.date().isoformat(),
        "--workers",
        str(workers),
        "--json",
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"backfill {days} d failed ({proc.returncode}): {tail}")
        report = json.loads(out.read())
    per = {m: t["points"] for m, t in report["measurements"].items()}
    points = sum(per.values())
    return {
        "days": days,
        "seconds": round(seconds, 1),
        "points": points,
        "points_per_measurement": per,
        "points_per_s": round(points / seconds),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "windows": sum(t["windows"] for t in report["measurements"].values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, nargs=2, default=[7, 30], metavar=("BASE", "LONG"))
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--keep", help="keep the lakes under this directory")
    args = ap.parse_args()
    sim, url = start_server(60.0)
    work = args.keep or tempfile.mkdtemp(prefix="bench-backfill-")
    try:
        results = []
        for days in args.days:
            lake = os.path.join(work, f"lake-{days}d")
            shutil.rmtree(lake, ignore_errors=True)
            r = run_backfill(url, days, args.workers, lake)
            results.append(r)
            print(
                f"{days:>3} days: {r['seconds']:>7} s wall, {r['points']:>10,} points "
                f"({r['points_per_s']:,}/s), peak RSS {r['peak_rss_mb']} MB, "
                f"{r['windows']} windows",
                flush=True,
            )
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    base, long = results
    ratio = float(long["peak_rss_mb"]) / float(base["peak_rss_mb"])  # type: ignore[arg-type]
    ok = ratio <= 1.2
    print(
        f"baseline {base['days']} d: {base['peak_rss_mb']} MB; {long['days']} d: "
        f"{long['peak_rss_mb']} MB; ratio {ratio:.2f} (limit 1.20) -> {'PASS' if ok else 'FAIL'}"
    )
    print(json.dumps({"results": results, "rss_ratio": round(ratio, 3), "pass": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
