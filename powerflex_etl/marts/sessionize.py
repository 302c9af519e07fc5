"""Pure: ct_response samples -> the samples of each plug-in session, in two vectorised passes.

No SQL window sort over the raw telemetry: what keeps the marts' upkeep a small part of an
ingest. The rules (docs/analytics.md "How a session is cut"):

- a sample is *plugged* by its charging_state (UNPLUGGED or not); without one, by
  evse_response's ``connected`` in the same minute; without that, by energy or current;
- it is *drawing* at >= 1 A (or >= 0.2 kW without a current reading);
- a lone plugged sample between two unplugged ones, with no energy and not drawing, is noise;
- a session starts at a plugged sample that follows an unplugged one (or none), or where the
  meter drops by more than 0.01 kWh within a plug-in (a new vehicle); it ends at the
  plug-in's last sample;
- a sample counts for the time until the next one, capped at three times the EVSE's median
  sample period in that 6-hour slot, so telemetry gaps count as nothing.

Pass 1 (:func:`slot_pass`) reads one slot file's rows (sorted by evse_address, time, as the
lake writes them) and keeps only what pass 2 can need: plugged samples, their two
neighbours, and each EVSE's first and last sample of the slot; it also measures the slot per
EVSE (:data:`SLOT_SCHEMA`). Pass 2 (:func:`sessionize`) runs the rules over the kept rows of
consecutive slots. Every plugged sample's true neighbours are kept rows, so pass 2 over the
kept rows gives exactly what it would give over all rows.

Every figure of a sample depends only on its neighbours within its plug-in, its own minute
and its own slot: recomputing a stretch of slots bounded by unplugged samples gives exactly
what a recompute of everything gives there (``regions.py``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.schemas import DERIVED_SCHEMAS

US = 1_000_000
MINUTE_US = 60 * US
DRAWING_A = 1.0  # below it is sensor noise (real READY samples show 0.4 A)
DRAWING_KW = 0.2  # the same without a current reading
METER_DROP_KWH = 0.01  # a drop this large within a plug-in is a new vehicle
GAP_CAP = 3.0  # a sample counts at most this many median periods

#: Changes whenever the rules here change what a sample gets: the marts are then rebuilt.
RULES_VERSION = "sessionize-1"

ID_COLUMNS: tuple[str, ...] = ("acn_id", "acc_id", "acg_id", "acs_id", "space_number")
LABEL_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, "phases", "charging_state")
NUMBER_COLUMNS: tuple[str, ...] = (
    "energy_delivered_kwh",
    "current_actual_a",
    "pilot_actual_a",
    "power_kw",
)
#: The ct_response columns pass 1 reads.
READ_COLUMNS: tuple[str, ...] = (
    "evse_address",
    "time",
    *LABEL_COLUMNS,
    *NUMBER_COLUMNS,
    "voltage_v",
)
TIME_TYPE = pa.timestamp("us", tz="UTC")

#: The columns of ``session_samples`` (the derived table and the view over it).
SAMPLE_SCHEMA = DERIVED_SCHEMAS["session_samples"]
#: Per EVSE and slot: samples, extent, median sample period, first/last surely unplugged sample.
SLOT_SCHEMA = DERIVED_SCHEMAS["slot_figures"]

# what pass 1 hands pass 2: the kept rows, power already completed, with plugged and median
KEPT_SCHEMA = pa.schema(
    [
        ("evse_address", pa.string()),
        ("time", TIME_TYPE),
        *[(c, pa.string()) for c in LABEL_COLUMNS],
        *[(c, pa.float64()) for c in NUMBER_COLUMNS],
        # null: no charging_state; evse_response's connected (or energy, current) decides
        ("plugged", pa.bool_()),
        ("median_period_s", pa.float64()),
    ]
)

_BIG = np.iinfo(np.int64).max
_SMALL = np.iinfo(np.int64).min


def _floats(t: pa.Table, name: str) -> np.ndarray:
    """A number column as float64 with NaN for null (all NaN when absent)."""
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    col = t[name]
    if col.type != pa.float64():
        col = col.cast(pa.float64())
    if col.null_count:
        col = pc.fill_null(col, np.nan)
    return np.asarray(col.to_numpy(), dtype=np.float64)


def _labels(t: pa.Table, name: str) -> pa.ChunkedArray:
    """A label column as stored (string or dictionary); all null when absent."""
    if name not in t.column_names:
        return pa.chunked_array([pa.nulls(t.num_rows, pa.string())])
    return t[name]


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return col.cast(pa.string()) if col.type != pa.string() else col


def _nullable(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=np.isnan(values), type=pa.float64())


def _times(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, type=pa.int64(), mask=missing).cast(TIME_TYPE)


def _shift_prev(a: np.ndarray, fill: object) -> np.ndarray:
    out = np.empty_like(a)
    if len(a):
        out[0] = fill
        out[1:] = a[:-1]
    return out


def _shift_next(a: np.ndarray, fill: object) -> np.ndarray:
    out = np.empty_like(a)
    if len(a):
        out[-1] = fill
        out[:-1] = a[1:]
    return out


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, list[str | None]]:
    """Integer codes of a label column (equal labels, equal codes) and the label of each code."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if isinstance(arr, pa.ChunkedArray):  # dictionary chunks with different dictionaries
        arr = pa.table({"c": col}).unify_dictionaries()["c"].combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    labels = [None if v is None else str(v) for v in arr.dictionary.to_pylist()]
    codes = np.asarray(pc.fill_null(arr.indices, len(labels)).to_numpy(), dtype=np.int64)
    return codes, [*labels, None]


def connected_minutes(response: pa.Table) -> dict[tuple[str, int], bool]:
    """evse_response's latest ``connected`` reading per (evse_address, minute)."""
    r = response.filter(pc.is_valid(response["connected"])) if response.num_rows else response
    if r.num_rows == 0:
        return {}
    r = r.sort_by([("time", "ascending"), ("connected", "ascending")])
    out: dict[tuple[str, int], bool] = {}
    minutes = (r["time"].cast(pa.int64()).to_numpy() // MINUTE_US).tolist()
    for evse, minute, c in zip(
        _plain(r["evse_address"]).to_pylist(), minutes, r["connected"].to_pylist(), strict=True
    ):
        out[(evse, minute)] = c  # the last reading of the minute wins (arg_max(connected, time))
    return out


def _states(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(plugged by its charging_state, whether the row has one) for every row."""
    codes, labels = _codes(_labels(t, "charging_state"))
    by_code = np.array([label != "UNPLUGGED" for label in labels], dtype=bool)
    return by_code[codes], codes != len(labels) - 1


def _fallback(energy: np.ndarray, drawing: np.ndarray) -> np.ndarray:
    """Plugged, for a sample with neither a charging_state nor evse_response's ``connected``."""
    return np.where(np.isnan(energy), False, energy > 0) | drawing


def _drawing(cur: np.ndarray, power: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(
            np.isnan(cur), np.where(np.isnan(power), False, power >= DRAWING_KW), cur >= DRAWING_A
        )


def slot_pass(rows: pa.Table, slot_start_us: int) -> tuple[pa.Table, pa.Table]:
    """Pass 1 over one slot file's rows, sorted by (evse_address, time): (kept rows, figures).

    Kept: every sample that is or may be plugged (no charging_state: pass 2 decides), its
    two neighbours, and each EVSE's first and last sample of the slot. Figures: one row per
    EVSE (:data:`SLOT_SCHEMA`); its unplugged bounds count only samples whose own
    charging_state says UNPLUGGED, which nothing else can overturn.
    """
    n = rows.num_rows
    if n == 0:
        return KEPT_SCHEMA.empty_table(), SLOT_SCHEMA.empty_table()
    t = rows["time"].cast(pa.int64()).to_numpy()
    ecodes, elabels = _codes(_labels(rows, "evse_address"))
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = ecodes[1:] == ecodes[:-1]
    starts = np.flatnonzero(~same_prev)
    if np.any(same_prev[1:] & (t[1:] < t[:-1])) or len(starts) != len(np.unique(ecodes)):
        raise ValueError("slot rows must be sorted by (evse_address, time)")
    same_next = _shift_next(same_prev, False)
    ends = np.append(starts[1:], n)

    by_state, has_state = _states(rows)
    maybe_plugged = by_state | ~has_state
    surely_unplugged = ~by_state & has_state

    # per EVSE run of the slot: median of the periods between its samples, extent, unplugged ends
    periods = (t[1:] - t[:-1]) / US
    medians = np.full(len(starts), np.nan)
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if e - s > 1:
            medians[i] = float(np.median(periods[s : e - 1]))
    first_unpl = np.minimum.reduceat(np.where(surely_unplugged, t, _BIG), starts)
    last_unpl = np.maximum.reduceat(np.where(surely_unplugged, t, _SMALL), starts)
    figures = pa.Table.from_arrays(
        [
            pa.array([elabels[c] for c in ecodes[starts].tolist()], pa.string()),
            _times(np.full(len(starts), slot_start_us)),
            pa.array(ends - starts, pa.int64()),
            _times(t[starts]),
            _times(t[ends - 1]),
            _nullable(medians),
            _times(np.where(first_unpl == _BIG, 0, first_unpl), first_unpl == _BIG),
            _times(np.where(last_unpl == _SMALL, 0, last_unpl), last_unpl == _SMALL),
        ],
        schema=SLOT_SCHEMA,
    )

    keep = maybe_plugged.copy()
    keep |= _shift_prev(maybe_plugged, False) & same_prev
    keep |= _shift_next(maybe_plugged, False) & same_next
    keep |= ~same_prev | ~same_next
    idx = np.flatnonzero(keep)
    take = pa.array(idx)
    run_of = np.repeat(np.arange(len(starts)), ends - starts)
    cur = _floats(rows, "current_actual_a")[idx]
    power = _floats(rows, "power_kw")[idx]
    missing = np.isnan(power)
    if missing.any():
        power = np.where(missing, _floats(rows, "voltage_v")[idx] * cur / 1000, power)
    cols: list[pa.Array | pa.ChunkedArray] = [
        _plain(rows["evse_address"].take(take)),
        _times(t[idx]),
        *[_plain(_labels(rows, c).take(take)) for c in LABEL_COLUMNS],
        _nullable(_floats(rows, "energy_delivered_kwh")[idx]),
        _nullable(cur),
        _nullable(_floats(rows, "pilot_actual_a")[idx]),
        _nullable(power),
        pa.array(by_state[idx], mask=~has_state[idx]),
        _nullable(medians[run_of[idx]]),
    ]
    return pa.Table.from_arrays(cols, schema=KEPT_SCHEMA), figures


def undecided_minutes(kept: pa.Table) -> list[tuple[str, int]]:
    """(evse_address, minute) of the kept rows without a charging_state: what to look up."""
    if kept.num_rows == 0 or kept["plugged"].null_count == 0:
        return []
    rows = kept.filter(pc.is_null(kept["plugged"]))
    minutes = (rows["time"].cast(pa.int64()).to_numpy() // MINUTE_US).tolist()
    return sorted(set(zip(_plain(rows["evse_address"]).to_pylist(), minutes, strict=True)))


def sessionize(kept: pa.Table, connected: dict[tuple[str, int], bool] | None = None) -> pa.Table:
    """Pass 2: the samples inside sessions from the kept rows of consecutive slots.

    ``kept`` is :func:`slot_pass` output of the slots of a stretch (any order of rows);
    ``connected`` (:func:`connected_minutes`) decides rows without a charging_state. Returns
    :data:`SAMPLE_SCHEMA` rows sorted by (evse_address, time).
    """
    n = kept.num_rows
    if n == 0:
        return SAMPLE_SCHEMA.empty_table()
    t0 = kept["time"].cast(pa.int64()).to_numpy()
    codes0, labels = _codes(kept["evse_address"])
    # label order, so the result is sorted by evse_address like the lake's files
    rank_of = np.empty(len(labels), dtype=np.int64)
    rank_of[
        np.argsort(
            np.array([x if x is not None else "" for x in labels], dtype=object), kind="stable"
        )
    ] = np.arange(len(labels))
    key = rank_of[codes0]
    order = np.lexsort((t0, key))
    t = t0[order]
    k = key[order]

    energy = _floats(kept, "energy_delivered_kwh")[order]
    cur = _floats(kept, "current_actual_a")[order]
    power = _floats(kept, "power_kw")[order]
    median = _floats(kept, "median_period_s")[order]
    drawing = _drawing(cur, power)
    plugged_col = kept["plugged"]
    plugged = np.asarray(
        pc.fill_null(plugged_col, False).to_numpy(zero_copy_only=False), dtype=bool
    )[order]
    if plugged_col.null_count:
        undecided = np.asarray(pc.is_null(plugged_col).to_numpy(zero_copy_only=False), dtype=bool)[
            order
        ]
        rows = np.flatnonzero(undecided)
        decided = _fallback(energy[rows], drawing[rows])
        if connected:
            names = [labels[c] for c in codes0[order[rows]].tolist()]
            minutes = (t[rows] // MINUTE_US).tolist()
            for i, (name, minute) in enumerate(zip(names, minutes, strict=True)):
                found = connected.get((name, minute))  # type: ignore[arg-type]
                if found is not None:
                    decided[i] = found
        plugged[rows] = decided

    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = k[1:] == k[:-1]
    same_next = _shift_next(same_prev, False)
    prev_plugged = _shift_prev(plugged, False) & same_prev
    next_plugged = _shift_next(plugged, False) & same_next
    no_energy = np.where(np.isnan(energy), True, energy == 0)
    noise = plugged & same_prev & same_next & ~prev_plugged & ~next_plugged & no_energy & ~drawing
    in_session = plugged & ~noise

    # the meter's previous reading within the plug-in (a plug-in begins at an unplugged sample)
    idx = np.arange(n)
    group_start = np.maximum.accumulate(np.where(~same_prev | ~plugged, idx, 0))
    prev_reading = _shift_prev(np.maximum.accumulate(np.where(np.isnan(energy), -1, idx)), -1)
    prev_energy = np.where(prev_reading >= group_start, energy[np.maximum(prev_reading, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        drop = energy < prev_energy - METER_DROP_KWH  # NaN compares False
    new_session = in_session & (~prev_plugged | drop)

    sel = np.flatnonzero(in_session)
    owner = np.maximum.accumulate(np.where(new_session[sel], sel, -1))
    period = np.where(same_next[sel], (_shift_next(t, 0)[sel] - t[sel]) / US, np.nan)
    cap = GAP_CAP * median[sel]
    with np.errstate(invalid="ignore"):
        duration = np.where(np.isnan(period), 0.0, np.where(cap < period, cap, period))
    src = pa.array(order[sel])
    cols: list[pa.Array | pa.ChunkedArray] = [
        _plain(kept["evse_address"].take(src)),
        _times(t[sel]),
        *[_plain(kept[c].take(src)) for c in LABEL_COLUMNS],
        _nullable(energy[sel]),
        _nullable(cur[sel]),
        _nullable(_floats(kept, "pilot_actual_a")[order[sel]]),
        _nullable(power[sel]),
        pa.array(drawing[sel]),
        _times(t[np.maximum(owner, 0)]),
        pa.array(duration, pa.float64()),
        pa.array(~same_prev[sel]),
        pa.array(~same_next[sel]),
    ]
    return pa.Table.from_arrays(cols, schema=SAMPLE_SCHEMA)
