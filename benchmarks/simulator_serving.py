"""How fast the simulator serves a day of caltech ct_response at 5 s sampling, and its RSS growth.

    .venv/bin/python benchmarks/simulator_serving.py [--period 5] [--days 1] [--repeat 3]

The server runs in this process (a background thread); the client streams the body and
throws it away, so RSS growth is the server's buffering. Baseline: the issue's target.
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime

import requests

from powerflex_etl.simulator import SimulatorConfig, start_simulator

BASELINE_POINTS_PER_S = 1_000_000  # the target, "~1M points/s"
DAY0 = datetime(2021, 6, 1, tzinfo=UTC)


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _RssPeak:
    """Samples RSS every 5 ms while a request runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> _RssPeak:
        self.peak = _rss_bytes()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--period", type=float, default=5.0)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--measurement", default="ct_response")
    args = ap.parse_args()
    with start_simulator(SimulatorConfig(seed=1, sample_period_s=args.period)) as sim:
        start, end = DAY0.timestamp(), DAY0.timestamp() + args.days * 86400
        points = sim.truth(args.measurement, DAY0, datetime.fromtimestamp(end, UTC)).num_rows
        token = requests.post(
            f"{sim.url}/login", json={"username": "demo", "password": "demo-password"}, timeout=10
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        body = {"measurement": args.measurement, "time_filter": [start, end]}
        print(f"baseline: {BASELINE_POINTS_PER_S:,} points/s (target)")
        for i in range(args.repeat):
            before = _rss_bytes()
            with _RssPeak() as rss:
                t0 = time.perf_counter()
                size = 0
                with requests.post(
                    f"{sim.url}/get_measurement_data",
                    json=body,
                    headers=headers,
                    stream=True,
                    timeout=600,
                ) as r:
                    r.raise_for_status()
                    for chunk in r.iter_content(1 << 20):
                        size += len(chunk)
                dt = time.perf_counter() - t0
            print(
                f"run {i + 1}: {args.measurement} {args.days:g} day(s) at {args.period:g} s: "
                f"{points:,} points, {size / 1e6:.1f} MB, {dt:.2f} s, {points / dt:,.0f} points/s, "
                f"{size / 1e6 / dt:.0f} MB/s, RSS growth {(rss.peak - before) / 1e6:.1f} MB "
                f"({(rss.peak - before) / size:.1%} of the body)"
            )


if __name__ == "__main__":
    main()
