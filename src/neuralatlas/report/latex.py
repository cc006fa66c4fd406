"""LaTeX export of a run: booktabs tables of its numbers, its figures as PDF, and a main.tex.

``export_latex(RUN, OUT)`` writes::

    OUT/main.tex                          compiles with pdflatex (base + recommended packages)
    OUT/tables/accuracy_<model>.tex       loss and accuracy per epoch (metrics.json)
    OUT/tables/<model>_<analysis>_<k>.tex every summary.json's numbers (same tables as the report)
    OUT/figures/<model>/training.pdf      the training curves
    OUT/figures/<model>/<analysis>/...    every figure of the run as PDF: the run's own PDF, else drawn
                                          from the saved results by the analysis' step in the paper
                                          style (a run saves PNG only by default); PNG when neither

Each table file holds one ``tabular`` only, so it can be ``\\input`` into any table float of
a paper; ``main.tex`` shows how. The numbers are those of the JSON files, printed to four
significant digits (integers exactly).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from neuralatlas.report.captions import caption_fields, describe
from neuralatlas.report.collect import ModelInfo, ReportError, RunInfo, depth_order, read_run
from neuralatlas.report.sections import section_title
from neuralatlas.report.tables import Table, is_number, readable_columns, summary_table

# pdflatex (without extra packages) cannot typeset these characters; the rest of ASCII
# specials are escaped below.
_UNICODE = {
    "·": r"$\cdot$", "×": r"$\times$", "–": "--", "—": "---", "…": r"\dots{}", "→": r"$\rightarrow$",
    "ε": r"$\varepsilon$", "ρ": r"$\rho$", "α": r"$\alpha$", "∞": r"$\infty$",
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


def _si_number(value: Any) -> str:
    """A cell of an siunitx ``S`` column: plain digits (siunitx typesets 1.2e-05 as 1.2 × 10⁻⁵)."""
    if isinstance(value, bool) or not is_number(value):
        return "{" + latex_number(value) + "}"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "{" + latex_number(value) + "}"
    return f"{value:.4g}"


def _si_format(cells: list[str]) -> str:
    """``table-format`` for the numbers of one column (integer and decimal digits, exponent)."""
    ints = decs = exps = 0
    sign = exp_sign = False
    for c in cells:
        if c.startswith("{"):
            continue
        m = re.fullmatch(r"(-?)(\d+)(?:\.(\d+))?(?:e([+-]?)(\d+))?", c)
        if not m:
            continue
        sign |= bool(m.group(1))
        ints = max(ints, len(m.group(2)))
        decs = max(decs, len(m.group(3) or ""))
        if m.group(5):
            exps = max(exps, len(m.group(5).lstrip("0")) or 1)
            exp_sign |= m.group(4) == "-"
    fmt = ("-" if sign else "") + str(max(ints, 1)) + (f".{decs}" if decs else "")
    if exps:
        fmt += "e" + ("-" if exp_sign else "") + str(exps)
    return fmt


def tabular(table: Table, *, readable: bool = True, layers: list[str] | tuple[str, ...] = ()) -> str:
    """A booktabs ``tabular`` of a :class:`~neuralatlas.report.tables.Table`.

    Numeric columns are siunitx ``S`` columns, aligned on the decimal marker.
    """
    align, numeric = [], []
    for j in range(len(table.columns)):
        cells = [row[j] for row in table.rows if row[j] is not None]
        num = bool(cells) and all(is_number(c) and not isinstance(c, bool) for c in cells)
        numeric.append(num)
        if num:
            formatted = [_si_number(row[j]) for row in table.rows]
            align.append(f"S[table-format={_si_format(formatted)}]")
        else:
            align.append("l")
    names = readable_columns(list(table.columns), layers) if readable else list(table.columns)
    head = [("{" + latex_escape(c) + "}") if num else latex_escape(c) for c, num in zip(names, numeric, strict=True)]
    lines = [rf"\begin{{tabular}}{{{''.join(align)}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for row in table.rows:
        lines.append(
            " & ".join(_si_number(v) if num else latex_number(v) for v, num in zip(row, numeric, strict=True)) + r" \\"
        )
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
                 title: str | None = None, only: str | list[str] | tuple[str, ...] | None = None) -> Path:
    """Write LaTeX tables, PDF figures and a compilable ``main.tex`` for a run folder.

    Parameters
    ----------
    run_dir : path
        A pipeline run folder or one model's run folder (as for :func:`write_report`).
    out_dir : path
        Folder to write into (created; files of an earlier export are replaced).
    title : str, optional
        Title of ``main.tex``; default: the run's name.
    only : str or list of str, optional
        Export only these analyses (``"naps,projection"`` or ``["naps", "projection"]``);
        the run overview and training curves come always. Default: every analysis.

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
    analyses = run.analysis_names()
    if only is not None:
        wanted = [w.strip() for w in (only.split(",") if isinstance(only, str) else only) if w.strip()]
        unknown = [w for w in wanted if w not in analyses]
        if unknown:
            from neuralatlas.errors import did_you_mean

            hint = did_you_mean(unknown[0], analyses)
            raise ReportError(f"--only names {', '.join(map(repr, unknown))}, which the run {run.dir} does not"
                              f" hold.{hint} Analyses in the run: {', '.join(analyses)}.")
        analyses = [a for a in analyses if a in wanted]
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    body: list[str] = []
    import tempfile

    scratch = tempfile.TemporaryDirectory(prefix="neuralatlas-latex-")
    redrawn = Path(scratch.name)  # PDFs drawn from the results, copied into out/figures like the rest

    body.append(r"\section{Run}")
    body.append(_run_overview(run))
    for model in run.models:
        table = accuracy_table(model)
        if table is None:
            continue
        stem = f"accuracy_{_safe(model.name)}"
        name = _write_table(out, stem, table)
        body.append(_table_float(name, f"{model.name}: training loss and accuracy per epoch"
                                       " (epoch 0 is the model before training).", f"tab:{stem}"))
        curve = _training_figure(model, out / "figures" / _safe(model.name) / "training.pdf")
        if curve is not None:
            body.append(_figure_float(curve.relative_to(out), f"{model.name}: train and test accuracy per epoch.",
                                      f"fig:{_safe(model.name)}-training", _width_in(curve)))

    for analysis in analyses:
        body.append(rf"\section{{{latex_escape(section_title(analysis))}}}\label{{sec:{_safe(analysis)}}}")
        for output in run.outputs(analysis):
            model = run.model(output.model)
            body.append(rf"\subsection*{{{latex_escape(model.name)}}}")
            if output.summary:
                for k, table in enumerate(summary_table(output.summary, model.layers)):
                    stem = f"{_safe(model.name)}_{_safe(analysis)}_{k}"
                    name = _write_table(out, stem, table, model.layers)
                    what = (f"{table.title.replace('_', ' ')} ({_columns_phrase(table)})" if table.title
                            else _columns_phrase(table))
                    caption = f"{model.name}, {section_title(analysis).lower()}: {what}."
                    body.append(_table_float(name, caption, f"tab:{stem}"))
            figures = []
            if analysis == "architecture":
                drawing = _architecture_pdf(output, out / "figures" / _safe(model.name) / "architecture" / "graph.pdf")
                if drawing is not None:
                    figures.append((drawing.relative_to(out), f"{model.name}: the model's layer graph (vector).",
                                    f"fig:{_safe(model.name)}-architecture-graph", _width_in(drawing)))
            files = _figure_files(output)
            drawn = _drawn_pdfs(output, redrawn / _safe(model.name) / _safe(analysis), files)
            for src in depth_order(files, model.layers, output.figures_dir):
                rel = src.relative_to(output.figures_dir)
                src = drawn.get(rel.with_suffix(""), src)  # the PDF drawn from the results for a PNG-only figure
                rel = rel.with_suffix(src.suffix)
                dest = out / "figures" / _safe(model.name) / _safe(analysis) / _safe_path(rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                caption = describe(analysis, rel.with_suffix(""), layers=model.layers, model=model.name,
                                   **caption_fields(model, analysis))
                label = "fig:" + _safe(f"{model.name}-{analysis}-{rel.with_suffix('').as_posix()}")
                figures.append((dest.relative_to(out), caption, label, _width_in(src)))
            body.extend(_figure_floats(figures))
            body.append(r"\clearpage")

    scratch.cleanup()
    main = out / "main.tex"
    main.write_text(_document(title or run.name, "\n\n".join(body)), encoding="utf-8")
    return main


def _drawn_pdfs(output: Any, scratch: Path, files: list[Path]) -> dict[Path, Path]:
    """PDFs of the figures the run saved as PNG only, drawn again from the analysis' saved results.

    Each is drawn by its step's own figure function in the paper style
    (:func:`neuralatlas.plots.style.figure_style`).

    Returns ``{figure path relative to figures/<analysis>/ without suffix: drawn PDF}``; empty
    when every figure has its PDF already, when no step of the package wrote the analysis, or
    when its results cannot be read back (the PNG is then included, as before).
    """
    png_only = [p for p in files if p.suffix.lower() == ".png"]
    if not png_only or not output.results_dir.is_dir():
        return {}
    from neuralatlas.steps.registry import step_module

    try:
        module = step_module(output.name)
    except ImportError:
        return {}
    if module is None or not hasattr(module, "load") or not hasattr(module, "figures"):
        return {}
    from neuralatlas.plots import style

    paper = getattr(style, "figure_style", None)
    try:
        from neuralatlas.steps._common import read_figure_settings

        result = module.load(output.results_dir)
        settings = read_figure_settings(output.results_dir)  # the run's figure options (heat map kind …)
        with paper("paper") if paper is not None else contextlib.nullcontext():
            module.figures(result, scratch, ("pdf",), **settings)
    except Exception:  # noqa: BLE001 - a result that does not load back keeps its PNG in the export
        return {}
    wanted = {p.relative_to(output.figures_dir).with_suffix("") for p in png_only}
    drawn = {p.relative_to(scratch).with_suffix(""): p for p in scratch.rglob("*.pdf")}
    return {rel: path for rel, path in drawn.items() if rel in wanted}


# ---------------------------------------------------------------------------- pieces
def _document(title: str, body: str) -> str:
    return rf"""% Written by neuralatlas.report.export_latex; compile with: pdflatex main.tex
\documentclass[10pt]{{article}}
\usepackage[margin=2cm]{{geometry}}
\usepackage{{booktabs}}
\usepackage{{graphicx}}
\usepackage{{float}}
\usepackage{{caption}}
\usepackage{{subcaption}}
\usepackage{{siunitx}}
\sisetup{{group-digits=integer, group-minimum-digits=5, table-align-text-post=false}}
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
    return (r"\begin{table}[H]\centering\small\caption{The models of the run.}\label{tab:models}" + "\n"
            + tabular(table) + r"\end{table}")


def _write_table(out: Path, stem: str, table: Table, layers: list[str] | tuple[str, ...] = ()) -> str:
    path = out / "tables" / f"{stem}.tex"
    header = f"% {latex_escape(table.title) or stem} (neuralatlas)\n"
    path.write_text(header + tabular(table, layers=layers), encoding="utf-8")
    return f"tables/{stem}"


def _table_float(name: str, caption: str, label: str) -> str:
    # captions above tables, as most journals ask; \small not \resizebox, so text stays readable
    return (r"\begin{table}[H]\centering\small\caption{" + latex_escape(caption) + r"}\label{" + label + "}"
            + r"\fittable{\input{" + name + r"}}\end{table}")


# A4 with 2 cm margins: the text is 17 cm = 6.69 in wide. Figures are drawn for 6.5 in with
# 8-9 pt text, so at their natural width their text matches the 10 pt body.
TEXT_WIDTH_IN = 6.69
HALF_WIDTH_IN = 3.3


def _graphic(rel: Path, width_in: float | None, limit: str = r"\linewidth") -> str:
    # natural size when it fits (figure text keeps its point size), else the available width
    size = f"width={width_in:.2f}in" if width_in is not None and width_in <= TEXT_WIDTH_IN else rf"width={limit}"
    return (r"\includegraphics[" + size + r",height=0.6\textheight,keepaspectratio]{" + rel.as_posix() + "}")


def _figure_float(rel: Path, caption: str, label: str, width_in: float | None = None) -> str:
    return (r"\begin{figure}[H]\centering" + _graphic(rel, width_in)
            + r"\caption{" + latex_escape(caption) + r"}\label{" + label + r"}\end{figure}")


def _figure_floats(figures: list[tuple[Path, str, str, float | None]]) -> list[str]:
    """Floats for one analysis' figures: narrow figures in pairs, wide ones alone.

    Two narrow figures in a row become one 2-up float of subfigures (each with its own caption and label);
    wide ones get a float each.
    """
    out: list[str] = []
    i = 0
    while i < len(figures):
        rel, caption, label, width = figures[i]
        nxt = figures[i + 1] if i + 1 < len(figures) else None
        if (nxt is not None and width is not None and nxt[3] is not None
                and width <= HALF_WIDTH_IN and nxt[3] <= HALF_WIDTH_IN):
            subs = []
            for r, c, lab, w in (figures[i], nxt):
                subs.append(r"\begin{subfigure}[t]{0.49\linewidth}\centering" + _graphic(r, w)
                            + r"\caption{" + latex_escape(c) + r"}\label{" + lab + r"}\end{subfigure}")
            out.append(r"\begin{figure}[H]\centering" + r"\hfill".join(subs)
                       + r"\caption{" + latex_escape(_common(caption, nxt[1])) + r"}\label{" + label + "-pair}"
                       + r"\end{figure}")
            i += 2
            continue
        out.append(_figure_float(rel, caption, label, width))
        i += 1
    return out


def _architecture_pdf(output: Any, dest: Path) -> Path | None:
    """The layer graph as a vector PDF (None without a saved graph).

    Graphviz draws it or, without ``dot``, the built-in layout in matplotlib.
    """
    if not (output.results_dir / "graph.json").is_file():
        return None
    from neuralatlas.architecture.graph import ArchitectureGraph

    try:
        return ArchitectureGraph.load(output.results_dir).render(dest)
    except Exception:  # noqa: BLE001 - the drawing is optional; the tables and figures still come
        return None


def _columns_phrase(table: Table) -> str:
    """What an untitled table holds, from its columns: 'per layer: units, dead fraction, ...'."""
    names = readable_columns(list(table.columns))
    per = f"per {names[0]}: " if names and names[0] in ("layer", "epoch", "method", "key") else ""
    rest = names[1:] if per else names
    shown = ", ".join(rest[:6]) + (", ..." if len(rest) > 6 else "")
    return per + shown


def _common(a: str, b: str) -> str:
    """The caption of a pair of subfigures.

    It names the model they share, then each panel's topic (its caption up to the first colon).
    """
    def split(text: str) -> tuple[str, str]:
        head, sep, rest = text.partition(": ")
        return (head, rest) if sep else ("", text)

    (ma, ta), (mb, tb) = split(a), split(b)
    head = f"{ma}: " if ma and ma == mb else ""
    topic = lambda t: t.split(":", 1)[0].rstrip(".")  # noqa: E731
    return f"{head}(a) {topic(ta)}; (b) {topic(tb)}."


def _width_in(path: Path) -> float | None:
    """The drawn width of a figure in inches, from its PDF media box (or its PNG's dpi)."""
    try:
        if path.suffix.lower() == ".pdf":
            head = path.read_bytes()[:200_000]
            m = re.search(rb"/MediaBox\s*\[\s*[-\d.]+\s+[-\d.]+\s+([-\d.]+)\s+[-\d.]+\s*\]", head)
            return float(m.group(1)) / 72 if m else None
        from neuralatlas.report.components import figure_geometry

        return figure_geometry(path).get("width_in")
    except (OSError, ValueError):
        return None


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

    fig, axes = new_figure(size=(3.2, 2.4), layout="constrained")
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
