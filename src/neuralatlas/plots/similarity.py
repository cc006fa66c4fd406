"""Figures of representational similarity: CKA / RSA heat maps and probe accuracy by depth.

Pure functions of :mod:`neuralatlas.analysis.similarity` results; no computing, no saving.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas.plots.style import DIVERGING, SEQUENTIAL, class_colors, new_figure, symmetric_limits

__all__ = [
    "similarity_epochs",
    "plot_epoch_similarity",
    "similarity_probes",
    "plot_probes",
    "similarity_matrix",
    "plot_similarity_matrix",
    "similarity_figures",
]

_LABELS = {"linear_cka": "linear CKA", "debiased_linear_cka": "debiased linear CKA", "rbf_cka": "RBF CKA",
           "rsa": "RSA (Spearman ρ of RDMs)"}


def _limits(values: np.ndarray, measure: str) -> tuple[str, float, float]:
    """CKA lies in [0, 1]: one sequential scale; RSA can be negative: diverging about 0."""
    finite = values[np.isfinite(values)]
    if measure == "rsa" and finite.size and finite.min() < 0:
        lo, hi = symmetric_limits(finite)
        return DIVERGING, lo, hi
    return SEQUENTIAL, 0.0, 1.0


def _draw(ax: Any, matrix: Any, *, annotate: bool | str, cmap: str | None, vmin: float | None,
          vmax: float | None, ticks: bool = True, fontsize: float = 7.0) -> Any:
    values = np.asarray(matrix.values, float)
    default_cmap, lo, hi = _limits(values, matrix.measure)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap or default_cmap,
                      vmin=lo if vmin is None else vmin, vmax=hi if vmax is None else vmax,
                      interpolation="nearest", aspect="auto")
    rows, cols = values.shape
    if ticks:
        ax.set_xticks(range(cols), matrix.cols, rotation=60, ha="right", rotation_mode="anchor", fontsize=fontsize)
        ax.set_yticks(range(rows), matrix.rows, fontsize=fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if annotate == "auto":
        annotate = max(rows, cols) <= 12
    if annotate:
        norm = image.norm
        cm = image.get_cmap()
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                # dark text on light cells, light text on dark ones
                red, green, blue, _ = cm(norm(v))
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=fontsize * 0.85,
                        color="black" if light else "white")
    return image


def similarity_matrix(matrix: Any, *, ax: Any = None, annotate: bool | str = "auto",
                           cmap: str | None = None, vmin: float | None = None,
                           vmax: float | None = None, colorbar: bool = True) -> Figure:
    """Heat map of a layer×layer, epoch×epoch or model-vs-model similarity matrix.

    Parameters
    ----------
    matrix : SimilarityMatrix
    ax : matplotlib Axes, optional
        Draw into it (its figure is returned).
    annotate : bool or "auto"
        Write each value into its cell; ``"auto"``: when the matrix is at most 12×12.
    cmap, vmin, vmax : optional
        Default: sequential over [0, 1] for CKA (and non-negative RSA), diverging with
        symmetric limits for RSA with negative values.
    colorbar : bool

    Returns
    -------
    Figure

    Example
    -------
    >>> fig = plot_similarity_matrix(cka_matrix(store))   # doctest: +SKIP
    """
    rows, cols = np.shape(matrix.values)
    size = (min(1.2 + 0.42 * cols, 14.0) + 1.0, min(1.0 + 0.42 * rows, 14.0))
    fig, axes = new_figure(size=size, ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    image = _draw(ax, matrix, annotate=annotate, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(matrix.title or _LABELS.get(matrix.measure, matrix.measure), fontsize=9)
    ax.set_xlabel(matrix.col_axis, fontsize=8)
    ax.set_ylabel(matrix.row_axis, fontsize=8)
    if colorbar:
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label(_LABELS.get(matrix.measure, matrix.measure), fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig


def similarity_epochs(matrices: Mapping[str, Any], *, ncols: int | None = None,
                          annotate: bool | str = "auto") -> Figure:
    """Small multiples: one epoch×epoch matrix per layer, on one shared colour scale.

    Parameters
    ----------
    matrices : mapping of layer name to SimilarityMatrix
        E.g. ``result.epoch_matrices``.
    ncols : int, optional
        Panels per row (default: up to 4).
    annotate : bool or "auto"
        Values in the cells; ``"auto"``: when a panel is at most 6×6.

    Returns
    -------
    Figure

    Example
    -------
    >>> fig = plot_epoch_similarity(result.epoch_matrices)   # doctest: +SKIP
    """
    if not matrices:
        raise ValueError("plot_epoch_similarity needs at least one matrix (a per-epoch store).")
    names = list(matrices)
    ncols = ncols or min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = new_figure(nrows, ncols, size=(2.6 * ncols + 0.8, 2.5 * nrows), layout="constrained")
    first = matrices[names[0]]
    cmap, lo, hi = _limits(np.concatenate([np.ravel(m.values) for m in matrices.values()]), first.measure)
    if annotate == "auto":
        annotate = max(len(first.rows), len(first.cols)) <= 6
    image = None
    for k, ax in enumerate(axes.ravel()):
        if k >= len(names):
            ax.set_axis_off()
            continue
        m = matrices[names[k]]
        labels = [label.replace("epoch ", "") for label in m.rows]
        image = _draw(ax, m, annotate=annotate, cmap=cmap, vmin=lo, vmax=hi, ticks=False)
        ticks = range(len(labels))
        step = max(1, len(labels) // 5)
        ax.set_xticks(list(ticks)[::step], labels[::step], fontsize=7)
        ax.set_yticks(list(ticks)[::step], labels[::step], fontsize=7)
        ax.set_title(names[k], fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("epoch", fontsize=8)
        if k // ncols == nrows - 1 or k + ncols >= len(names):
            ax.set_xlabel("epoch", fontsize=8)
    fig.suptitle(f"{_LABELS.get(first.measure, first.measure)} between training epochs, per layer", fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.01)
        bar.set_label(_LABELS.get(first.measure, first.measure), fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig


def similarity_probes(probes: Any | Sequence[Any] | Mapping[str, Any], *, ax: Any = None,
                chance: bool = True) -> Figure:
    """Linear-probe accuracy against depth (layers in model order), with fold spread.

    Parameters
    ----------
    probes : ProbeResult, or a sequence / mapping (label → ProbeResult) of several
        Several models are drawn as separate lines on one axis; each line uses its own
        layer positions, scaled to relative depth when their layer counts differ.
    ax : matplotlib Axes, optional
    chance : bool
        Show the majority-class accuracy: a dashed line when it lies near the accuracies,
        otherwise its value in the title (so a high-accuracy plot keeps its resolution).

    Returns
    -------
    Figure

    Example
    -------
    >>> fig = plot_probes(linear_probes(store))   # doctest: +SKIP
    """
    if isinstance(probes, Mapping):
        series = list(probes.items())
    elif isinstance(probes, (list, tuple)):
        series = [(p.name or f"model {i + 1}", p) for i, p in enumerate(probes)]
    else:
        series = [(probes.name or "probe", probes)]
    fig, axes = new_figure(size=(max(4.0, 0.55 * max(len(p.layers) for _, p in series) + 1.5), 3.2), ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    colors = class_colors(len(series))
    same_depth = len({len(p.layers) for _, p in series}) == 1
    for (label, p), color in zip(series, colors, strict=True):
        n = len(p.layers)
        x = np.arange(n, dtype=float) if same_depth else np.linspace(0.0, 1.0, n)
        acc, std = np.asarray(p.accuracy), np.asarray(p.std)
        ax.plot(x, acc, "o-", color=color, label=label if len(series) > 1 else None, ms=4)
        ax.fill_between(x, acc - std, acc + std, color=color, alpha=0.2, lw=0)
    first = series[0][1]
    if same_depth:
        ax.set_xticks(range(len(first.layers)), first.layers, rotation=45, ha="right",
                      rotation_mode="anchor", fontsize=7)
        ax.set_xlabel("layer (depth →)", fontsize=8)
    else:
        ax.set_xlabel("relative depth", fontsize=8)
    ax.set_ylabel(f"probe accuracy ({first.cv}-fold CV)", fontsize=8)
    lo = min(float(np.min(np.asarray(p.accuracy) - np.asarray(p.std))) for _, p in series)
    lo = max(0.0, lo - 0.03)
    ax.set_ylim(lo, min(1.0, max(float(np.max(np.asarray(p.accuracy) + np.asarray(p.std))) for _, p in series) + 0.02))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    title = "linear probes per layer"
    if chance:
        shown = [p.chance >= lo for _, p in series]
        for (_, p), color, draw in zip(series, colors, shown, strict=True):
            if draw:
                ax.axhline(p.chance, color=color, ls="--", lw=0.8, alpha=0.7)
        title += " (dashed: chance)" if all(shown) else \
            f" (chance {', '.join(f'{p.chance:.2f}' for _, p in series)})"
    ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False)
    return fig


def similarity_figures(result: Any) -> dict[str, Figure]:
    """Every figure of a :class:`~neuralatlas.analysis.similarity.SimilarityResult`, by file stem.

    ``layer_cka``, ``layer_rbf_cka``, ``layer_rsa``, ``epoch_cka``, ``cka_vs_other``,
    ``rsa_vs_other`` and ``probes``, for the parts the result holds.

    Example
    -------
    >>> figs = similarity_figures(similarity(store))   # doctest: +SKIP
    """
    figures: dict[str, Figure] = {}
    for key, stem in (("linear_cka", "layer_cka"), ("debiased_linear_cka", "layer_debiased_cka"),
                      ("rbf_cka", "layer_rbf_cka"), ("rsa", "layer_rsa"),
                      ("linear_cka_vs_other", "cka_vs_other"), ("rsa_vs_other", "rsa_vs_other")):
        if key in result.matrices:
            figures[stem] = plot_similarity_matrix(result.matrices[key])
    if result.epoch_matrices:
        figures["epoch_cka"] = plot_epoch_similarity(result.epoch_matrices)
    if result.probes is not None:
        if result.other_probes is not None:
            figures["probes"] = plot_probes([result.probes, result.other_probes])
        else:
            figures["probes"] = plot_probes(result.probes)
    return figures


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
plot_similarity_matrix = similarity_matrix
plot_epoch_similarity = similarity_epochs
plot_probes = similarity_probes
