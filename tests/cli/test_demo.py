"""`powerflex-etl demo` tells a story: a busy real week at the Caltech garage, a month over its
target, local times from the sites.toml it ships, and a hint that runs as printed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from powerflex_etl.cli.demo import DEMO_TARGETS, runnable, sites_toml

SCRIPT = Path(sys.executable).parent / "powerflex-etl"


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The console script, as `make demo` runs it, for two days (Mon-Tue 11-12 March 2019)."""
    cwd = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERFLEX_")}
    # PATH without the venv: the hint must then name the script's path
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.run(
        [str(SCRIPT), "demo", "--lake", "lake", "--days", "2"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, proc


def test_the_demo_replays_a_busy_week_with_a_month_over_its_target(demo_run) -> None:
    cwd, proc = demo_run
    from powerflex_etl import connect

    con = connect(str(cwd / "lake"))
    try:
        per_day = con.execute(
            "select session_start_local::date, count(*) from charging_sessions"
            " group by 1 order by 1"
        ).fetchall()
        month = con.execute(
            "select month_start_local, peak_demand_kw, target_peak_power_kw, over_target"
            " from monthly_peak"
        ).fetchall()
        tz = con.execute("select tz, name from sites where acc_id = '0039'").fetchall()
    finally:
        con.close()
    busy = {d: n for d, n in per_day if date(2019, 3, 11) <= d <= date(2019, 3, 12)}
    assert len(busy) == 2 and all(n >= 30 for n in busy.values()), per_day  # dozens a weekday
    ((start, peak, target, over),) = month
    assert start == date(2019, 3, 1) and target == DEMO_TARGETS["Mar"] and over is True
    assert target < peak < 1.25 * target  # near its target, over it: a story, not a cliff
    assert tz == [("America/Los_Angeles", "Caltech ACN garage, Pasadena")]
    assert (cwd / "lake" / "sites.toml").read_text() == sites_toml()
    assert f"target {target:.0f} kW: {round(peak - target, 1)} kW over" in proc.stdout
    assert "login demo / demo-password" in proc.stderr


def test_the_report_says_so_in_local_time(demo_run) -> None:
    cwd, _ = demo_run
    html = (cwd / "lake" / "report.html").read_text()
    assert "Caltech ACN garage, Pasadena (site 0039, America/Los_Angeles)" in html
    assert "Mon 11 Mar 2019 00:00 PDT to Wed 13 Mar 2019 00:00 PDT (end exclusive)" in html
    assert "over the March 2019 target (90 kW)" in html
    assert "the beginning" not in html


def test_the_hint_runs_as_printed(demo_run) -> None:
    cwd, proc = demo_run
    (hint,) = [line for line in proc.stdout.splitlines() if line.startswith("try: ")]
    argv = shlex.split(hint.removeprefix("try: "))
    assert argv[0] == str(SCRIPT.relative_to(cwd)) if SCRIPT.is_relative_to(cwd) else str(SCRIPT)
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2019-03-01" in out.stdout
    assert f"{Path(argv[0]).parent / 'activate'}" in proc.stdout  # and how to get it on PATH


@pytest.mark.parametrize(
    ("argv0", "which", "cwd", "expected"),
    [
        (".venv/bin/powerflex-etl", None, "/repo", ".venv/bin/powerflex-etl"),
        ("/repo/.venv/bin/powerflex-etl", "/repo/.venv/bin/powerflex-etl", "/x", "powerflex-etl"),
        (
            "/repo/.venv/bin/powerflex-etl",
            "/usr/bin/powerflex-etl",
            "/x",
            "/repo/.venv/bin/powerflex-etl",
        ),
        ("/repo/.venv/bin/powerflex-etl", None, "/repo", ".venv/bin/powerflex-etl"),
    ],
)
def test_runnable_names_what_this_shell_can_run(argv0, which, cwd, expected) -> None:
    assert runnable(argv0, which or "", cwd) == expected
    assert (
        runnable("/x/powerflex_etl/__main__.py", "", "/x") == f"{sys.executable} -m powerflex_etl"
    )
