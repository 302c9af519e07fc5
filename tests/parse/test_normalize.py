"""The normalizer, rule by rule (CONTRACT §2), on hand-built parsed answers."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from powerflex_etl import schemas
from powerflex_etl.errors import ConfigError
from powerflex_etl.parse.answer import BadRow, ParsedAnswer
from powerflex_etl.parse.normalize import (
    NormalizeResult,
    NormalizeStats,
    Scope,
    check_power_unit,
    normalize,
    reject_id,
)
from powerflex_etl.windows import Window, to_us

START = datetime(2024, 6, 1, 6, tzinfo=UTC)
END = START + timedelta(hours=6)
WINDOW = Window(START, END)
S_US = to_us(START)
E_US = to_us(END)
INGESTED = datetime(2024, 6, 2, tzinfo=UTC)
# ids shaped like the real PowerFlex ones (SLAC: site 33, sub-site 73, stations 33-73-211-9xx)
EVSE = "33-73-211-963"
CT_BASE: dict[str, Any] = {
    "acn_id": "33",
    "acc_id": "73",
    "acg_id": "211",
    "acs_id": "963",
    "evse_address": EVSE,
    "charging_state": "ADAPTIVE",
    "energy_delivered": 8648000.0,
    "mamps_actual": 26100.0,
    "pilot_actual": 32.0,
    "voltage": 208000.0,
    # 208 V * 26.1 A = 5.43 kW
    "power": 5.4288,
}
KIND_TYPES = {"id": pa.string(), "state": pa.string(), "number": pa.float64(), "bool": pa.float64()}


def answer(
    rows: list[dict[str, Any]],
    measurement: str = "ct_response",
    bad_rows: list[BadRow] | None = None,
) -> ParsedAnswer:
    """A ParsedAnswer as the parser delivers it: time as µs UTC, fields in source units.

    Each row dict holds ``time`` in µs and its fields; columns appear in first-seen order,
    missing values are null.
    """
    kinds = schemas.source_kinds(measurement)
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    if "time" not in names:
        names.insert(0, "time")
    cols: dict[str, pa.Array] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if name == "time":
            cols[name] = pa.array(values, pa.int64()).cast(schemas.TIME_TYPE)
        elif name in kinds:
            cols[name] = pa.array(values, KIND_TYPES[kinds[name]])
        else:
            cols[name] = pa.array(values)
    return ParsedAnswer.from_table(measurement, pa.table(cols), bad_rows or [])


def ct(time_us: int = S_US, **fields: Any) -> dict[str, Any]:
    return {"time": time_us, **CT_BASE, **fields}


def run(parsed: ParsedAnswer, **kw: Any) -> NormalizeResult:
    kw.setdefault("run_id", "run-1")
    kw.setdefault("ingested_at", INGESTED)
    return normalize(parsed, kw.pop("window", WINDOW), **kw)


def identity_holds(st: NormalizeStats) -> bool:
    return st.rows_in == (
        st.outside_window + st.out_of_scope + st.rejected + st.duplicates + st.rows_out
    )


def reasons(res: NormalizeResult) -> list[str]:
    return res.rejects.column("reason").to_pylist()


# --- 1. window ---------------------------------------------------------------------


def test_window_start_inclusive_end_exclusive() -> None:
    rows = [ct(S_US - 1), ct(S_US), ct(E_US - 1), ct(E_US)]
    res = run(answer(rows))
    assert res.table.column("time").cast(pa.int64()).to_pylist() == [S_US, E_US - 1]
    assert res.stats.outside_window == 2
    assert res.rejects.num_rows == 0


def test_bad_rows_outside_window_are_dropped_not_rejected() -> None:
    bad = [
        BadRow("non-number mamps_actual: 'x'", '{"time":1}', S_US - 10),
        BadRow("non-number mamps_actual: 'y'", '{"time":2}', E_US),
        BadRow("non-number mamps_actual: 'z'", '{"time":3}', S_US + 5),
        BadRow("unparseable time: 'yesterday'", '{"time":"yesterday"}', None),
    ]
    res = run(answer([ct()], bad_rows=bad))
    assert res.stats.outside_window == 2
    assert reasons(res) == ["non-number mamps_actual: 'z'", "unparseable time: 'yesterday'"]
    assert res.rejects.column("raw").to_pylist() == ['{"time":3}', '{"time":"yesterday"}']
    assert res.rejects.column("time").cast(pa.int64()).to_pylist() == [S_US + 5, None]
    assert identity_holds(res.stats)


# --- 2. scope ----------------------------------------------------------------------


def test_scope_keeps_only_listed_ids() -> None:
    rows = [
        ct(evse_address="a", acc_id="73"),
        ct(evse_address="b", acc_id="74"),
        ct(evse_address="c", acc_id=None),
    ]
    res = run(answer(rows), scope=Scope(acc_id=("73",)))
    assert res.table.column("evse_address").to_pylist() == ["a"]
    assert res.stats.out_of_scope == 2
    assert identity_holds(res.stats)


def test_empty_scope_keeps_everything() -> None:
    rows = [ct(evse_address="a", acc_id="73"), ct(evse_address="b", acc_id="74")]
    assert run(answer(rows), scope=Scope()).stats.rows_out == 2


def test_scope_on_every_listed_id() -> None:
    rows = [
        ct(evse_address="a"),
        ct(evse_address="b", acs_id="964"),
        ct(evse_address="c", acn_id="34"),
    ]
    res = run(answer(rows), scope=Scope(acn_id=("33",), acc_id=("73",), acs_id=("963", "964")))
    assert res.table.column("evse_address").to_pylist() == ["a", "b"]


# --- 3. validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"evse_address": None}, "missing evse_address"),
        ({"evse_address": ""}, "missing evse_address"),
        ({"energy_delivered": -5.0}, "negative energy_delivered: -5.0"),
        ({"mamps_actual": -1.0}, "negative mamps_actual: -1.0"),
        ({"pilot_actual": -32.0}, "negative pilot_actual: -32.0"),
        ({"charging_state": "CHARGING"}, "unknown charging_state: 'CHARGING'"),
        ({"voltage": math.nan}, "non-finite voltage: nan"),
        ({"power": math.inf}, "non-finite power: inf"),
        ({"acc_id": "7\x003"}, "unsafe acc_id: '7\\x003'"),
        ({"acs_id": "../etc"}, "unsafe acs_id: '../etc'"),
        ({"evse_address": "33/73"}, "unsafe evse_address: '33/73'"),
        ({"acg_id": "a\\b"}, "unsafe acg_id: 'a\\\\b'"),
        ({"space_number": "B41\n01"}, "unsafe space_number: 'B41\\n01'"),
        ({"version": "x" * 257}, "unsafe version: longer than 256 characters (257)"),
        ({"note": "a\x1fb"}, "unsafe note: 'a\\x1fb'"),
    ],
)
def test_each_reject_reason(fields: dict[str, Any], reason: str) -> None:
    res = run(answer([ct(**fields), ct(evse_address="ok-1")]))
    assert reasons(res) == [reason]
    assert res.table.column("evse_address").to_pylist() == ["ok-1"]
    assert res.stats.rejected == 1
    assert identity_holds(res.stats)


def test_absent_evse_address_column_rejects_every_row() -> None:
    rows = [{k: v for k, v in ct(S_US + i).items() if k != "evse_address"} for i in range(3)]
    res = run(answer(rows))
    assert res.table.num_rows == 0
    assert reasons(res) == ["missing evse_address"] * 3


def test_null_charging_state_is_allowed_and_stays_null() -> None:
    res = run(answer([ct(charging_state=None)]))
    assert res.rejects.num_rows == 0
    assert res.table.column("charging_state").to_pylist() == [None]


def test_every_documented_state_is_accepted() -> None:
    rows = [ct(S_US + i, charging_state=s) for i, s in enumerate(schemas.CHARGING_STATES)]
    res = run(answer(rows))
    assert res.table.column("charging_state").to_pylist() == list(schemas.CHARGING_STATES)


def test_id_of_256_characters_is_kept() -> None:
    assert run(answer([ct(evse_address="e" * 256)])).stats.rows_out == 1


def test_dots_in_ids_are_fine_unless_doubled() -> None:
    res = run(answer([ct(version="1.2.3"), ct(S_US + 1, version="1..2")]))
    assert res.table.column("version").to_pylist() == ["1.2.3"]
    assert reasons(res) == ["unsafe version: '1..2'"]


def test_first_failing_check_gives_the_reason() -> None:
    res = run(answer([ct(energy_delivered=-1.0, charging_state="BOGUS", acc_id="../x")]))
    assert reasons(res) == ["negative energy_delivered: -1.0"]


def er(time_us: int = S_US, **fields: Any) -> dict[str, Any]:
    base = {"evse_address": EVSE, "acc_id": "73", "connected": 1.0, "contactor": 0.0}
    return {"time": time_us, **base, **fields}


def test_bool_fields_become_booleans_and_nulls_stay_null() -> None:
    rows = [er(S_US), er(S_US + 1, connected=0.0, contactor=1.0), er(S_US + 2, connected=None)]
    res = run(answer(rows, "evse_response"))
    assert res.table.column("connected").to_pylist() == [True, False, None]
    assert res.table.column("contactor").to_pylist() == [False, True, False]


def test_bool_field_not_zero_or_one_is_rejected() -> None:
    res = run(answer([er(connected=2.0), er(S_US + 1, contactor=0.5)], "evse_response"))
    assert reasons(res) == ["connected not 0/1: 2.0", "contactor not 0/1: 0.5"]


def test_reject_raw_is_the_delivered_row_as_json() -> None:
    row = ct(S_US + 1_500_000, energy_delivered=-5.0, charging_state=None, note="x")
    res = run(answer([row]))
    raw = res.rejects.column("raw")[0].as_py()
    expected = {**row, "time": (S_US + 1_500_000) / 1e6}
    assert json.loads(raw) == expected
    assert list(json.loads(raw)) == list(row)  # keys in the table's column order
    assert raw == json.dumps(expected, ensure_ascii=False, separators=(",", ":"))


def test_reject_raw_stays_valid_json_for_non_finite_values() -> None:
    res = run(answer([ct(voltage=-math.inf)]))
    assert json.loads(res.rejects.column("raw")[0].as_py())["voltage"] == "-Infinity"


def test_rejects_table_shape_and_id() -> None:
    res = run(answer([ct(energy_delivered=-5.0)]), run_id="r-42")
    rej = res.rejects
    assert rej.schema == schemas.REJECTS_SCHEMA
    row = rej.to_pylist()[0]
    expected_id = hashlib.sha256(f"ct_response\x00{row['raw']}".encode()).hexdigest()[:32]
    assert row["reject_id"] == expected_id == reject_id("ct_response", row["raw"])
    assert len(row["reject_id"]) == 32
    assert row["measurement"] == "ct_response"
    assert row["time"] == START
    assert (row["window_start"], row["window_end"]) == (START, END)
    assert (row["_ingested_at"], row["_run_id"]) == (INGESTED, "r-42")


def test_same_raw_row_twice_gives_one_reject() -> None:
    bad = ct(energy_delivered=-5.0)
    parser_bad = BadRow("non-number power: 'x'", '{"power":"x"}', None)
    res = run(answer([bad, ct(S_US + 1), dict(bad)], bad_rows=[parser_bad, parser_bad]))
    assert res.stats.rejected == 4
    assert res.stats.rejects_out == res.rejects.num_rows == 2
    assert len(set(res.rejects.column("reject_id").to_pylist())) == 2
    assert identity_holds(res.stats)


def test_reject_id_depends_on_measurement_and_raw() -> None:
    assert reject_id("ct_response", "{}") == reject_id("ct_response", "{}")
    assert reject_id("ct_response", "{}") != reject_id("evse_request", "{}")
    assert reject_id("ct_response", "{}") != reject_id("ct_response", "{ }")


# --- 4. conversion -----------------------------------------------------------------


def test_unit_conversions_are_exact_on_known_values() -> None:
    row = ct(energy_delivered=12345.0, mamps_actual=32000.0, voltage=208000.0, pilot_actual=32.0)
    t = run(answer([row])).table.to_pylist()[0]
    assert t["energy_delivered_kwh"] == 0.012345
    assert t["current_actual_a"] == 32.0
    assert t["voltage_v"] == 208.0
    assert t["pilot_actual_a"] == 32.0
    assert t["power_kw"] == 5.4288


@pytest.mark.parametrize(
    ("unit", "source", "kw"), [("kW", 6.656, 6.656), ("W", 6656.0, 6.656), ("mW", 6656000.0, 6.656)]
)
def test_power_unit_setting(unit: str, source: float, kw: float) -> None:
    res = run(answer([ct(power=source, mamps_actual=32000.0)]), power_unit=unit)
    assert res.table.column("power_kw").to_pylist() == [kw]
    assert res.stats.unit_check_ok


def test_evse_request_currents_in_amps() -> None:
    row = {
        "time": S_US,
        "evse_address": EVSE,
        "mamps_last": 16000.0,
        "mamps_limit": 32000.0,
        "mamps_rampdown": 6500.0,
    }
    t = run(answer([row], "evse_request")).table.to_pylist()[0]
    assert (t["current_last_a"], t["current_limit_a"], t["current_rampdown_a"]) == (16.0, 32.0, 6.5)


def test_ids_stay_strings_exactly_as_delivered() -> None:
    t = run(answer([ct(acc_id="03", acn_id="0039", space_number="B41-01")])).table.to_pylist()[0]
    assert (t["acc_id"], t["acn_id"], t["space_number"]) == ("03", "0039", "B41-01")


def test_nulls_stay_null_and_missing_fields_are_null_columns() -> None:
    res = run(answer([ct(voltage=None)]))
    t = res.table.to_pylist()[0]
    assert t["voltage_v"] is None
    assert t["peak_rate"] is None  # never delivered
    assert t["phases"] is None


def test_extra_fields_kept_after_contract_columns_in_name_order() -> None:
    res = run(answer([ct(zeta=1.5, alpha="x", voltage_v="clash", _run_id="clash2")]))
    names = res.table.column_names
    contract = schemas.arrow_schema("ct_response").names
    assert names[: len(contract) - 2] == contract[:-2]
    assert names[-2:] == ["_ingested_at", "_run_id"]
    assert names[len(contract) - 2 : -2] == ["alpha", "extra__run_id", "extra_voltage_v", "zeta"]
    row = res.table.to_pylist()[0]
    assert (row["alpha"], row["zeta"], row["extra_voltage_v"]) == ("x", 1.5, "clash")
    assert row["_run_id"] == "run-1"
    assert res.table.schema.field("zeta").type == pa.float64()


# --- 5. dedup, 6. output -----------------------------------------------------------


def test_last_delivered_row_wins() -> None:
    rows = [
        ct(energy_delivered=1.0),
        ct(S_US + 1, energy_delivered=5.0),
        ct(energy_delivered=2.0),
        ct(energy_delivered=3.0),
    ]
    res = run(answer(rows))
    assert res.table.column("energy_delivered_kwh").to_pylist() == [3e-6, 5e-6]
    assert res.stats.duplicates == 2
    assert identity_holds(res.stats)


def test_rejected_row_does_not_shadow_a_good_duplicate() -> None:
    res = run(answer([ct(energy_delivered=1.0), ct(energy_delivered=-1.0)]))
    assert res.table.column("energy_delivered_kwh").to_pylist() == [1e-6]
    assert (res.stats.rejected, res.stats.duplicates) == (1, 0)


def test_output_schema_sorting_and_lineage() -> None:
    rows = [
        ct(S_US + 5, evse_address="b"),
        ct(S_US + 9, evse_address="a"),
        ct(S_US + 1, evse_address="b"),
        ct(S_US + 2, evse_address="a"),
    ]
    res = run(answer(rows), run_id="r-7")
    assert schemas.plain_schema(res.table.schema) == schemas.arrow_schema("ct_response")
    # text is held as the parser typed it and as Parquet stores it: never cast to strings
    # only to be hashed back into dictionaries by the writer
    assert res.table.schema == schemas.dictionary_schema(schemas.arrow_schema("ct_response"))
    assert res.table.column("_run_id").to_pylist() == ["r-7"] * 4
    keys = list(
        zip(
            res.table.column("evse_address").to_pylist(),
            res.table.column("time").cast(pa.int64()).to_pylist(),
            strict=True,
        )
    )
    assert keys == [("a", S_US + 2), ("a", S_US + 9), ("b", S_US + 1), ("b", S_US + 5)]
    assert set(res.table.column("_run_id").to_pylist()) == {"r-7"}
    assert set(res.table.column("_ingested_at").to_pylist()) == {INGESTED}


@pytest.mark.parametrize("measurement", schemas.MEASUREMENTS)
def test_empty_answer(measurement: str) -> None:
    res = run(
        ParsedAnswer.from_table(measurement, pa.table({"time": pa.array([], schemas.TIME_TYPE)}))
    )
    assert res.table.num_rows == 0
    assert schemas.plain_schema(res.table.schema) == schemas.arrow_schema(measurement)
    assert res.rejects.schema == schemas.REJECTS_SCHEMA
    assert res.stats == NormalizeStats()


def test_answer_without_any_column() -> None:
    res = run(ParsedAnswer.from_table("evse_request", pa.table({})))
    assert schemas.plain_schema(res.table.schema) == schemas.arrow_schema("evse_request")


def test_count_identity_with_every_kind_of_drop() -> None:
    rows = [
        ct(S_US - 1),  # outside
        ct(S_US, acc_id="99"),  # out of scope
        ct(S_US, energy_delivered=-1.0),  # rejected
        ct(S_US + 1),  # duplicate of the next
        ct(S_US + 1),
        ct(S_US + 2),
    ]
    bad = [BadRow("r", "{}", None), BadRow("r", "{}", E_US + 1)]
    st = run(answer(rows, bad_rows=bad), scope=Scope(acc_id=("73",))).stats
    assert (
        st.rows_in,
        st.outside_window,
        st.out_of_scope,
        st.rejected,
        st.duplicates,
        st.rows_out,
    ) == (8, 2, 1, 2, 1, 2)
    assert identity_holds(st)


def test_unknown_power_unit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown power unit 'MW'") as err:
        run(answer([ct()]), power_unit="MW")
    assert "POWERFLEX_POWER_UNIT=kW|W|mW" in err.value.one_line()


# --- 7. power unit check -----------------------------------------------------------


def test_unit_check_consistent() -> None:
    rows = [
        ct(S_US + i, mamps_actual=32000.0, power=6.656 * f) for i, f in enumerate([0.98, 1.0, 1.02])
    ]
    st = run(answer(rows)).stats
    assert st.unit_check_ok
    assert st.unit_check is not None
    assert st.unit_check.startswith("power_kw consistent with V*I (median ratio 1.00")


def test_unit_check_warns_when_power_is_really_watts() -> None:
    rows = [ct(S_US + i, mamps_actual=32000.0, power=6656.0) for i in range(3)]
    st = run(answer(rows)).stats
    assert not st.unit_check_ok
    assert st.unit_check is not None
    assert "1e+03x" in st.unit_check
    assert "POWERFLEX_POWER_UNIT=W" in st.unit_check
    assert "\n" not in st.unit_check


def test_unit_check_warns_when_power_is_really_milliwatts_reported_as_watts() -> None:
    rows = [ct(S_US + i, mamps_actual=32000.0, power=6656000.0) for i in range(3)]
    st = run(answer(rows), power_unit="W").stats
    assert not st.unit_check_ok
    assert st.unit_check is not None and "POWERFLEX_POWER_UNIT=mW" in st.unit_check


def test_unit_check_warns_when_power_is_too_small() -> None:
    rows = [ct(S_US + i, mamps_actual=32000.0, power=0.006656) for i in range(3)]
    st = run(answer(rows), power_unit="kW").stats
    assert not st.unit_check_ok
    assert st.unit_check is not None and "0.001x" in st.unit_check


def test_unit_check_skips_idle_rows_and_other_measurements() -> None:
    idle = [ct(S_US + i, mamps_actual=0.0, power=0.0) for i in range(3)]
    st = run(answer(idle)).stats
    assert (st.unit_check, st.unit_check_ok) == (None, True)
    st = run(answer([er()], "evse_response")).stats
    assert (st.unit_check, st.unit_check_ok) == (None, True)


# Caltech ACN-Data, session of 2019-01-01 21:05 (tongxin-li/ACN-Data-Static, see
# data/real/SOURCES.md "acn_data_static_excerpts"): time, A, pilot A, V, state, kWh, kW
REAL_ROWS = [
    ("2019-01-01T21:05:57+00:00", 0.0, 8.0, 228.2, "NOT CHARGING", 0.000000, 0.000),
    ("2019-01-01T21:06:00+00:00", 0.4, 8.0, 228.2, "READY", 0.000041, 0.010),
    ("2019-01-01T21:06:05+00:00", 5.0, 8.0, 227.1, "ADAPTIVE", 0.000668, 1.125),
    ("2019-01-01T21:06:08+00:00", 8.2, 8.0, 226.5, "ADAPTIVE", 0.002451, 1.872),
    ("2019-01-01T21:06:13+00:00", 8.1, 8.0, 226.5, "ADAPTIVE", 0.004474, 1.852),
    ("2019-01-02T02:02:46+00:00", 0.0, 8.0, 229.3, "NOT CHARGING", 16.136811, 0.000),
    ("2019-01-02T02:02:48+00:00", 0.0, 8.0, 229.3, "NOT CHARGING", 16.136811, 0.000),
    ("2019-01-02T02:02:55+00:00", 0.0, 8.0, 228.9, "NOT CHARGING", 16.136811, 0.000),
    ("2019-01-02T02:02:56+00:00", 0.0, 8.0, 229.2, "NOT CHARGING", 16.136811, 0.000),
    ("2019-01-02T02:03:02+00:00", 0.0, 0.0, None, "UNPLUGGED", 0.000000, 0.000),
]


def test_real_acn_session_round_trips_and_passes_the_unit_check() -> None:
    rows = [
        {
            "time": to_us(datetime.fromisoformat(t)),
            "evse_address": "2-39-79-378",
            "charging_state": state,
            "mamps_actual": a * 1000,
            "pilot_actual": pilot,
            "voltage": None if v is None else v * 1000,
            "energy_delivered": kwh * 1e6,
            "power": kw,
        }
        for t, a, pilot, v, state, kwh, kw in REAL_ROWS
    ]
    window = Window(datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 1, 3, tzinfo=UTC))
    res = run(answer(rows), window=window)
    assert res.stats.rows_out == len(REAL_ROWS)
    assert res.rejects.num_rows == 0
    out = res.table.to_pylist()
    for got, (_t, a, _p, v, state, kwh, kw) in zip(out, REAL_ROWS, strict=True):
        assert got["current_actual_a"] == pytest.approx(a)
        assert got["voltage_v"] == (None if v is None else pytest.approx(v))
        assert got["energy_delivered_kwh"] == pytest.approx(kwh)
        assert (got["power_kw"], got["charging_state"]) == (kw, state)
    assert res.stats.unit_check_ok
    assert res.stats.unit_check is not None and "median ratio 1.0" in res.stats.unit_check
    msg, ok = check_power_unit(res.table, "kW")
    assert ok and msg == res.stats.unit_check


def test_tolerates_type_variants_of_the_parser() -> None:
    # integers where floats are documented, large strings, an all-null unknown field
    table = pa.table(
        {
            "time": pa.array([S_US], pa.int64()).cast(schemas.TIME_TYPE),
            "evse_address": pa.array([EVSE], pa.large_string()),
            "acc_id": pa.array(["03"]).dictionary_encode(),
            "mamps_actual": pa.array([32000], pa.int64()),
            "mystery": pa.nulls(1),
        }
    )
    res = run(ParsedAnswer.from_table("ct_response", table))
    row = res.table.to_pylist()[0]
    assert (row["evse_address"], row["acc_id"], row["current_actual_a"]) == (EVSE, "03", 32.0)
    assert row["mystery"] is None
    assert res.table.schema.field("mystery").type == pa.float64()
    assert res.table.schema.field("acc_id").type == schemas.TEXT_TYPE


def test_time_is_truncated_to_microseconds() -> None:
    ns = S_US * 1000 + 999
    table = pa.table({"time": pa.array([ns], pa.timestamp("ns", tz="UTC")), "evse_address": [EVSE]})
    res = run(ParsedAnswer.from_table("ct_response", table))
    assert res.table.column("time").cast(pa.int64()).to_pylist() == [S_US]
