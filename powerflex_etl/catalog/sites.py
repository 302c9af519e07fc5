"""The optional sites file: ``[sites."03"] name = "Garage A"`` ``tz = "America/Los_Angeles"``.

It gives each acc_id a name and the time zone of its billing months and local columns. The
catalog copies it into its ``sites`` table at every build and keeps the file's SHA-256 in its
meta, so :func:`powerflex_etl.catalog.connect` rebuilds it when the file is added, edited or
removed. Keys other than ``name`` and ``tz`` are left to whoever reads them (the digest covers
the whole file, so a change to any key rebuilds the catalog).
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import duckdb

from powerflex_etl.errors import ConfigError
from powerflex_etl.lake.layout import SITES_NAME
from powerflex_etl.lake.url import LakeUrl


def read_sites(text: str, origin: str) -> list[tuple[str, str, str]]:
    """(acc_id, name, tz) rows from a sites TOML: ``[sites."03"] name = "..." tz = "..."``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"sites file {origin} is not valid TOML: {e}") from e
    sites = data.get("sites", {})
    if not isinstance(sites, dict):
        raise ConfigError(f"sites file {origin}: [sites] must be a table of acc_id tables")
    rows = []
    for acc_id, site in sorted(sites.items()):
        name = site.get("name") if isinstance(site, dict) else None
        tz = site.get("tz") if isinstance(site, dict) else None
        if not isinstance(name, str) or not isinstance(tz, str):
            raise ConfigError(
                f'sites file {origin}: [sites."{acc_id}"] needs string keys name and tz'
            )
        rows.append((acc_id, name, tz))
    return rows


def sites_text(lake: LakeUrl, sites_file: str | None) -> tuple[str, str] | None:
    """(text, where from) of ``sites_file``, else of ``<lake>/sites.toml``; None without either."""
    if sites_file:
        path = Path(sites_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"sites file {path} not found", hint="fix POWERFLEX_SITES_FILE")
        return path.read_text(encoding="utf-8"), str(path)
    in_lake = lake.join(SITES_NAME)
    if lake.is_local:
        p = Path(in_lake)
        return (p.read_text(encoding="utf-8"), in_lake) if p.is_file() else None
    if not lake.fs.exists(in_lake):
        return None
    with lake.fs.open(in_lake, "rb") as fh:
        return fh.read().decode("utf-8"), in_lake


def sites_digest(found: tuple[str, str] | None) -> str | None:
    """SHA-256 of a sites file's text (from :func:`sites_text`); None when there is no file."""
    if found is None:
        return None
    return hashlib.sha256(found[0].encode("utf-8")).hexdigest()


def create_sites(
    con: duckdb.DuckDBPyConnection,
    lake: LakeUrl,
    sites_file: str | None = None,
    *,
    found: tuple[str, str] | None = None,
) -> int:
    """Create the ``sites(acc_id, name, tz)`` table; empty when there is no sites file.

    ``found`` is the file's (text, origin) when the caller has read it already (so the table
    and the digest kept beside it come from the same text).
    """
    con.execute("create or replace table sites(acc_id varchar, name varchar, tz varchar)")
    if found is None:
        found = sites_text(lake, sites_file)
    if found is None:
        return 0
    rows = read_sites(*found)
    for acc_id, _, tz in rows:
        try:
            # the marts convert with DuckDB's ICU, so DuckDB decides what a valid zone is
            con.execute("select timezone(?, timestamptz '2000-01-01 00:00:00+00')", [tz])
        except duckdb.Error as e:
            raise ConfigError(
                f"sites file {found[1]}: site {acc_id!r} has unknown time zone {tz!r}"
            ) from e
    if rows:
        con.executemany("insert into sites values (?, ?, ?)", rows)
    return len(rows)
