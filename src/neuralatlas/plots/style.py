"""Shared figure conventions: colour maps, class colours, type styles, saving figures to files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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

# The LaTeX export's body text is pdflatex's default, Computer Modern Roman at 10 pt, on A4 with
# 2 cm margins (a 17 cm = 6.69 in text width). Figures saved at DISPLAY_WIDTH_IN (6.5 in) are
# included at their own size there, so a font size set here is the size read on the page.
# matplotlib ships the BaKoMa TrueType Computer Modern (cmr10.ttf) in mpl-data; it has no
# minus, multiplication or >= glyphs, so DejaVu Serif is the fallback for those characters and
# tick labels go through mathtext (whose "cm" fontset draws the minus sign in Computer Modern).
PAPER_STYLE = {
    **STYLE,
    "font.family": ["cmr10", "DejaVu Serif"], "font.serif": ["cmr10", "DejaVu Serif", "serif"],
    "mathtext.fontset": "cm", "axes.formatter.use_mathtext": True, "axes.unicode_minus": True,
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "legend.fontsize": 8, "figure.titlesize": 9,
    # TrueType (Type 42) embedding keeps the PDF's text searchable and names the font (Cmr10)
    "pdf.fonttype": 42,
}
FIGURE_STYLES = {"report": STYLE, "paper": PAPER_STYLE}
PAPER_TEXT_WIDTH_IN = 17.0 / 2.54


@contextlib.contextmanager
def figure_style(target: str = "report") -> Iterator[dict]:
    """Draw figures for where they are shown: ``"report"`` (the HTML report) or ``"paper"``.

    Parameters
    ----------
    target : {"report", "paper"}
        ``"report"`` is the package's default type style (DejaVu Serif, 8-9 pt), the one set
        when :mod:`neuralatlas.plots` is imported. ``"paper"`` matches the LaTeX export's body
        text: Computer Modern (``cmr10``, with ``mathtext.fontset="cm"`` and mathtext tick labels
        so minus signs are Computer Modern too) at 9 pt for labels and titles and 8 pt for
        ticks and legends, which is their size on the page because the export includes figures
        at their own width (at most :data:`PAPER_TEXT_WIDTH_IN`).

    Yields
    ------
    dict
        The rcParams applied (a copy).

    Notes
    -----
    matplotlib resolves a text's font family when the text is created and its math font when
    it is drawn, so create *and* save a figure inside the block; the previous rcParams come
    back on exit, error or not.

    Examples
    --------
    >>> with figure_style("paper"):          # doctest: +SKIP
    ...     fig = nap_heatmap(naps)
    ...     save_figure(fig, "naps", formats=("pdf",))
    """
    from neuralatlas.errors import ConfigError

    if target not in FIGURE_STYLES:
        raise ConfigError(f"figure_style: unknown target {target!r}; use one of "
                          f"{sorted(FIGURE_STYLES)} ('report' for the HTML report, 'paper' for LaTeX)")
    rc = dict(FIGURE_STYLES[target])
    with plt.rc_context(rc):
        yield dict(rc)

# the colour maps: defined below plots, so HTML made without figures colours the same
from neuralatlas.palette import DIVERGING, MAGNITUDE, SEQUENTIAL  # noqa: E402, F401


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
