"""The byte-level encoder prints exactly the values it was given, as valid InfluxDB JSON."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from powerflex_etl.simulator.data import site_evses
from powerflex_etl.simulator.encode import Shape, answer, row_bytes
from powerflex_etl.simulator.generate import COLUMNS, STATES, Block

EVSE = site_evses("caltech")[0]
CT = list(COLUMNS["ct_response"])

whole = st.integers(0, 10**9).map(float)
maybe_null = st.one_of(st.just(float("nan")), whole)
power = st.integers(0, 10**6).map(lambda i: i / 10**4)


@st.composite
def blocks(draw: Any) -> Block:
    n = draw(st.integers(1, 40))
    steps = draw(st.lists(st.integers(1, 10**8), min_size=n, max_size=n))
    t = np.round((1_000_000_000 + np.cumsum(steps) / 1e3) * 1e6) / 1e6
    state = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.int8)
    vals = {
        "energy_delivered": draw(st.lists(whole, min_size=n, max_size=n)),
        "mamps_actual": draw(st.lists(whole, min_size=n, max_size=n)),
        "peak_rate": draw(st.lists(whole, min_size=n, max_size=n)),
        "pilot_actual": draw(st.lists(whole, min_size=n, max_size=n)),
        "power": draw(st.lists(power, min_size=n, max_size=n)),
        "voltage": draw(st.lists(maybe_null, min_size=n, max_size=n)),
    }
    arrays = {k: np.array(v, dtype=np.float64) for k, v in vals.items()}
    if draw(st.booleans()):
        # like the simulator: unplugged rows repeat zeros and a null voltage
        idle = state == 0
        for k, v in arrays.items():
            v[idle] = np.nan if k == "voltage" else 0.0
    return Block(EVSE, t, state, arrays)


def _expected(b: Block) -> list[list[Any]]:
    rows = []
    for i in range(len(b)):
        row: list[Any] = []
        for c in CT:
            if c == "time":
                row.append(float(b.time[i]))
            elif c == "charging_state":
                row.append(STATES[b.state[i]])
            elif c in b.values:
                v = b.values[c][i]
                row.append(None if np.isnan(v) else float(v))
            elif c == "evse_address":
                row.append(EVSE.evse_address)
            elif c == "version":
                row.append("1")
            else:
                row.append(getattr(EVSE, c))
        rows.append(row)
    return rows


@settings(max_examples=40, deadline=None)
@given(blocks())
def test_rows_round_trip(b: Block) -> None:
    parsed = json.loads("[" + row_bytes(b, CT)[1:].decode() + "]")
    assert parsed == _expected(b)


@settings(max_examples=20, deadline=None)
@given(st.lists(blocks(), min_size=1, max_size=4), st.booleans(), st.booleans(), st.booleans())
def test_every_shape_holds_every_row(
    bs: list[Block], split: bool, wrap: bool, chunked: bool
) -> None:
    body = b"".join(
        answer("ct_response", iter(bs), Shape(split_tags=split, wrap_data=wrap, chunked=chunked))
    )
    docs = (
        [json.loads(line) for line in body.decode().splitlines()] if chunked else [json.loads(body)]
    )
    rows = []
    for d in docs:
        d = d["data"] if wrap else d
        for s in d["results"][0]["series"]:
            tags = s.get("tags", {})
            for v in s["values"]:
                full = {**tags, **dict(zip(s["columns"], v, strict=True))}
                rows.append([full[c] for c in CT])
    assert rows == [r for b in bs for r in _expected(b)]
