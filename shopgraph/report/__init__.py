"""The ``shopgraph report`` page: a self-contained HTML summary of a run, with inline SVG plots.

``build_report(results, path)`` writes it; the schema of ``results`` is documented in
:mod:`shopgraph.report.build`.
"""

from shopgraph.report.build import ReportWarning, build_report, read_results, render_report

__all__ = ["ReportWarning", "build_report", "read_results", "render_report"]
