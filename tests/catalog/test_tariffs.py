"""Tariff files: the shipped ones, the checks that refuse a bad one, the catalog's tables.

A file that leaves a local instant to no schedule, or to two, is refused at catalog build
with one line naming the file and the first such instant (acnportal would only fail when
asked for that instant, and its own PG&E A-10 file has two winter schedules for every day).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powerflex_etl.catalog import build_catalog, connect
from powerflex_etl.catalog.site_tariffs import period_rows
from powerflex_etl.catalog.tariffs import (
    SHIPPED_DIR,
    TariffError,
    parse_tariff,
    read_tariff,
    shipped_names,
)
from tests.fixtures.cli_run import run_cli

REAL = Path("/work/shared/data/real/tariffs")
# the sha256 SOURCES.md gives for each file copied from acnportal (copied unmodified)
SHA256 = {
    "sce_tou_ev_4_march_2019": "e424c143c33556e13174f1bcb3983a2f59395b84599cb2c1dd426262975321b1",
    "sce_tou_ev_8_june_2019": "f955e41e74a96bef1ef76a89a5eb0e143c6402362d63e9d70a97dd074b034df3",
    "sce_tou_ev_8_oct_2018": "7c2baf1debf7f5c1db3703d831141823b695493973a1f0c2d0bcfcb874094669",
    "pge_a10_tou_aug_2019": "2a2e02db2b88a1b9596a02bf9ba760d0790db9383defd204de1dd4c165954402",
}


def doc(*schedules: dict[str, Any]) -> str:
    return json.dumps({"name": "test", "schedule": list(schedules)})


def sched(sid: str, start: str, end: str, mask: str = "ALL", times=(0,), prices=(0.1,), dc=1.0):
    return {
        "id": sid,
        "effective_start": start,
        "effective_end": end,
        "dow_mask": mask,
        "times": list(times),
        "tariffs": list(prices),
        "demand_charge": dc,
    }


def refused(text: str) -> str:
    with pytest.raises(TariffError) as err:
        parse_tariff(text, "t", "/x/t.json")
    line = err.value.one_line()
    assert "\n" not in line
    assert line.startswith("tariff file /x/t.json: ")
    return line


def test_the_four_real_schedules_ship_unmodified() -> None:
    assert shipped_names() == sorted(SHA256)
    for name, digest in SHA256.items():
        assert hashlib.sha256((SHIPPED_DIR / f"{name}.json").read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(
    ("name", "title", "rows"),
    [
        # winter wraps the year: two month-day ranges
        ("sce_tou_ev_4_march_2019", "SCE TOU-EV-4", 5 + 1 + 2 * (5 + 1)),
        ("sce_tou_ev_8_june_2019", "SCE TOU-EV-8", 3 + 3 + 2 * 4),
        ("sce_tou_ev_8_oct_2018", "SCE TOU-EV-8", 3 + 2 * 4),
    ],
)
def test_the_sce_schedules_cover_every_instant_once(name: str, title: str, rows: int) -> None:
    t = read_tariff(name, None)
    assert t.name == title
    assert len(period_rows("03", t)) == rows


def test_the_shipped_pge_a10_is_refused_at_its_first_doubly_claimed_instant() -> None:
    with pytest.raises(TariffError) as err:
        read_tariff("pge_a10_tou_aug_2019", None)
    line = err.value.one_line()
    assert str(SHIPPED_DIR / "pge_a10_tou_aug_2019.json") in line
    assert (
        "local time 01-01 00:00 (a Monday) is claimed by 2 schedules "
        "(Winter-Weekday, Winter-Weekend)"
    ) in line


def test_a_day_no_season_claims_is_named() -> None:
    line = refused(doc(sched("Summer", "06-01", "09-30"), sched("Winter", "10-01", "05-30")))
    assert "local time 05-31 00:00 (a Monday) is claimed by no schedule" in line


def test_a_weekday_no_schedule_claims_is_named() -> None:
    line = refused(doc(sched("Weekdays", "01-01", "12-31", "WEEKDAYS")))
    assert "01-01 00:00 (a Saturday) is claimed by no schedule" in line


def test_overlapping_seasons_are_named_where_they_first_overlap() -> None:
    line = refused(doc(sched("Summer", "06-01", "09-30"), sched("Winter", "09-30", "05-31")))
    assert "09-30 00:00 (a Monday) is claimed by 2 schedules (Summer, Winter)" in line


def test_a_day_starting_after_midnight_or_two_periods_at_once_is_refused() -> None:
    late = refused(doc(sched("All", "01-01", "12-31", times=(6, 18), prices=(0.1, 0.2))))
    assert "01-01 00:00 (a Monday) is in no period of schedule All" in late
    twice = refused(doc(sched("All", "01-01", "12-31", times=(0, 8.5, 8.5), prices=(1, 2, 3))))
    assert "01-01 08:30 (a Monday) starts 2 periods of schedule All" in twice


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("{", "not valid JSON"),
        (json.dumps({"name": "x", "schedule": []}), 'needs a non-empty list "schedule"'),
        (doc(sched("A", "13-01", "12-31")), 'effective_start must be a month-day like "06-01"'),
        (doc(sched("A", "02-30", "12-31")), "not '02-30'"),
        (doc(sched("A", "01-01", "12-31", mask="WEEKDAY")), "dow_mask must be one of"),
        (doc(sched("A", "01-01", "12-31", times=(0, 8), prices=(0.1,))), "2 times but 1 tariffs"),
        (doc(sched("A", "01-01", "12-31", times=(0, 24), prices=(1, 2))), "in [0, 24)"),
        (doc(sched("A", "01-01", "12-31", prices=("cheap",))), "must be a finite number"),
        (doc(sched("A", "01-01", "12-31", dc=None)), "demand_charge must be a finite number"),
    ],
)
def test_malformed_files_say_what_is_wrong(bad: str, said: str) -> None:
    assert said in refused(bad)


def test_an_unknown_shipped_name_lists_the_shipped_ones() -> None:
    with pytest.raises(TariffError, match=r"not a shipped schedule .*sce_tou_ev_4_march_2019"):
        read_tariff("sce_tou_ev_9", None)


@st.composite
def seasons(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[date]]:
    """A valid file: the year cut at 1-4 random days into seasons, each ALL or weekday/weekend."""
    days = sorted(draw(st.sets(st.integers(0, 365), min_size=1, max_size=4)))
    starts = [date(2024, 1, 1) + timedelta(days=d) for d in days]
    out = []
    for i, start in enumerate(starts):
        # the day before the next season (the last one wraps to the first)
        end = starts[(i + 1) % len(starts)] - timedelta(days=1)
        md = (f"{start:%m-%d}", f"{end:%m-%d}")
        times = sorted(draw(st.sets(st.sampled_from([0.25, 8, 8.5, 12, 17.75, 23]), max_size=3)))
        prices = [0.1 * (k + 1) for k in range(len(times) + 1)]
        if draw(st.booleans()):
            out.append(sched(f"S{i}", *md, "ALL", [0, *times], prices))
        else:
            out.append(sched(f"S{i}wd", *md, "WEEKDAYS", [0, *times], prices))
            out.append(sched(f"S{i}we", *md, "WEEKENDS", [0], [0.05]))
    return out, starts


@settings(max_examples=40, deadline=None)
@given(seasons(), st.data())
def test_a_valid_partition_passes_and_dropping_or_doubling_a_season_is_caught(
    case: tuple[list[dict[str, Any]], list[date]], data: st.DataObject
) -> None:
    schedules, _ = case
    parse_tariff(doc(*schedules), "t", "/x/t.json")
    i = data.draw(st.integers(0, len(schedules) - 1))
    victim = schedules[i]
    start, end = victim["effective_start"], victim["effective_end"]
    # the victim's first month-day in calendar order: 01-01 when its season wraps the year
    first = "01-01" if end < start else start
    if len(schedules) > 1:
        dropped = refused(doc(*schedules[:i], *schedules[i + 1 :]))
        assert f"local time {first} 00:00 (a " in dropped
        assert "is claimed by no schedule" in dropped
    doubled = refused(doc(*schedules, {**victim, "id": "copy"}))
    assert f"local time {first} 00:00 (a " in doubled
    assert f"is claimed by 2 schedules ({victim['id']}, copy)" in doubled


# ---- the catalog: tables, refusal at build, the CLI's one line ----------------------------


def _lake(tmp_path: Path, tariff: str, extra: dict[str, str] | None = None) -> Path:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "sites.toml").write_text(
        f'[sites."03"]\nname = "Garage"\ntz = "America/Los_Angeles"\ntariff = "{tariff}"\n'
        '[sites."04"]\nname = "Other"\ntz = "UTC"\n'
    )
    for name, text in (extra or {}).items():
        (lake / name).write_text(text)
    return lake


def test_the_catalog_holds_each_sites_tariff_and_its_periods(tmp_path: Path) -> None:
    lake = _lake(tmp_path, "sce_tou_ev_4_march_2019")
    build_catalog(str(lake))
    con = connect(str(lake))
    assert con.execute("select acc_id, tariff, tariff_name from tariffs").fetchall() == [
        ("03", "sce_tou_ev_4_march_2019", "SCE TOU-EV-4")
    ]
    periods = con.execute(
        "select schedule_id, md_from, md_to, isodow_from, isodow_to, start_hour, end_hour, "
        "tou_period, price_usd_per_kwh, demand_charge_usd_per_kw from tariff_periods "
        "where schedule_id like 'Winter%' order by md_from, isodow_from, start_hour"
    ).fetchall()
    assert periods[:2] == [
        ("Winter-Weekday", 101, 531, 1, 5, 0.0, 8.0, "Winter-Weekday 00:00-08:00", 0.06087, 15.51),
        ("Winter-Weekday", 101, 531, 1, 5, 8.0, 12.0, "Winter-Weekday 08:00-12:00", 0.07492, 15.51),
    ]
    assert ("Winter-Weekend", 1001, 1231, 6, 7, 0.0, 24.0) in [p[:7] for p in periods]


def test_a_tariff_path_is_relative_to_the_sites_file(tmp_path: Path) -> None:
    text = doc(sched("All", "01-01", "12-31", times=(0, 8.5), prices=(0.1, 0.2)))
    lake = _lake(tmp_path, "./mine.json", {"mine.json": text})
    build_catalog(str(lake))
    con = connect(str(lake))
    assert con.execute("select tariff_file from tariffs").fetchone() == (str(lake / "mine.json"),)
    assert con.execute("select tou_period from tariff_periods order by start_us").fetchall() == [
        ("All 00:00-08:30",),
        ("All 08:30-24:00",),
    ]


def test_a_bad_tariff_fails_the_build_and_the_old_catalog_stays(tmp_path: Path) -> None:
    lake = _lake(tmp_path, "sce_tou_ev_4_march_2019")
    build_catalog(str(lake))
    (lake / "sites.toml").write_text(
        '[sites."03"]\nname = "Garage"\ntz = "America/Los_Angeles"\ntariff = "pge_a10_tou_aug_2019"\n'
    )
    with pytest.raises(TariffError, match=r"pge_a10_tou_aug_2019\.json: local time 01-01 00:00"):
        build_catalog(str(lake))
    con = duckdb.connect(str(lake / "powerflex.duckdb"), read_only=True)
    assert con.execute("select tariff from tariffs").fetchall() == [("sce_tou_ev_4_march_2019",)]
    con.close()


def test_a_missing_tariff_file_is_named(tmp_path: Path) -> None:
    lake = _lake(tmp_path, "tariffs/nowhere.json")
    with pytest.raises(TariffError, match=r"tariff file .*tariffs/nowhere.json cannot be read"):
        build_catalog(str(lake))


def test_the_cli_says_in_one_line_which_file_and_which_instant(tmp_path: Path) -> None:
    lake = _lake(tmp_path, "pge_a10_tou_aug_2019")
    run = run_cli(["query", "select count(*) from monthly_bill", "--lake", str(lake)], env={})
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1
    line = run.last_error_line()
    assert "pge_a10_tou_aug_2019.json" in line and "01-01 00:00 (a Monday)" in line
    assert "claimed by 2 schedules" in line
