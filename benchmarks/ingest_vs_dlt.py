"""powerflex-etl ingest vs dlt (arrow and dict styles) vs the plain way, against one loopback server.

    .venv/bin/python benchmarks/ingest_vs_dlt.py            # the full run (15-30 minutes)
    .venv/bin/python benchmarks/ingest_vs_dlt.py --quick    # small sizes, a smoke test

The peer a data engineer would pick instead of this project is dlt (dlthub). This runs, in
one session and against the same simulator answers (5 s sampling, its own process):

- ``dlt-arrow``: ``benchmarks/dlt_ingest.py --mode arrow``, a dlt resource yielding one
  pyarrow table per 6 h window into the filesystem destination as Parquet;
- ``dlt-dict``: the same yielding dict rows (dlt's default style);
- ``naive``: ``benchmarks/naive_ingest.py`` (requests, json, pandas, to_parquet);
- ``project``: the real CLI, ``python -m powerflex_etl ingest --engine local --workers 2``.

``dlt-dict`` (10-20 minutes a round on a busy machine) runs in the first round only.

dlt runs in a venv of its own (``_dltenv.py`` makes it once under ``~/.cache``) with the
project's pyarrow. Each run is a fresh process under ``_rss.py`` (wall, CPU of all its
processes, peak RSS of the largest). The sides are interleaved, two sizes each, best of
``--runs``; the outputs of the first round are compared row for row (``_compare.py``).
Then the project at ``--flat`` points (memory must not grow with the range) and, unless
``--no-prefect``, ``--engine local`` and ``--engine prefect`` interleaved at the small size
and at ``--flat``, best of ``--runs`` each: the Prefect engine's cost per point against the
local engine's over that wide span.

Prints marginal µs per point (time at the large size minus time at the small, over the
difference: start-up does not count), the same in CPU, peak RSS, the load average beside
every run, and PASS/FAIL for each target of issue 15. ``--strict`` exits 1 on a FAIL.
The figures also go to ``benchmarks/out/ingest_vs_dlt.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from _compare import differences, digest
from _dltenv import DLT_VERSION, dlt_python
from _sim import start_server
from ingest_vs_naive import (
    HERE,
    PY,
    START,
    finish,
    keep_best,
    machine,
    marginal,
    measure,
    points_per_hour,
    verdict,
)

SIDES = ("dlt-arrow", "dlt-dict", "naive", "project")
# not run unless --sides names them: dlt-arrow with the GC paused per window; the project
# with the allocators as they come (POWERFLEX_ALLOCATOR=default: no settings of the CLI's
# cli/memory.py), to show what those settings give
EXTRA_SIDES = ("dlt-arrow-gc", "project-asis")
ASIS_ENV = {"POWERFLEX_ALLOCATOR": "default"}
# sides run in the first round only: slow, and no target depends on them
ONCE = ("dlt-dict",)
COST_TARGET = 0.33  # project µs/point (wall and CPU) <= this x dlt-arrow's
RSS_DLT_TARGET = 0.5  # project peak RSS <= this x dlt-arrow's
RSS_NAIVE_TARGET = 0.15  # project peak RSS <= this x the plain way's at the large size
FLAT_TARGET = 1.10  # project peak RSS at --flat points <= this x at the large size
PREFECT_TARGET = 1.10  # prefect engine's marginal CPU/point <= this x the local engine's


def command(side: str, end: Any, out: Path, args: argparse.Namespace) -> list[str]:
    span = ["--start", START.isoformat(), "--end", end.isoformat()]
    if side.startswith("dlt"):
        mode = side.split("-")[1]
        script = str(HERE / "dlt_ingest.py")
        gc = ["--gc-pause"] if side.endswith("-gc") else []
        return [args.dlt_py, script, "--base-url", args.url, *span, "--out", str(out), "--mode", mode, *gc]  # fmt: skip
    if side == "naive":
        script = str(HERE / "naive_ingest.py")
        return [PY, script, "--base-url", args.url, *span, "--out", str(out)]
    engine = "prefect" if side == "prefect" else "local"
    if side == "project-asis":
        return [
            "env",
            *(f"{k}={v}" for k, v in ASIS_ENV.items()),
            *command("project", end, out, args),
        ]
    return [
        PY, "-m", "powerflex_etl", "ingest", "--engine", engine, "--measurement", "ct_response",
        *span, "--lake", str(out), "--workers", str(args.workers),
    ]  # fmt: skip


def run(side: str, points: int, args: argparse.Namespace, check: bool = False) -> dict[str, Any]:
    """One measured run; with ``check``, the digest of its rows too."""
    # whole minutes: every side's window bounds are then whole seconds, as dlt's and the
    # plain way's requests send them
    end = START + timedelta(minutes=round(points / args.pph * 60))
    out = args.tmp / f"{side}-{points}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        res = measure(command(side, end, out, args), args.env)
        res["load"] = os.getloadavg()[0]
        if check:
            res["digest"] = digest(
                "project" if side.startswith(("prefect", "project")) else side, str(out)
            )
        return res
    finally:
        shutil.rmtree(out, ignore_errors=True)


def show(label: str, n: int, res: dict[str, Any]) -> None:
    print(
        f"  {label:<8} {res['side']:<14} {n:>11,} points {res['seconds']:8.2f} s "
        f"(cpu {res['cpu_seconds']:7.2f} s)  peak RSS {res['peak_rss_mb']:6.0f} MB  "
        f"load {res['load']:4.1f}  steal {100 * res.get('steal_share', 0.0):4.1f}%",
        flush=True,
    )


def check_rows(sizes: tuple[int, int], digests: dict[tuple[str, int], Any]) -> dict[str, Any]:
    """Every side's rows against the project's, per size: [] when equal, else what differs."""
    out: dict[str, Any] = {}
    for n in sizes:
        ref = digests[("project", n)]
        for (side, size), other in digests.items():
            if size == n and side != "project":
                out[f"{side}@{n}"] = differences(ref, other)
        out[f"rows@{n}"] = ref["rows"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--sizes", default=None, help="small,large points (default 250000,2500000)")
    ap.add_argument(
        "--flat",
        type=int,
        default=None,
        help="the project at this many points (and the Prefect comparison's wide end)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="best of this many runs per size")
    ap.add_argument("--period", type=float, default=5.0, help="ct_response sampling (s)")
    ap.add_argument("--no-prefect", action="store_true", help="skip the --engine prefect runs")
    ap.add_argument("--sides", default=",".join(SIDES), help="a subset, for a quick look")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args()
    sizes_text = args.sizes or ("20000,200000" if args.quick else "250000,2500000")
    small, large = (int(x) for x in sizes_text.split(","))
    flat = args.flat if args.flat is not None else (800_000 if args.quick else 10_000_000)
    sides = [s for s in (*SIDES, *EXTRA_SIDES) if s in args.sides.split(",")]
    args.dlt_py = dlt_python() if any(s.startswith("dlt") for s in sides) else ""
    args.env = {
        **os.environ,
        "POWERFLEX_USERNAME": "demo",
        "POWERFLEX_PASSWORD": "demo-password",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    server, args.url = start_server(args.period)
    args.env["POWERFLEX_BASE_URL"] = args.url
    args.tmp = Path(tempfile.mkdtemp(prefix="pf-bench-dlt-"))
    try:
        args.pph = points_per_hour(args.url)
        load_before = os.getloadavg()[0]
        print(
            f"simulator {args.url} (own process): {args.pph:,.0f} ct_response points/hour; "
            f"dlt {DLT_VERSION}; project --engine local --workers {args.workers}; "
            f"best of {args.runs}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        best: dict[tuple[str, int], dict[str, Any]] = {}
        digests: dict[tuple[str, int], Any] = {}
        runs: list[dict[str, Any]] = []
        for r in range(args.runs):
            for n in (small, large):
                for side in sides:
                    if r and side in ONCE:
                        continue
                    res = run(side, n, args, check=r == 0)
                    res.update(side=side, points=n, round=r + 1)
                    if "digest" in res:
                        digests[(side, n)] = res.pop("digest")
                    runs.append(res)
                    best[(side, n)] = keep_best(best.get((side, n)), res)
                    show(f"run {r + 1}", n, res)
        # the project alone at --flat points; with Prefect, the local and the Prefect engine
        # interleaved at the small size and at --flat, best of --runs each: the temporary
        # API server's start-up varies by seconds and lands in the intercept, so the wide
        # span keeps that out of the per-point figure, and each pair sees the same machine
        local: dict[int, dict[str, Any]] = {}
        prefect: dict[int, dict[str, Any]] = {}
        pairs = [("project", local)] + ([] if args.no_prefect else [("prefect", prefect)])
        for r in range(1 if args.no_prefect else args.runs):
            for n in (flat,) if args.no_prefect else (small, flat):
                for side, kept in pairs:
                    res = run(side, n, args)
                    res.update(side=side, points=n, round=r + 1, phase="engines")
                    runs.append(res)
                    kept[n] = keep_best(kept.get(n), res)
                    show(f"{'local' if side == 'project' else side}{r + 1}", n, res)
        flat_res = local[flat]
        rows = check_rows((small, large), digests) if "project" in sides else {}
        result = report(args, (small, large), sides, best, flat_res, (local, prefect), rows)
        result["paired"] = paired(runs, (small, large))
        result["runs"] = runs
        result["quiet"] = quietness(runs, load_before)
        finish(result, "ingest_vs_dlt", args.strict)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(args.tmp, ignore_errors=True)


#: a run is quiet when the machine was idle before it and no run lost more of the machine's
#: cores to other guests than this (the load average counts the benchmark's own processes)
QUIET_LOAD = 0.5
QUIET_STEAL = 0.02


def quietness(runs: list[dict[str, Any]], load_before: float) -> dict[str, Any]:
    """Whether this was a quiet run, printed and kept in the JSON."""
    steal = max((r.get("steal_share", 0.0) for r in runs), default=0.0)
    quiet = load_before < QUIET_LOAD and steal < QUIET_STEAL
    print(
        f"{'quiet' if quiet else 'busy'} run: load average {load_before:.1f} before it, "
        f"at most {100 * steal:.1f}% of the cores stolen by other guests during a run "
        f"(quiet: < {QUIET_LOAD} and < {100 * QUIET_STEAL:.0f}%)"
    )
    return {"quiet": quiet, "load_before": load_before, "max_steal_share": steal}


#: the two costs per point the targets hold to dlt-arrow's: (marginal's key, label)
COSTS = (("marginal_us_per_point", "wall"), ("marginal_cpu_us_per_point", "CPU"))


def paired(runs: list[dict[str, Any]], sizes: tuple[int, int]) -> dict[str, list[float]]:
    """The project's cost per point over dlt-arrow's, round by round (each round's two sides
    saw the same minutes of the machine), printed beside the best-of figures the targets
    use: it shows how much of a verdict is the machine's drift between rounds."""
    small, large = sizes
    by = {(r["side"], r["points"], r["round"]): r for r in runs if "phase" not in r}
    out: dict[str, list[float]] = {what: [] for _, what in COSTS}
    for rnd in sorted({r["round"] for r in runs if r["side"] == "dlt-arrow"}):
        try:
            p, d = [
                marginal(by[(s, small, rnd)], by[(s, large, rnd)], small, large)
                for s in ("project", "dlt-arrow")
            ]
        except KeyError:
            continue  # a side left out by --sides
        for key, what in COSTS:
            out[what].append(p[key] / d[key])
    if out["CPU"]:
        print(
            "paired by round, project / dlt-arrow (not the verdict): "
            + "; ".join(f"{w} " + " ".join(f"{v:.3f}" for v in out[w]) for _, w in COSTS)
        )
    return out


def report(
    args: argparse.Namespace,
    sizes: tuple[int, int],
    sides: list[str],
    best: dict[tuple[str, int], dict[str, Any]],
    flat_res: dict[str, Any],
    engines: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]],
    rows: dict[str, Any],
) -> dict[str, Any]:
    small, large = sizes
    local, prefect = engines
    per = {s: marginal(best[(s, small)], best[(s, large)], small, large) for s in sides}
    result: dict[str, Any] = {**machine(), "sizes": [small, large], "sides": per, "rows": rows}
    w = 15
    print()
    print(f"{'':<30}" + "".join(f"{s:>{w}}" for s in sides))
    for label, key, fmt in (
        ("marginal µs/point (wall)", "marginal_us_per_point", "{:.2f}"),
        ("marginal µs/point (CPU)", "marginal_cpu_us_per_point", "{:.2f}"),
        (f"peak RSS MB at {large:,}", "peak_rss_mb_large", "{:.0f}"),
        (f"peak RSS MB at {small:,}", "peak_rss_mb_small", "{:.0f}"),
        ("fixed seconds (intercept)", "fixed_seconds", "{:.2f}"),
    ):
        print(f"{label:<30}" + "".join(f"{fmt.format(per[s][key]):>{w}}" for s in sides))
    print()
    checks: dict[str, tuple[bool, str]] = {}
    if rows:
        same = all(not v for k, v in rows.items() if not k.startswith("rows@"))
        said = "; ".join(
            f"{k}: {', '.join(v)}"
            for k, v in rows.items()
            if v and "@" in k and not k.startswith("rows@")
        )
        checks["rows"] = (
            same,
            f"rows equal on every side ({rows[f'rows@{large}']:,} at {large:,})"
            + (f": {said}" if said else ""),
        )
    p = per.get("project")
    d = per.get("dlt-arrow")
    if p and d:
        for key, what in COSTS:
            ratio = p[key] / d[key]
            checks[f"cost_{what}"] = (
                ratio <= COST_TARGET,
                f"{what} µs/point vs dlt-arrow {ratio:.3f} <= {COST_TARGET}",
            )
        ratio = p["peak_rss_mb_large"] / d["peak_rss_mb_large"]
        checks["rss_dlt"] = (
            ratio <= RSS_DLT_TARGET,
            f"peak RSS vs dlt-arrow {ratio:.3f} <= {RSS_DLT_TARGET}",
        )
    if p and "naive" in per:
        ratio = p["peak_rss_mb_large"] / per["naive"]["peak_rss_mb_large"]
        checks["rss_naive"] = (
            ratio <= RSS_NAIVE_TARGET,
            f"peak RSS vs the plain way at {large:,} {ratio:.3f} <= {RSS_NAIVE_TARGET}",
        )
    if p:
        growth = flat_res["peak_rss_mb"] / p["peak_rss_mb_large"]
        checks["flat"] = (
            growth <= FLAT_TARGET,
            f"peak RSS at {flat_res['points']:,} vs {large:,}: {growth:.3f} <= {FLAT_TARGET}",
        )
        result["flat"] = {**flat_res, "rss_growth": growth}
    if prefect:
        flat = flat_res["points"]
        pm = marginal(prefect[small], prefect[flat], small, flat)
        lm = marginal(local[small], local[flat], small, flat)
        ratio = pm["marginal_cpu_us_per_point"] / lm["marginal_cpu_us_per_point"]
        print(
            f"--engine prefect, {small:,} to {flat:,} points: "
            f"{pm['marginal_us_per_point']:.2f} µs/point wall, "
            f"{pm['marginal_cpu_us_per_point']:.2f} CPU, fixed {pm['fixed_seconds']:.1f} s, "
            f"peak RSS {pm['peak_rss_mb_large']:.0f} MB; --engine local beside it "
            f"{lm['marginal_us_per_point']:.2f} wall, {lm['marginal_cpu_us_per_point']:.2f} CPU"
        )
        checks["prefect"] = (
            ratio <= PREFECT_TARGET,
            f"Prefect engine's CPU µs/point vs the local engine's {ratio:.3f} <= {PREFECT_TARGET}",
        )
        result["prefect"] = {**pm, "local": lm}
    for ok, text in checks.values():
        print(f"{verdict(ok)}  {text}")
    result["pass"] = {k: ok for k, (ok, _) in checks.items()}
    result["checks"] = {k: text for k, (_, text) in checks.items()}
    return result


if __name__ == "__main__":
    main()
