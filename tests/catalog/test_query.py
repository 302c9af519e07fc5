"""Formatting query results for the CLI: table, CSV (RFC 4180) and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerflex_etl.catalog import query
from powerflex_etl.catalog.query import QueryError, iso_duration, run_query, to_csv, to_json
from powerflex_etl.errors import PowerflexError

SAMPLE = """
select * from (values
    ('03', timestamptz '2024-03-01 08:00:00+00', 1.50::decimal(6, 2), 3.3::double, true, null),
    ('a,"b"', timestamptz '2024-03-01 08:15:00.5+00', 12::decimal(6, 2), null, false, 'x')
) as t(acc_id, time, energy_kwh, power_kw, connected, note)
order by time
"""


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("set TimeZone = 'UTC'")
    yield c
    c.close()


def test_csv_is_a_header_then_rows(con: duckdb.DuckDBPyConnection) -> None:
    out = run_query(con, SAMPLE, "csv")
    assert out.endswith("\r\n")
    assert list(csv.reader(io.StringIO(out))) == [
        ["acc_id", "time", "energy_kwh", "power_kw", "connected", "note"],
        ["03", "2024-03-01 08:00:00+00:00", "1.50", "3.3", "true", ""],
        ['a,"b"', "2024-03-01 08:15:00.500000+00:00", "12.00", "", "false", "x"],
    ]


def test_json_is_a_list_of_objects_with_iso_times_and_numbers(
    con: duckdb.DuckDBPyConnection,
) -> None:
    got = json.loads(run_query(con, SAMPLE, "json"))
    assert got == [
        {
            "acc_id": "03",
            "time": "2024-03-01T08:00:00+00:00",
            "energy_kwh": 1.5,
            "power_kw": 3.3,
            "connected": True,
            "note": None,
        },
        {
            "acc_id": 'a,"b"',
            "time": "2024-03-01T08:15:00.500000+00:00",
            "energy_kwh": 12,
            "power_kw": None,
            "connected": False,
            "note": "x",
        },
    ]


def test_json_handles_the_types_duckdb_returns(con: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "select date '2024-03-01' as d, interval 90 minute as i, [1, 2] as l,"
        " {'k': 1.5} as s, 'nan'::double as n, 1 as a, 2 as a"
    )
    assert json.loads(run_query(con, sql, "json")) == [
        {
            "d": "2024-03-01",
            "i": "PT1H30M",
            "l": [1, 2],
            "s": {"k": 1.5},
            "n": None,
            "a": 1,
            "a_2": 2,
        }
    ]


def test_table_is_aligned_and_counts_rows(con: duckdb.DuckDBPyConnection) -> None:
    lines = run_query(con, SAMPLE, "table").splitlines()
    assert lines[0].split() == ["acc_id", "time", "energy_kwh", "power_kw", "connected", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[-1] == "(2 rows)"
    # numbers right-aligned under their header; NULL spelled out
    header_end = lines[0].index("energy_kwh") + len("energy_kwh")
    assert lines[2][:header_end].endswith("1.50") and lines[3][:header_end].endswith("12.00")
    assert "NULL" in lines[2]


def test_empty_results_keep_their_header(con: duckdb.DuckDBPyConnection) -> None:
    sql = "select 1 as a where false"
    assert run_query(con, sql, "csv") == "a\r\n"
    assert run_query(con, sql, "json") == "[]"
    assert run_query(con, sql, "table").splitlines()[-1] == "(0 rows)"


def test_a_sql_error_is_one_line_query_error(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(QueryError) as e:
        run_query(con, "select * from no_such_view", "table")
    assert isinstance(e.value, PowerflexError)
    assert str(e.value).startswith("Catalog Error: Table with name no_such_view does not exist")
    assert "\n" not in e.value.one_line()


def test_a_syntax_error_is_a_query_error(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(QueryError, match="syntax error"):
        run_query(con, "selec 1", "json")


def test_unknown_format_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(QueryError, match="unknown format"):
        run_query(con, "select 1", "xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("td", "iso"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(days=2), "P2D"),
        (timedelta(hours=1, seconds=4.5), "PT1H4.5S"),
        (-timedelta(seconds=1), "-PT1S"),
    ],
)
def test_iso_duration(td: timedelta, iso: str) -> None:
    assert iso_duration(td) == iso


cell = st.one_of(st.none(), st.text(), st.integers(), st.booleans())


@given(st.lists(st.lists(cell, min_size=3, max_size=3), max_size=8))
def test_csv_round_trips_through_a_csv_reader(rows: list[list[object]]) -> None:
    names = ["a", "b", "c"]
    parsed = list(csv.reader(io.StringIO(to_csv(names, rows), newline="")))
    expected = [
        [
            "" if v is None else ("true" if v is True else "false" if v is False else str(v))
            for v in r
        ]
        for r in rows
    ]
    assert parsed == [names, *expected]


@given(st.lists(st.lists(st.one_of(cell, st.floats()), min_size=2, max_size=2), max_size=8))
def test_json_is_always_valid_and_keeps_finite_values(rows: list[list[object]]) -> None:
    got = json.loads(to_json(["x", "y"], rows))
    assert len(got) == len(rows)
    for obj, row in zip(got, rows, strict=True):
        for key, value in zip(("x", "y"), row, strict=True):
            if (isinstance(value, float) and value != value) or value in (
                float("inf"),
                float("-inf"),
            ):
                assert obj[key] is None
            else:
                assert obj[key] == value


class _Flaky:
    """A connection whose first ``fails`` executes fail as a read racing a slot replace does."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, fails: int, error: type[duckdb.Error]
    ) -> None:
        self.con, self.fails, self.error, self.calls = con, fails, error, 0

    def execute(self, sql: str) -> object:
        self.calls += 1
        if self.calls <= self.fails:
            raise self.error("Failed to read file 'part-06.parquet': Invalid data")
        return self.con.execute(sql)

    def __getattr__(self, name: str) -> object:
        return getattr(self.con, name)


def test_a_read_racing_a_slot_replace_is_asked_again(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    flaky = _Flaky(con, fails=2, error=duckdb.IOException)
    assert run_query(flaky, "select 41 + 1 as n", "csv") == "n\r\n42\r\n"  # type: ignore[arg-type]
    assert flaky.calls == 3
    always = _Flaky(con, fails=99, error=duckdb.InvalidInputException)
    with pytest.raises(QueryError, match="Invalid data"):
        run_query(always, "select 1", "csv")  # type: ignore[arg-type]
    assert always.calls == 4, "bounded: three retries, then the error"


def test_an_error_in_the_sql_is_not_retried(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    flaky = _Flaky(con, fails=0, error=duckdb.IOException)
    with pytest.raises(QueryError):
        run_query(flaky, "select * from no_such_view", "csv")  # type: ignore[arg-type]
    assert flaky.calls == 1
