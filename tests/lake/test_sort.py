"""A slot's rows skip the sort only when they are already in key order (then it changes nothing)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powerflex_etl.lake.store import _is_sorted, _sort_rows
from powerflex_etl.schemas import TIME_TYPE

keys = st.lists(
    st.tuples(st.one_of(st.sampled_from(["a", "b", "ab", "", "é"]), st.none()), st.integers(0, 5)),
    max_size=12,
)


def _table(rows: list[tuple[str | None, int]], *, sort: bool = False) -> pa.Table:
    if sort:
        rows = sorted(rows, key=lambda r: (r[0] is None, (r[0] or "").encode(), r[1]))
    return pa.table(
        {
            "evse_address": pa.array([e for e, _ in rows], pa.string()),
            "time": pa.array([t for _, t in rows], pa.int64()).cast(TIME_TYPE),
            "i": pa.array(range(len(rows)), pa.int64()),  # tells rows with equal keys apart
        }
    )


@settings(max_examples=300, deadline=None)
@given(keys, st.booleans(), st.booleans())
def test_sort_rows_is_the_stable_sort(
    rows: list[tuple[str | None, int]], presort: bool, encoded: bool
) -> None:
    """Also with the EVSE dictionary-encoded, as normalize hands it over (Arrow's own sort
    takes no dictionary column)."""
    table = _table(rows, sort=presort)
    want = table.sort_by([("evse_address", "ascending"), ("time", "ascending")])
    if encoded:
        table = table.set_column(0, "evse_address", table["evse_address"].dictionary_encode())
    got = _sort_rows(table)
    assert got.set_column(0, "evse_address", got["evse_address"].cast(pa.string())).equals(want)


@pytest.mark.parametrize("encoded", [False, True])
def test_is_sorted_looks_at_both_keys_and_nulls(encoded: bool) -> None:
    def table(rows: list[tuple[str | None, int]]) -> pa.Table:
        t = _table(rows)
        if encoded:  # as normalize hands it over: compared by rank, never decoded
            t = t.set_column(0, "evse_address", t["evse_address"].dictionary_encode())
        return t

    assert _is_sorted(table([("a", 1), ("a", 1), ("a", 2), ("b", 0)]))
    assert not _is_sorted(table([("a", 2), ("a", 1)]))  # time goes back within an EVSE
    assert not _is_sorted(table([("b", 0), ("a", 1)]))
    assert not _is_sorted(table([("ab", 0), ("a", 1)]))  # a prefix sorts first
    assert _is_sorted(table([("", 5), ("a", 0), ("é", 0)]))  # bytewise, as Arrow sorts
    assert not _is_sorted(table([("a", 0), (None, 1)]))  # a null key: sort to be sure
    assert _is_sorted(table([])) and _is_sorted(table([(None, 3)]))
