"""The README's settings table names every setting there is, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from powerflex_etl.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"POWERFLEX_[A-Z0-9_]+")


def settings_table() -> set[str]:
    """The ``POWERFLEX_*`` names in the first column of the README's ``## Settings`` table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `POWERFLEX_")]
    return {name for row in rows for name in _NAME.findall(row.split("|")[1])}


def test_every_setting_is_in_the_readme_table() -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    wanted = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    missing = sorted(wanted - settings_table())
    assert missing == [], f"add to the README's settings table: {', '.join(missing)}"
    assert {"POWERFLEX_MAX_ATTEMPTS", "POWERFLEX_RETRY_MAX_TOTAL_S"} <= settings_table()


def test_the_table_names_no_variable_that_nothing_reads() -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    fields = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    # variables read outside Settings (the CLI's engine, the Prefect password block) count too
    code = " ".join(
        p.read_text(encoding="utf-8")
        for d in ("powerflex_etl", "flows")
        for p in (ROOT / d).rglob("*.py")
    )
    unknown = sorted(n for n in settings_table() - fields if n not in code)
    assert unknown == [], f"the README documents variables nothing reads: {', '.join(unknown)}"
