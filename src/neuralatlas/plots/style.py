"""Shared figure conventions: colour maps, class colours, and saving figures to files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # figures are made headless; notebooks keep their backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DIVERGING = "RdBu_r"      # signed values (contrastive NAPs, gradients, signed attributions)
SEQUENTIAL = "viridis"    # non-negative values (activations, importances)
MAGNITUDE = "magma"       # |attribution|, saliency


def class_colors(n: int) -> np.ndarray:
    """``n`` distinguishable RGBA colours, the same for a class in every figure."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return np.asarray([cmap(i % cmap.N) for i in range(n)])


def symmetric_limits(values: np.ndarray | Sequence[np.ndarray]) -> tuple[float, float]:
    """(-m, m) with m the largest finite |value| — one shared scale for signed maps."""
    arrays = [np.asarray(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    m = max((float(np.nanmax(np.abs(a))) for a in arrays if a.size), default=1.0)
    return (-m, m) if m > 0 else (-1.0, 1.0)


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None,
               ax=None, **kwargs):
    """A Figure and axes grid, or the figure of a given ``ax`` (for ``ax=`` arguments)."""
    if ax is not None:
        return ax.figure, ax
    size = size or (3.2 * ncols, 3.0 * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)
    return fig, axes


def save_figure(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 200) -> list[Path]:
    """Write ``fig`` as ``stem.png``, ``stem.pdf`` (and ``.svg``/``.pgf`` if asked); closes nothing."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        written.append(path)
    return written
