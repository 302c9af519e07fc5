"""charging_sessions over 10M ct_response points vs a bare scan of the same columns.

Builds a synthetic but realistic ct_response Parquet dataset (54 EVSEs, like Caltech's ACN;
5 s sampling; plug-ins of 1-9 h with charging then idle, unplugged gaps, some back-to-back
plug-ins without an UNPLUGGED sample) in a temp dir, then times

- baseline: ``select count(*)`` over every column the sessionization reads (each counted, so
  DuckDB must read them rather than answer from Parquet metadata);
- result:   ``select count(*), sum(energy_kwh) from charging_sessions``.

Target: result within 10x the baseline. Also printed, for context: the bare ``count(*)``
(answered from Parquet metadata) and one ``lag()`` over (evse_address, time), the cost of the
single sort any window-function sessionization needs.

Usage: python benchmarks/sessions_vs_scan.py [points [reuse.parquet]]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from powerflex_etl import schemas  # noqa: E402
from tests.marts.marts_harness import apply_marts  # noqa: E402

EVSES = 54
PERIOD_S = 5


def build(path: Path, points: int) -> None:
    """Write ``points`` samples as Parquet, generated inside DuckDB (deterministic)."""
    per_evse = points // EVSES
    con = duckdb.connect()
    con.execute("set TimeZone='UTC'")
    # cycle of 4 h per EVSE (phase-shifted): plugged for the first part, unplugged after;
    # every third cycle starts with no UNPLUGGED sample (back-to-back: the meter just resets)
    con.execute(
        f"""
        copy (
            with grid as (
                select
                    e.e as evse,
                    s.s as i,
                    timestamptz '2024-01-01 00:00:00+00' + to_seconds(s.s * {PERIOD_S}) as time,
                    (s.s * {PERIOD_S} + e.e * 997) % 14400 as cycle_s,
                    ((s.s * {PERIOD_S} + e.e * 997) // 14400) as cycle_n
                from range({EVSES}) e(e), range({per_evse}) s(s)
            ),
            shaped as (
                select
                    *,
                    3600 + (hash(evse, cycle_n) % 5) * 1800 as plug_s,
                    1800 + (hash(evse, cycle_n, 1) % 6) * 900 as charge_s
                from grid
            )
            select
                time,
                'evse-' || lpad(evse::varchar, 2, '0') as evse_address,
                '0002' as acn_id,
                '03' as acc_id,
                '01' as acg_id,
                lpad(evse::varchar, 2, '0') as acs_id,
                'CA-' || (300 + evse)::varchar as space_number,
                'AeroVironment' as evse_type,
                ['AB', 'BC', 'CA'][1 + evse % 3] as phases,
                case
                    when cycle_s >= plug_s and cycle_n % 3 = 2 then 'NOT CHARGING'
                    when cycle_s >= plug_s then 'UNPLUGGED'
                    when cycle_s < charge_s then 'ADAPTIVE'
                    else 'NOT CHARGING'
                end as charging_state,
                '1.0' as version,
                case
                    when cycle_s >= plug_s and cycle_n % 3 <> 2 then 0.0
                    else 6.6 * least(cycle_s, charge_s) / 3600
                end as energy_delivered_kwh,
                -- meter noise, so the columns compress like real telemetry rather than constants
                case
                    when cycle_s < charge_s then 31.7 + (hash(evse, i, 2) % 100) / 100.0
                    else 0.0
                end as current_actual_a,
                case when cycle_s < plug_s then 32.0 else 0.0 end as pilot_actual_a,
                207.0 + (hash(evse, i, 3) % 200) / 100.0 as voltage_v,
                case
                    when cycle_s < charge_s then 6.5 + (hash(evse, i, 4) % 200) / 1000.0
                    else 0.0
                end as power_kw,
                null::double as peak_rate,
                time as _ingested_at,
                'bench' as _run_id
            from shaped
            order by evse_address, time
        ) to '{path}' (format parquet, compression zstd, row_group_size 1000000)
        """
    )


def _touch(column: str) -> str:
    # an aggregate DuckDB cannot answer from Parquet statistics (count/min/max it can)
    if column == "time":
        return "sum(epoch_us(time))"
    if column.endswith(("_kwh", "_a", "_kw", "_v")):
        return f"sum({column})"
    return f"sum(length({column}))"


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


CPU: dict[str, float] = {}


def timed(con: duckdb.DuckDBPyConnection, sql: str, repeat: int = 3) -> tuple[float, tuple]:
    """Best of ``repeat`` wall times (the machine is shared) and the answer.

    The best CPU time (all DuckDB threads) is kept in ``CPU[sql]``: on a busy shared machine
    wall time swings 2-3x from run to run, CPU time much less.
    """
    best = float("inf")
    best_cpu = float("inf")
    row: tuple = ()
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu_s()
        row = con.execute(sql).fetchone() or ()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, _cpu_s() - c)
    CPU[sql] = best_cpu
    return best, row


def main() -> None:
    points = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ct_response.parquet"
        t = time.perf_counter()
        if len(sys.argv) > 2:  # reuse a dataset built before: faster iterations
            path = Path(sys.argv[2])
        if not path.exists():
            build(path, points)
        print(
            f"built {points:,} points in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
        con = duckdb.connect()
        con.execute("set TimeZone='UTC'")
        con.execute("set enable_progress_bar = false")
        con.execute(f"create view ct_response as select * from read_parquet('{path}')")
        for name in ("evse_request", "evse_response"):
            # empty, typed like the lake (no evse_response: ct_response decides alone)
            con.register("_empty", schemas.arrow_schema(name).empty_table())
            con.execute(f"create table {name} as select * from _empty")
            con.unregister("_empty")
        con.execute("create table sites (acc_id varchar, name varchar, tz varchar)")
        con.execute("insert into sites values ('03', 'bench', 'America/Los_Angeles')")
        con.execute(
            "create table target_peak_power"
            " (acc_id varchar, month_num tinyint, target_peak_power_kw double)"
        )
        apply_marts(con)
        cols = [
            "evse_address",
            "time",
            "acn_id",
            "acc_id",
            "acg_id",
            "acs_id",
            "space_number",
            "phases",
            "charging_state",
            "energy_delivered_kwh",
            "current_actual_a",
            "pilot_actual_a",
            "power_kw",
            "voltage_v",
        ]
        baseline_sql = (
            "select count(*), " + ", ".join(_touch(c) for c in cols) + " from ct_response"
        )
        sessions_sql = "select count(*), sum(energy_kwh) from charging_sessions"
        base_s, base_row = timed(con, baseline_sql)
        sess_s, sess_row = timed(con, sessions_sql)
        bare_s, _ = timed(con, "select count(*) from ct_response")
        # the floor of any sessionization by window functions: one sort by (evse, time)
        floor_s, _ = timed(
            con,
            "select count(*), sum(x) from (select lag(energy_delivered_kwh) over"
            " (partition by evse_address order by time) as x from ct_response)",
        )
        print(f"baseline  scan of {len(cols)} columns ({base_row[0]:,} rows): {base_s:.3f} s")
        print(f"(bare select count(*), metadata only: {bare_s:.3f} s)")
        print(
            f"charging_sessions ({sess_row[0]:,} sessions, {sess_row[1]:,.0f} kWh): {sess_s:.3f} s"
        )
        print(f"(one lag() over (partition by evse_address order by time): {floor_s:.3f} s)")
        ratio = sess_s / base_s
        cpu_ratio = CPU[sessions_sql] / CPU[baseline_sql]
        print(
            f"ratio: {ratio:.1f}x the scan (target <= 10x),"
            f" {sess_s / floor_s:.1f}x one window sort;"
            f" CPU time {CPU[sessions_sql]:.2f} s vs {CPU[baseline_sql]:.2f} s = {cpu_ratio:.1f}x"
        )
        print("PASS" if ratio <= 10 else "FAIL", f"(wall-time ratio {ratio:.1f}x, target <= 10x)")


if __name__ == "__main__":
    main()
