"""docs/analytics.md lists every view and column the catalog has, with its type: it cannot drift.

The doc's reference gives each relation a heading ``#### `name` `` and a table
``| column | type | meaning |``; this compares those tables with ``DESCRIBE`` of a catalog
built from the repository's ``sql/`` on an empty lake, and each section's "`read()` filters on
`col`" with the column :func:`powerflex_etl.read` really filters on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from powerflex_etl.catalog import build_catalog, connect
from powerflex_etl.catalog.frames import relations, time_column
from powerflex_etl.catalog.sqlfiles import SQL_DIR, sql_ident

DOC = SQL_DIR.parent / "docs" / "analytics.md"
# the doc's short name for the one long type
_TYPE_NAMES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
_HEADING = re.compile(r"^#{2,5} `(\w+)`\s*$")
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([A-Z][A-Z ]*?)\s*\|")
_FILTER = re.compile(r"`read\(\)` filters on `(\w+)`")


def documented(text: str) -> dict[str, tuple[list[tuple[str, str]], str | None]]:
    """Per relation heading: its table's (column, type) rows and the column read() filters on."""
    out: dict[str, tuple[list[tuple[str, str]], str | None]] = {}
    name: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _HEADING.match(line)
        if m:
            name = m.group(1)
            assert name not in out, f"docs/analytics.md documents {name} twice"
            out[name] = ([], None)
        elif line.startswith("#"):
            name = None
        elif name is not None:
            cols, filt = out[name]
            f = _FILTER.search(line)
            if f and filt is None:
                out[name] = (cols, f.group(1))
            if re.match(r"^\|\s*column\s*\|\s*type\s*\|", line):
                i += 2  # header and rule
                while i < len(lines) and lines[i].startswith("|"):
                    r = _ROW.match(lines[i])
                    assert r, f"docs/analytics.md, {name}: cannot read the row {lines[i]!r}"
                    cols.append((r.group(1), _TYPE_NAMES.get(r.group(2), r.group(2))))
                    i += 1
                continue
        i += 1
    return out


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    lake = tmp_path_factory.mktemp("docs") / "lake"
    lake.mkdir()
    build_catalog(str(lake))
    c = connect(str(lake))
    try:
        yield c
    finally:
        c.close()


def _skeleton(con: duckdb.DuckDBPyConnection, view: str) -> str:
    """The lines to paste into the doc for ``view`` (its meanings left to write)."""
    rows = con.execute(f"describe {sql_ident(view)}").fetchall()
    short = {v: k for k, v in _TYPE_NAMES.items()}
    lines = [f"#### `{view}`", "", "| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{r[0]}` | {short.get(str(r[1]), str(r[1]))} | ... |" for r in rows]
    return "\n".join(lines)


def test_the_doc_reads_as_a_reference() -> None:
    docs = documented(DOC.read_text(encoding="utf-8"))
    assert len(docs) >= 20
    assert all(cols for cols, _ in docs.values()), [n for n, (c, _) in docs.items() if not c]


def test_every_view_of_the_catalog_is_documented_and_nothing_else(
    con: duckdb.DuckDBPyConnection,
) -> None:
    docs = documented(DOC.read_text(encoding="utf-8"))
    have = relations(con)
    missing = [v for v in have if v not in docs]
    assert missing == [], "add to docs/analytics.md:\n\n" + "\n\n".join(
        _skeleton(con, v) for v in missing
    )
    assert sorted(set(docs) - set(have)) == [], (
        "docs/analytics.md documents views that do not exist"
    )


def test_every_column_is_documented_with_its_type_in_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    docs = documented(DOC.read_text(encoding="utf-8"))
    wrong = []
    for view in relations(con):
        real = [
            (str(r[0]), str(r[1])) for r in con.execute(f"describe {sql_ident(view)}").fetchall()
        ]
        doc = docs[view][0] if view in docs else real
        if doc != real:
            missing = [c for c in real if c not in doc]
            extra = [c for c in doc if c not in real]
            detail = f"missing {missing}, not in the catalog {extra}" if missing or extra else ""
            wrong.append(f"{view}: {detail or 'columns in another order'}")
    assert wrong == [], "docs/analytics.md is out of date:\n" + "\n".join(wrong)


def test_each_section_names_the_column_read_filters_on(con: duckdb.DuckDBPyConnection) -> None:
    docs = documented(DOC.read_text(encoding="utf-8"))
    said = {v: docs[v][1] for v in relations(con) if v in docs}
    real = {v: (c[0] if (c := time_column(con, v)) else None) for v in said}
    assert said == real


def test_a_changed_doc_is_caught(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The parser sees a dropped column and a wrong type (so the checks above can fail)."""
    text = DOC.read_text(encoding="utf-8")
    dropped = text.replace("| `idle_minutes` | DOUBLE |", "| `idle_minutes_x` | DOUBLE |")
    typed = text.replace("| `samples` | BIGINT | number of ct_response", "| `samples` | DOUBLE | n")
    assert ("idle_minutes_x", "DOUBLE") in documented(dropped)["charging_sessions"][0]
    assert ("samples", "DOUBLE") in documented(typed)["charging_sessions"][0]
    assert documented(text)["charging_sessions"][0] != documented(dropped)["charging_sessions"][0]
