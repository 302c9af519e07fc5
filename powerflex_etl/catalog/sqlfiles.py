"""The ``sql/`` directory: its tiers, one view per file, and the order to create them in.

Tiers are built in this order, and a view reads only its own tier or an earlier one:

- ``staging``: one view per lake table, renaming and casting only;
- ``intermediate``: shared building blocks (``session_samples``, ``evse_load_15min``);
- ``marts``: what analysts query (sessions, load, utilization, monthly peak, ...);
- ``report``: the HTML report's inputs, at a grain where filtering to a range is exact.

A view names every catalog relation it reads with ``{{ ref('name') }}`` (rendered as the
quoted name); that includes the ``sites``, ``tariffs`` and ``tariff_periods`` tables, which
the catalog creates before any view.
The refs give the order: :func:`build_order` sorts the views so each comes after what it
reads, and refuses unknown names, cycles and reads of a later tier. The lake's own
templates (``source``, ``state_records``) are rendered by :mod:`powerflex_etl.catalog.build`.
Everything here is pure: files in, ordered files out, no DuckDB.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from powerflex_etl.errors import LakeError

TIERS: tuple[str, ...] = ("staging", "intermediate", "marts", "report")
# tables the catalog creates itself, before any view: always there for a ref
CATALOG_TABLES: tuple[str, ...] = ("sites", "tariffs", "tariff_periods")

_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\(\s*'([^']*)'\s*\)\s*\}\}")
_VIEW_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class CatalogError(LakeError):
    """The catalog could not be built: a SQL file does not bind, or a template is wrong."""

    hint = "fix the SQL file named; the previous catalog, if any, is left in place"


def _sql_dir() -> Path:
    """The repository's sql/ next to the package; from a wheel, ``<prefix>/share/powerflex-etl/sql``."""
    repo = Path(__file__).resolve().parents[2] / "sql"
    if (repo / "staging").is_dir():
        return repo
    return Path(sys.prefix) / "share" / "powerflex-etl" / "sql"


SQL_DIR = _sql_dir()


def sql_ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def refs_of(sql: str) -> tuple[str, ...]:
    """The names ``sql`` reads through ``{{ ref('name') }}``, once each, in order of appearance."""
    names = (m.group(2) for m in _TEMPLATE.finditer(sql) if m.group(1) == "ref")
    return tuple(dict.fromkeys(names))


def render_refs(sql: str) -> str:
    """``sql`` with each ``{{ ref('name') }}`` replaced by the quoted name; other templates kept."""

    def expand(m: re.Match[str]) -> str:
        return sql_ident(m.group(2)) if m.group(1) == "ref" else m.group(0)

    return _TEMPLATE.sub(expand, sql)


@dataclass(frozen=True)
class ViewFile:
    """One ``sql/<tier>/<name>.sql``: the view ``name`` is its SELECT; ``refs`` what it reads."""

    name: str
    path: Path
    sql: str
    tier: str
    refs: tuple[str, ...]

    @property
    def label(self) -> str:
        """``<tier>/<name>.sql``, as error messages name the file."""
        return f"{self.tier}/{self.name}.sql"


def view_files(sql_dir: Path, tier: str) -> list[ViewFile]:
    """The tier's SQL files in name order (none when the tier has no directory)."""
    out = []
    for path in sorted((sql_dir / tier).glob("*.sql")):
        if not _VIEW_NAME.fullmatch(path.stem):
            raise CatalogError(f"{path}: a view file name must be lowercase letters, digits, _")
        text = path.read_text(encoding="utf-8").strip().rstrip(";").rstrip()
        out.append(ViewFile(path.stem, path, text, tier, refs_of(text)))
    return out


def all_view_files(sql_dir: Path, tiers: Sequence[str] = TIERS) -> list[ViewFile]:
    """Every view file of ``tiers``, tier by tier."""
    return [f for tier in tiers for f in view_files(sql_dir, tier)]


def build_order(
    files: Iterable[ViewFile],
    tiers: Sequence[str] = TIERS,
    provided: Iterable[str] = CATALOG_TABLES,
) -> list[ViewFile]:
    """``files`` sorted so every view comes after the views it refs, tier by tier.

    ``provided`` names relations that exist before any view (the catalog's ``sites``). Ties
    keep tier, then name order, so the order is the same on every build. Raises
    :class:`CatalogError` naming the file for a view defined twice, a ref to an unknown name
    or to a later tier, and a cycle.
    """
    rank = {tier: i for i, tier in enumerate(tiers)}
    by_name: dict[str, ViewFile] = {}
    for f in sorted(files, key=lambda f: (rank.get(f.tier, len(rank)), f.name)):
        if f.tier not in rank:
            raise CatalogError(f"{f.path}: tier {f.tier!r} is not one of {tuple(tiers)}")
        if f.name in by_name:
            raise CatalogError(f"view {f.name} is in both {by_name[f.name].tier} and {f.tier}")
        by_name[f.name] = f
    ready = set(provided)
    for f in by_name.values():
        if f.name in ready:
            raise CatalogError(
                f"{f.path}: {f.name} is a table the catalog creates; rename the view"
            )
    for f in by_name.values():
        for name in f.refs:
            target = by_name.get(name)
            if target is None and name not in ready:
                raise CatalogError(f"{f.path}: ref('{name}') names no view or catalog table")
            if target is not None and rank[target.tier] > rank[f.tier]:
                raise CatalogError(
                    f"{f.path}: ref('{name}') reads the {target.tier} tier from {f.tier}; "
                    f"a view reads only its own tier or an earlier one ({' -> '.join(tiers)})"
                )

    ordered: list[ViewFile] = []
    done: set[str] = set()
    path: list[str] = []  # the refs being followed, to name a cycle

    def visit(f: ViewFile) -> None:
        if f.name in done:
            return
        if f.name in path:
            cycle = [*path[path.index(f.name) :], f.name]
            raise CatalogError(f"{f.path}: ref() cycle {' -> '.join(cycle)}")
        path.append(f.name)
        for name in f.refs:
            if name in by_name:
                visit(by_name[name])
        path.pop()
        done.add(f.name)
        ordered.append(f)

    for f in by_name.values():
        visit(f)
    return ordered
