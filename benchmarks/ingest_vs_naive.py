"""powerflex-etl ingest vs the plain requests+pandas way, side by side against one loopback server.

    .venv/bin/python benchmarks/ingest_vs_naive.py [--sizes 250000,2500000] [--flat 10000000] [--engine local]

Starts the simulator (5 s sampling, the real telemetry cadence) in a process of its own,
ingests ct_response ranges of the given sizes with both, best of two runs each, and prints
µs per point (marginal: time at the large size minus time at the small, over the difference,
so fixed start-up does not count), peak RSS of the largest process, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
START = datetime(2021, 6, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(period: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "powerflex_etl",
            "simulator",
            "--port",
            str(port),
            "--seed",
            "1",
            "--sample-period",
            str(period),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("simulator did not start")
            time.sleep(0.1)


def points_per_hour(url: str) -> float:
    import requests

    tok = requests.post(
        f"{url}/login", json={"username": "demo", "password": "demo-password"}, timeout=30
    ).json()
    s0 = int(START.timestamp())
    body = requests.post(
        f"{url}/get_measurement_data",
        json={"measurement": "ct_response", "time_filter": [s0, s0 + 6 * 3600]},
        headers={"Authorization": f"Bearer {tok['access_token']}"},
        timeout=300,
    ).json()
    n = sum(len(s["values"]) for r in body["results"] for s in r.get("series", []))
    return n / 6.0


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [PY, str(HERE / "_rss.py"), *cmd], env=env, capture_output=True, text=True, check=True
    )
    res = json.loads(out.stdout)
    if res["rc"] != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res['stderr_tail']}")
    return res


def run_side(
    side: str, url: str, hours: float, engine: str, env: dict[str, str], tmp: Path
) -> dict[str, float]:
    end = START + timedelta(hours=hours)
    best: dict[str, float] | None = None
    for _ in range(2):
        out = tmp / f"{side}-{hours}"
        shutil.rmtree(out, ignore_errors=True)
        if side == "naive":
            cmd = [
                PY,
                str(HERE / "naive_ingest.py"),
                "--base-url",
                url,
                "--start",
                START.isoformat(),
                "--end",
                end.isoformat(),
                "--out",
                str(out),
            ]
        else:
            cmd = [
                PY,
                "-m",
                "powerflex_etl",
                "ingest",
                "--engine",
                engine,
                "--measurement",
                "ct_response",
                "--start",
                START.isoformat(),
                "--end",
                end.isoformat(),
                "--lake",
                str(out),
                "--workers",
                "2",
            ]
        res = measure(cmd, env)
        if best is None or res["seconds"] < best["seconds"]:
            best = {
                **res,
                "peak_rss_mb": max(res["peak_rss_mb"], (best or {}).get("peak_rss_mb", 0.0)),
            }
    assert best is not None
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="250000,2500000")
    ap.add_argument(
        "--flat", type=int, default=0, help="also run the project alone at this many points"
    )
    ap.add_argument("--engine", default="local", choices=["local", "prefect"])
    ap.add_argument("--period", type=float, default=5.0)
    args = ap.parse_args()
    small, large = (int(x) for x in args.sizes.split(","))
    env = {
        **os.environ,
        "POWERFLEX_USERNAME": "demo",
        "POWERFLEX_PASSWORD": "demo-password",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    server, url = start_server(args.period)
    env["POWERFLEX_BASE_URL"] = url
    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    try:
        pph = points_per_hour(url)
        print(
            f"simulator {url}: {pph:,.0f} ct_response points per hour at {args.period:g} s sampling"
        )
        rows = {}
        for side in ("naive", "project"):
            for n in (small, large):
                hours = n / pph
                rows[(side, n)] = run_side(side, url, hours, args.engine, env, tmp)
                r = rows[(side, n)]
                print(
                    f"  {side:<8} {n:>11,} points  {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:8.1f} MB",
                    flush=True,
                )
        result: dict[str, object] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores",
            "engine": args.engine,
        }
        for side in ("naive", "project"):
            a, b = rows[(side, small)], rows[(side, large)]
            result[side] = {
                "marginal_us_per_point": (b["seconds"] - a["seconds"]) / (large - small) * 1e6,
                "fixed_seconds": a["seconds"]
                - (b["seconds"] - a["seconds"]) / (large - small) * small,
                "peak_rss_mb_large": b["peak_rss_mb"],
                "seconds_large": b["seconds"],
            }
        n, p = result["naive"], result["project"]  # type: ignore[assignment]
        result["cost_ratio"] = p["marginal_us_per_point"] / n["marginal_us_per_point"]  # type: ignore[index]
        result["rss_ratio"] = p["peak_rss_mb_large"] / n["peak_rss_mb_large"]  # type: ignore[index]
        if args.flat:
            f = run_side("project", url, args.flat / pph, args.engine, env, tmp)
            result["project_flat"] = {
                "points": args.flat,
                **f,
                "rss_growth_vs_large": f["peak_rss_mb"] / p["peak_rss_mb_large"],
            }  # type: ignore[index]
        print(json.dumps(result, indent=2))
        (HERE / "out").mkdir(exist_ok=True)
        (HERE / "out" / "ingest_vs_naive.json").write_text(json.dumps(result, indent=2))
    finally:
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
