"""Figures of topographic activation maps (iNNtrospect's ``plot_topomaps``, individually and jointly).

Pure functions ``(result, *, ax=None, ...) -> Figure``. One colour scale per layer, shared by
all its groups: symmetric and diverging for signed (contrastive) values, sequential from 0
otherwise. Pixels where no unit is (NaN) stay blank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from neuralatlas.plots.style import DISPLAY_WIDTH_IN, DIVERGING, SEQUENTIAL, class_colors, new_figure, symmetric_limits

__all__ = ["topomap_layout_quality", "layout_quality_figure", "topomap_image", "topomap_layout", "topomap_overview"]


def layer_scale(maps: Any, layer: str) -> tuple[Any, float, float]:
    """The colour map (NaN transparent) and limits shared by every group's map of ``layer``."""
    images = np.asarray(maps.images[layer], dtype=np.float64)
    finite = images[np.isfinite(images)]
    signed = maps.kind == "contrastive" or bool(finite.size and finite.min() < 0)
    if signed:
        lo, hi = symmetric_limits(finite if finite.size else np.zeros(1))
        name = DIVERGING
    else:
        lo, hi = 0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        name = SEQUENTIAL
    cmap = plt.get_cmap(name).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))   # no unit there: blank
    return cmap, lo, hi


def _draw(ax: Any, image: np.ndarray, cmap: Any, lo: float, hi: float):
    im = ax.imshow(image, origin="lower", cmap=cmap, vmin=lo, vmax=hi, extent=(0, 1, 0, 1),
                   interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return im


def topomap_image(maps: Any, layer: str, group: Any, *, ax: Any = None, colorbar: bool = False,
                  title: str | None = None) -> Figure:
    """One group's map of one layer (iNNtrospect's individual PDFs), on the layer's shared scale.

    Example
    -------
    >>> fig = topomap_image(maps, "conv2", "3")                            # doctest: +SKIP
    """
    cmap, lo, hi = layer_scale(maps, layer)
    fig, axes = new_figure(size=(3.0, 3.0), ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    im = _draw(ax, maps.image(layer, group), cmap, lo, hi)
    ax.set_title(title if title is not None else f"{layer} · {group}", fontsize=9)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).set_label(_value_label(maps), fontsize=8)
    return fig


def _value_label(maps: Any) -> str:
    """What a topomap's colour is (the colour bars' label)."""
    return ("mean activation − mean of the other groups" if maps.kind == "contrastive"
            else "mean activation")


def topomap_overview(maps: Any, *, layers: Sequence[str] | None = None, groups: Sequence[Any] | None = None,
                     size: float = 1.4) -> Figure:
    """Rows of groups, columns of layers: every map, one shared colour scale per layer.

    Example
    -------
    >>> fig = topomap_overview(maps)                                       # doctest: +SKIP
    """
    chosen = list(layers) if layers is not None else maps.layers
    names = [str(g) for g in groups] if groups is not None else maps.groups
    if not chosen:
        fig, axes = new_figure(size=(4.0, 1.0))
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no layer has a topomap", ha="center", va="center")
        return fig
    # rows of layers (in depth order), columns of groups, fitted to the 6.5 in figure column:
    # a layer's shared colour scale sits at the end of its row
    cell = min(size, (DISPLAY_WIDTH_IN - 1.4) / max(1, len(names)))
    fig, axes = new_figure(len(chosen), len(names), size=(cell * len(names) + 1.4, cell * len(chosen) + 0.6),
                           layout="constrained")
    for i, layer in enumerate(chosen):
        cmap, lo, hi = layer_scale(maps, layer)
        for j, name in enumerate(names):
            im = _draw(axes[i, j], maps.image(layer, name), cmap, lo, hi)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8.5)
            if j == 0:
                axes[i, j].set_ylabel(layer, rotation=0, ha="right", va="center", fontsize=8)
        cb = fig.colorbar(im, ax=axes[i, :].tolist(), aspect=8, pad=0.01)
        cb.ax.tick_params(labelsize=8)
        cb.locator = MaxNLocator(nbins=2)
        cb.update_ticks()
    kind = "contrastive " if maps.kind == "contrastive" else ""
    # one bar per row is too short for a label of its own: the title says what the colour is
    fig.suptitle(f"{kind}topographic activation maps ({maps.method}), all layers\n"
                 f"colour: {_value_label(maps)}, one scale per layer", fontsize=9.5)
    return fig


def topomap_layout(maps: Any, layer: str, *, ax: Any = None) -> Figure:
    """The units of one layer on their layout, coloured by the group each answers to most.

    Example
    -------
    >>> fig = topomap_layout(maps, "conv2")                                # doctest: +SKIP
    """
    xy = np.asarray(maps.coordinates[layer])
    values = np.asarray(maps.values[layer])
    favourite = values.argmax(axis=0)
    colors = class_colors(len(maps.groups))
    fig, axes = new_figure(size=(3.6, 3.4), ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    for g, name in enumerate(maps.groups):
        hit = favourite == g
        if hit.any():
            ax.scatter(xy[hit, 0], xy[hit, 1], s=max(4.0, 400.0 / np.sqrt(len(xy))), color=colors[g],
                       label=name, linewidths=0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    q = maps.quality.get(layer, {})
    ax.set_title(f"{layer}: units by strongest group\nSpearman {q.get('spearman', float('nan')):.2f}"
                 f" (random {q.get('random_spearman', float('nan')):.2f})", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.5)
    return fig


def topomap_layout_quality(quality: Mapping[str, Mapping[str, float]], *, metric: str = "spearman",
                          ax: Any = None, title: str | None = None) -> Figure:
    """Layout quality per method (bars) next to a random layout's (hatched), for one metric.

    ``quality`` maps a method (or layer) name to :func:`layout_quality`'s dict.

    Example
    -------
    >>> quality = {"umap": umap_maps.quality["conv2"], "grid": grid_maps.quality["conv2"]}  # doctest: +SKIP
    >>> fig = layout_quality_figure(quality)                                 # doctest: +SKIP
    """
    names = list(quality)
    fig, axes = new_figure(size=(max(3.5, 0.9 * len(names) + 1.5), 3.0), ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [quality[n].get(metric, np.nan) for n in names], 0.4, label="layout", color="#1f77b4")
    ax.bar(x + 0.2, [quality[n].get(f"random_{metric}", np.nan) for n in names], 0.4, label="random layout",
           color="#bbbbbb", hatch="//")
    ax.set_xticks(x, names)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel(metric)
    ax.set_title(title or f"layout quality: {metric}", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
layout_quality_figure = topomap_layout_quality
