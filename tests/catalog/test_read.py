"""``powerflex_etl.read``: a view as a pandas DataFrame, the time filter run inside DuckDB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import powerflex_etl
from powerflex_etl.catalog import connect
from powerflex_etl.catalog.frames import (
    UnknownViewError,
    filter_sql,
    read_frame,
    relations,
    time_column,
)
from powerflex_etl.errors import ConfigError
from powerflex_etl.settings import Settings
from tests.catalog.conftest import DAY

# every view of the repository and the column read() filters it on (a new view must say)
NATURAL_TIME = {
    "ct_response": "time",
    "evse_request": "time",
    "evse_response": "time",
    "session_samples": "time",
    "rejects": "time",
    "charging_sessions": "session_start",
    "pilot_tracking": "session_start",
    "report_sessions": "session_start",
    "evse_load_15min": "interval_start",
    "site_load_15min": "interval_start",
    "phase_load_15min": "interval_start",
    "report_site_load": "interval_start",
    "ingest_runs": "window_start",
    "external_signals": "snapshot_at",
    "external_signals_history": "snapshot_at",
    "target_peak_power": "snapshot_at",
    "target_peak_power_history": "snapshot_at",
    "coverage_hourly": "hour_start",
    "evse_utilization": "day_local",
    "report_evse_utilization": "day_local",
    "monthly_peak": "month_start_local",
    "report_monthly_peak": "month_start_local",
    "tariff_price_15min": "interval_start",
    "energy_cost_15min": "interval_start",
    "load_duration": "interval_start",
    "session_cost": "session_start",
    "site_kpis": "period_start_local",
    "monthly_bill": "month_start_local",
    "report_energy_cost": "interval_start",
    "report_load_duration": "month_start_local",
    "report_monthly_bill": "month_start_local",
    "report_session_cost": "session_start",
}


@pytest.fixture(scope="module")
def con(full_lake: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    c = connect(full_lake.lake)
    try:
        yield c
    finally:
        c.close()


def test_every_view_has_the_natural_time_column_read_filters_on(
    con: duckdb.DuckDBPyConnection,
) -> None:
    found = {v: time_column(con, v) for v in relations(con)}
    for table in ("sites", "tariffs", "tariff_periods"):  # the catalog's own small tables
        assert found.pop(table) is None
    assert {v: c[0] for v, c in found.items() if c} == NATURAL_TIME
    assert all(c is not None for c in found.values())


def test_a_range_of_sessions_is_what_sql_gives_with_arrow_dtypes_and_utc(
    full_lake: Settings, con: duckdb.DuckDBPyConnection
) -> None:
    start, end = DAY + timedelta(hours=14), DAY + timedelta(hours=20)
    df = powerflex_etl.read("charging_sessions", start, end, lake=full_lake.lake)
    want = con.execute(
        "select session_id from charging_sessions where session_start >= ? and session_start < ?",
        [start, end],
    ).fetchall()
    total = con.execute("select count(*) from charging_sessions").fetchone()
    assert total is not None and 0 < len(want) < total[0]  # the range cuts the day
    assert sorted(df["session_id"]) == sorted(r[0] for r in want)
    assert all(isinstance(t, pd.ArrowDtype) for t in df.dtypes)
    assert str(df["session_start"].dtype) == "timestamp[us, tz=UTC][pyarrow]"
    assert str(df["session_start_local"].dtype) == "timestamp[us][pyarrow]"
    assert str(df["acc_id"].dtype) == "string[pyarrow]"
    assert str(df["samples"].dtype) == "int64[pyarrow]"
    assert df["session_start"].min() >= pd.Timestamp(start)
    assert df["session_start"].max() < pd.Timestamp(end)
    # the sites file says Los Angeles: the local column is the UTC one moved 7 h (PDT)
    offset = df["session_start"].dt.tz_localize(None) - df["session_start_local"]
    assert set(offset) == {pd.Timedelta(hours=7)}


def test_the_time_filter_reaches_the_parquet_scan(con: duckdb.DuckDBPyConnection) -> None:
    start, end = DAY + timedelta(hours=6), DAY + timedelta(hours=7)
    for view, col in (("ct_response", "time"), ("charging_sessions", "session_start")):
        sql, params = filter_sql(view, time_column(con, view), start, end)
        plan = str(con.execute(f"explain {sql}", params).fetchall())
        scan = plan[plan.index("READ_PARQUET") :]
        assert f"({col} >= '2021-06-02 06:00:00+00'" in scan, plan
    sql, params = filter_sql("ct_response", ("time", "TIMESTAMP WITH TIME ZONE"), start, end)
    analyzed = str(con.execute(f"explain analyze {sql}", params).fetchall())
    # one hour of the day: only the row group of the 06-12 slot file is read
    groups = re.search(r"Row Groups Scanned: (\d+) / (\d+)", analyzed)
    assert groups is not None, analyzed
    assert int(groups.group(1)) < int(groups.group(2))


def test_the_date_partitions_outside_the_range_are_not_opened(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # the range ends before the lake's day: no file of ct_response needs opening
    sql, params = filter_sql(
        "ct_response", ("time", "TIMESTAMP WITH TIME ZONE"), DAY - timedelta(days=1), DAY
    )
    assert '"date" >= ? and "date" <= ?' in sql
    assert params[2:] == [date(2021, 6, 1), date(2021, 6, 1)]
    analyzed = str(con.execute(f"explain analyze {sql}", params).fetchall())
    files = re.search(r"Scanning Files: (\d+)/(\d+)", analyzed)
    assert files is not None and files.group(1) == "0", analyzed


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    a=st.integers(min_value=-120, max_value=24 * 60 + 120),
    length=st.integers(min_value=1, max_value=24 * 60),
    as_text=st.booleans(),
    zone=st.sampled_from([UTC, timezone(timedelta(hours=-7)), None]),
)
def test_any_range_keeps_exactly_the_rows_of_a_pandas_filter(
    con: duckdb.DuckDBPyConnection, a: int, length: int, as_text: bool, zone: timezone | None
) -> None:
    whole = _whole(con, "ct_response")
    start = DAY + timedelta(minutes=a)
    end = start + timedelta(minutes=length)
    if zone is None:  # naive datetimes are UTC
        s_arg: object = start.replace(tzinfo=None)
        e_arg: object = end.replace(tzinfo=None)
    else:
        s_arg, e_arg = start.astimezone(zone), end.astimezone(zone)
    if as_text:
        s_arg, e_arg = s_arg.isoformat(), e_arg.isoformat()  # type: ignore[attr-defined]
    got = read_frame(con, "ct_response", s_arg, e_arg, ["evse_address", "time"])  # type: ignore[arg-type]
    mask = (whole["time"] >= pd.Timestamp(start)) & (whole["time"] < pd.Timestamp(end))
    want = whole.loc[mask, ["evse_address", "time"]]
    key = ["evse_address", "time"]
    assert (
        got.sort_values(key)
        .reset_index(drop=True)
        .equals(want.sort_values(key).reset_index(drop=True))
    )


_WHOLE: dict[str, pd.DataFrame] = {}


def _whole(con: duckdb.DuckDBPyConnection, view: str) -> pd.DataFrame:
    if view not in _WHOLE:
        _WHOLE[view] = read_frame(con, view)
    return _WHOLE[view]


def test_daily_and_monthly_views_keep_the_local_days_and_months_the_range_overlaps(
    con: duckdb.DuckDBPyConnection,
) -> None:
    days = sorted(set(_whole(con, "evse_utilization")["day_local"]))
    assert len(days) >= 2  # a UTC day is two Los Angeles days
    first = days[0]
    one = read_frame(con, "evse_utilization", first, first + timedelta(days=1))
    assert set(one["day_local"]) == {first}
    # a datetime past midnight keeps its whole day at the end; a date is taken as written
    late = datetime(first.year, first.month, first.day, 23, tzinfo=UTC)
    assert set(read_frame(con, "evse_utilization", first, late)["day_local"]) == {first}
    months = read_frame(con, "monthly_peak", "2021-06-15", "2021-06-16")
    assert [m.isoformat() for m in months["month_start_local"]] == ["2021-06-01"]
    assert read_frame(con, "monthly_peak", "2021-07-01", "2021-08-01").empty


def test_a_table_without_a_time_column_reads_whole_and_refuses_a_range(
    con: duckdb.DuckDBPyConnection,
) -> None:
    sites = read_frame(con, "sites")
    assert list(sites.columns) == ["acc_id", "name", "tz"] and len(sites) >= 1
    with pytest.raises(ConfigError, match="sites has no time column"):
        read_frame(con, "sites", start="2021-06-01")


def test_an_unknown_view_is_one_line_listing_the_views(full_lake: Settings) -> None:
    with pytest.raises(UnknownViewError) as e:
        powerflex_etl.read("charging_session", lake=full_lake.lake)
    line = e.value.one_line()
    assert "\n" not in line
    assert line.startswith("unknown view 'charging_session'; views: charging_sessions, ")
    assert all(v in line for v in NATURAL_TIME) and "_catalog" not in line


def test_bad_ranges_and_columns_are_config_errors(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ConfigError, match="empty range"):
        read_frame(con, "ct_response", DAY, DAY)
    with pytest.raises(ConfigError, match="not an ISO date"):
        read_frame(con, "ct_response", "yesterday")
    with pytest.raises(ConfigError, match="not an ISO date"):
        read_frame(con, "evse_utilization", "June")
    with pytest.raises(ConfigError, match="has no column nope"):
        read_frame(con, "ct_response", columns=["time", "nope"])


def test_only_one_bound_filters_on_one_side(con: duckdb.DuckDBPyConnection) -> None:
    noon = DAY + timedelta(hours=12)
    after = read_frame(con, "ct_response", start=noon, columns=["time"])
    before = read_frame(con, "ct_response", end=noon, columns=["time"])
    assert len(after) + len(before) == len(_whole(con, "ct_response"))
    assert after["time"].min() >= pd.Timestamp(noon) > before["time"].max()


def test_read_without_lake_uses_the_settings(
    full_lake: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERFLEX_LAKE", full_lake.lake)
    df = powerflex_etl.read("ingest_runs", "2021-06-02", "2021-06-03")
    assert set(df["measurement"]) == {"ct_response", "evse_request", "evse_response"}
    assert len(df) == 12  # four 6-hour windows of each measurement
