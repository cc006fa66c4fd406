"""Figures of a toy network: one heat map per hidden neuron, and the decision regions.

Pure functions of a :class:`neuralatlas.toy.ToyNetwork` (or anything with the same
attributes: ``xs``, ``ys``, ``activations``, ``probabilities``, ``train``, ``test``,
``classes``): they draw the grids the network was evaluated on and compute nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas.plots.style import DIVERGING, SEQUENTIAL, class_colors, new_figure, symmetric_limits

__all__ = ["toy_decision_regions", "decision_regions", "neuron_heatmaps"]


def _extent(net: Any) -> tuple[float, float, float, float]:
    return (float(net.xs[0]), float(net.xs[-1]), float(net.ys[0]), float(net.ys[-1]))


def _scatter(ax: Any, net: Any, colors: np.ndarray, size: float = 10.0) -> None:
    """Training points filled, test points hollow, coloured by class."""
    for data, filled in ((net.train, True), (net.test, False)):
        x = np.asarray(data.inputs)
        c = colors[np.asarray(data.labels)]
        if filled:
            ax.scatter(x[:, 0], x[:, 1], s=size, c=c, edgecolors="k", linewidths=0.3, zorder=3)
        else:
            ax.scatter(x[:, 0], x[:, 1], s=size, facecolors="none", edgecolors=c, linewidths=0.8, zorder=3)


def toy_neuron_heatmaps(net: Any, *, layer: str | None = None, ncols: int | None = None, show_data: bool = True,
                    panel_size: float = 1.9) -> Figure:
    """One heat map per neuron of a hidden layer: its activation over the input plane.

    All panels of a layer share one colour scale: diverging and symmetric around 0 when the
    layer has negative values (tanh), sequential from 0 otherwise (ReLU, sigmoid). The data
    points are drawn on top (training filled, test hollow).

    Parameters
    ----------
    net : ToyNetwork
    layer : str, optional
        A hidden layer (default: the first).
    ncols : int, optional
        Panels per row (default: about square).
    show_data : bool
        Draw the data points.
    panel_size : float
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure
        Panel ``u`` (row-major) holds neuron ``u``; its image is ``activations[layer][u]``.

    Example
    -------
    >>> fig = neuron_heatmaps(toy_network("xor"), layer="tanh1")   # doctest: +SKIP
    """
    layers = list(net.activations)
    layer = layers[0] if layer is None else layer
    if layer not in net.activations:
        from neuralatlas.errors import LayerError, did_you_mean

        raise LayerError(f"{layer!r} is not a hidden layer of this network.{did_you_mean(layer, layers)}"
                         f" Hidden layers: {', '.join(layers)}.")
    acts = np.asarray(net.activations[layer])
    units = acts.shape[0]
    ncols = ncols or max(1, math.ceil(math.sqrt(units)))
    nrows = math.ceil(units / ncols)
    fig, axes = new_figure(nrows, ncols, size=(panel_size * ncols + 0.8, panel_size * nrows + 0.4))
    if float(np.nanmin(acts)) < 0:
        cmap, (vmin, vmax) = DIVERGING, symmetric_limits(acts)
    else:
        cmap, vmin, vmax = SEQUENTIAL, 0.0, float(np.nanmax(acts)) or 1.0
    colors = class_colors(len(net.classes))
    image = None
    for u, ax in enumerate(axes.flat):
        if u >= units:
            ax.axis("off")
            continue
        image = ax.imshow(acts[u], origin="lower", extent=_extent(net), cmap=cmap, vmin=vmin, vmax=vmax,
                          interpolation="nearest", aspect="equal")
        if show_data:
            _scatter(ax, net, colors, size=5.0)
        ax.set_title(f"{layer}[{u}]", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=f"{layer} activation")
    fig.suptitle(f"{getattr(net, 'data', '')}: what each neuron of {layer} answers to", fontsize=10)
    return fig


def toy_decision_regions(net: Any, *, ax: Any = None, show_data: bool = True) -> Figure:
    """The predicted class over the input plane (shaded by confidence), with the data on top.

    Parameters
    ----------
    net : ToyNetwork
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    show_data : bool
        Draw the data points (training filled, test hollow).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = new_figure(size=(4.2, 4.0), ax=ax)
    ax = axes if ax is not None else axes[0, 0]
    probs = np.asarray(net.probabilities)
    k = probs.shape[0]
    colors = class_colors(k)
    decision = probs.argmax(axis=0)
    confidence = probs.max(axis=0)
    # blend each class colour towards white as the network's confidence falls to chance
    strength = ((confidence - 1.0 / k) / (1.0 - 1.0 / k))[..., None] if k > 1 else np.ones(confidence.shape + (1,))
    rgb = 1.0 - 0.55 * np.clip(strength, 0, 1) * (1.0 - colors[decision][..., :3])
    ax.imshow(rgb, origin="lower", extent=_extent(net), interpolation="nearest", aspect="equal")
    # the boundary of class c is where its probability equals the best of the others: a
    # zero contour of a smooth margin, not the staircase of the argmax grid
    for c in range(k if k > 2 else 1):
        margin = probs[c] - np.delete(probs, c, axis=0).max(axis=0)
        if margin.min() < 0 < margin.max():
            ax.contour(net.xs, net.ys, margin, levels=[0.0], colors="k", linewidths=0.8)
    if show_data:
        _scatter(ax, net, colors)
    title = "decision regions"
    metrics = getattr(net, "metrics", None)
    if metrics:
        title += f" · test accuracy {metrics[-1].get('test_accuracy', float('nan')):.3f}"
    ax.set_title(f"{getattr(net, 'data', '')}: {title}", fontsize=10)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    handles = [ax.scatter([], [], color=colors[i], edgecolors="k", linewidths=0.3, label=str(c))
               for i, c in enumerate(net.classes)]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
neuron_heatmaps = toy_neuron_heatmaps
decision_regions = toy_decision_regions
