"""The top-level CLI: usage errors, `dcm`, `report`, `state` — run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ingest.test_ingest import T0, H, _cli, ingest


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "--bogus"],
        ["backfill", "--start", "2021-06-01"],  # --end missing
        ["query", "select 1", "--format", "xml"],
        ["compact", "--before", "yesterday"],
    ],
)
def test_bad_usage_is_a_short_message_not_a_traceback(sim_settings, args):
    proc = _cli(args, sim_settings)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip(), "the user is told what was wrong"
    assert len(proc.stderr.strip().splitlines()) <= 6


def test_dcm_then_report_through_the_cli(sim, sim_settings, tmp_path: Path):
    ingest(sim_settings, T0, T0 + 12 * H)
    proc = _cli(["dcm"], sim_settings)
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap, "the lake's sites were snapshotted"

    q = _cli(
        ["query", "select count(*) as n from target_peak_power", "--format", "json"],
        sim_settings,
    )
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout)[0]["n"] >= 12  # every month of every site

    out = tmp_path / "r.html"
    proc = _cli(
        [
            "report",
            "--out",
            str(out),
            "--start",
            T0.isoformat(),
            "--end",
            (T0 + 12 * H).isoformat(),
        ],
        sim_settings,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    html = out.read_text()
    assert summary["out"] == str(out) and summary["bytes"] == len(html.encode())
    assert "<svg" in html and "http://" not in html.split("<body", 1)[1].replace(
        "http://www.w3.org", ""
    )
    s = _cli(
        ["query", "select count(*) as n from charging_sessions", "--format", "json"],
        sim_settings,
    )
    assert summary["sessions"] == json.loads(s.stdout)[0]["n"]


def test_report_with_reversed_range_fails_one_line(sim_settings, tmp_path: Path):
    proc = _cli(
        [
            "report",
            "--out",
            str(tmp_path / "r.html"),
            "--start",
            "2021-06-02",
            "--end",
            "2021-06-01",
        ],
        sim_settings,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("powerflex-etl: error:") and "--end" in last
    assert not (tmp_path / "r.html").exists()


def test_state_show_and_reset(sim, sim_settings):
    ingest(sim_settings, T0, T0 + 6 * H, ["ct_response"])
    shown = json.loads(_cli(["state", "show"], sim_settings).stdout)
    assert shown["ct_response"]["watermark"].startswith("2021-06-01T06:00")
    proc = _cli(["state", "reset", "-m", "ct_response", "--yes"], sim_settings)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(_cli(["state", "show"], sim_settings).stdout)
    assert not shown.get("ct_response", {}).get("watermark")
    n = _cli(["query", "select count(*) from ct_response", "--format", "csv"], sim_settings)
    assert int(n.stdout.splitlines()[1]) > 0, "reset never touches the data"
