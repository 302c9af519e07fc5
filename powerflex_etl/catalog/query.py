"""Run one SQL statement on the catalog and format the result for the command line.

Three formats: ``table`` (aligned text for people), ``csv`` (RFC 4180, header then rows) and
``json`` (a list of objects; timestamps as ISO 8601 strings, decimals as numbers, NaN and
infinities as null since JSON has no such numbers).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import time as time_mod
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import duckdb

from powerflex_etl.errors import PowerflexError

Format = Literal["table", "csv", "json"]
FORMATS: tuple[str, ...] = ("table", "csv", "json")


class QueryError(PowerflexError):
    """DuckDB refused or failed the SQL; the message is DuckDB's first line."""

    hint = (
        "check the SQL; `select view_name from duckdb_views() where not internal` lists the views"
    )


def run_query(con: duckdb.DuckDBPyConnection, sql: str, fmt: Format = "table") -> str:
    """Run ``sql`` on ``con`` and return its result as text in ``fmt``.

    A statement without a result (``set ...``) gives an empty table, no CSV lines and ``[]``.
    Raises :class:`QueryError` with DuckDB's one-line message when the SQL fails.
    """
    if fmt not in FORMATS:
        raise QueryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    names, rows = _execute(con, sql)
    if fmt == "csv":
        return to_csv(names, rows)
    if fmt == "json":
        return to_json(names, rows)
    return to_table(names, rows)


# Errors about the SQL itself: asking again gives the same answer.
_SQL_ERRORS: tuple[type[duckdb.Error], ...] = (
    duckdb.ParserException,
    duckdb.CatalogException,
    duckdb.BinderException,
    duckdb.ConversionException,
    duckdb.NotImplementedException,
    duckdb.PermissionException,
    duckdb.ConstraintException,
    duckdb.OutOfRangeException,
    duckdb.InterruptException,
)
RETRY_DELAYS_S: tuple[float, ...] = (0.05, 0.25, 1.0)


def _execute(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql``; ask again when a read raced a writer's slot replace.

    DuckDB opens a Parquet file by path more than once per query, so a query that overlaps
    an ``os.replace`` of a slot file can read the old footer and the new body and fail to
    decode ("Failed to read file", "Invalid data"...). It never returns wrong rows; asking
    again reads whole files. Errors about the SQL itself are not retried.
    """
    for delay in (*RETRY_DELAYS_S, None):
        try:
            # on con itself, not a cursor: a cursor is a new session without con's TimeZone
            con.execute(sql)
            names = [d[0] for d in con.description or []]
            return names, (con.fetchall() if names else [])
        except _SQL_ERRORS as e:
            raise QueryError(_first_line(e)) from e
        except duckdb.Error as e:
            if delay is None:
                raise QueryError(_first_line(e)) from e
            time_mod.sleep(delay)
    raise AssertionError("unreachable")


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def iso_duration(td: timedelta) -> str:
    """ISO 8601 duration, e.g. ``P1DT2H3M4.5S`` (``-PT1S`` when negative)."""
    sign = "-" if td < timedelta(0) else ""
    td = abs(td)
    hours, rest = divmod(td.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = f"{seconds}.{td.microseconds:06d}".rstrip("0").rstrip(".")
    out = f"{sign}P"
    if td.days:
        out += f"{td.days}D"
    time_part = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs != "0" or not (td.days or time_part):
        time_part += f"{secs}S"
    return out + (f"T{time_part}" if time_part else "")


def jsonable(value: Any) -> Any:
    """A DuckDB value as plain JSON data (recursively for lists and structs)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def _unique(names: Sequence[str]) -> list[str]:
    # `select 1 as a, 2 as a` is valid SQL; a JSON object cannot hold both
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name}_{n}"
        out.append(candidate)
    return out


def to_json(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A JSON list with one object per row, keys in column order."""
    keys = _unique(names)
    objects = [{k: jsonable(v) for k, v in zip(keys, row, strict=True)} for row in rows]
    return json.dumps(objects, ensure_ascii=False, allow_nan=False)


def _text(value: Any) -> str:
    """One cell as text for CSV and table output (None handled by the callers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value).lower()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID | int | str):
        return str(value)
    if isinstance(value, timedelta):
        return iso_duration(value)
    return json.dumps(jsonable(value), ensure_ascii=False)


def to_csv(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV: a header line, then one line per row; NULL is an empty field."""
    if not names:
        return ""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if v is None else _text(v) for v in row])
    return buf.getvalue()


def table_float(value: float) -> str:
    """A float as a person reads it in a table: 3 decimals (3 significant digits when smaller).

    ``899.9999999999999`` -> ``900.0``, ``7.87333`` -> ``7.873``, ``0.00123456`` ->
    ``0.00123``; csv and json keep every digit.
    """
    if not math.isfinite(value):
        return str(value).lower()
    size = abs(value)
    if size and (size < 1e-6 or size >= 1e15):
        return f"{value:.3g}"
    decimals = 3 if size == 0 or size >= 0.1 else 2 - math.floor(math.log10(size))
    text = f"{value:.{decimals}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _cell(value: Any) -> str:
    """One table cell: floats rounded (:func:`table_float`), line breaks shown as escapes."""
    if isinstance(value, float):
        return table_float(value)
    return _text(value).replace("\r", "\\r").replace("\n", "\\n")


def to_table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned text: header, rule, rows (numbers right-aligned, floats rounded, NULL shown), row count."""
    if not names:
        return ""
    cells = [["NULL" if v is None else _cell(v) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [
        bool(rows)
        and all(
            isinstance(r[i], int | float | Decimal) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        for i in range(len(names))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out) + "\n"
