"""What the CLI prints: run summaries, dry runs, rounded table floats, months in calendar order,
and progress ([n/N] lines off a terminal, one Rich console on it) — pure, from literals."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from powerflex_etl.catalog.query import table_float, to_csv, to_json, to_table
from powerflex_etl.cli.api import calendar_order
from powerflex_etl.cli.progress import RunProgress, setup_logging
from powerflex_etl.cli.summary import dry_run_summary, run_summary
from powerflex_etl.errors import PowerflexError
from powerflex_etl.ingest.summary import WindowDone, WindowSummary
from powerflex_etl.schemas import MONTHS
from powerflex_etl.windows import Window

REPORT = {
    "run_id": "1a2b3c4d5e6f7a8b",
    "ok": True,
    "seconds": 3.456,
    "measurements": {
        "evse_request": {"windows": 2, "rows": 19440, "rejects": 0, "new_rejects": 0},
        "ct_response": {
            "windows": 2,
            "rows": 38880,
            "rejects": 3,
            "new_rejects": 1,
            "unit_check": "power_kw is 1e6 x V*I/1000",
            "unit_check_ok": False,
        },
    },
    "failures": [],
    "watermarks": {"ct_response": "2021-06-01T12:00:00+00:00"},
    "skipped_committed": 4,
}


def test_run_summary_is_a_few_lines_a_person_reads() -> None:
    text = run_summary(REPORT, "backfill")
    lines = text.splitlines()
    assert lines[0] == (
        "backfill: 4 windows committed, 58,320 rows in 3.5 s (run 1a2b3c4d5e6f7a8b);"
        " 4 windows already committed, skipped"
    )
    # measurements in name order, each with its counts; the watermark where it moved
    assert lines[1].split() == [
        "ct_response", "2", "windows", "38,880", "rows", "3", "rejects", "(1", "new)",
        "watermark", "2021-06-01", "12:00", "UTC",
    ]  # fmt: skip
    assert lines[2] == "  warning: ct_response: power_kw is 1e6 x V*I/1000"
    assert lines[3].split()[:5] == ["evse_request", "2", "windows", "19,440", "rows"]
    assert len(lines) == 4 and "{" not in text


def test_a_rerun_of_a_finished_backfill_says_nothing_to_do() -> None:
    report = REPORT | {"measurements": {}, "watermarks": {}, "skipped_committed": 24}
    assert run_summary(report, "backfill") == (
        "backfill: nothing to do: all 24 windows already committed (--redo runs them again)\n"
    )
    empty = REPORT | {"measurements": {}, "skipped_committed": 0}
    assert "nothing to do: no window" in run_summary(empty, "ingest")


def test_dry_run_summary_counts_and_cuts_the_window_list() -> None:
    estimate = {
        "windows": [f"ct_response [2021-06-{d:02d}T00:00:00Z, ...)" for d in range(1, 13)],
        "estimate": {
            "ct_response": {
                "windows": 12,
                "skipped_committed": 2,
                "points": 466560,
                "basis": "2 committed windows",
            },
            "evse_request": {
                "windows": 0,
                "skipped_committed": 3,
                "points": None,
                "basis": "no committed windows yet",
            },
        },
    }
    lines = dry_run_summary(estimate, shown=10).splitlines()
    assert lines[0] == (
        "backfill --dry-run: 12 windows to run, 5 windows already committed (nothing fetched)"
    )
    assert "~466,560 points (2 committed windows)" in lines[1]
    assert "points unknown" in lines[2]
    assert lines[3] == "windows:" and len(lines) == 4 + 10 + 1
    assert lines[-1] == "  ... 2 more (--json lists every window)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (899.9999999999999, "900.0"),
        (7.873333333, "7.873"),
        (0.00123456, "0.00123"),
        (12345.678901, "12345.679"),
        (5.0, "5.0"),
        (0.0, "0.0"),
        (-3.14159, "-3.142"),
        (1e-9, "1e-09"),
        (float("inf"), "inf"),
    ],
)
def test_table_floats_are_rounded(value: float, shown: str) -> None:
    assert table_float(value) == shown


def test_only_the_table_rounds_csv_and_json_keep_every_digit() -> None:
    names, rows = ["kw", "n"], [(899.9999999999999, 3), (None, 4)]
    table = to_table(names, rows)
    assert "900.0" in table and "899.99" not in table and "NULL" in table
    assert "899.9999999999999" in to_csv(names, rows)
    assert "899.9999999999999" in to_json(names, rows)


def test_months_in_calendar_order() -> None:
    alphabetical = {m: i for i, m in enumerate(sorted(MONTHS))}
    assert list(calendar_order(alphabetical)) == list(MONTHS)
    assert list(calendar_order({"Dec": 1, "extra": 2, "Jan": 3})) == ["Jan", "Dec", "extra"]


T0 = datetime(2021, 6, 1, tzinfo=UTC)


def _event(done: int, total: int, *, failed: bool = False) -> WindowDone:
    w = Window(T0 + timedelta(hours=6 * done), T0 + timedelta(hours=6 * done + 6))
    summary = None if failed else WindowSummary("ct_response", str(w.start), str(w.end), points=10)
    error = PowerflexError("ct_response window cut") if failed else None
    return WindowDone("ct_response", w, summary, error, done, total)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]


def test_off_a_terminal_a_line_every_5_percent_each_failure_and_the_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    with (
        caplog.at_level(logging.INFO, logger="powerflex_etl.cli"),
        RunProgress("backfill", console=None, clock=clock) as progress,
    ):
        for done in range(1, 101):
            clock.t += 0.1
            progress.update(_event(done, 100, failed=done == 37))
    shown = [int(re.match(r"\[(\d+)/100\]", line).group(1)) for line in _lines(caplog)]  # type: ignore[union-attr]
    assert shown == [
        1,
        6,
        11,
        16,
        21,
        26,
        31,
        36,
        37,
        42,
        47,
        52,
        57,
        62,
        67,
        72,
        77,
        82,
        87,
        92,
        97,
        100,
    ]
    failed = next(line for line in _lines(caplog) if line.startswith("[37/100]"))
    assert "FAILED: ct_response window cut" in failed and "1 failed" in failed
    assert "990 points so far" in _lines(caplog)[-1]


def test_off_a_terminal_slow_windows_still_get_a_line_every_30_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    with (
        caplog.at_level(logging.INFO, logger="powerflex_etl.cli"),
        RunProgress("backfill", console=None, clock=clock) as progress,
    ):
        for done in range(1, 1001):
            clock.t += 10.0 if done < 5 else 0.001
            progress.update(_event(done, 1000))
    shown = [line.split("]")[0] + "]" for line in _lines(caplog)]
    # the first, then 30 s later (window 4) before the 50-window step, then every 50
    assert shown[:4] == ["[1/1000]", "[4/1000]", "[54/1000]", "[104/1000]"]


def test_on_a_terminal_logs_and_the_bar_share_one_console() -> None:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    setup_logging(False, console)
    try:
        handler = logging.getLogger("powerflex_etl").handlers[0]
        assert getattr(handler, "console", None) is console
        with RunProgress("backfill", console=console) as progress:
            progress.update(_event(1, 3))
            assert progress.bar is not None and progress.bar.console is console
            logging.getLogger("powerflex_etl.ingest").info("a log line while the bar is up")
            progress.update(_event(2, 3))
            progress.update(_event(3, 3))
    finally:
        logging.getLogger("powerflex_etl").handlers[:] = []
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue()).replace("\r", "\n")
    line = next(li for li in text.splitlines() if "a log line while the bar is up" in li)
    # printed above the bar, on a line of its own: no bar text mixed into it
    assert "windows" not in line and "━" not in line
    assert "3/3 windows" in text
