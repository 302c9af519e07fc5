"""A pandas face on the catalog: one view as a DataFrame, its time filter run inside DuckDB.

``powerflex_etl.read("charging_sessions", start="2024-06-01", end="2024-07-01")`` is
:func:`read_frame` on :func:`powerflex_etl.connect`. Each view is filtered on its *natural
time column*, the first of :data:`TIME_COLUMNS` it has (``time`` for the telemetry,
``session_start`` for sessions, ``interval_start`` for the 15-minute load, ...):

- a ``TIMESTAMP WITH TIME ZONE`` column keeps ``start <= column < end``, both read as UTC
  instants (a naive datetime or an ISO string without an offset is UTC, as on the CLI);
- a ``DATE`` column (a local day or month, e.g. ``evse_utilization.day_local``) compares
  calendar dates as written, without converting time zones: a day or a month is kept when
  it overlaps ``[start, end)`` (``start="2024-06-01", end="2024-07-01"`` is June).

The predicate goes into the SQL DuckDB runs, so it reaches the Parquet scan (row groups whose
statistics fall outside are skipped; for the telemetry, the ``date=`` partitions outside too):
only the rows asked for leave DuckDB. The frame has Arrow-backed dtypes (``pd.ArrowDtype``),
so ids stay strings, nulls stay nulls in every column, and UTC columns are
``timestamp[us, tz=UTC]``; ``*_local`` columns are naive local wall times.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from powerflex_etl import schemas
from powerflex_etl.catalog.sqlfiles import CatalogError, sql_ident
from powerflex_etl.errors import ConfigError
from powerflex_etl.windows import as_utc, parse_time

if TYPE_CHECKING:
    import pandas as pd

#: A view's natural time column is the first of these it has.
TIME_COLUMNS: tuple[str, ...] = (
    "time",
    "session_start",
    "interval_start",
    "window_start",
    "snapshot_at",
    "hour_start",
    "day_local",
    "period_start_local",
    "month_start_local",
)

TimeLike = datetime | date | str


class UnknownViewError(CatalogError):
    """A name that is neither a view of the catalog nor one of its tables."""

    hint = ""  # the message lists the views


def relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The views of the catalog and its ``sites`` table, by name (meta tables left out)."""
    rows = con.execute(
        "select view_name from duckdb_views() where database_name = current_database() "
        "union select table_name from duckdb_tables() where database_name = current_database() "
        "and not starts_with(table_name, '_') order by 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def time_column(con: duckdb.DuckDBPyConnection, view: str) -> tuple[str, str] | None:
    """(name, DuckDB type) of ``view``'s natural time column; None when it has none."""
    types = {str(r[0]): str(r[1]) for r in con.execute(f"describe {sql_ident(view)}").fetchall()}
    for name in TIME_COLUMNS:
        if name in types:
            return name, types[name]
    return None


def _instant(value: TimeLike, name: str) -> datetime:
    if isinstance(value, str):
        return parse_time(value, name=name)
    if isinstance(value, datetime):
        return as_utc(value)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _day(value: TimeLike, name: str, *, ceil: bool = False) -> date:
    """The calendar date as written; with ``ceil``, a time after midnight counts its day."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"{name}: {value!r} is not an ISO date or datetime",
                hint="e.g. 2024-06-01 or 2024-06-01T06:00",
            )
    if isinstance(value, datetime):
        past_midnight = value.time() != datetime.min.time()
        return value.date() + timedelta(days=1) if ceil and past_midnight else value.date()
    return value


def filter_sql(
    view: str,
    column: tuple[str, str] | None,
    start: TimeLike | None,
    end: TimeLike | None,
    columns: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """The SELECT that reads ``view`` between ``start`` and ``end``, and its parameters (pure).

    Only names of the catalog's views and columns reach the SQL, quoted; the times are
    parameters. Raises :class:`ConfigError` when a range is asked of a view without a time
    column, or ``end`` is not after ``start``.
    """
    picked = ", ".join(sql_ident(c) for c in columns) if columns else "*"
    sql = f"select {picked} from {sql_ident(view)}"
    if start is None and end is None:
        return sql, []
    if column is None:
        raise ConfigError(f"view {view} has no time column; read it without start and end")
    name, typ = column
    col = sql_ident(name)
    where: list[str] = []
    params: list[Any] = []
    if typ == "DATE":
        lo = _day(start, "start") if start is not None else None
        hi = _day(end, "end", ceil=True) if end is not None else None
        if lo is not None and name.startswith("month"):
            lo = lo.replace(day=1)  # the month start <= start: the month overlaps the range
        bounds: tuple[Any, Any] = (lo, hi)
    else:
        bounds = (
            _instant(start, "start") if start is not None else None,
            _instant(end, "end") if end is not None else None,
        )
    lo_b, hi_b = bounds
    if lo_b is not None and hi_b is not None and hi_b <= lo_b:
        raise ConfigError(f"empty range: end {end} is not after start {start}")
    if lo_b is not None:
        where.append(f"{col} >= ?")
        params.append(lo_b)
    if hi_b is not None:
        where.append(f"{col} < ?")
        params.append(hi_b)
    if view in schemas.MEASUREMENTS and name == schemas.TIME:
        # the telemetry's date= partition is the UTC date of time: DuckDB skips other days'
        # files without opening them (it cannot infer that from the time filter itself)
        if isinstance(lo_b, datetime):
            where.append('"date" >= ?')
            params.append(lo_b.date())
        if isinstance(hi_b, datetime):
            where.append('"date" <= ?')
            params.append((hi_b - timedelta(microseconds=1)).date())
    return f"{sql} where {' and '.join(where)}", params


def read_frame(
    con: duckdb.DuckDBPyConnection,
    view: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``view`` (between ``start`` and ``end`` when given) as a pandas DataFrame.

    Rows come in no particular order. Sets ``con``'s TimeZone to UTC (as :func:`.connect`
    does), so UTC columns are ``timestamp[us, tz=UTC]``. Raises :class:`UnknownViewError`
    naming the views for an unknown ``view``, :class:`ConfigError` for a bad range or an
    unknown column.
    """
    import pandas as pd

    known = relations(con)
    if view not in known:
        raise UnknownViewError(f"unknown view {view!r}; views: {', '.join(known)}")
    if columns:
        have = {str(r[0]) for r in con.execute(f"describe {sql_ident(view)}").fetchall()}
        missing = [c for c in columns if c not in have]
        if missing:
            raise ConfigError(
                f"view {view} has no column {', '.join(missing)}; it has {', '.join(sorted(have))}"
            )
    sql, params = filter_sql(view, time_column(con, view), start, end, columns)
    # DuckDB exports timestamptz as timestamp[us, tz=<the session's TimeZone>]
    con.execute("set TimeZone = 'UTC'")
    table = con.sql(sql, params=params).to_arrow_table()
    return table.to_pandas(types_mapper=pd.ArrowDtype)
