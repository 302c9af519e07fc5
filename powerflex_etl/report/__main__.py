"""``python -m powerflex_etl.report --lake L --out F [--start T] [--end T]`` (used by `make look`)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from powerflex_etl.errors import PowerflexError
from powerflex_etl.report import build_report
from powerflex_etl.windows import parse_time


def _when(text: str | None, flag: str) -> datetime | None:
    return parse_time(text, name=flag) if text else None


def main(argv: list[str] | None = None) -> int:
    """Build a report; prints where it went, or one error line on stderr."""
    p = argparse.ArgumentParser(prog="python -m powerflex_etl.report", description=__doc__)
    p.add_argument("--lake", default=None, help="lake directory or URL (default: POWERFLEX_LAKE)")
    p.add_argument("--out", default="report.html", help="HTML file to write")
    p.add_argument("--start", default=None, help="ISO date/datetime, UTC unless it says otherwise")
    p.add_argument("--end", default=None, help="ISO date/datetime, exclusive")
    args = p.parse_args(argv)
    from powerflex_etl.settings import Settings

    s = Settings(**({"lake": args.lake} if args.lake else {}))
    try:
        summary = build_report(
            s.lake,
            args.out,
            start=_when(args.start, "--start"),
            end=_when(args.end, "--end"),
            catalog_path=s.catalog_path,
        )
    except PowerflexError as err:
        sys.stderr.write(f"report: error: {err.one_line()}\n")
        return 1
    print(
        f"{summary.out}: {summary.sessions} sessions, {summary.energy_kwh:.1f} kWh, "
        f"{len(summary.charts)} charts, {summary.bytes} bytes in {summary.seconds:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
