"""Figures of feature visualisation: optimised images, traces, dreams, filters, feature maps.

Pure functions of result objects (:mod:`neuralatlas.featurevis`); no computing, no saving.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas.plots.style import DIVERGING, SEQUENTIAL, new_figure, symmetric_limits


def _grid(n: int, ncols: int | None) -> tuple[int, int]:
    cols = ncols or min(n, max(1, math.ceil(math.sqrt(n * 1.5))))
    return math.ceil(n / cols), cols


def _show_image(ax: Any, image: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> None:
    """``[C, H, W]``: grey for one channel, RGB for three, the channel mean otherwise."""
    lo, hi = value_range
    if image.shape[0] == 3:
        ax.imshow(np.clip((np.transpose(image, (1, 2, 0)) - lo) / (hi - lo), 0, 1), interpolation="nearest")
    else:
        plane = image[0] if image.shape[0] == 1 else image.mean(0)
        ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def featurevis_images(result: Any, *, ncols: int | None = None, show_values: bool = True,
                     size: float = 1.6) -> Figure:
    """A grid of the images of a :class:`~neuralatlas.featurevis.FeatureVisResult`, titled by unit.

    Example
    -------
    >>> fig = optimized_images(visualize_feature(model, "conv2:0"))     # doctest: +SKIP
    """
    images = np.asarray(result.images)
    n = len(images)
    rows, cols = _grid(n, ncols)
    fig, axes = new_figure(rows, cols, size=(size * cols, size * rows + 0.6), layout="constrained")
    vr = tuple(result.settings.get("value_range", (0.0, 1.0)))
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _show_image(ax, images[i], vr)
        title = result.labels[i] if i < len(result.labels) else str(i)
        if show_values and len(result.values) > i:
            title += f"\n{float(result.values[i]):.3g}"
        ax.set_title(title, fontsize=8)
    fig.suptitle(result.objective if len(result.objective) < 80 else result.objective[:77] + "...",
                 fontsize=9)
    return fig


def featurevis_trace(result: Any, *, ax: Any = None, max_lines: int = 16) -> Figure:
    """The objective per step: one line per image (median and 10–90% band when many).

    Works for :class:`FeatureVisResult` and :class:`DreamResult` (``.trace [steps, N]``).
    """
    fig, ax = new_figure(ax=ax, size=(5.0, 3.2))
    ax = ax[0, 0] if isinstance(ax, np.ndarray) else ax
    trace = np.asarray(result.trace)
    steps = np.arange(1, trace.shape[0] + 1)
    if trace.shape[1] <= max_lines:
        labels = getattr(result, "labels", None) or [str(i) for i in range(trace.shape[1])]
        for i in range(trace.shape[1]):
            ax.plot(steps, trace[:, i], lw=1, label=labels[i] if i < len(labels) else str(i))
        if 1 < trace.shape[1] <= 10:
            ax.legend(fontsize=7, ncol=2, frameon=False)
    else:
        lo, med, hi = np.percentile(trace, [10, 50, 90], axis=1)
        ax.fill_between(steps, lo, hi, alpha=0.3, label="10–90%")
        ax.plot(steps, med, lw=1.5, label=f"median of {trace.shape[1]}")
        ax.legend(fontsize=7, frameon=False)
    sizes = getattr(result, "octave_sizes", None)
    if sizes and len(sizes) > 1:
        per = trace.shape[0] // len(sizes)
        for k in range(1, len(sizes)):
            ax.axvline(k * per + 0.5, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.set_title(result.objective if len(result.objective) < 60 else result.objective[:57] + "...", fontsize=9)
    return fig


def featurevis_dream(result: Any, *, index: int = 0, size: float = 3.0) -> Figure:
    """The original image beside the dreamed one, and what changed (signed, diverging)."""
    fig, axes = new_figure(1, 3, size=(3 * size, size + 0.3), layout="constrained")
    vr = tuple(result.settings.get("value_range", (0.0, 1.0)))
    original, dreamed = np.asarray(result.original[index]), np.asarray(result.images[index])
    _show_image(axes[0, 0], original, vr)
    axes[0, 0].set_title("original", fontsize=9)
    _show_image(axes[0, 1], dreamed, vr)
    axes[0, 1].set_title("dream", fontsize=9)
    diff = (dreamed - original).mean(0)
    lo, hi = symmetric_limits(diff)
    im = axes[0, 2].imshow(diff, cmap=DIVERGING, vmin=lo, vmax=hi, interpolation="nearest")
    axes[0, 2].set_title("change (channel mean)", fontsize=9)
    axes[0, 2].set_xticks([])
    axes[0, 2].set_yticks([])
    fig.colorbar(im, ax=axes[0, 2], fraction=0.046, pad=0.04).set_label("dream − original", fontsize=8)
    fig.suptitle(result.objective, fontsize=9)
    return fig


def featurevis_filters(filters: Any, *, max_out: int = 16, max_in: int = 8, size: float = 0.7) -> Figure:
    """Kernels of a conv layer.

    A first layer (1 or 3 input channels) shows one picture per kernel: RGB with zero at
    mid-grey, or one signed plane. A deeper layer shows a grid, one row per output channel
    and one column per input channel, all on one symmetric diverging scale.
    """
    w = np.asarray(filters.weights)
    total_out = w.shape[0]
    n_in = w.shape[1]
    # First layers show every kernel (they are few and small); deeper ones the first max_out rows.
    w = w if n_in in (1, 3) and total_out <= 256 else w[:max_out]
    n_out = w.shape[0]
    if n_in == 3:
        rows, cols = _grid(n_out, None)
        fig, axes = new_figure(rows, cols, size=(size * 1.4 * cols, size * 1.4 * rows + 0.4), layout="constrained")
        pics = filters.as_images()[:n_out]
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n_out:
                ax.imshow(pics[i], interpolation="nearest")
                ax.set_title(str(i), fontsize=6)
        fig.suptitle(f"{filters.layer}: {n_out} kernels (RGB, grey = 0)", fontsize=9)
        return fig
    lo, hi = symmetric_limits(w)
    if n_in == 1:
        rows, cols = _grid(n_out, None)
        fig, axes = new_figure(
            rows, cols, size=(size * 1.4 * cols + 0.8, size * 1.4 * rows + 0.4), layout="constrained"
        )
        im = None
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n_out:
                im = ax.imshow(w[i, 0], cmap=DIVERGING, vmin=lo, vmax=hi, interpolation="nearest")
                ax.set_title(str(i), fontsize=6)
    else:
        shown_in = min(n_in, max_in)
        height = size * n_out + 0.5
        # Fixed spacing: a constrained layout of hundreds of tiny axes takes seconds.
        fig, axes = new_figure(n_out, shown_in, size=(size * shown_in + 0.8, height),
                               gridspec_kw=dict(left=0.1, right=0.85, bottom=0.02, top=1 - 0.45 / height,
                                                wspace=0.1, hspace=0.1))
        im = None
        for o in range(n_out):
            for i in range(shown_in):
                ax = axes[o, i]
                im = ax.imshow(w[o, i], cmap=DIVERGING, vmin=lo, vmax=hi, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if o == 0:
                    ax.set_title(f"in {i}", fontsize=6)
                if i == 0:
                    ax.set_ylabel(f"out {o}", fontsize=6)
    if im is not None and n_in in (1, 3):
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02).set_label("weight", fontsize=8)
    elif im is not None:
        fig.colorbar(im, cax=fig.add_axes((0.88, 0.1, 0.03, 0.75))).set_label("weight", fontsize=8)
    more = f", first {max_in} of {n_in} inputs" if n_in > max_in and n_in != 1 else ""
    more += f", first {n_out} of {total_out} outputs" if n_out < total_out else ""
    fig.suptitle(f"{filters.layer}: kernels (one shared symmetric scale{more})", fontsize=9)
    return fig


def featurevis_feature_maps(maps: Any, layer: str | None = None, *, max_channels: int = 64,
                     ncols: int | None = None, size: float = 1.0) -> Figure:
    """Every channel of one layer's feature maps, with the input beside them when known.

    One colour scale for the whole layer: sequential from 0 for non-negative maps (after a
    ReLU), symmetric diverging for signed ones.
    """
    layer = layer or maps.layers[0]
    if layer not in maps.maps:
        from neuralatlas.errors import LayerError

        raise LayerError(f"No feature maps of {layer!r}; layers: {maps.layers}.")
    fm = np.asarray(maps.maps[layer])[:max_channels]
    n = len(fm)
    rows, cols = _grid(n, ncols)
    has_input = maps.input is not None
    extra = 2 if has_input else 0
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(size * (cols + extra) + 0.8, size * rows + 0.6))
    # Fixed spacing rather than constrained layout: dozens of small axes lay out 4x faster.
    top = 1 - 0.45 / (size * rows + 0.6)
    gs = fig.add_gridspec(rows, cols + extra, left=0.02, right=0.9, bottom=0.02, top=top,
                          wspace=0.15, hspace=0.3)
    if has_input:
        ax_in = fig.add_subplot(gs[:, :2])
        _show_image(ax_in, np.asarray(maps.input))
        ax_in.set_title("input" + (f" ({maps.label})" if maps.label else ""), fontsize=8)
    if fm.min() >= 0:
        cmap, lo, hi = SEQUENTIAL, 0.0, float(fm.max()) or 1.0
    else:
        cmap, (lo, hi) = DIVERGING, symmetric_limits(fm)
    im = None
    axes = []
    for i in range(n):
        ax = fig.add_subplot(gs[i // cols, extra + i % cols])
        im = ax.imshow(fm[i], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(i), fontsize=6, pad=1)
        axes.append(ax)
    if im is not None:
        fig.colorbar(im, cax=fig.add_axes((0.92, 0.1, 0.015, top - 0.15))).set_label("activation", fontsize=8)
    total = np.asarray(maps.maps[layer]).shape[0]
    more = f" (first {n} of {total})" if total > n else ""
    fig.suptitle(f"{layer}: {total} feature maps{more}, sample {maps.sample}", fontsize=9)
    return fig


__all__ = [
    "featurevis_dream",
    "dream_comparison",
    "featurevis_feature_maps",
    "feature_map_grid",
    "featurevis_filters",
    "filter_grid",
    "featurevis_trace",
    "objective_trace",
    "optimized_images",
]


def featurevis_unit_card(card: Any, *, size: float = 1.6) -> Figure:
    """A unit card (:class:`~neuralatlas.featurevis.units.UnitCard`) as one figure.

    It shows the feature visualisation, the top-k patches with their receptive-field boxes, the crops, the
    histogram and the classes.

    Example
    -------
    >>> fig = unit_card_figure(unit_card(model, store, "blocks.8", 5))     # doctest: +SKIP
    """
    from matplotlib.patches import Rectangle

    k = len(card.patches)
    half = max(1, math.ceil(k / 2))
    cols = 2 + half
    fig = Figure(figsize=(size * cols + 1.0, size * 4 + 0.6), layout="constrained")
    grid = fig.add_gridspec(4, cols)
    ax = fig.add_subplot(grid[0:2, 0:2])
    _show_image(ax, card.image)
    ax.set_title(f"feature visualisation\nvalue {card.value:.3g} = {card.ratio:.2f} x best patch", fontsize=8)
    for i in range(k):
        pax = fig.add_subplot(grid[i // half, 2 + i % half])
        _show_image(pax, card.patches[i])
        t, lft, b, r = (int(v) for v in card.boxes[i])
        pax.add_patch(Rectangle((lft - 0.5, t - 0.5), r - lft, b - t, fill=False, edgecolor="#ffcc00", lw=1.2))
        pax.set_title(f"#{int(card.top_index[i])}: {float(card.top_values[i]):.3g}", fontsize=7)
        cax = fig.add_subplot(grid[2 + i // half, 2 + i % half])
        _show_image(cax, card.crops[i])
        if i == 0:
            cax.set_title("receptive-field crops", fontsize=7, loc="left")
    hax = fig.add_subplot(grid[2, 0:2])
    edges = np.asarray(card.hist_edges)
    hax.bar(edges[:-1], card.hist_counts, width=np.diff(edges), align="edge", color="#8da0cb")
    hax.axvline(card.best_natural, color="#e78ac3", lw=1, label="best patch")
    if card.value <= edges[-1] * 3:
        hax.axvline(card.value, color="#fc8d62", lw=1.2, label="feature vis.")
    hax.set_yscale("log")
    hax.set_xlabel("mean activation over the data set", fontsize=7)
    hax.tick_params(labelsize=6)
    hax.legend(fontsize=6, frameon=False)
    bax = fig.add_subplot(grid[3, 0:2])
    n = len(card.class_names)
    bax.barh(np.arange(n)[::-1], card.class_effects, color="#66c2a5")
    bax.set_yticks(np.arange(n)[::-1], [str(c)[:22] for c in card.class_names], fontsize=6)
    bax.set_xlabel("logit drop when ablated (minus mean)", fontsize=7)
    bax.tick_params(axis="x", labelsize=6)
    fig.suptitle(f"unit {card.layer}:{card.channel}", fontsize=10)
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
optimized_images = featurevis_images
objective_trace = featurevis_trace
dream_comparison = featurevis_dream
filter_grid = featurevis_filters
feature_map_grid = featurevis_feature_maps
unit_card_figure = featurevis_unit_card
