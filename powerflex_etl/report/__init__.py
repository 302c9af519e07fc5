"""The self-contained HTML report: queries over the views, Vega-Lite charts as inline SVG.

``build_report(lake, out, start=..., end=...)`` is the one entry point; the modules split
by concern: ``queries`` (DuckDB -> small values), ``charts`` (specs, offline SVG),
``page`` (HTML), ``build`` (orchestration, atomic write).
"""

from __future__ import annotations

from powerflex_etl.report.build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]
