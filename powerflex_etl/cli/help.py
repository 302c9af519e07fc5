"""What ``--help`` says beyond the options: examples, the credentials, the views to query.

Help is click's plain format (``rich_markup_mode=None`` on every Typer app): flags show no
``<bool>``, and a paragraph that starts with ``\\b`` is printed as written, so examples
keep their lines. Everything here is pure; the view listings import the catalog's SQL
files (and so DuckDB) only when asked for, so ``powerflex-etl --help`` stays fast.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from powerflex_etl.catalog.sqlfiles import ViewFile

PROG = "powerflex-etl"

#: The variables a command that calls the API reads (Settings, env_prefix POWERFLEX_).
CREDENTIALS = (
    "\b\n"
    "Credentials and API, from the environment:\n"
    "  POWERFLEX_BASE_URL   API root, e.g. https://<host>.powerflex.com:9443 (or --base-url)\n"
    "  POWERFLEX_USERNAME   login name\n"
    "  POWERFLEX_PASSWORD   password: only from the environment, never a flag\n"
    "Offline: `powerflex-etl simulator` serves the API (login demo / demo-password)."
)


def epilog(*examples: str, credentials: bool = False, notes: Sequence[str] = ()) -> str:
    """The text after the options: ``Examples:`` (one command a line), notes, credentials."""
    parts = ["\b\nExamples:\n" + "\n".join(f"  {PROG} {e}" for e in examples)]
    parts += [f"\b\n{n}" for n in notes]
    if credentials:
        parts.append(CREDENTIALS)
    return "\n\n".join(parts)


def examples_of(text: str) -> list[str]:
    """The example command lines of a help text (``powerflex-etl ...`` under ``Examples:``)."""
    out: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip() == "Examples:":
            for ex in lines:
                if not ex.strip().startswith(PROG + " "):
                    break
                out.append(ex.strip())
    return out


# the tiers an analyst queries; intermediate and report views are building blocks
ANALYST_TIERS: tuple[str, ...] = ("staging", "marts")


def views_help(width: int = 78) -> str:
    """A ``\\b`` paragraph naming the views a query can read, tier by tier."""
    from powerflex_etl.catalog.sqlfiles import CATALOG_TABLES, SQL_DIR, view_files

    lines = ["\b", "Views (`query --list` says what each holds):"]
    for tier in ANALYST_TIERS:
        names = [f.name for f in view_files(SQL_DIR, tier)]
        if tier == "staging":
            names += list(CATALOG_TABLES)
        lines += textwrap.wrap(
            ", ".join(names), width, initial_indent=f"  {tier}: ", subsequent_indent="    "
        )
    return "\n".join(lines)


_SENTENCE_END = re.compile(r"(?<=[a-z0-9)])\. ")


def describe(view: ViewFile, width: int = 72) -> str:
    """The first sentence of a view file's leading ``--`` comment, cut to ``width``."""
    comment: list[str] = []
    for line in view.sql.splitlines():
        if not line.startswith("--"):
            break
        comment.append(line.removeprefix("--").strip())
    text = " ".join(comment)
    text = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")
    return textwrap.shorten(text, width, placeholder=" …") if text else ""


#: What each of the catalog's own tables holds (they have no SQL file to describe them).
TABLE_NOTES = {
    "sites": "from sites.toml: acc_id, name, tz",
    "tariffs": "from sites.toml's tariff keys: each priced site's tariff file",
    "tariff_periods": "each priced site's time-of-use periods, prices and demand charge",
}


def list_views() -> str:
    """Every view and catalog table, with its tier and what it holds, as aligned text."""
    from powerflex_etl.catalog.sqlfiles import CATALOG_TABLES, SQL_DIR, TIERS, view_files

    rows = [("tier", "view", "what it holds")]
    for tier in TIERS:
        rows += [(tier, f.name, describe(f)) for f in view_files(SQL_DIR, tier)]
    rows += [("table", name, TABLE_NOTES.get(name, "")) for name in CATALOG_TABLES]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{t:<{w0}}  {v:<{w1}}  {d}".rstrip() for t, v, d in rows) + "\n"
