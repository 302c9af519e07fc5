"""The sql/ tiers' refs and build order, pure: files in, ordered files out."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerflex_etl.catalog.sqlfiles import (
    TIERS,
    CatalogError,
    ViewFile,
    build_order,
    refs_of,
    render_refs,
)


def view(name: str, tier: str = "marts", refs: tuple[str, ...] = ()) -> ViewFile:
    sql = " union all ".join(f"select * from {{{{ ref('{r}') }}}}" for r in refs) or "select 1"
    return ViewFile(name, Path(f"sql/{tier}/{name}.sql"), sql, tier, refs_of(sql))


def test_refs_are_found_once_in_order_and_rendered_quoted() -> None:
    sql = "select * from {{ ref('b') }} join {{ref( 'a' )}} using (x) join {{ ref('b') }} using (y)"
    assert refs_of(sql) == ("b", "a")
    assert render_refs(sql) == 'select * from "b" join "a" using (x) join "b" using (y)'
    # the lake's templates are left for the catalog to render
    assert render_refs("select * from {{ source('ct_response') }}") == (
        "select * from {{ source('ct_response') }}"
    )


def test_sites_is_always_there_and_tiers_come_in_order() -> None:
    files = [
        view("report_x", "report", ("mart",)),
        view("mart", "marts", ("base", "sites")),
        view("base", "intermediate", ("raw",)),
        view("raw", "staging"),
    ]
    assert [f.name for f in build_order(files)] == ["raw", "base", "mart", "report_x"]


@st.composite
def dags(draw: st.DrawFn) -> list[ViewFile]:
    """Views v0..vn in random tiers, each reading only views of its own or an earlier tier."""
    n = draw(st.integers(1, 12))
    tiers = sorted(draw(st.lists(st.sampled_from(TIERS), min_size=n, max_size=n)), key=TIERS.index)
    files = []
    for i in range(n):
        earlier = [f"v{j}" for j in range(i)]
        refs = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        files.append(view(f"v{i}", tiers[i], tuple(refs)))
    return draw(st.permutations(files))


@given(dags())
def test_every_view_comes_after_what_it_reads_whatever_the_input_order(
    files: list[ViewFile],
) -> None:
    ordered = build_order(files)
    position = {f.name: i for i, f in enumerate(ordered)}
    assert sorted(position) == sorted(f.name for f in files)
    for f in ordered:
        assert all(position[r] < position[f.name] for r in f.refs)
    assert [TIERS.index(f.tier) for f in ordered] == sorted(TIERS.index(f.tier) for f in files)
    # the same files in another order give the same order: builds are reproducible
    assert build_order(reversed(files)) == ordered


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ([view("a", refs=("nope",))], r"sql/marts/a\.sql: ref\('nope'\) names no view"),
        ([view("a", refs=("b",)), view("b", refs=("a",))], r"a\.sql: ref\(\) cycle a -> b -> a"),
        (
            [view("s", "staging", ("m",)), view("m")],
            r"s\.sql: ref\('m'\) reads the marts tier from staging",
        ),
        ([view("a", "marts"), view("a", "report")], r"view a is in both marts and report"),
        ([view("a", "seeds")], r"a\.sql: tier 'seeds' is not one of"),
    ],
    ids=["unknown", "cycle", "later-tier", "twice", "unknown-tier"],
)
def test_what_cannot_be_ordered_names_the_file(files: list[ViewFile], error: str) -> None:
    with pytest.raises(CatalogError, match=error):
        build_order(files)
