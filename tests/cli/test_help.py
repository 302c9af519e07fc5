"""`--help` explains every command: examples that parse, no `<bool>`, credentials, the views."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer

from powerflex_etl.api.checks import check_schedule
from powerflex_etl.catalog.sqlfiles import CATALOG_TABLES, SQL_DIR, TIERS, view_files
from powerflex_etl.cli.app import app
from powerflex_etl.cli.help import examples_of

# commands that log in to the API: their help must say where the credentials come from
CALLS_API = ("ingest", "backfill", "dcm", "api")


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def _help(path: tuple[str, ...], cmd: Any, parent: Any = None) -> str:
    # the help a user sees, rendered by the command itself (typer vendors its own click)
    ctx = cmd.make_context(" ".join(("powerflex-etl", *path)), ["--help"], resilient_parsing=True)
    return str(cmd.get_help(ctx))


ROOT: Any = typer.main.get_command(app)
COMMANDS = list(_walk(ROOT))


def test_the_tree_is_what_we_document() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"ingest", "backfill", "query", "demo", "simulator", "dcm", "report"} <= names
    assert {"api target-peak get", "api max-power-schedule set", "state reset"} <= names
    assert len(COMMANDS) >= 25


@pytest.mark.parametrize(
    ("path", "cmd"), COMMANDS, ids=[" ".join(p) or "root" for p, _ in COMMANDS]
)
def test_every_command_has_examples_and_no_bool_metavar(path: tuple[str, ...], cmd: Any) -> None:
    text = _help(path, cmd)
    assert "<bool>" not in text, text
    examples = examples_of(text)
    assert examples, f"`powerflex-etl {' '.join(path)} --help` shows no example"
    # a command's own examples run it (a group's may run any of its commands)
    assert any(shlex.split(e, comments=True)[1 : 1 + len(path)] == list(path) for e in examples)


def _parse(argv: list[str]) -> Any:
    """Resolve and parse ``argv`` down the command tree without running anything."""
    cmd, ctx, args = ROOT, None, argv
    while True:
        ctx = cmd.make_context(cmd.name or "powerflex-etl", list(args), parent=ctx)
        if not hasattr(cmd, "commands"):
            return ctx
        rest = [*ctx._protected_args, *ctx.args]
        _, cmd, args = cmd.resolve_command(ctx, rest)


ALL_EXAMPLES = sorted({e for p, c in COMMANDS for e in examples_of(_help(p, c))})


@pytest.mark.parametrize("example", ALL_EXAMPLES)
def test_every_example_parses(example: str) -> None:
    argv = shlex.split(example, comments=True)
    assert argv[0] == "powerflex-etl"
    _parse(argv[1:])  # raises click's UsageError for an unknown option or a missing value


def test_a_wrong_example_would_fail_to_parse() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["backfill", "--start", "2024-01-01", "--end", "2024-02-01", "--wrokers", "2"])


def test_commands_calling_the_api_name_the_credentials_variables() -> None:
    for path, cmd in COMMANDS:
        if path and path[0] in CALLS_API:
            text = _help(path, cmd)
            for var in ("POWERFLEX_BASE_URL", "POWERFLEX_USERNAME", "POWERFLEX_PASSWORD"):
                assert var in text, f"{' '.join(path)} --help does not mention {var}"
            assert "demo / demo-password" in text


def test_query_help_lists_the_views_and_list_says_what_each_holds() -> None:
    query = ROOT.commands["query"]
    text = _help(("query",), query)
    for tier in ("staging", "marts"):
        for f in view_files(SQL_DIR, tier):
            assert re.search(rf"\b{f.name}\b", text), f"query --help does not list {f.name}"
    proc = subprocess.run(
        [sys.executable, "-m", "powerflex_etl", "query", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[1]: line for line in proc.stdout.splitlines()[1:]}
    every = {f.name for tier in TIERS for f in view_files(SQL_DIR, tier)}
    assert every | set(CATALOG_TABLES) == set(listed)
    assert all(listed[t].split(None, 2)[2:] for t in CATALOG_TABLES), (
        "each table says what it holds"
    )
    assert "15-minute" in listed["site_load_15min"]  # its description, from the SQL's comment


def test_every_listed_view_exists_in_a_built_catalog(tmp_path: Path) -> None:
    from powerflex_etl.catalog import build_catalog, connect

    lake = tmp_path / "lake"
    lake.mkdir()
    build_catalog(str(lake))
    con = connect(str(lake))
    try:
        for tier in TIERS:
            for f in view_files(SQL_DIR, tier):
                con.execute(f'select * from "{f.name}" limit 0')
        con.execute("select acc_id, name, tz from sites limit 0")
    finally:
        con.close()


def test_version_is_the_package_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "powerflex_etl", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"powerflex-etl {version('powerflex-etl')}"


def test_the_documented_schedule_format_is_accepted() -> None:
    path = ("api", "max-power-schedule", "set")
    text = _help(path, ROOT.commands["api"].commands["max-power-schedule"].commands["set"])
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "e.g.:" in line) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("definition "))
    example = json.loads(" ".join(line.strip() for line in lines[start:end]))
    assert check_schedule(example) == example
    for key in ("definition", "days", "schedule", "start_time", "max_power_units", "timezone"):
        assert key in text
