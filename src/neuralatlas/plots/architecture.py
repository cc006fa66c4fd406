"""The cost side of an architecture: parameters and multiply-accumulates per layer.

The graph itself is drawn by :meth:`ArchitectureGraph.to_svg` / ``.render`` (Graphviz);
this figure is the matplotlib companion for papers and the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from neuralatlas.plots.style import new_figure


def architecture_costs(summary: Any, *, log: bool = True, only_costly: bool = True,
                depth: int | None = None) -> Figure:
    """Two bar charts of parameters and of multiply-accumulates per sample, one bar per leaf layer.

    Layers are named as ``named_modules()`` names them.

    Parameters
    ----------
    summary : ModelSummary
        From ``neuralatlas.summary(model)`` or ``architecture(model).summary()``.
    log : bool
        Logarithmic axes (layer costs span orders of magnitude).
    only_costly : bool
        Leave out layers with neither parameters nor MACs (activations, pools).
    depth : int, optional
        One bar per module of ``depth`` name segments (a block: its parameters and MACs,
        attention matmuls included) and per shallower leaf, instead of one per leaf — for big
        models.

    Example
    -------
    >>> fig = layer_costs(summary(model))       # doctest: +SKIP
    """
    table = summary.table
    if depth is not None:
        # blocks at ``depth`` with everything inside them; shallower modules with what they
        # hold themselves (a conv subclass with a padding child keeps its own weight)
        segments = table.name.str.count(r"\.") + 1
        child_macs = table.groupby("parent").macs.sum()
        own_macs = table.macs - table.name.map(child_macs).fillna(0).astype(int)
        at = segments == int(depth)
        above = segments < int(depth)
        table = table.assign(is_leaf=at | above, params=table.params_total.where(at, table.params),
                             macs=table.macs.where(at, own_macs))[at | above]
    leaves = table[table.is_leaf & (table.calls > 0)]
    if only_costly:
        leaves = leaves[(leaves.params > 0) | (leaves.macs > 0)]
    names = list(leaves.name)
    y = np.arange(len(names))
    height = max(2.0, 0.25 * len(names) + 1.0)
    fig, axes = new_figure(1, 2, size=(6.5, height), sharey=True, layout="constrained")
    for ax, column, colour, title in ((axes[0, 0], "params", "#4c72b0", "parameters"),
                                      (axes[0, 1], "macs", "#dd8452", "MACs per sample")):
        values = leaves[column].to_numpy(dtype=float)
        ax.barh(y, values, color=colour)
        if log and (values > 0).any():
            ax.set_xscale("log")
            # decades only, as 10^k: full numbers under a log axis collide
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(), numticks=6))
        ax.set_title(f"{title}\n(total {int(values.sum()):,})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y)
    axes[0, 0].set_yticklabels(names, fontsize=8)
    axes[0, 0].invert_yaxis()
    fig.suptitle(f"{summary.model_type}: cost per layer (all layers)", fontsize=9.5)
    return fig


__all__ = ["layer_costs"]


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
layer_costs = architecture_costs
