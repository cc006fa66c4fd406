"""LaTeX export of a run: booktabs tables of its numbers, its figures as PDF, and a main.tex.

``export_latex(RUN, OUT)`` writes::

    OUT/main.tex                          compiles with pdflatex (base + recommended packages)
    OUT/tables/accuracy_<model>.tex       loss and accuracy per epoch (metrics.json)
    OUT/tables/<model>_<analysis>_<k>.tex every summary.json's numbers (same tables as the report)
    OUT/figures/<model>/training.pdf      the training curves
    OUT/figures/<model>/<analysis>/...    every figure of the run (its PDF; PNG when no PDF exists)

Each table file holds one ``tabular`` only, so it can be ``\\input`` into any table float of
a paper; ``main.tex`` shows how. The numbers are those of the JSON files, printed to four
significant digits (integers exactly).
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from neuralatlas.report.collect import ModelInfo, RunInfo, read_run
from neuralatlas.report.sections import section_title
from neuralatlas.report.tables import Table, is_number, summary_table

# pdflatex (without extra packages) cannot typeset these characters; the rest of ASCII
# specials are escaped below.
_UNICODE = {
    "·": r"$\cdot$", "×": r"$\times$", "–": "--", "—": "---", "…": r"\dots{}", "→": r"$\rightarrow$",
    "≤": r"$\leq$", "≥": r"$\geq$", "±": r"$\pm$", "−": "-", "’": "'", "‘": "`", "“": "``", "”": "''",
}
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    # OT1 (pdflatex's default encoding) has no <, >, | glyphs in text; math mode has
    "<": r"$<$", ">": r"$>$", "|": r"$|$",
}


def latex_escape(text: Any) -> str:
    r"""Text safe to typeset with pdflatex: specials escaped, common Unicode spelled out.

    Example
    -------
    >>> latex_escape("neighborhood_hit · 50% & more")
    'neighborhood\\_hit $\\cdot$ 50\\% \\& more'
    """
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128 or ch.isalpha() and ord(ch) < 0x250:  # ASCII and Latin letters (utf8 inputenc)
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def latex_number(value: Any) -> str:
    """A table cell: integers exactly, floats to 4 significant digits, ``1.2e-05`` as ``$1.2\\times10^{-5}$``."""
    if value is None:
        return "--"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return r"$\infty$" if value > 0 else r"$-\infty$"
        text = f"{value:.4g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            return rf"${mantissa}\times10^{{{int(exponent)}}}$"
        return text
    return latex_escape(value)


def tabular(table: Table) -> str:
    """A booktabs ``tabular`` of a :class:`~neuralatlas.report.tables.Table`."""
    align = []
    for j in range(len(table.columns)):
        cells = [row[j] for row in table.rows if row[j] is not None]
        align.append("r" if cells and all(is_number(c) for c in cells) else "l")
    lines = [rf"\begin{{tabular}}{{{''.join(align)}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    for row in table.rows:
        lines.append(" & ".join(latex_number(v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def accuracy_table(model: ModelInfo) -> Table | None:
    """Loss and accuracy per epoch from metrics.json (None when there are no metrics)."""
    epochs = model.epochs_table
    if not epochs:
        return None
    keys = [k for k in ("loss", "train_accuracy", "test_accuracy", "test_loss")
            if any(is_number(e.get(k)) for e in epochs)]
    names = {"loss": "train loss", "train_accuracy": "train accuracy", "test_accuracy": "test accuracy",
             "test_loss": "test loss"}
    rows = [[e.get("epoch", i), *(e.get(k) for k in keys)] for i, e in enumerate(epochs)]
    return Table(["epoch", *(names[k] for k in keys)], rows, title=f"{model.name}: loss and accuracy per epoch")


def export_latex(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 title: str | None = None) -> Path:
    """Write LaTeX tables, PDF figures and a compilable ``main.tex`` for a run folder.

    Parameters
    ----------
    run_dir : path
        A pipeline run folder or one model's run folder (as for :func:`write_report`).
    out_dir : path
        Folder to write into (created; files of an earlier export are replaced).
    title : str, optional
        Title of ``main.tex``; default: the run's name.

    Returns
    -------
    pathlib.Path
        ``out_dir/main.tex``. Compile with ``pdflatex main.tex`` inside ``out_dir``.

    Raises
    ------
    ReportError
        When ``run_dir`` is not a run folder.

    Example
    -------
    >>> from neuralatlas.report import export_latex
    >>> export_latex("runs/demo", "paper/neuralatlas")           # doctest: +SKIP
    PosixPath('paper/neuralatlas/main.tex')
    """
    run = read_run(run_dir)
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    body: list[str] = []

    body.append(r"\section{Run}")
    body.append(_run_overview(run))
    for model in run.models:
        table = accuracy_table(model)
        if table is None:
            continue
        name = _write_table(out, f"accuracy_{_safe(model.name)}", table)
        body.append(_table_float(name, table.title))
        curve = _training_figure(model, out / "figures" / _safe(model.name) / "training.pdf")
        if curve is not None:
            body.append(_figure_float(curve.relative_to(out), f"{model.name}: training curves"))

    for analysis in run.analysis_names():
        body.append(rf"\section{{{latex_escape(section_title(analysis))}}}")
        for output in run.outputs(analysis):
            model = run.model(output.model)
            body.append(rf"\subsection*{{{latex_escape(model.name)}}}")
            if output.summary:
                for k, table in enumerate(summary_table(output.summary, model.layers)):
                    name = _write_table(out, f"{_safe(model.name)}_{_safe(analysis)}_{k}", table)
                    caption = f"{model.name}, {section_title(analysis)}" + (f": {table.title}" if table.title else "")
                    body.append(_table_float(name, caption))
            for src in _figure_files(output):
                rel = src.relative_to(output.figures_dir)
                dest = out / "figures" / _safe(model.name) / _safe(analysis) / _safe_path(rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                body.append(_figure_float(dest.relative_to(out), f"{model.name}, {analysis}: {rel.with_suffix('')}"))
            body.append(r"\clearpage")

    main = out / "main.tex"
    main.write_text(_document(title or run.name, "\n\n".join(body)), encoding="utf-8")
    return main


# ---------------------------------------------------------------------------- pieces
def _document(title: str, body: str) -> str:
    return rf"""% Written by neuralatlas.report.export_latex; compile with: pdflatex main.tex
\documentclass[10pt]{{article}}
\usepackage[margin=2cm]{{geometry}}
\usepackage{{booktabs}}
\usepackage{{graphicx}}
\usepackage{{float}}
\usepackage{{caption}}
\newcommand{{\fittable}}[1]{{\resizebox{{\ifdim\width>\linewidth\linewidth\else\width\fi}}{{!}}{{#1}}}}

\title{{{latex_escape(title)}: what the network learned}}
\author{{neuralatlas}}
\date{{\today}}

\begin{{document}}
\maketitle

{body}

\end{{document}}
"""


def _run_overview(run: RunInfo) -> str:
    data = ((run.config or {}).get("data") or {}).get("name")
    rows = []
    for m in run.models:
        last = m.epochs_table[-1] if m.epochs_table else {}
        rows.append([m.name, (m.spec or {}).get("builder", "--"), data or "--",
                     last.get("epoch"), last.get("test_accuracy"),
                     m.store.n_samples if m.store else None, len(m.layers) or None])
    table = Table(["model", "builder", "data", "epochs", "test accuracy", "samples", "layers"], rows)
    return (r"\begin{table}[H]\centering" + "\n" + tabular(table)
            + r"\caption{The models of the run.}\end{table}")


def _write_table(out: Path, stem: str, table: Table) -> str:
    path = out / "tables" / f"{stem}.tex"
    header = f"% {latex_escape(table.title) or stem} (neuralatlas)\n"
    path.write_text(header + tabular(table), encoding="utf-8")
    return f"tables/{stem}"


def _table_float(name: str, caption: str) -> str:
    return (r"\begin{table}[H]\centering\fittable{\input{" + name + r"}}"
            + r"\caption{" + latex_escape(caption) + r"}\end{table}")


def _figure_float(rel: Path, caption: str) -> str:
    return (r"\begin{figure}[H]\centering"
            + r"\includegraphics[width=\linewidth,height=0.42\textheight,keepaspectratio]{"
            + rel.as_posix() + r"}\caption{" + latex_escape(caption) + r"}\end{figure}")


def _figure_files(output: Any) -> list[Path]:
    """Every figure as PDF; a figure saved only as PNG is taken as PNG (pdflatex reads both)."""
    pdf_stems = {p.with_suffix("") for p in output.pdfs}
    files = list(output.pdfs)
    files += [p for p in output.figures if p.suffix.lower() == ".png" and p.with_suffix("") not in pdf_stems]
    return sorted(files)


def _safe(name: str) -> str:
    # file names that TeX reads without trouble: no spaces, no specials, one dot at most
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "x"


def _safe_path(rel: Path) -> Path:
    parts = [_safe(p) for p in rel.parent.parts] + [_safe(rel.stem) + rel.suffix.lower()]
    return Path(*parts)


def _training_figure(model: ModelInfo, path: Path) -> Path | None:
    epochs = model.epochs_table
    if not epochs:
        return None
    from neuralatlas.plots.style import new_figure, save_figure

    fig, axes = new_figure(size=(5.0, 3.0))
    ax = axes[0, 0]
    x = [e.get("epoch", i) for i, e in enumerate(epochs)]
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test")):
        y = [e.get(key) for e in epochs]
        if any(is_number(v) for v in y):
            ax.plot(x, [float("nan") if v is None else v for v in y], marker="o", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=f"{model.name}: accuracy per epoch")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    import matplotlib.pyplot as plt

    try:
        save_figure(fig, path.with_suffix(""), formats=("pdf",))
    finally:
        plt.close(fig)
    return path
