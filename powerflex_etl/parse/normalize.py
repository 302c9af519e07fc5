"""Pure: a parsed answer -> (clean lake table, rejects table) for one window. No I/O.

CONTRACT §2 "Which rows, in which order", step by step:

1. rows (and the parser's bad rows) whose time falls outside ``[window.start, window.end)``
   are dropped: they belong to another window;
2. optional client-side scope (``acn_id``/``acc_id``/``acs_id``) drops table rows;
3. rows that cannot be trusted become rejects, with the parser's bad rows of the window;
4. units are converted and columns renamed per :mod:`powerflex_etl.schemas`;
5. of two rows with the same (``evse_address``, ``time``) the one delivered last wins;
6. the result is cast to the lake schema, stamped with lineage, sorted by the key.

Every count adds up (see :class:`NormalizeStats`). Detection is vectorised (boolean masks
per check); Python only touches the few rejected rows, to write their reason and raw JSON.
The answer stays as the parser typed it (:mod:`.parsed`) until the last step: times as
int64 µs, text dictionary-encoded, bad rows as :class:`BadRow`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl import schemas
from powerflex_etl.errors import ConfigError
from powerflex_etl.parse.parsed import BadRow, ParsedAnswer, time_column
from powerflex_etl.schemas import (
    CHARGING_STATES,
    INGESTED_AT,
    REJECTS_SCHEMA,
    RUN_ID,
    TIME,
    TIME_TYPE,
)
from powerflex_etl.windows import Window, as_utc, to_us

# ids end up in file names and SQL-adjacent places downstream: refuse anything that could
# climb out of a directory or break a line (C0/C1 controls, DEL, separators, "..")
_UNSAFE_ID = r"[\x{00}-\x{1f}\x{7f}-\x{9f}/\\]|\.\."
MAX_ID_LENGTH = 256
# below ~100 VA (idle or trickling chargers) the ratio is noise, not a unit signal
UNIT_CHECK_MIN_VA = 100.0
# a ratio within this factor either way counts as consistent
UNIT_CHECK_TOLERANCE = 10.0


@dataclass(frozen=True)
class Scope:
    """Optional client-side scoping: keep only rows whose ids are listed (empty = all)."""

    acn_id: tuple[str, ...] = ()
    acc_id: tuple[str, ...] = ()
    acs_id: tuple[str, ...] = ()


@dataclass
class NormalizeStats:
    """What happened to the delivered rows of one answer.

    Guaranteed identity (every delivered row is counted exactly once)::

        rows_in == outside_window + out_of_scope + rejected + duplicates + rows_out

    ``rows_in`` counts table rows plus the parser's bad rows; ``rejected`` counts rejected
    rows before rejects are deduplicated on ``reject_id`` (``rejects_out`` is what remains).
    """

    rows_in: int = 0
    outside_window: int = 0
    out_of_scope: int = 0
    rejected: int = 0
    duplicates: int = 0
    rows_out: int = 0
    # None when the check could not run (no rows with power, voltage and current)
    unit_check: str | None = None
    unit_check_ok: bool = True
    # rows of the rejects table: ``rejected`` minus the same raw row delivered again
    rejects_out: int = 0


@dataclass
class NormalizeResult:
    # schemas.dictionary_schema(schemas.arrow_schema(measurement, extra)) exactly, sorted by
    # (evse_address, time)
    table: pa.Table
    rejects: pa.Table  # schemas.REJECTS_SCHEMA
    stats: NormalizeStats = field(default_factory=NormalizeStats)


def reject_id(measurement: str, raw: str) -> str:
    """The stable id of a reject: 32 hex chars of sha256 over (measurement, raw row)."""
    # NUL never occurs in a measurement name, so the pair is encoded unambiguously
    digest = hashlib.sha256(f"{measurement}\x00{raw}".encode())
    return digest.hexdigest()[:32]


def normalize(
    parsed: ParsedAnswer,
    window: Window,
    *,
    run_id: str,
    ingested_at: datetime,
    power_unit: str = "kW",
    scope: Scope | None = None,
) -> NormalizeResult:
    """Window filter, validation -> rejects, unit conversion, dedup (last delivered wins).

    Returns the lake table (exactly ``schemas.arrow_schema(measurement, extras)`` with text
    dictionary-encoded, :func:`schemas.dictionary_schema`; sorted by
    (evse_address, time)), the rejects table (``schemas.REJECTS_SCHEMA``) and the counts.
    Raises :class:`ConfigError` for an unknown measurement or power unit.
    """
    m = parsed.measurement
    if m not in schemas.SPECS:
        raise ConfigError(
            f"normalize: unknown measurement {m!r}",
            hint="use one of " + ", ".join(schemas.MEASUREMENTS),
        )
    try:
        pscale = schemas.power_scale(power_unit)
    except KeyError:
        raise ConfigError(
            f"{m}: unknown power unit {power_unit!r}", hint="set POWERFLEX_POWER_UNIT=kW|W|mW"
        )
    stats = NormalizeStats(rows_in=parsed.n_rows)
    table, t_us = parsed.fields, parsed.time_us
    start_us, end_us = to_us(window.start), to_us(window.end)

    # 1. window, 2. scope
    in_window = (t_us >= start_us) & (t_us < end_us)
    in_scope = _scope_mask(table, scope)
    keep = in_window & in_scope
    bad_rows = [b for b in parsed.bad_rows if b.time_us is None or start_us <= b.time_us < end_us]
    stats.outside_window = int((~in_window).sum()) + len(parsed.bad_rows) - len(bad_rows)
    stats.out_of_scope = int((in_window & ~in_scope).sum())
    if not keep.all():
        table, t_us = table.filter(pa.array(keep)), t_us[keep]

    # 3. validation
    reasons = _validate(table, m)
    failed = np.zeros(table.num_rows, dtype=bool)
    failed[list(reasons)] = True
    stats.rejected = len(bad_rows) + len(reasons)
    entries = list(bad_rows)
    if reasons:
        idx = np.fromiter(sorted(reasons), dtype=np.int64, count=len(reasons))
        raws = _raw_rows(table, idx, t_us)
        entries += [
            BadRow(reasons[int(i)], raw, int(t_us[i])) for i, raw in zip(idx, raws, strict=True)
        ]
        table, t_us = table.filter(pa.array(~failed)), t_us[~failed]
    rejects = _rejects_table(m, entries, window, run_id, ingested_at)
    stats.rejects_out = rejects.num_rows

    # 5. dedup (before conversion: fewer rows to convert), sorted by the key
    # with no evse_address column every row was rejected above, so nothing is left
    order = _last_delivered_sorted(table["evse_address"], t_us) if len(t_us) else t_us
    stats.duplicates = len(t_us) - len(order)
    if not _is_identity(order, len(t_us)):
        table, t_us = table.take(pa.array(order)), t_us[order]

    # 4. + 6. convert, rename, cast, lineage
    out = _to_lake(table, t_us, m, pscale, run_id, ingested_at)
    stats.rows_out = out.num_rows
    stats.unit_check, stats.unit_check_ok = check_power_unit(out, power_unit)
    return NormalizeResult(out, rejects, stats)


# --- helpers -------------------------------------------------------------------------


def _is_dict(col: pa.ChunkedArray | pa.Array) -> bool:
    return bool(pa.types.is_dictionary(col.type))


def _per_value(
    col: pa.ChunkedArray | pa.Array,
    check: Callable[[pa.Array], pa.Array],
    null: bool = False,
) -> np.ndarray:
    """``check`` on a dictionary column's distinct values, spread back to its rows.

    Null rows get ``null``; a null result of ``check`` counts as False.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lookup = np.append(_bools(check(arr.dictionary)), null)
    # -1 picks the appended entry: the answer for null rows
    return lookup[pc.fill_null(arr.indices, -1).to_numpy()]


def _is_in(values: Sequence[str]) -> Callable[[pa.Array], pa.Array]:
    value_set = pa.array(list(values), pa.string())

    def check(arr: pa.Array) -> pa.Array:
        return pc.is_in(arr, value_set=value_set)

    return check


def _is_unsafe(values: pa.Array) -> pa.Array:
    return pc.or_(
        pc.match_substring_regex(values, _UNSAFE_ID),
        pc.greater(pc.utf8_length(values), MAX_ID_LENGTH),
    )


def _bools(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow result as numpy, null counted as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _scope_mask(table: pa.Table, scope: Scope | None) -> np.ndarray:
    keep = np.ones(table.num_rows, dtype=bool)
    if scope is None:
        return keep
    for name, allowed in (
        ("acn_id", scope.acn_id),
        ("acc_id", scope.acc_id),
        ("acs_id", scope.acs_id),
    ):
        if not allowed:
            continue
        if name not in table.column_names:
            return np.zeros(table.num_rows, dtype=bool)
        keep &= _per_value(table[name], _is_in(allowed))
    return keep


# --- validation --------------------------------------------------------------------


def _validate(table: pa.Table, measurement: str) -> dict[int, str]:
    """Row index -> reason of its first failing check, for the rows that fail one.

    Checks run in CONTRACT order; each is one vectorised mask, so only failing rows
    (normally none) cost Python work.
    """
    n = table.num_rows
    specs = schemas.SPECS[measurement]
    names = set(table.column_names)
    known = {s.source for s in specs}
    extras = sorted(names - known - {TIME})
    reasons: dict[int, str] = {}
    if n == 0:
        return reasons

    def record(mask: np.ndarray, col: str | None, describe: Callable[[Any], str]) -> None:
        for i in np.flatnonzero(mask).tolist():
            if i not in reasons:
                value = table[col][i].as_py() if col is not None else None
                reasons[i] = describe(value)

    ev = table["evse_address"] if "evse_address" in names else None
    if ev is None:
        record(np.ones(n, dtype=bool), None, lambda _v: "missing evse_address")
    else:
        missing = _per_value(ev, lambda v: pc.equal(v, ""), null=True)
        record(missing, None, lambda _v: "missing evse_address")
    for s in specs:
        if s.non_negative and s.source in names:
            record(
                _bools(pc.less(table[s.source], 0.0)),
                s.source,
                _reason("negative {name}: {value!r}", s.source),
            )
    if "charging_state" in names:
        documented = _is_in(CHARGING_STATES)
        bad = _per_value(table["charging_state"], lambda v: pc.invert(documented(v)))
        record(bad, "charging_state", _reason("unknown {name}: {shown}", "charging_state"))
    for s in specs:
        if s.kind == "bool" and s.source in names:
            col = table[s.source]
            bad = pc.and_(
                pc.is_valid(col), pc.invert(pc.is_in(col, value_set=pa.array([0.0, 1.0])))
            )
            record(_bools(bad), s.source, _reason("{name} not 0/1: {value!r}", s.source))
    floats = [
        c
        for c in [s.source for s in specs] + extras
        if c in names and table[c].type == pa.float64()
    ]
    for c in floats:
        record(
            _bools(pc.invert(pc.is_finite(table[c]))), c, _reason("non-finite {name}: {value!r}", c)
        )
    strings = [c for c in [s.source for s in specs] + extras if c in names and _is_dict(table[c])]
    for c in strings:
        record(_per_value(table[c], _is_unsafe), c, _reason("unsafe {name}: {shown}", c))
    return reasons


def _reason(template: str, name: str) -> Callable[[Any], str]:
    """A one-line reason naming the field; ``shown`` is the value made safe to print."""

    def describe(value: Any) -> str:
        shown = _show(value) if isinstance(value, str) else repr(value)
        return template.format(name=name, value=value, shown=shown)

    return describe


def _show(value: str) -> str:
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters ({len(value)})"
    return repr(value if len(value) <= 60 else value[:60] + "...")


# --- rejects -----------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    # raw must stay valid JSON: NaN/Infinity are not, so they are spelled as strings
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def _raw_rows(table: pa.Table, idx: np.ndarray, t_us: np.ndarray) -> list[str]:
    """Rows ``idx`` each as one JSON object: ``time`` (epoch s), then the fields in order."""
    # take() on a table without columns gives no rows: such rows are only their time
    rows = table.take(pa.array(idx)).to_pylist() if table.num_columns else [{} for _ in idx]
    out = []
    for row, i in zip(rows, idx.tolist(), strict=True):
        obj = {TIME: int(t_us[i]) / 1e6, **{k: _json_value(v) for k, v in row.items()}}
        out.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    return out


def _rejects_table(
    measurement: str,
    entries: Sequence[BadRow],
    window: Window,
    run_id: str,
    ingested_at: datetime,
) -> pa.Table:
    seen: dict[str, BadRow] = {}
    for bad in entries:
        seen.setdefault(reject_id(measurement, bad.raw), bad)
    n = len(seen)
    values = list(seen.values())
    arrays = [
        pa.array([measurement] * n, pa.string()),
        pa.array(list(seen), pa.string()),
        pa.array([b.reason for b in values], pa.string()),
        pa.array([b.raw for b in values], pa.string()),
        pa.array([b.time_us for b in values], pa.int64()).cast(TIME_TYPE),
        pa.repeat(pa.scalar(as_utc(window.start), TIME_TYPE), n),
        pa.repeat(pa.scalar(as_utc(window.end), TIME_TYPE), n),
        pa.repeat(pa.scalar(as_utc(ingested_at), TIME_TYPE), n),
        pa.repeat(pa.scalar(run_id, pa.string()), n),
    ]
    return pa.Table.from_arrays(arrays, schema=REJECTS_SCHEMA)


# --- dedup -------------------------------------------------------------------------


def _is_identity(order: np.ndarray, n: int) -> bool:
    """Whether ``order`` is ``0..n-1``: the rows came sorted and without duplicates.

    Answers that come one series per EVSE (``GROUP BY`` tags, as the simulator sends) are
    in key order already; then taking every row in place would only copy the table.
    """
    return len(order) == n and (n < 2 or bool((order[1:] > order[:-1]).all()))


def _last_delivered_sorted(evse: pa.ChunkedArray | pa.Array, t_us: np.ndarray) -> np.ndarray:
    """Row indices sorted by (evse_address, time), keeping the last delivered of each key.

    ``evse`` is dictionary-encoded (as the parser types ids) and has no nulls (rejected).
    """
    n = len(t_us)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # sorting strings is slow: rank the few distinct addresses, sort rows by rank
    key = schemas.text_ranks(evse)
    # two stable passes (time, then rank) sort by (rank, time) and keep delivery order
    # within a key; answers come nearly time-ordered, so the first pass is almost free and
    # the second is a radix sort on 16-bit ranks
    order = np.argsort(t_us, kind="stable")
    order = order[np.argsort(key[order], kind="stable")]
    k, t = key[order], t_us[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = (k[1:] != k[:-1]) | (t[1:] != t[:-1])
    return order[last]


# --- conversion --------------------------------------------------------------------


def _scaled(col: pa.ChunkedArray, scale: float) -> pa.ChunkedArray:
    if scale == 1.0:
        return col
    inverse = 1.0 / scale
    if scale < 1.0 and inverse == round(inverse):
        # dividing by the exact power of ten gives the correctly rounded result
        # (12345 mWh -> 0.012345 kWh exactly), multiplying by 1e-6 need not
        return pc.divide(col, inverse)
    return pc.multiply(col, scale)


def _extra_names(source: list[str], measurement: str) -> dict[str, str]:
    """Unknown field -> its lake column name, prefixed when it would shadow a lake column."""
    taken = set(schemas.arrow_schema(measurement).names)
    out: dict[str, str] = {}
    for name in source:
        new = name
        while new in taken:
            new = "extra_" + new
        taken.add(new)
        out[name] = new
    return out


def _to_lake(
    table: pa.Table,
    t_us: np.ndarray,
    measurement: str,
    pscale: float,
    run_id: str,
    ingested_at: datetime,
) -> pa.Table:
    """The lake's types, made here once: time viewed as a timestamp, text left dictionary-encoded.

    Text stays as the parser typed it (:data:`schemas.TEXT_TYPE`): casting ten id columns to
    plain strings only for the Parquet writer to hash them back into dictionaries cost ~100
    ms per 233k-point window. Readers of the files see plain strings (``lake/parquet.py``).
    """
    n = len(t_us)
    names = set(table.column_names)
    specs = schemas.SPECS[measurement]
    cols: dict[str, pa.ChunkedArray | pa.Array] = {TIME: time_column(t_us)}
    for s in specs:
        if s.source not in names:
            cols[s.column] = pa.nulls(n, s.arrow_type)
        elif s.kind == "bool":
            cols[s.column] = pc.equal(table[s.source], 1.0)
        elif s.kind == "number":
            scale = pscale if s.source == "power" else s.scale
            cols[s.column] = _scaled(table[s.source], scale)
        else:
            cols[s.column] = table[s.source]
    known = {s.source for s in specs} | {TIME}
    renamed = _extra_names(sorted(names - known), measurement)
    extra_fields = []
    for src, dst in sorted(renamed.items(), key=lambda kv: kv[1]):
        cols[dst] = table[src]
        extra_fields.append(pa.field(dst, schemas.plain_type(cols[dst].type)))
    schema = schemas.dictionary_schema(schemas.arrow_schema(measurement, pa.schema(extra_fields)))
    cols[INGESTED_AT] = pa.repeat(pa.scalar(as_utc(ingested_at), TIME_TYPE), n)
    cols[RUN_ID] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([run_id], pa.string())
    )
    arrays = [cols[f.name] for f in schema]
    # every column already has its lake type; the cast only asserts it (safe, never lossy)
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)


# --- power unit check --------------------------------------------------------------


def check_power_unit(table: pa.Table, power_unit: str) -> tuple[str | None, bool]:
    """Compare ``power_kw`` with ``voltage_v * current_actual_a / 1000`` on a lake table.

    Returns (message, ok): message is None when no row has power, voltage and a current
    worth comparing; ok is False when the median ratio is off by more than
    ``UNIT_CHECK_TOLERANCE`` either way, which means ``POWERFLEX_POWER_UNIT`` is wrong.
    """
    need = ("power_kw", "voltage_v", "current_actual_a")
    if not all(c in table.column_names for c in need):
        return None, True
    p, v, i = (np.asarray(table[c].to_numpy(zero_copy_only=False), dtype=np.float64) for c in need)
    with np.errstate(over="ignore", invalid="ignore"):
        # overflow to inf (or nan from nulls) just leaves the row out below
        va = v * i
    use = np.isfinite(p) & np.isfinite(va) & (va > UNIT_CHECK_MIN_VA)
    if not use.any():
        return None, True
    ratio = float(np.median(p[use] / (va[use] / 1000.0)))
    count = int(use.sum())
    if 1.0 / UNIT_CHECK_TOLERANCE <= ratio <= UNIT_CHECK_TOLERANCE:
        return f"power_kw consistent with V*I (median ratio {ratio:.2f} over {count} rows)", True
    return _unit_warning(ratio, count, power_unit), False


def _unit_warning(ratio: float, count: int, power_unit: str) -> str:
    current = schemas.power_scale(power_unit)
    if ratio > 0:
        # the scale that would have made the ratio 1, snapped to the nearest known unit
        wanted = math.log10(current / ratio)
        suggest = min(
            ("kW", "W", "mW"), key=lambda u: abs(math.log10(schemas.power_scale(u)) - wanted)
        )
    else:
        suggest = power_unit
    what = f"{ratio:.3g}x" if ratio > 0 else f"{ratio:.3g} (not positive)"
    if suggest != power_unit:
        todo = f"the API's power looks like {suggest}: set POWERFLEX_POWER_UNIT={suggest} (now {power_unit})"
    else:
        todo = f"check POWERFLEX_POWER_UNIT=kW|W|mW (now {power_unit})"
    return f"power_kw is {what} voltage_v*current_actual_a/1000 (median over {count} rows); {todo}"
