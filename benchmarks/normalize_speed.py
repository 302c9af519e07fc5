"""How fast is ``normalize`` on 1M ct_response rows, beside a plain pandas baseline?

    .venv/bin/python benchmarks/normalize_speed.py [--rows 1000000] [--repeat 5]

Builds a deterministic ParsedAnswer in memory, typed as the parser hands it over (times in
µs, ids dictionary-encoded; see ``powerflex_etl.parse.parsed``): 400 EVSEs with
ACN-shaped ids, one reading per EVSE every ~20 s over one 6 h window, readings in source
units (mA, mV, mWh, kW) in the ranges of the ACN-Data series, plus the untidy part of real
answers: 0.5 % rows re-delivered (duplicates), 0.1 % outside the window, 0.01 % negative
energy (rejects). Then times:

- ``pandas``: the naive baseline, on the same rows as a plain table (timestamps, strings):
  window filter, drop_duplicates(keep="last"), unit division, sort_values; no validation,
  no rejects, no schema (strictly less work)
- ``normalize``: the real thing, validation and rejects included

Target: well under 1 s per 1M rows (< 1 µs/row). Prints best/median seconds, µs per row
and peak RSS (the process's, and how far normalize raised it above the loaded answer).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from powerflex_etl.parse.normalize import normalize
from powerflex_etl.parse.parsed import ParsedAnswer
from powerflex_etl.schemas import CHARGING_STATES, TIME_TYPE
from powerflex_etl.windows import Window, to_us

START = datetime(2024, 6, 1, 6, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=6))
TARGET_US_PER_ROW = 1.0


def make_table(rows: int, seed: int = 7) -> pa.Table:
    """A deterministic ct_response answer of ``rows`` rows in source names and units."""
    rng = np.random.default_rng(seed)
    n_evse = 400
    span_us = to_us(WINDOW.end) - to_us(WINDOW.start)
    t = to_us(WINDOW.start) + np.sort(rng.integers(0, span_us, rows))
    evse = rng.integers(0, n_evse, rows)
    # re-delivered rows: an earlier (evse, time) sent again later in the answer
    dup = rng.random(rows) < 0.005
    src = rng.integers(0, rows, int(dup.sum()))
    t[dup], evse[dup] = t[src], evse[src]
    outside = rng.random(rows) < 0.001
    t[outside] += span_us
    acs = np.array([f"{4000 + i}" for i in range(n_evse)])
    addresses = np.array([f"2-39-{80 + i // 50}-{4000 + i}" for i in range(n_evse)])
    amps = rng.uniform(0, 32, rows)
    volts = rng.normal(208, 1.5, rows)
    energy_mwh = rng.uniform(0, 60_000_000, rows)
    energy_mwh[rng.random(rows) < 0.0001] *= -1
    cols = {
        "time": pa.array(t).cast(TIME_TYPE),
        "acc_id": pa.array(np.full(rows, "0039")),
        "acg_id": pa.array(np.array([f"{80 + i // 50}" for i in range(n_evse)])[evse]),
        "acn_id": pa.array(np.full(rows, "2")),
        "acs_id": pa.array(acs[evse]),
        "charging_state": pa.array(np.array(CHARGING_STATES)[rng.integers(0, 5, rows)]),
        "energy_delivered": pa.array(np.round(energy_mwh, 3)),
        "evse_address": pa.array(addresses[evse]),
        "evse_type": pa.array(np.full(rows, "AeroVironment")),
        "mamps_actual": pa.array(np.round(amps * 1000, 1)),
        "peak_rate": pa.array(rng.uniform(0, 1, rows)),
        "phases": pa.array(np.array(["AB", "BC", "CA"])[evse % 3]),
        "pilot_actual": pa.array(rng.integers(6, 33, rows).astype(np.float64)),
        "power": pa.array(np.round(volts * amps / 1000, 4)),
        "space_number": pa.array(np.array([f"CA-{300 + i}" for i in range(n_evse)])[evse]),
        "version": pa.array(np.full(rows, "1")),
        "voltage": pa.array(np.round(volts * 1000, 1)),
    }
    return pa.table(cols)


def make_answer(rows: int, seed: int = 7) -> ParsedAnswer:
    """The same answer as :func:`make_table`, typed as ``parse_answer`` delivers it."""
    return ParsedAnswer.from_table("ct_response", make_table(rows, seed))


def run_pandas(table: pa.Table) -> int:
    df = table.to_pandas()
    lo, hi = (
        np.datetime64(WINDOW.start.replace(tzinfo=None)),
        np.datetime64(WINDOW.end.replace(tzinfo=None)),
    )
    t = df["time"].dt.tz_localize(None)
    df = df[(t >= lo) & (t < hi)]
    df = df.drop_duplicates(["evse_address", "time"], keep="last")
    df = df.assign(
        energy_delivered_kwh=df["energy_delivered"] / 1e6,
        current_actual_a=df["mamps_actual"] / 1e3,
        voltage_v=df["voltage"] / 1e3,
    )
    return len(df.sort_values(["evse_address", "time"], kind="stable"))


def run_normalize(parsed: ParsedAnswer) -> int:
    res = normalize(parsed, WINDOW, run_id="bench", ingested_at=datetime.now(UTC))
    return res.stats.rows_out


def timed(fn: Callable[[Any], int], arg: Any, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per run; CPU time is the steadier number on a busy machine."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(arg)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    table = make_table(args.rows)
    parsed = ParsedAnswer.from_table("ct_response", table)
    loaded = rss_mb()
    # normalize first, so the process peak it raises is its own, not pandas'
    res = normalize(parsed, WINDOW, run_id="bench", ingested_at=datetime.now(UTC))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    st = res.stats
    print(
        f"{args.rows} ct_response rows: {st.rows_out} out, {st.duplicates} duplicates, "
        f"{st.outside_window} outside, {st.rejected} rejected; {st.unit_check}"
    )
    del res
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'method':<10} {'best s':>8} {'median s':>9} {'best cpu s':>11} {'µs/row':>8}")
    results = {}
    inputs: dict[str, tuple[Callable[[Any], int], Any]] = {
        "pandas": (run_pandas, table),
        "normalize": (run_normalize, parsed),
    }
    for name, (fn, arg) in inputs.items():
        wall, cpu = timed(fn, arg, args.repeat)
        results[name] = min(wall)
        print(
            f"{name:<10} {min(wall):8.3f} {statistics.median(wall):9.3f} {min(cpu):11.3f} "
            f"{min(wall) / args.rows * 1e6:8.3f}"
        )
    print(
        f"normalize vs pandas baseline: {results['pandas'] / results['normalize']:.1f}x faster; "
        f"target < {TARGET_US_PER_ROW:.1f} µs/row: "
        f"{'met' if results['normalize'] / args.rows * 1e6 < TARGET_US_PER_ROW else 'MISSED'}"
    )
    print(
        f"peak RSS {peak:.0f} MB (answer loaded: {loaded:.0f} MB; "
        f"normalize raised it by {max(0.0, peak - loaded):.0f} MB)"
    )


if __name__ == "__main__":
    main()
