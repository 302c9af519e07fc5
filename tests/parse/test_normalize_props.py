"""Properties of the normalizer over generated answers (Hypothesis)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerflex_etl import schemas
from powerflex_etl.parse.answer import BadRow
from powerflex_etl.parse.normalize import normalize, reject_id
from powerflex_etl.windows import to_us
from tests.parse.test_normalize import E_US, S_US, WINDOW, answer, identity_holds

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# a few times on and around the window edges, so rows collide and fall outside
TIMES = [S_US - 1, S_US, S_US + 1, S_US + 2, E_US - 1, E_US]
GOOD_IDS = ["33-73-211-963", "33-73-211-964", "03"]
any_float = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e9),
)
good_float = st.one_of(st.none(), st.floats(min_value=0, max_value=1e9))


@st.composite
def ct_rows(draw: st.DrawFn, *, valid_only: bool = False) -> list[dict[str, Any]]:
    ids = GOOD_IDS if valid_only else [*GOOD_IDS, None, "", "a/b", "..", "x\x00"]
    states = [*schemas.CHARGING_STATES, None] + ([] if valid_only else ["CHARGING"])
    num = good_float if valid_only else any_float
    row = st.fixed_dictionaries(
        {
            "time": st.sampled_from(TIMES[1:-1] if valid_only else TIMES),
            "evse_address": st.sampled_from(ids),
            "acc_id": st.sampled_from(GOOD_IDS),
            "charging_state": st.sampled_from(states),
            "energy_delivered": num,
            "mamps_actual": num,
            "voltage": num,
            "power": num,
        },
        optional={"note": st.sampled_from(["x", "y/z"] if not valid_only else ["x"])},
    )
    return draw(st.lists(row, max_size=25))


bad_rows = st.lists(
    st.builds(
        BadRow,
        st.just("non-number power: 'x'"),
        st.sampled_from(['{"power":"x"}', '{"power":"y"}']),
        st.sampled_from([None, *TIMES]),
    ),
    max_size=4,
)


def run(rows: list[dict[str, Any]], bad: list[BadRow] | None = None, **kw: Any) -> Any:
    kw.setdefault("run_id", "r1")
    kw.setdefault("ingested_at", datetime(2024, 6, 2, tzinfo=UTC))
    return normalize(answer(rows, bad_rows=bad), WINDOW, **kw)


def without_lineage(table: pa.Table) -> pa.Table:
    return table.drop_columns(list(schemas.LINEAGE_COLUMNS))


@PROPS
@given(ct_rows(), bad_rows)
def test_output_matches_schema_with_unique_sorted_keys(
    rows: list[dict[str, Any]], bad: list[BadRow]
) -> None:
    res = run(rows, bad)
    contract = schemas.arrow_schema("ct_response")
    held = schemas.plain_schema(res.table.schema)
    extras = pa.schema([f for f in held if f.name not in contract.names])
    assert held == schemas.arrow_schema("ct_response", extras)
    assert res.table.schema == schemas.dictionary_schema(held)
    assert res.rejects.schema == schemas.REJECTS_SCHEMA
    keys = list(
        zip(
            res.table.column("evse_address").to_pylist(),
            res.table.column("time").cast(pa.int64()).to_pylist(),
            strict=True,
        )
    )
    assert keys == sorted(set(keys))
    st_ = res.stats
    assert st_.rows_out == res.table.num_rows <= st_.rows_in == len(rows) + len(bad)
    assert identity_holds(st_)
    assert st_.rejects_out == res.rejects.num_rows <= st_.rejected


@PROPS
@given(ct_rows(), bad_rows)
def test_normalizing_twice_gives_the_same_rows(
    rows: list[dict[str, Any]], bad: list[BadRow]
) -> None:
    a = run(rows, bad, run_id="first", ingested_at=datetime(2024, 6, 2, tzinfo=UTC))
    b = run(rows, bad, run_id="second", ingested_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert without_lineage(a.table).equals(without_lineage(b.table))
    assert without_lineage(a.rejects).equals(without_lineage(b.rejects))
    assert a.stats == b.stats


@PROPS
@given(ct_rows(), bad_rows)
def test_reject_ids_are_the_stable_hash_of_the_raw_row(
    rows: list[dict[str, Any]], bad: list[BadRow]
) -> None:
    rej = run(rows, bad).rejects.to_pylist()
    ids = [r["reject_id"] for r in rej]
    assert len(ids) == len(set(ids))
    for r in rej:
        assert r["reject_id"] == reject_id("ct_response", r["raw"])
        assert re.fullmatch(r"[0-9a-f]{32}", r["reject_id"])


@PROPS
@given(st.text(), st.sampled_from(schemas.MEASUREMENTS))
def test_reject_id_is_stable_text_hash(raw: str, measurement: str) -> None:
    assert reject_id(measurement, raw) == reject_id(measurement, str(raw))
    assert re.fullmatch(r"[0-9a-f]{32}", reject_id(measurement, raw))


@PROPS
@given(ct_rows(valid_only=True))
def test_last_delivered_valid_row_wins(rows: list[dict[str, Any]]) -> None:
    expected: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        expected[(r["evse_address"], r["time"])] = r  # later rows overwrite earlier ones
    res = run(rows)
    assert res.rejects.num_rows == 0
    out = res.table.to_pylist()
    assert len(out) == len(expected)
    for got in out:
        src = expected[(got["evse_address"], to_us(got["time"]))]
        assert got["charging_state"] == src["charging_state"]
        assert got["acc_id"] == src["acc_id"]
        assert got.get("note") == src.get("note")
        for source, column, scale in [
            ("energy_delivered", "energy_delivered_kwh", 1e-6),
            ("mamps_actual", "current_actual_a", 1e-3),
            ("voltage", "voltage_v", 1e-3),
            ("power", "power_kw", 1.0),
        ]:
            if src[source] is None:
                assert got[column] is None
            else:
                # round trip: lake / scale gives back the source value
                assert got[column] / scale == pytest.approx(src[source], rel=1e-12, abs=1e-300)


@PROPS
@given(
    st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.sampled_from(["kW", "W", "mW"]),
)
def test_power_conversion_round_trips(source: float, unit: str) -> None:
    row = {"time": S_US, "evse_address": "e", "power": source}
    got = run([row], power_unit=unit).table.column("power_kw")[0].as_py()
    scale = schemas.power_scale(unit)
    assert math.isclose(got / scale, source, rel_tol=1e-12, abs_tol=1e-300)
    assert got >= 0
