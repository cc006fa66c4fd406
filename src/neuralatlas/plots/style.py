"""Shared figure conventions: colour maps, class colours, and saving figures to files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # figures are made headless; notebooks keep their backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# One type style for every figure, matched to a paper's serif body text at 8-9 pt (and the
# report's figure column): set when neuralatlas.plots is imported; a user's own rcParams
# changes made afterwards win.
STYLE = {
    "font.family": "serif", "font.serif": ["DejaVu Serif", "Bitstream Vera Serif", "serif"],
    "mathtext.fontset": "dejavuserif", "font.size": 8.5, "axes.titlesize": 9, "axes.labelsize": 8.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "figure.titlesize": 9.5,
    "axes.titleweight": "normal", "savefig.dpi": 200,
}
plt.rcParams.update(STYLE)

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


# Figures are drawn for where they are shown: the report's figure column and a paper's text
# width are about 6.5 in, and no text should be smaller than 8 pt there.
DISPLAY_WIDTH_IN = 6.5
MIN_FONT_PT = 8.0
# PNG text keys (and the SVG description prefix) under which save_figure records what the
# report needs to show a figure at a readable size: its smallest font and its layer.
META_FONT = "neuralatlas:min_font_pt"
META_LAYER = "neuralatlas:layer"


def text_sizes(fig: Figure) -> list[float]:
    """Font sizes (pt) of every visible, non-empty text of ``fig`` (tick labels included)."""
    from matplotlib.text import Text

    fig.draw_without_rendering()  # creates the tick labels a plain figure has not made yet
    return [float(t.get_fontsize()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and _shown(t)]


def _shown(text) -> bool:
    ax = getattr(text, "axes", None)
    return ax is None or ax.get_visible()


def save_figure(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 200, *, layer: str | None = None,
                min_font: float | None = MIN_FONT_PT, fit_width: float | None = DISPLAY_WIDTH_IN) -> list[Path]:
    """Write ``fig`` as ``stem.png``, ``stem.pdf`` (and ``.svg``/``.pgf`` if asked); closes nothing.

    Parameters
    ----------
    fig : Figure
    stem : path
        File name without suffix.
    formats : sequence of str
    dpi : int
        Resolution of raster formats (the report re-encodes PNGs for the size it shows them).
    layer : str, optional
        The layer the figure is about (``"all"`` for a figure about every layer); recorded in
        the PNG / SVG metadata so the report and the LaTeX export can tag the figure.
    min_font : float or None
        Text smaller than this (pt) is enlarged to it before saving, so that a figure drawn
        at its display width (``DISPLAY_WIDTH_IN``) has no unreadable text; None keeps sizes.
    fit_width : float or None
        A figure wider than this (inches) is resized to it, keeping its aspect ratio, before
        saving: text keeps its point size, so the figure shown (or printed) at this width
        has no text smaller than ``min_font``. None keeps the size.

    The smallest font size is recorded (PNG text chunk / SVG description, key ``META_FONT``):
    the report tests it against the width each figure is shown at.
    """
    from matplotlib.text import Text

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    width, height = fig.get_size_inches()
    if fit_width is not None and width > fit_width:
        fig.set_size_inches(fit_width, height * fit_width / width)
    # one layout pass creates the tick labels; lifting small text does not add any
    fig.draw_without_rendering()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and _shown(t)]
    if min_font is not None:
        for t in fig.findobj(Text):
            if t.get_fontsize() < min_font:
                t.set_fontsize(min_font)
    sizes = [float(t.get_fontsize()) for t in texts]
    meta = {META_FONT: f"{min(sizes) if sizes else MIN_FONT_PT:.2f}"}
    if layer is not None:
        meta[META_LAYER] = str(layer)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        kwargs = {}
        if fmt == "png":
            kwargs["metadata"] = dict(meta)
        elif fmt == "svg":
            kwargs["metadata"] = {"Description": " ".join(f"{k}={v}" for k, v in meta.items())}
        fig.savefig(path, dpi=dpi, bbox_inches="tight", **kwargs)
        written.append(path)
    return written


def figure_meta(path: str | Path) -> dict[str, str]:
    """What :func:`save_figure` recorded in a PNG or SVG (``{}`` for other files or none)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as im:
            return {k: str(v) for k, v in (getattr(im, "text", None) or {}).items() if k.startswith("neuralatlas:")}
    if path.suffix.lower() == ".svg":
        import re

        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
        return dict(re.findall(r"(neuralatlas:[a-z_]+)=(\S+?)(?=\s|<)", head))
    return {}
