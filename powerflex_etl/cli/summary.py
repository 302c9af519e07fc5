"""The few lines a person reads at the end of ``ingest`` and ``backfill`` (``--json``: the report).

Pure functions of the run report (:meth:`RunResult.report`) and of a dry run's estimate
(:func:`powerflex_etl.ingest.plan.estimate`), tested with literals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

#: Windows a dry run lists before "... N more".
DRY_RUN_SHOWN = 10


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _when(iso: str | None) -> str:
    """An ISO instant as ``YYYY-MM-DD HH:MM UTC`` (seconds only when there are some)."""
    if not iso:
        return "-"
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return t.strftime("%Y-%m-%d %H:%M:%S UTC" if t.second else "%Y-%m-%d %H:%M UTC")


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def run_summary(report: dict[str, Any], command: str) -> str:
    """``command: N windows ...`` then one line per measurement; "nothing to do" when so."""
    per: dict[str, dict[str, Any]] = report.get("measurements") or {}
    skipped = int(report.get("skipped_committed") or 0)
    if not per:
        if skipped:
            return (
                f"{command}: nothing to do: all {_plural(skipped, 'window')} already committed"
                " (--redo runs them again)\n"
            )
        return f"{command}: nothing to do: no window in the range\n"
    windows = sum(int(t.get("windows", 0)) for t in per.values())
    rows = sum(int(t.get("rows", 0)) for t in per.values())
    head = (
        f"{command}: {_plural(windows, 'window')} committed, {_plural(rows, 'row')} in "
        f"{_seconds(float(report.get('seconds') or 0))} (run {report.get('run_id')})"
    )
    if skipped:
        head += f"; {_plural(skipped, 'window')} already committed, skipped"
    width = max(len(m) for m in per)
    lines = [head]
    marks: dict[str, str] = report.get("watermarks") or {}
    for m, t in sorted(per.items()):
        rejects = int(t.get("rejects", 0))
        new = int(t.get("new_rejects", rejects))
        reject_text = _plural(rejects, "reject") + (f" ({new:,} new)" if new != rejects else "")
        line = (
            f"  {m:<{width}}  {_plural(int(t.get('windows', 0)), 'window'):>12}"
            f"  {_plural(int(t.get('rows', 0)), 'row'):>15}  {reject_text}"
        )
        if m in marks:
            line += f"  watermark {_when(marks[m])}"
        lines.append(line)
        if not t.get("unit_check_ok", True):
            lines.append(f"  warning: {m}: {t.get('unit_check')}")
    return "\n".join(lines) + "\n"


def dry_run_summary(estimate: dict[str, Any], shown: int = DRY_RUN_SHOWN) -> str:
    """What a backfill would do: windows per measurement, estimated points, the first windows."""
    per: dict[str, dict[str, Any]] = estimate.get("estimate") or {}
    todo = sum(int(e.get("windows", 0)) for e in per.values())
    done = sum(int(e.get("skipped_committed", 0)) for e in per.values())
    head = f"backfill --dry-run: {_plural(todo, 'window')} to run"
    if done:
        head += f", {_plural(done, 'window')} already committed"
    lines = [head + " (nothing fetched)"]
    width = max((len(m) for m in per), default=0)
    for m, e in sorted(per.items()):
        points = e.get("points")
        guess = f"~{points:,} points" if points is not None else "points unknown"
        lines.append(
            f"  {m:<{width}}  {_plural(int(e.get('windows', 0)), 'window'):>12}"
            f"  {guess} ({e.get('basis')})"
        )
    windows: list[str] = estimate.get("windows") or []
    if windows:
        lines.append("windows:")
        lines += [f"  {w}" for w in windows[:shown]]
        if len(windows) > shown:
            lines.append(f"  ... {len(windows) - shown:,} more (--json lists every window)")
    elif not done:
        lines.append("nothing to do: no window in the range")
    else:
        lines.append("nothing to do: every window is already committed (--redo runs them again)")
    return "\n".join(lines) + "\n"
