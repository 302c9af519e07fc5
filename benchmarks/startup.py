"""What a plain `powerflex-etl ingest` costs a user on the default path: start-up and memory.

    .venv/bin/python benchmarks/startup.py            # one-window start-up + RSS at 2.5M points
    .venv/bin/python benchmarks/startup.py --quick    # start-up only, and RSS at 250k points

Two figures, each beside its baseline (issue 13, "the fast default path"):

1. **Start-up**: wall seconds of a one-window ingest (6 minutes of ct_response) run exactly as
   a user types it — no ``--engine``, no ``POWERFLEX_ENGINE``, no ``PREFECT_API_URL`` — beside
   the same ingest with ``--engine local`` and ``--engine prefect``. Target: the default
   path <= 4 s. Each engine gets one untimed warm-up run (file cache, Prefect's database),
   then ``--runs`` timed ones; the best and the median are printed.
2. **Memory**: peak RSS of the default-path ingest of 2.5M ct_response points beside the plain
   requests + pandas way (``naive_ingest.py``, the baseline of ``ingest_vs_naive.py``).
   Target: <= 0.2x the plain way.

The simulator runs in a process of its own (5 s sampling, as real chargers), so it counts on
neither side; each run is a fresh process measured by ``_rss.py``. ``--strict`` exits 1 when a
target fails. The figures also go to ``benchmarks/out/startup.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from _sim import start_server
from ingest_vs_naive import START, finish, machine, measure, points_per_hour, side_cmd

STARTUP_TARGET_S = 4.0  # a one-window ingest on the default path
RSS_TARGET = 0.20  # default-path peak RSS at the large size <= this x the plain way's
#: what the engine columns mean: "default" passes no --engine at all
ENGINES = ("default", "local", "prefect")


def cmd_for(
    side: str, engine: str, points: float, out: Path, args: argparse.Namespace
) -> list[str]:
    """The command line of one run; ``engine="default"`` leaves ``--engine`` out."""
    args.engine = "local" if engine == "default" else engine
    cmd = side_cmd(side, START + timedelta(hours=points / args.pph), out, args)
    if side == "project" and engine == "default":
        i = cmd.index("--engine")
        del cmd[i : i + 2]
    return cmd


def run(side: str, engine: str, points: float, args: argparse.Namespace) -> dict[str, Any]:
    """One run in a fresh process on a fresh output directory."""
    out = args.tmp / f"{side}-{engine}-{int(points)}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        return measure(cmd_for(side, engine, points, out, args), args.env)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def startup(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """One warm-up, then ``--runs`` timed one-window ingests on ``engine``."""
    one_window = args.pph / 10  # 6 minutes: well inside one 6 h window
    run("project", engine, one_window, args)
    secs = [run("project", engine, one_window, args)["seconds"] for _ in range(args.runs)]
    return {"best_s": min(secs), "median_s": statistics.median(secs), "runs_s": secs}


def memory(points: int, args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS (largest of ``--runs``) of the plain way and the default path at ``points``."""
    out: dict[str, Any] = {}
    for side, engine in (("naive", "-"), ("project", "default")):
        runs = [run(side, engine, points, args) for _ in range(args.runs)]
        out[side] = {
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "best_s": min(r["seconds"] for r in runs),
        }
    out["ratio"] = out["project"]["peak_rss_mb"] / out["naive"]["peak_rss_mb"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="RSS at 250k points instead of 2.5M")
    ap.add_argument("--points", type=int, default=None, help="points for the RSS comparison")
    ap.add_argument("--startup-only", action="store_true", help="skip the RSS comparison")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per figure")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--period", type=float, default=5.0, help="ct_response sampling (s)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args()
    points = args.points or (250_000 if args.quick else 2_500_000)
    args.tmp = Path(tempfile.mkdtemp(prefix="pf-startup-"))
    # a user's shell: credentials and the URL, no engine, no Prefect API; Prefect's home is a
    # scratch directory so the runs never touch (or benefit from) the developer's ~/.prefect
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env = {k: v for k, v in env.items() if not k.startswith("POWERFLEX_")}
    env.update(
        POWERFLEX_USERNAME="demo",
        POWERFLEX_PASSWORD="demo-password",
        PREFECT_HOME=str(args.tmp / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
    )
    args.env = env
    server, args.url = start_server(args.period)
    env["POWERFLEX_BASE_URL"] = args.url
    try:
        args.pph = points_per_hour(args.url)
        print(
            f"simulator {args.url} (own process): {args.pph:,.0f} ct_response points/hour; "
            f"workers={args.workers}; {args.runs} timed runs each; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        result: dict[str, Any] = {**machine(), "startup": {}}
        for engine in ENGINES:
            r = result["startup"][engine] = startup(engine, args)
            runs = ", ".join(f"{s:.2f}" for s in r["runs_s"])
            label = "(no --engine)" if engine == "default" else f"--engine {engine}"
            print(
                f"  one-window ingest {label:<17} best {r['best_s']:6.2f} s  "
                f"median {r['median_s']:6.2f} s  ({runs})",
                flush=True,
            )
        best = result["startup"]["default"]["best_s"]
        result["pass"] = {"startup": best <= STARTUP_TARGET_S}
        if not args.startup_only:
            mem = result["memory"] = {"points": points, **memory(points, args)}
            print(
                f"  peak RSS at {points:,} points: plain way {mem['naive']['peak_rss_mb']:.0f} MB "
                f"({mem['naive']['best_s']:.1f} s), default path "
                f"{mem['project']['peak_rss_mb']:.0f} MB ({mem['project']['best_s']:.1f} s), "
                f"ratio {mem['ratio']:.3f}",
                flush=True,
            )
            result["pass"]["rss"] = mem["ratio"] <= RSS_TARGET
        print()
        print(
            f"{'PASS' if result['pass']['startup'] else 'FAIL'}  default-path one-window ingest "
            f"{best:.2f} s <= {STARTUP_TARGET_S:g} s "
            f"(baseline --engine prefect {result['startup']['prefect']['best_s']:.2f} s)"
        )
        if not args.startup_only:
            print(
                f"{'PASS' if result['pass']['rss'] else 'FAIL'}  peak RSS ratio "
                f"{mem['ratio']:.3f} <= {RSS_TARGET:g} "
                f"(baseline: the plain way, {mem['naive']['peak_rss_mb']:.0f} MB)"
            )
        finish(result, "startup", args.strict)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(args.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
