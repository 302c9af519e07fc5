"""Hostile values in every string field of an answer, end to end through the CLI.

A loopback server answers with rows whose ids, labels, state and an unknown text field
hold path tricks (``/``, ``..``), NUL and other controls, a 10,000-character string,
unicode, SQL (``'); drop view ct_response; --``) and template text. Then: nothing lands
outside the lake, every unsafe id is a reject (none silently dropped), the views still
open and give back every stored string verbatim, and ``powerflex-etl query`` still works.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from powerflex_etl.catalog import connect
from powerflex_etl.parse.normalize import MAX_ID_LENGTH
from powerflex_etl.schemas import CHARGING_STATES, SPECS
from tests.fixtures.cli_run import CliRun, run_cli
from tests.fixtures.fake_api import FakeApi, influx_body, serve

T0 = datetime(2021, 6, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)
M = "ct_response"
SQL = "'); drop view ct_response; --"
HOSTILE = [
    "a/b",
    "../../x",
    "..",
    "x\x00y",
    "tab\there",
    "line\nbreak",
    "back\\slash",
    "\x7f",
    "x" * 10_000,
    "y" * MAX_ID_LENGTH,  # the longest id that is still safe
    "é🔋 Ünïcødé ✓",
    "\u202e",  # right-to-left override: odd, but storable text
    SQL,
    '"; select 1; --',
    "{{ source('rejects') }}",
    "%s %d {0}",
    "$(touch pwned)",
    "",
]
ID_FIELDS = [s.source for s in SPECS[M] if s.kind == "id"]
TEXT_FIELD = "note"  # a field not in the vendor's tables: kept, under the same checks
COLUMNS = ["time", *ID_FIELDS, "charging_state", "power", TEXT_FIELD]
BASE = {f: "1" for f in ID_FIELDS} | {"charging_state": "ADAPTIVE", "power": 1.0, TEXT_FIELD: "ok"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]|\.\.")


def unsafe_id(value: str) -> bool:
    return bool(_UNSAFE.search(value)) or len(value) > MAX_ID_LENGTH


def cases() -> list[tuple[str, str, str]]:
    """(evse_address of the row, field, hostile value): one row per field and value."""
    out = []
    for field in [*ID_FIELDS, "charging_state", TEXT_FIELD]:
        for i, value in enumerate(HOSTILE):
            evse = value if field == "evse_address" else f"ev-{field}-{i}"
            out.append((evse, field, value))
    return out


def answer(measurement: str, start: float, stop: float) -> bytes:
    rows: list[list[Any]] = []
    for k, (evse, field, value) in enumerate(cases()):
        cells = BASE | {"evse_address": evse, field: value}
        rows.append([start + k, *[cells[c] for c in COLUMNS[1:]]])
    return influx_body(measurement, COLUMNS, rows)


def expected_kept(field: str, value: str) -> bool:
    if field == "evse_address":
        return value != "" and not unsafe_id(value)
    if field in ID_FIELDS:
        return not unsafe_id(value)
    if field == "charging_state":
        return value in CHARGING_STATES
    # unknown text fields get the id safety check too (normalize treats every string alike)
    return not unsafe_id(value)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], CliRun]]:
    root = tmp_path_factory.mktemp("hostile")
    fake = FakeApi(answer=answer)
    with serve(fake) as url:
        env = {
            "POWERFLEX_BASE_URL": url,
            "POWERFLEX_USERNAME": fake.username,
            "POWERFLEX_PASSWORD": fake.password,
            "POWERFLEX_LAKE": str(root / "lake"),
        }
        args = ["ingest", "--start", T0.isoformat(), "--end", T1.isoformat(), "--measurement", M]
        args += ["--json"]  # the machine report, not the summary a person reads
        proc = run_cli(args, env)
        yield root, env, proc


def test_ingest_succeeds_and_nothing_is_written_outside_the_lake(run) -> None:
    root, _, proc = run
    assert proc.returncode == 0, proc.stderr
    lake = (root / "lake").resolve()
    for p in root.rglob("*"):
        assert p.resolve().is_relative_to(lake), p
        assert "pwned" not in p.name and ".." not in p.name
    assert not (root / "x").exists() and not (root.parent / "x").exists()


def test_every_row_is_stored_or_rejected_with_its_value_verbatim(run) -> None:
    root, _, proc = run
    report = json.loads(proc.stdout)["measurements"][M]
    con = connect(str(root / "lake"))
    try:
        stored = {r[0]: r for r in con.execute(f"select evse_address, * from {M}").fetchall()}
        names = [d[0] for d in con.description][1:]
        rejects = con.execute(
            "select reason, raw from rejects where measurement = ?", [M]
        ).fetchall()
    finally:
        con.close()
    raw_rows = [(reason, json.loads(raw)) for reason, raw in rejects]
    assert report["rows"] + report["rejects"] == len(cases())
    for evse, field, value in cases():
        found = [(reason, row) for reason, row in raw_rows if row.get("evse_address") == evse]
        if expected_kept(field, value):
            assert evse in stored and not found, (field, value[:40])
            row = dict(zip(names, stored[evse][1:], strict=True))
            assert row[field] == value, (field, value[:40])
        else:
            assert evse not in stored, (field, value[:40])
            assert len(found) == 1, (field, value[:40])
            reason, raw = found[0]
            assert raw[field] == value  # the trace holds the value as delivered
            assert field in reason and "\n" not in reason


def test_views_survive_sql_text_in_the_data(run) -> None:
    root, _, _ = run
    con = connect(str(root / "lake"))
    try:
        listed = "select view_name from duckdb_views() where not internal"
        views = {r[0] for r in con.execute(listed).fetchall()}
        assert {"ct_response", "rejects", "charging_sessions"} <= views
        hits = con.execute(
            "select count(*) from ct_response where acc_id = ? and note = 'ok'", [SQL]
        ).fetchone()
        assert hits == (1,)
        for view in sorted(views):  # every view, marts included, still runs
            con.execute(f'select * from "{view}" limit 5').fetchall()
    finally:
        con.close()


def test_query_cli_still_works_and_prints_strings_verbatim(run) -> None:
    _, env, _ = run
    proc = run_cli(
        [
            "query",
            "select acc_id, note from ct_response where acc_id like '%drop view%' "
            "or note like '%drop view%' order by note",
            "--format",
            "json",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert sorted((r["acc_id"], r["note"]) for r in rows) == sorted([(SQL, "ok"), ("1", SQL)])
    counted = run_cli(["query", "select count(*) as n from rejects", "--format", "csv"], env)
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout.strip().splitlines()[1]) > 0
