"""How a failing run fails, as a new user sees it: logins made, seconds taken, lines printed.

    .venv/bin/python benchmarks/failfast.py               # every case (a few minutes)
    .venv/bin/python benchmarks/failfast.py --case wrong-password-backfill-30d

Each case runs the real CLI (``python -m powerflex_etl``) in a fresh process, with the user's
defaults (no fast retries), against the simulator on loopback (in this process, so its request
log counts the ``POST /login`` calls) or against a closed port. Printed per case: exit code,
logins, wall seconds, stderr lines, lines that look like a traceback, and the last stderr
line. Baseline: the figures issue 12 reports for the same cases (``ISSUE``), printed beside.
The figures also go to ``benchmarks/out/failfast.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest_vs_naive import save

from powerflex_etl.simulator import Faults, SimulatorConfig, start_simulator

#: what issue 12 measured before the work (baseline printed beside each case)
ISSUE = {
    "wrong-password-backfill-5mo": "1,812 logins in 6 s, 1,813 lines",
    "wrong-password-ingest-default": "125 lines and two tracebacks before the error",
    "unreachable-ingest-1d": "289 s, 749 lines, 174 traceback frames",
    "no-base-url-ingest-1d": "267 s (retries the placeholder host until DNS fails)",
    "lake-is-a-file": "a raw NotADirectoryError traceback, after logging in",
}
TRACEBACKISH = re.compile(r"Traceback \(most recent call last\)|^\s+File \"|Error:\s*$|^\w+Error\b")


@dataclass
class Case:
    """One command and the world it runs in."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = "sim"  # "sim", "closed", or None for unset
    lake_is_file: bool = False


CASES = [
    Case(
        "wrong-password-backfill-30d",
        ["backfill", "--start", "2021-06-01", "--end", "2021-07-01"],
        {"POWERFLEX_PASSWORD": "wrong"},
    ),
    Case(
        "wrong-password-backfill-5mo",
        ["backfill", "--start", "2021-01-01", "--end", "2021-06-01"],
        {"POWERFLEX_PASSWORD": "wrong"},
    ),
    Case(
        "wrong-password-ingest-default",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-02"],
        {"POWERFLEX_PASSWORD": "wrong"},
    ),
    Case(
        "wrong-password-ingest-prefect",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-02", "--engine", "prefect"],
        {"POWERFLEX_PASSWORD": "wrong"},
    ),
    Case(
        "unreachable-ingest-1d",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-02"],
        base_url="closed",
    ),
    Case(
        "unreachable-ingest-1d-prefect",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-02", "--engine", "prefect"],
        base_url="closed",
    ),
    Case(
        "forbidden-ingest-2d",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-03"],
        faults={"forbidden": {"ct_response"}},
    ),
    Case(
        "forbidden-ingest-2d-prefect",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-03", "--engine", "prefect"],
        faults={"forbidden": {"ct_response"}},
    ),
    Case(
        "no-base-url-ingest-1d",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-02"],
        base_url=None,
    ),
    Case(
        "lake-is-a-file",
        ["ingest", "--start", "2021-06-01", "--end", "2021-06-02"],
        lake_is_file=True,
    ),
    Case(
        "workers-0", ["backfill", "--start", "2021-06-01", "--end", "2021-06-02", "--workers", "0"]
    ),
    Case(
        "revoked-tokens-backfill-2d",
        ["backfill", "--start", "2021-06-01", "--end", "2021-06-03", "--workers", "4"],
        faults={"token_max_uses": 3, "single_session": True},
    ),
]


def closed_port() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def run_case(case: Case, sim: Any, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pf-failfast-") as tmp:
        lake = Path(tmp) / "lake"
        if case.lake_is_file:
            lake.write_text("not a directory\n")
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("POWERFLEX_", "PREFECT_API"))
        }
        env.update(
            POWERFLEX_USERNAME=sim.config.username,
            POWERFLEX_PASSWORD=sim.config.password,
            POWERFLEX_LAKE=str(lake),
            PREFECT_HOME=str(Path(tmp) / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        if case.base_url == "sim":
            env["POWERFLEX_BASE_URL"] = sim.url
        elif case.base_url == "closed":
            env["POWERFLEX_BASE_URL"] = closed_port()
        env.update(case.env)
        missing = [k for k in case.faults if not hasattr(Faults(), k)]
        if missing:
            return {"skipped": f"the simulator has no fault {', '.join(missing)}"}
        sim.config.faults = Faults(**case.faults)
        before = sum(1 for r in sim.requests_seen() if r["path"] == "/login")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "powerflex_etl", *case.args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"timed_out_after_s": timeout}
        finally:
            sim.config.faults = Faults()
        seconds = time.perf_counter() - t0
        logins = sum(1 for r in sim.requests_seen() if r["path"] == "/login") - before
        lines = proc.stderr.strip().splitlines()
        return {
            "rc": proc.returncode,
            "logins": logins,
            "seconds": round(seconds, 2),
            "stderr_lines": len(lines),
            "tracebackish_lines": sum(1 for line in lines if TRACEBACKISH.search(line)),
            "last_line": lines[-1] if lines else "",
        }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--case", action="append", help="run only these cases (repeatable)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.case or c.name in args.case]
    out: dict[str, Any] = {}
    with start_simulator(SimulatorConfig(seed=1, sample_period_s=60.0)) as sim:
        for case in cases:
            r = out[case.name] = run_case(case, sim, args.timeout)
            print(f"{case.name}: {json.dumps(r)}", flush=True)
            if case.name in ISSUE:
                print(f"    issue 12 reported: {ISSUE[case.name]}", flush=True)
    save(out, "failfast")


if __name__ == "__main__":
    main()
