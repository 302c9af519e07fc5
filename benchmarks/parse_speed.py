"""How fast is ``parse_answer`` on a big ct_response answer, beside two baselines?

    .venv/bin/python benchmarks/parse_speed.py [--rows 1000000] [--time epoch|rfc3339] [--bad-every N]

Generates a deterministic PowerFlex-shaped answer (``{"data": {...}}``, ~17 columns, epoch
float times, realistic ids/states/readings), writes it to a temporary file, then runs each
method in its own process so peak RSS is its own:

- ``json+transpose``: stdlib ``json.loads`` then ``zip(*values)`` (the naive baseline)
- ``msgspec-untyped``: ``msgspec.json.decode`` to Python objects, no columns (a floor for decoding)
- ``parse_answer``: the real thing, Arrow table out

Prints wall seconds, CPU seconds (less sensitive to a busy machine), µs per row (wall) and
peak extra RSS (above the process with the body loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import msgspec
import numpy as np

STATES = ["UNPLUGGED", "ADAPTIVE", "IDLE", "READY", "NOT CHARGING"]
COLUMNS = [
    "time", "acc_id", "acg_id", "acn_id", "acs_id", "charging_state", "energy_delivered",
    "evse_address", "evse_type", "mamps_actual", "peak_rate", "phases", "pilot_actual",
    "power", "space_number", "version", "voltage",
]  # fmt: skip


def make_body(rows: int, time_kind: str = "epoch", seed: int = 7, bad_every: int = 0) -> bytes:
    """A deterministic ct_response answer of ``rows`` rows, one series, as PowerFlex wraps it."""
    rng = np.random.default_rng(seed)
    n_evse = 48
    # one reading per EVSE every ~10 s, like the ACN per-second series thinned out
    t0 = 1_566_333_668.0
    times = t0 + np.arange(rows) // n_evse * 10.0 + rng.integers(0, 1_000_000, rows) / 1e6
    evse = rng.integers(0, n_evse, rows)
    state = rng.integers(0, len(STATES), rows)
    amps = np.round(rng.uniform(0, 32_000, rows), 1)
    volts = np.round(rng.normal(208_000, 1_500, rows), 1)
    energy = np.round(rng.uniform(0, 60_000_000, rows), 3)
    pilot = rng.integers(6, 33, rows)
    evse_ids = [f"0001-03-01-{i:02d}" for i in range(n_evse)]
    phases = ["AB", "BC", "CA"]
    values = []
    for i in range(rows):
        e = int(evse[i])
        t = float(times[i])
        if time_kind == "rfc3339":
            us = int(t * 1e6)
            tv: object = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000))
                + f".{us % 1_000_000:06d}Z"
            )
        else:
            tv = t
        a = float(amps[i])
        v = float(volts[i])
        values.append(
            [
                tv, "03", "01", "0001", f"{e:02d}", STATES[int(state[i])], float(energy[i]),
                evse_ids[e], "AeroVironment", a, 32.0, phases[e % 3], int(pilot[i]),
                round(a * v / 1e9, 4), f"B41-{e:02d}", "v2", v,
            ]
        )  # fmt: skip
    if bad_every:  # a reading the meter could not take: sends its chunk down the per-row path
        for row in values[bad_every // 2 :: bad_every]:
            row[COLUMNS.index("power")] = "n/a"
    answer = {
        "data": {
            "results": [
                {
                    "statement_id": 0,
                    "series": [{"name": "ct_response", "columns": COLUMNS, "values": values}],
                }
            ]
        }
    }
    return msgspec.json.encode(answer)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _run_one(method: str, path: str) -> None:
    with open(path, "rb") as f:
        body = f.read()
    if method == "parse_answer":
        from powerflex_etl.parse.answer import parse_answer

        # first calls pay one-off lazy initialisation in Arrow; a real run parses many windows
        parse_answer(make_body(10), "ct_response")
    base = _rss_mb()
    cpu = time.process_time()
    t = time.perf_counter()
    if method == "json+transpose":
        doc = json.loads(body)
        cols = list(zip(*doc["data"]["results"][0]["series"][0]["values"], strict=True))
        n = len(cols[0])
    elif method == "msgspec-untyped":
        doc = msgspec.json.decode(body)
        n = len(doc["data"]["results"][0]["series"][0]["values"])
    else:
        parsed = parse_answer(body, "ct_response")
        n = parsed.n_rows
    seconds = time.perf_counter() - t
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "method": method,
                "rows": n,
                "seconds": seconds,
                "cpu": cpu,
                "peak_extra_mb": peak - base,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--time", choices=["epoch", "rfc3339"], default="epoch")
    ap.add_argument("--bad-every", type=int, default=0, help="make every Nth row a bad row")
    ap.add_argument("--repeat", type=int, default=1, help="runs per method; the best is shown")
    ap.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        _run_one(*args._one)
        return
    t = time.perf_counter()
    body = make_body(args.rows, args.time, bad_every=args.bad_every)
    print(
        f"body: {args.rows:,} rows, {args.time} time, {len(body) / 1e6:.0f} MB, "
        f"bad every {args.bad_every or '-'} rows "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "body.json")
        with open(path, "wb") as f:
            f.write(body)
        del body
        print(f"{'method':<18}{'seconds':>9}{'cpu s':>8}{'µs/row':>9}{'peak extra MB':>15}")
        for method in ("json+transpose", "msgspec-untyped", "parse_answer"):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "--_one", method, path],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            best = min(runs, key=lambda r: r["seconds"])
            us_row = best["seconds"] / max(best["rows"], 1) * 1e6
            print(
                f"{method:<18}{best['seconds']:>9.2f}{best['cpu']:>8.2f}{us_row:>9.2f}"
                f"{best['peak_extra_mb']:>15.0f}"
            )


if __name__ == "__main__":
    main()
