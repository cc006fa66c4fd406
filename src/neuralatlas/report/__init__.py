"""The HTML report (one self-contained file) and the LaTeX export of a run folder.

* :func:`write_report` — run summary, training curves, layer picker, architecture, and one
  section per analysis found in the run folder (interactive projections).
* :func:`register_section` — plug a richer view of an analysis into the report; analyses
  nobody registered still get the generic section (summary tables and figures).
* :func:`export_latex` — booktabs tables of the run's numbers, every figure as PDF, and a
  ``main.tex`` that compiles with pdflatex.
"""

from __future__ import annotations

from typing import Any

from neuralatlas.report.collect import ReportError, read_run
from neuralatlas.report.components import figure_html, matplotlib_html, table_html
from neuralatlas.report.html import render_report, write_report
from neuralatlas.report.sections import SECTIONS, SectionContext, analysis_block, register_section
from neuralatlas.report.tables import summary_table

__all__ = [
    "SECTIONS",
    "ReportError",
    "SectionContext",
    "analysis_block",
    "export_latex",
    "figure_html",
    "matplotlib_html",
    "read_run",
    "register_section",
    "render_report",
    "summary_table",
    "table_html",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # The LaTeX export pulls in matplotlib for its training-curve figure; load it on demand.
    if name == "export_latex":
        from neuralatlas.report.latex import export_latex

        return export_latex
    raise AttributeError(f"module 'neuralatlas.report' has no attribute {name!r}")
