"""Figures of Neuron Activation Profiles: group × unit heatmaps, per-group maps, unit statistics.

Pure functions ``(result, *, ax=None, ...) -> Figure``: no computing beyond arranging the
values, no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas.plots.style import DISPLAY_WIDTH_IN, DIVERGING, SEQUENTIAL, new_figure, symmetric_limits

__all__ = ["naps_heatmap", "nap_heatmap", "naps_maps", "nap_maps", "preferred_order", "unit_statistics_figure"]


def _scale(values: np.ndarray, signed: bool | None = None) -> tuple[str, float, float]:
    """Colour map and limits: diverging and symmetric for signed values, else sequential."""
    finite = values[np.isfinite(values)]
    if signed is None:
        signed = bool(finite.size and finite.min() < 0)
    if signed:
        lo, hi = symmetric_limits(finite if finite.size else np.zeros(1))
        return DIVERGING, lo, hi
    hi = float(finite.max()) if finite.size else 1.0
    return SEQUENTIAL, 0.0, hi if hi > 0 else 1.0


def _channel_values(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], values.shape[1], -1).mean(axis=2) if values.ndim > 2 else values


def preferred_order(values: np.ndarray) -> np.ndarray:
    """Units ordered by the group they prefer (highest value), strongest first within a group.

    ``values`` is ``[n_groups, n_units]``; returns unit indices. Units that are NaN or zero
    in every group go last.

    Example
    -------
    >>> preferred_order(np.array([[0., 3., 1.], [2., 0., 5.]])).tolist()
    [1, 2, 0]
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    best = v.argmax(0)
    strength = v.max(0)
    silent = ~np.isfinite(strength) | (np.nan_to_num(np.abs(values)).max(0) == 0)
    return np.lexsort((-np.where(np.isfinite(strength), strength, 0.0), best, silent))


def naps_heatmap(result: Any, layer: str, *, ax: Any = None, max_units: int = 512,
                title: str | None = None, sort: str | None = "preferred") -> Figure:
    """Groups (rows) × units (columns) of one layer's NAPs; conv channels spatially averaged.

    Contrastive (or otherwise signed) NAPs use the diverging map on a symmetric scale. With
    ``sort="preferred"`` (default) the units are ordered by the group they respond to most
    (:func:`preferred_order`), so each group's units form a block on the diagonal; ``None``
    keeps the layer's own unit order. Above ``max_units``, the units with the largest
    ``|value|`` are shown. The title says which NAPs are shown (raw, contrastive, z-scored,
    gradient-aligned) and the sort.

    Example
    -------
    >>> fig = nap_heatmap(contrastive_naps(naps(store)), "fc1")            # doctest: +SKIP
    """
    if sort not in (None, "preferred"):
        raise ValueError(f"sort={sort!r}; use 'preferred' or None.")
    full = _channel_values(np.asarray(result.values(layer), dtype=np.float64))
    units = np.arange(full.shape[1])
    if full.shape[1] > max_units:
        units = np.sort(np.argsort(-np.nan_to_num(np.abs(full)).max(0), kind="stable")[:max_units])
    if sort == "preferred":
        units = units[preferred_order(full[:, units])]
    values = full[:, units]
    cmap, lo, hi = _scale(values, signed=True if result.kind == "contrastive" else None)
    # drawn for the 6.5 in figure column; unit indices are integers
    fig, axes = new_figure(size=(min(DISPLAY_WIDTH_IN, 2.4 + 0.05 * values.shape[1]), 1.2 + 0.22 * len(result.groups)),
                           ax=ax, layout="constrained" if ax is None else None)
    ax = axes if ax is not None else axes[0, 0]
    im = ax.imshow(values, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_yticks(range(len(result.groups)), result.groups)
    unit = "channel" if np.asarray(result.values(layer)).ndim > 2 else "unit"
    shown = f"{len(units)} of {full.shape[1]} {unit}s (largest |value|)" if len(units) < full.shape[1] else f"{unit}s"
    ax.set_xlabel(shown + (f", sorted by preferred {result.by}" if sort else ""))
    ax.set_xticks([])
    ax.set_ylabel(result.by)
    zscored = (result.reference or {}).get("normalize") == "zscore" if hasattr(result, "reference") else False
    kind = ("z-scored contrastive NAP" if zscored else "contrastive NAP") if result.kind == "contrastive" else "NAP"
    aligned = ", gradient-aligned" if layer in getattr(result, "aligned", ()) else ""
    ax.set_title(title or f"{layer}: {kind} per {result.by}{aligned}")
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("mean activation" + (" − mean of the other groups" if result.kind == "contrastive" else ""))
    return fig


def naps_maps(result: Any, layer: str, *, groups: Sequence[str] | None = None, channel: int | None = None,
             ax: Any = None) -> Figure:
    """Each group's spatial NAP of a conv layer (a channel, or the mean over channels).

    Shows what gradient alignment does: aligned NAPs concentrate in the centre.

    Example
    -------
    >>> fig = nap_maps(naps(store, align="gradient"), "conv2")            # doctest: +SKIP
    """
    values = np.asarray(result.values(layer), dtype=np.float64)
    if values.ndim < 4:
        raise ValueError(f"nap_maps needs a layer with two spatial axes; {layer!r} has unit shape {values.shape[1:]}.")
    names = list(groups) if groups is not None else result.groups
    index = [result.groups.index(str(g)) for g in names]
    maps = values[index][:, channel] if channel is not None else values[index].mean(axis=1)
    maps = maps.reshape(len(index), maps.shape[-2], maps.shape[-1])
    cmap, lo, hi = _scale(maps, signed=True if result.kind == "contrastive" else None)
    # rows of at most 5 maps: the figure fits the 6.5 in column with readable titles
    ncols = min(5, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = new_figure(nrows, ncols, size=(min(DISPLAY_WIDTH_IN, 1.1 * ncols + 1.0), 1.15 * nrows + 0.45),
                           layout="constrained")
    for a in axes.flat[len(names):]:
        a.set_visible(False)
    # the grid's spare cells were hidden above; names and maps must pair up exactly
    for a, (name, m) in zip(axes.flat, zip(names, maps, strict=True), strict=False):
        im = a.imshow(m, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        a.set_title(str(name), fontsize=8.5)
        a.set_xticks([])
        a.set_yticks([])
    what = f"channel {channel}" if channel is not None else "mean over channels"
    aligned = ", aligned" if layer in result.aligned else ""
    fig.suptitle(f"{layer}: {what}{aligned}", fontsize=9.5)
    cb = fig.colorbar(im, ax=list(axes.flat), fraction=0.04, pad=0.02, shrink=0.9)
    cb.set_label("contrastive NAP" if result.kind == "contrastive" else "mean activation")
    return fig


def naps_unit_statistics(result: Any, *, layers: Sequence[str] | None = None, ax: Any = None) -> Figure:
    """Per layer: fraction of dead units, of always-on units, and sparsity.

    Example
    -------
    >>> fig = unit_statistics_figure(naps(store))                          # doctest: +SKIP
    """
    chosen = [layer for layer in (layers or result.layers)]
    summaries = [result.statistics(layer).summary() for layer in chosen]
    fig, axes = new_figure(size=(min(DISPLAY_WIDTH_IN, max(4.0, 0.45 * len(chosen) + 2.0)), 3.0), ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    x = np.arange(len(chosen))
    bars = [("dead", "dead_fraction", "#444444"), ("always on", "always_on_fraction", "#d62728"),
            ("sparsity", "sparsity", "#1f77b4")]
    width = 0.8 / len(bars)
    for i, (label, key, color) in enumerate(bars):
        ax.bar(x + (i - 1) * width, [s[key] for s in summaries], width, label=label, color=color)
    ax.set_xticks(x, chosen, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction")
    ax.set_title("How the units of each layer work")
    ax.legend(fontsize=8, frameon=False)
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
nap_heatmap = naps_heatmap
nap_maps = naps_maps
unit_statistics_figure = naps_unit_statistics
