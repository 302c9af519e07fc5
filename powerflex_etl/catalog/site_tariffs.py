"""Each site's tariff, from its ``tariff`` key in sites.toml, as two small catalog tables.

``[sites."03"] tariff = "sce_tou_ev_4_march_2019"`` (a shipped schedule) or ``tariff =
"./my_tariff.json"`` (a file in acnportal's format, relative to the sites file). Every named
file is read and checked whole (:mod:`.tariffs`) at each catalog build, so a bad one fails
the build with one line naming it and the old catalog stays. The tables the cost views read:

- ``tariffs``: per site, the key it wrote, the tariff's name, effective date, link and file;
- ``tariff_periods``: per site, one row per (schedule, month-day range, period), with the
  local month-days (``month * 100 + day``, inclusive; a season wrapping the year is two
  rows), ISO weekdays and µs after local midnight it covers, its price and the schedule's
  demand charge. The check guarantees exactly one row matches any local instant of a site.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import duckdb

from powerflex_etl.catalog.sites import sites_text
from powerflex_etl.catalog.tariffs import HOUR_US, Tariff, TariffError, read_tariff
from powerflex_etl.errors import ConfigError
from powerflex_etl.lake.url import LakeUrl

TARIFFS_DDL = (
    "create or replace table tariffs(acc_id varchar, tariff varchar, tariff_name varchar, "
    "effective varchar, link varchar, tariff_file varchar)"
)
PERIODS_DDL = (
    "create or replace table tariff_periods(acc_id varchar, tariff_name varchar, "
    "schedule_id varchar, md_from integer, md_to integer, isodow_from integer, "
    "isodow_to integer, start_us bigint, end_us bigint, start_hour double, end_hour double, "
    "tou_period varchar, price_usd_per_kwh double, demand_charge_usd_per_kw double)"
)


def tariff_keys(text: str, origin: str) -> dict[str, str]:
    """acc_id -> the ``tariff`` key of each site that has one (sites.py checks the rest)."""
    try:
        sites = tomllib.loads(text).get("sites", {})
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"sites file {origin} is not valid TOML: {e}") from e
    out: dict[str, str] = {}
    for acc_id, site in sorted(sites.items()) if isinstance(sites, dict) else ():
        key = site.get("tariff") if isinstance(site, dict) else None
        if key is None:
            continue
        if not isinstance(key, str) or not key.strip():
            raise TariffError(
                f'sites file {origin}: [sites."{acc_id}"] tariff must be a shipped name or a path'
            )
        out[acc_id] = key.strip()
    return out


def period_rows(acc_id: str, t: Tariff) -> list[tuple[object, ...]]:
    """The ``tariff_periods`` rows of one site's tariff."""
    rows: list[tuple[object, ...]] = []
    for s in t.schedules:
        first, last = s.isodow
        for md_from, md_to in s.month_day_ranges():
            for p in s.periods:
                rows.append(
                    (
                        acc_id,
                        t.name,
                        s.id,
                        md_from,
                        md_to,
                        first,
                        last,
                        p.start_us,
                        p.end_us,
                        p.start_us / HOUR_US,
                        p.end_us / HOUR_US,
                        f"{s.id} {p.label}",
                        p.price_usd_per_kwh,
                        s.demand_charge_usd_per_kw,
                    )
                )
    return rows


def _reader(lake: LakeUrl, origin: str) -> tuple[Path | None, Callable[[Path], str] | None]:
    """Where relative tariff paths start, and how to read one, for a sites file at ``origin``."""
    if lake.is_local or Path(origin).is_file():
        return Path(origin).parent, None

    # a sites.toml inside an object-store lake: relative tariff paths are inside the lake too
    def read(path: Path) -> str:
        if path.is_absolute():
            return path.read_text(encoding="utf-8")
        with lake.fs.open(lake.join(*path.parts), "rb") as fh:
            data: bytes = fh.read()
        return data.decode("utf-8")

    return None, read


def create_tariff_tables(
    con: duckdb.DuckDBPyConnection, lake: LakeUrl, sites_file: str | None = None
) -> int:
    """Create ``tariffs`` and ``tariff_periods`` (empty without tariffs); the sites with one."""
    con.execute(TARIFFS_DDL)
    con.execute(PERIODS_DDL)
    found = sites_text(lake, sites_file)
    if found is None:
        return 0
    text, origin = found
    keys = tariff_keys(text, origin)
    base_dir, read = _reader(lake, origin)
    loaded: dict[str, Tariff] = {}  # sites sharing a tariff read it once
    for acc_id, key in keys.items():
        if key not in loaded:
            loaded[key] = read_tariff(key, base_dir, read)
        t = loaded[key]
        con.execute(
            "insert into tariffs values (?, ?, ?, ?, ?, ?)",
            [acc_id, t.key, t.name, t.effective, t.link, t.origin],
        )
        con.executemany(
            "insert into tariff_periods values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            period_rows(acc_id, t),
        )
    return len(keys)
