"""`powerflex-etl marts status|rebuild`, run as a user runs them, on a real lake."""

from __future__ import annotations

import json
from pathlib import Path

from powerflex_etl import schemas
from powerflex_etl.lake.layout import marts_manifest_file
from powerflex_etl.lake.store import Lake
from powerflex_etl.marts.slots import derive_slot
from powerflex_etl.marts.status import status
from powerflex_etl.settings import Settings
from tests.ingest.test_ingest import _cli
from tests.marts.marts_harness import _commit_all, _table, charging_run, ts


def _lake_with_sessions(path: Path, *days: int) -> Lake:
    """Sessions on EVSE-1 on each of ``days`` of January 2024, committed, marts not refreshed."""
    lake = Lake(str(path), derive=derive_slot)
    for d in days:
        rows = charging_run("EVSE-1", ts(f"2024-01-{d:02d} 08:00"), 90)
        _commit_all(lake, "ct_response", _table(schemas.arrow_schema("ct_response"), rows))
    return lake


def _status(s: Settings) -> dict:
    """What `marts status --json` prints (in-process: each CLI start costs seconds)."""
    return status(Lake(s.lake)).to_dict()


def test_status_says_what_to_do_and_rebuild_makes_the_marts_current(tmp_path: Path):
    s = Settings(lake=str(tmp_path / "lake"), base_url="http://127.0.0.1:9")
    empty = _cli(["marts", "status", "--json"], s)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["state"] == "empty"
    _lake_with_sessions(tmp_path / "lake", 3, 4)
    first = _cli(["marts", "status"], s)
    assert "never built: run `powerflex-etl marts rebuild`" in first.stdout

    rebuilt = _cli(["marts", "rebuild"], s)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt from the raw lake" in rebuilt.stdout
    assert "sessions: 2 row(s)" in rebuilt.stdout
    st = _status(s)
    assert st["state"] == "current" and st["pending_commits"] == 0
    assert st["tables"]["sessions"]["rows"] == 2
    assert st["tables"]["session_samples"]["first_period"] == "2024-01-03"
    assert st["tables"]["session_samples"]["last_period"] == "2024-01-04"
    n = _cli(["query", "select count(*) from charging_sessions", "--format", "csv"], s)
    assert n.stdout.splitlines()[1] == "2"


def test_status_shows_pending_commits_and_a_sql_change_and_query_repairs_both(tmp_path: Path):
    s = Settings(lake=str(tmp_path / "lake"), base_url="http://127.0.0.1:9")
    _lake_with_sessions(tmp_path / "lake", 3)
    assert _cli(["marts", "rebuild"], s).returncode == 0
    _lake_with_sessions(tmp_path / "lake", 5)  # a write killed before its refresh
    st = _status(s)
    assert st["state"] == "pending"
    assert st["pending_commits"] == 1 and st["pending_slots"] == {"ct_response": 1}
    assert "not reflected yet" in st["advice"]
    assert st["tables"]["sessions"]["rows"] == 1, "status changes nothing"

    n = _cli(["query", "select count(*) from charging_sessions", "--format", "csv"], s)
    assert n.stdout.splitlines()[1] == "2", "a reader reflects the pending commit first"
    assert _status(s)["state"] == "current"

    manifest = tmp_path / "lake" / Path(*marts_manifest_file())
    body = json.loads(manifest.read_text())
    body["sql_hash"] = "0" * 16  # as if sql/derived/ had changed since
    manifest.write_text(json.dumps(body))
    st = _status(s)
    assert st["state"] == "sql-changed" and "rebuilds them" in st["advice"]
    n = _cli(["query", "select count(*) from charging_sessions", "--format", "csv"], s)
    assert n.stdout.splitlines()[1] == "2"
    assert _status(s)["state"] == "current"
