"""Figures of discriminative neurons on a neuron projection (Rauber et al. 2017).

* :func:`compare_projections`: the same neuron map once per class, each neuron coloured by
  how much it helps to tell that class from the rest.
* :func:`discriminative_map`: one map, each neuron in the colour of the class it
  discriminates best, brighter the stronger it does.
* :func:`importance_agreement_plot`: how far two importance methods agree, per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from neuralatlas.plots.style import SEQUENTIAL, class_colors, new_figure

__all__ = ["discriminative_compare", "compare_projections", "discriminative_map", "importance_agreement_plot"]


def _check(neurons: Any, importances: Any) -> np.ndarray:
    imp = np.asarray(getattr(importances, "importances", importances), np.float64)
    if imp.shape[0] != neurons.n_neurons:
        from neuralatlas.errors import AnalysisError

        raise AnalysisError(
            f"The importances describe {imp.shape[0]} neurons but the neuron projection has"
            f" {neurons.n_neurons}; compute both for the same layer (and pooling)."
        )
    return imp


def _size(n: int) -> float:
    return float(np.clip(4000.0 / max(n, 1), 6.0, 60.0))


def discriminative_compare(neurons: Any, importances: Any, classes: Sequence[int | str] | None = None, *,
                        ncols: int = 5, size: float = 2.4, cmap: str = SEQUENTIAL) -> Figure:
    """The neuron map once per class, coloured by each neuron's importance for that class.

    One colour scale for all panels (importances of a method are comparable across
    classes), so a class whose panel stays dark has no neuron of its own.

    Parameters
    ----------
    neurons : NeuronProjection
    importances : DiscriminativeNeurons or array [n_neurons, n_classes]
    classes : list of class indices or names, optional
        Which classes to show (default all).

    Example
    -------
    >>> fig = compare_projections(neuron_projection(store, "fc2"),  # doctest: +SKIP
    ...                           discriminative_neurons(store, "fc2"))
    """
    imp = _check(neurons, importances)
    names = list(getattr(importances, "classes", [str(c) for c in range(imp.shape[1])]))
    picks = list(range(imp.shape[1])) if classes is None else [
        names.index(c) if isinstance(c, str) else int(c) for c in classes]
    ncols = min(ncols, len(picks))
    nrows = -(-len(picks) // ncols)
    fig, axes = new_figure(nrows, ncols, size=(size * ncols + 0.8, size * nrows + 0.3))
    pts = neurons.coordinates
    vmax = float(imp[:, picks].max()) or 1.0
    order = np.argsort(imp[:, picks].max(1))                 # strongest neurons drawn on top
    sc = None
    for ax, c in zip(axes.flat, picks, strict=False):  # the grid may have spare cells at the end
        sc = ax.scatter(pts[order, 0], pts[order, 1], c=imp[order, c], cmap=cmap, vmin=0.0, vmax=vmax,
                        s=_size(len(pts)), linewidths=0)
        ax.set_title(f"class {names[c]}", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
    for ax in list(axes.flat)[len(picks):]:
        ax.axis("off")
    method = getattr(importances, "method", "")
    if sc is not None:
        fig.colorbar(
            sc, ax=axes.ravel().tolist(), shrink=0.8, label=f"importance ({method})" if method else "importance"
        )
    fig.suptitle(f"{neurons.layer}: discriminative neurons per class", fontsize="medium")
    return fig


def discriminative_map(neurons: Any, importances: Any, *, ax: Any = None, min_brightness: float = 0.15) -> Figure:
    """Each neuron coloured by the class it discriminates best; brightness = how strongly.

    Strength is the neuron's largest importance, relative to the layer's strongest
    neuron; weak neurons fade to black. Dead neurons (constant over the samples) are
    grey crosses.

    Example
    -------
    >>> fig = discriminative_map(neuron_projection(store, "fc2"),  # doctest: +SKIP
    ...                          discriminative_neurons(store, "fc2"))
    """
    imp = _check(neurons, importances)
    names = list(getattr(importances, "classes", [str(c) for c in range(imp.shape[1])]))
    best = imp.argmax(1)
    strength = imp.max(1)
    rel = strength / strength.max() if strength.max() > 0 else strength
    colors = class_colors(imp.shape[1])
    # strength as size and opacity, never as darkness: darkening turns brown, red, purple and
    # grey into the same near-black, while a faded class colour keeps its hue
    weight = min_brightness + (1.0 - min_brightness) * rel
    rgba = np.concatenate([colors[best, :3], (0.25 + 0.75 * weight)[:, None]], axis=1)
    sizes = _size(len(strength)) * (0.4 + 1.6 * weight)
    fig, axes = new_figure(ax=ax, size=(5.0, 4.2))
    ax = axes if ax is not None else axes[0, 0]
    pts = neurons.coordinates
    silent = np.asarray(neurons.dead, bool) | (strength <= 0)   # nothing to discriminate with
    order = [i for i in np.argsort(rel) if not silent[i]]         # bright neurons on top
    ax.scatter(pts[order, 0], pts[order, 1], c=rgba[order], s=sizes[order], linewidths=0)
    if silent.any():
        ax.scatter(pts[silent, 0], pts[silent, 1], marker="x", c="0.6", s=_size(len(pts)), linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    method = getattr(importances, "method", "")
    ax.set_title(f"{neurons.layer}: best class per neuron ({method})\nsize and opacity = strength", fontsize=9)
    used = np.unique(best[~silent])
    handles = [Line2D([], [], marker="o", ls="", color=colors[c], label=names[c]) for c in used]
    if silent.any():
        handles.append(Line2D([], [], marker="x", ls="", color="0.6", label="dead"))
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def discriminative_agreement(agreement: Any, *, ax: Any = None, labels: tuple[str, str] = ("trees", "anova")) -> Figure:
    """Spearman correlation between two importance methods, one bar per class.

    ``agreement`` is :meth:`DiscriminativeNeurons.agreement`'s Series (or an array).

    Example
    -------
    >>> fig = importance_agreement_plot(trees.agreement(anova))   # doctest: +SKIP
    """
    values = np.asarray(agreement, np.float64)
    names = list(getattr(agreement, "index", range(len(values))))
    fig, axes = new_figure(ax=ax, size=(max(3.0, 0.45 * len(values) + 1.5), 2.8))
    ax = axes if ax is not None else axes[0, 0]
    ax.bar(range(len(values)), values, color=class_colors(len(values)))
    ax.axhline(float(np.nanmean(values)), color="k", lw=0.8, ls="--", label=f"mean {np.nanmean(values):.2f}")
    ax.set_xticks(range(len(values)), [str(n) for n in names])
    ax.set_ylim(min(0.0, float(np.nanmin(values)) - 0.05), 1.0)
    ax.set_ylabel("Spearman ρ")
    ax.set_title(f"agreement of {labels[0]} and {labels[1]} importances", fontsize="medium")
    ax.legend(fontsize="x-small", frameon=False)
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
compare_projections = discriminative_compare
importance_agreement_plot = discriminative_agreement
