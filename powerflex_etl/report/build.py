"""``build_report``: query the views, render the charts, write one HTML file atomically."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from powerflex_etl.errors import LakeError, PowerflexError, redact
from powerflex_etl.report import charts as charts_mod
from powerflex_etl.report.cost import cost_charts, cost_section, load_cost
from powerflex_etl.report.page import page
from powerflex_etl.report.queries import load


@dataclass
class ReportSummary:
    """What a report holds: where it went and the numbers it shows."""

    out: str
    sessions: int
    energy_kwh: float
    peak_demand_kw: dict[str, float] = field(default_factory=dict)
    first_time: datetime | None = None
    last_time: datetime | None = None
    charts: list[str] = field(default_factory=list)  # keys of the charts drawn (with data)
    empty: bool = False
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (times as ISO strings), for the CLI's summary line."""
        out = asdict(self)
        for k in ("first_time", "last_time"):
            t = out[k]
            out[k] = t.isoformat() if isinstance(t, datetime) else None
        out["seconds"] = round(self.seconds, 3)
        return out


def build_report(
    lake: str,
    out: str,
    *,
    start: datetime | None,
    end: datetime | None,
    catalog_path: str | None = None,
    sites_file: str | None = None,
) -> ReportSummary:
    """Write a self-contained HTML report of ``lake`` over ``[start, end)`` to ``out``.

    Reads through ``catalog.connect`` (read-only; builds the catalog if it is missing), the
    marts brought up to date first. An
    empty lake or range gives a valid report that says there is no data. The file is
    written next to ``out`` and renamed into place, so a reader never sees half a report.
    """
    from powerflex_etl.catalog import connect
    from powerflex_etl.ingest.upkeep import ensure_current
    from powerflex_etl.lake.store import Lake

    t0 = time.perf_counter()
    if start is not None and end is not None and _aware(start) >= _aware(end):
        raise PowerflexError(
            f"report: start {start.isoformat()} is not before end {end.isoformat()}",
            hint="--end is exclusive and must be after --start",
        )
    ensure_current(Lake(lake))
    con = connect(lake, catalog_path=catalog_path, sites_file=sites_file)
    try:
        data = load(con, start, end)
        cost = load_cost(con, start, end)
    finally:
        con.close()
    figures = []
    for chart in charts_mod.charts(data):
        svg = charts_mod.render_svg(chart.spec) if chart.spec is not None else None
        figures.append((chart, svg))
    cost_figures = [
        (chart, charts_mod.render_svg(chart.spec) if chart.spec is not None else None)
        for chart in cost_charts(cost)
    ]
    html = page(
        data,
        figures,
        lake=redact(lake),
        generated_at=datetime.now(UTC),
        sections=[cost_section(cost, cost_figures)],
    )
    size = _write_atomic(Path(out), html)
    return ReportSummary(
        out=str(out),
        sessions=data.sessions,
        energy_kwh=data.energy_kwh,
        peak_demand_kw={p.acc_id: p.peak_demand_kw for p in data.peaks},
        first_time=data.first_time,
        last_time=data.last_time,
        charts=[c.key for c, svg in [*figures, *cost_figures] if svg is not None],
        empty=data.empty,
        bytes=size,
        seconds=time.perf_counter() - t0,
    )


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _write_atomic(path: Path, text: str) -> int:
    body = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        # mkstemp makes the file private; a report is meant to be shared
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise LakeError(f"report: cannot write {path}: {err}", hint="check the --out path")
    return len(body)
