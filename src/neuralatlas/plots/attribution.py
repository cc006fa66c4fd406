"""Figures of attribution: heat-map grids, sanity-check curves and maps, deletion/insertion curves.

Pure functions of results (``Attribution``, ``SanityResult``, ``FaithfulnessResult``, read by
their attributes); no computing beyond what drawing needs, no file I/O.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas import token_html
from neuralatlas.plots.style import DISPLAY_WIDTH_IN, DIVERGING, MAGNITUDE, class_colors, new_figure


# ---------------------------------------------------------------------------- helpers
def image_of(x: np.ndarray, value_range: tuple[float, float] | None = None) -> tuple[np.ndarray, str | None]:
    """One input as something ``imshow`` draws: ``[H, W]`` grey or ``[H, W, 3]`` colour in [0, 1].

    Scaled by ``value_range`` when given (to compare images), else by its own min and max.
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 3 and x.shape[0] in (3, 4):
        img = np.moveaxis(x[:3], 0, -1)
    elif x.ndim == 3:
        img = x.mean(0)
    elif x.ndim == 2:
        img = x
    else:
        img = x.reshape(1, -1)
    lo, hi = value_range if value_range is not None else (float(img.min()), float(img.max()))
    img = np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)
    return img, (None if img.ndim == 3 else "gray")


def heat_of(m: np.ndarray) -> np.ndarray:
    """One map as ``[H, W]``: channels summed (a pixel's total attribution)."""
    m = np.asarray(m, np.float64)
    if m.ndim == 3:
        return m.sum(0)
    if m.ndim == 2:
        return m
    return m.reshape(1, -1)


def _as_items(results: Any) -> list[tuple[str, Any]]:
    if isinstance(results, Mapping):
        return [(str(k), v) for k, v in results.items()]
    if hasattr(results, "maps"):
        return [(results.name, results)]
    return [(r.name, r) for r in results]


def _robust_max(values: np.ndarray, q: float = 99.5) -> float:
    v = np.abs(values[np.isfinite(values)])
    m = float(np.percentile(v, q)) if v.size else 0.0
    return m if m > 0 else (float(v.max()) if v.size and v.max() > 0 else 1.0)


# ---------------------------------------------------------------------------- comparison grid
def attribution_grid(results: Any, *, samples: int | Sequence[int] = 6, inputs: np.ndarray | None = None,
                     overlay: bool = True, scale: str = "shared", classes: Sequence[str] | None = None,
                     alpha: float = 0.7) -> Figure:
    """Heat maps of several methods (columns) on the same samples (rows), over the inputs.

    Parameters
    ----------
    results : Attribution, sequence of Attribution, or {name: Attribution}
        Maps in input space (Grad-CAM comes upsampled); all over the same inputs.
    samples : int or sequence of int
        How many samples (the first ones) or which rows.
    inputs : numpy.ndarray, optional
        The inputs (default: those kept in the first result).
    overlay : bool
        Draw each map over its input (grey), half transparent.
    scale : "shared" or "column"
        ``"shared"``: each method's maps are divided by their 99.5th percentile of ``|value|``
        over the shown samples, then every panel uses one scale, [-1, 1] with the diverging
        map for signed methods and [0, 1] with the magnitude map for unsigned ones, so methods
        of different units compare by shape. ``"column"``: raw values, one symmetric scale
        per method.
    classes : sequence of str, optional
        Class names for the row labels.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = attribution_grid([ig, saliency, cam], samples=4)     # doctest: +SKIP
    """
    items = _as_items(results)
    if not items:
        raise ValueError("attribution_grid needs at least one result.")
    first = items[0][1]
    if inputs is None:
        inputs = getattr(first, "inputs", None)
    n = len(first.maps)
    rows = list(range(min(int(samples), n))) if isinstance(samples, (int, np.integer)) else [int(s) for s in samples]
    if scale not in ("shared", "column"):
        raise ValueError(f"scale={scale!r}: choose 'shared' or 'column'.")
    has_input = inputs is not None
    ncols = len(items) + int(has_input)
    fig, axes = new_figure(len(rows), ncols, size=(1.9 * ncols + 0.6, 1.9 * len(rows) + 0.6))
    labels = getattr(first, "labels", None)
    targets = getattr(first, "targets", None)
    handles: dict[bool, Any] = {}
    for j, (name, res) in enumerate(items):
        maps = np.asarray(res.maps)
        heats = np.stack([heat_of(maps[i]) for i in rows])
        signed = bool(getattr(res, "signed", True))
        if scale == "shared":
            heats = heats / _robust_max(heats)
            lim = (-1.0, 1.0) if signed else (0.0, 1.0)
        else:
            m = _robust_max(heats)
            lim = (-m, m) if signed else (0.0, m)
        cmap = DIVERGING if signed else MAGNITUDE
        col = j + int(has_input)
        for r, i in enumerate(rows):
            ax = axes[r, col]
            if overlay and has_input:
                img, gray = image_of(inputs[i])
                ax.imshow(img, cmap=gray, interpolation="nearest")
                im = ax.imshow(heats[r], cmap=cmap, vmin=lim[0], vmax=lim[1], alpha=alpha, interpolation="nearest")
            else:
                im = ax.imshow(heats[r], cmap=cmap, vmin=lim[0], vmax=lim[1], interpolation="nearest")
            handles.setdefault(signed, im)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:  # "integrated_gradients" is wider than its 1.9 in column at 8 pt: words on lines
                ax.set_title(textwrap.fill(name.replace("_", " "), 14), fontsize=8)
        if scale == "column":  # under the column's last panel: the panels above keep their size
            cb = fig.colorbar(im, ax=axes[-1, col], location="bottom", shrink=0.9, pad=0.05)
            cb.set_label("attribution" if signed else "|attribution|", fontsize=8)
    if has_input:
        for r, i in enumerate(rows):
            ax = axes[r, 0]
            img, gray = image_of(inputs[i])
            ax.imshow(img, cmap=gray, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            text = []
            if labels is not None:
                text.append(f"label {_name(labels[i], classes)}")
            if targets is not None and (labels is None or targets[i] != labels[i]):
                text.append(f"target {_name(targets[i], classes)}")
            ax.set_ylabel("\n".join(text), fontsize=8)
            if r == 0:
                ax.set_title("input", fontsize=8)
    if scale == "shared":
        # below the grid, one under the other: two bars side by side on the right crowded the
        # first bar's label into the second's ticks
        for k, (signed, im) in enumerate(handles.items()):
            cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, location="bottom",
                              pad=0.03 if k == 0 else 0.015, aspect=40)
            cb.set_label("attribution / robust max" if signed else "|attribution| / robust max", fontsize=8)
    return fig


def _name(k: Any, classes: Sequence[str] | None) -> str:
    k = int(k)
    return classes[k] if classes is not None and 0 <= k < len(classes) else str(k)


# ---------------------------------------------------------------------------- sanity checks
def attribution_sanity_curves(results: Any, *, ax=None, show_ssim: bool = True) -> Figure:
    """Similarity of randomised-model maps to the original, layer by layer (Adebayo et al. Fig. 2).

    One result: cascading (solid) and independent (dotted) Spearman correlation with a band of
    ± one standard deviation over samples, SSIM dashed, the pass threshold as a grey line.
    Several results (a sequence): one colour per method, cascading Spearman only.

    Examples
    --------
    >>> fig = sanity_curves(sanity_check(model, test, "saliency"))   # doctest: +SKIP
    """
    many = isinstance(results, (list, tuple))
    items = list(results) if many else [results]
    fig, axes = new_figure(1, 1, size=(5.5, 3.6), ax=ax)
    ax = axes[0, 0] if ax is None else axes
    colors = class_colors(max(1, len(items)))
    threshold = items[0].threshold
    for k, res in enumerate(items):
        color = colors[k]
        steps = res.steps
        for mode, style in (("cascading", "-"), ("independent", ":")):
            part = steps[steps["mode"] == mode]
            if part.empty or (many and mode == "independent"):
                continue
            xs = np.arange(len(part))
            label = f"{res.method} ({'pass' if res.passed else 'fail'})" if many else f"{mode}: Spearman"
            ax.plot(xs, part["spearman"], style, marker="o", color=color, label=label)
            if not many:
                ax.fill_between(xs, part["spearman"] - part["spearman_std"], part["spearman"] + part["spearman_std"],
                                color=color, alpha=0.15, linewidth=0)
                if show_ssim:
                    ax.plot(xs, part["ssim"], "--" if mode == "cascading" else "-.", color="0.35",
                            label=f"{mode}: SSIM")
    steps = items[0].steps
    cascading = (steps["mode"] == "cascading").any()
    names = list(steps[steps["mode"] == ("cascading" if cascading else "independent")]["layer"])
    # cascading steps keep the layers above: "+fc1" reads "fc1 and everything above it"
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels([names[0]] + [f"+{n}" for n in names[1:]] if cascading else names,
                       rotation=45, ha="right", fontsize=8)
    ax.axhline(threshold, color="0.6", linewidth=1,
               label=f"pass threshold: Spearman < {threshold:g} when all randomised")
    ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1.05)
    ax.set_xlabel("layers randomised (top first)")
    compared = "|maps|" if getattr(items[0], "absolute", True) else "signed maps"
    ax.set_ylabel(f"similarity to original ({compared})")
    if not many:
        verdict = "passes" if items[0].passed else "FAILS"
        ax.set_title(f"Sanity check: {items[0].method} {verdict} (final Spearman"
                     f" {items[0].final_spearman:.2f}; bands ±1 s.d. over samples)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def attribution_sanity_maps(
    result: Any, *, samples: int = 3, overlay: bool = False, signed: bool | None = None
) -> Figure:
    """The maps of a few samples as the layers are randomised, top first (Adebayo et al. Fig. 1).

    By default the maps are drawn as the verdict compared them: ``|map|`` summed over
    channels when the check used ``absolute=True`` (so sign flips, which the verdict
    ignores, do not look like change), signed otherwise; ``signed=True`` forces signed maps.
    """
    keys = list(result.maps)
    inputs = result.inputs
    n = min(int(samples), len(result.maps[keys[0]]))
    has_input = inputs is not None
    ncols = len(keys) + int(has_input)
    show_signed = (not getattr(result, "absolute", True)) if signed is None else bool(signed)
    fig, axes = new_figure(n, ncols, size=(1.5 * ncols + 0.4, 1.6 * n + 0.5))
    for r in range(n):
        if show_signed:
            heats = [heat_of(result.maps[k][r]) for k in keys]
        else:
            heats = [heat_of(np.abs(np.asarray(result.maps[k][r]))) for k in keys]
        signed_now = any(h.min() < 0 for h in heats)
        for c, (key, h) in enumerate(zip(keys, heats, strict=True)):
            ax = axes[r, c + int(has_input)]
            hm = h / _robust_max(h)  # each map on its own scale: the shape is what changes
            ax.imshow(hm, cmap=DIVERGING if signed_now else MAGNITUDE, vmin=-1 if signed_now else 0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key if c == 0 else f"+{key}", fontsize=7)
        if has_input:
            img, gray = image_of(inputs[r])
            axes[r, 0].imshow(img, cmap=gray, interpolation="nearest")
            axes[r, 0].set_xticks([])
            axes[r, 0].set_yticks([])
            if r == 0:
                axes[r, 0].set_title("input", fontsize=7)
    shown = "signed maps" if show_signed else "|map| (as the verdict compares them)"
    fig.suptitle(f"{result.method}: cascading randomisation, {shown}", fontsize=9)
    return fig


# ---------------------------------------------------------------------------- faithfulness
def attribution_faithfulness(result: Any, *, ax=None) -> Figure:
    """Deletion and insertion curves (mean target score against share of pixels), AUC in the legend.

    Examples
    --------
    >>> fig = faithfulness_curves(deletion_curves(model, test, ["integrated_gradients", "saliency"]))  # doctest: +SKIP
    """
    modes = list(result.curves)
    if ax is not None and len(modes) > 1:
        raise ValueError("faithfulness_curves draws one panel per mode; pass ax=None, or a result with one mode.")
    # drawn at the 6.5 in column: at 8.4 in, fitted to the column, the x labels ran together
    fig, axes = new_figure(1, len(modes), size=(3.25 * len(modes), 3.2), ax=ax,
                           **({"layout": "constrained"} if ax is None else {}))
    axes_list = [axes] if ax is not None else list(axes[0])
    methods = [m for m in result.methods if m != "random"]
    colors = class_colors(max(1, len(methods)))
    for a, mode in zip(axes_list, modes, strict=True):
        auc = result.auc(mode)
        for k, m in enumerate(methods):
            a.plot(result.fractions, result.mean_curve(mode, m), color=colors[k],
                   label=f"{m.replace('_', ' ')} ({auc[m]:.3f})")
        if "random" in result.curves[mode]:
            a.plot(result.fractions, result.mean_curve(mode, "random"), "--", color="0.5",
                   label=f"random ({auc['random']:.3f})")
        a.set_xlabel(f"share of pixels {'removed' if mode == 'deletion' else 'inserted'},\nmost attributed first")
        a.set_ylabel(f"target {result.score}")
        better = "lower" if mode == "deletion" else "higher"
        a.set_title(f"{mode.capitalize()} (AUC, {better} is better)", fontsize=9)
        a.set_xlim(0, 1)
        a.legend(fontsize=8, frameon=False, loc="best", title="method (AUC)", title_fontsize=8)
    return fig


# ---------------------------------------------------------------------------- tokens (text)
# The rows, merging and colour scale of a token heat map, and its HTML, live below plots in
# neuralatlas/token_html.py (Attribution._repr_html_ shows them without importing plots);
# their names here stay importable.
token_rows, _token_scale = token_html.token_rows, token_html.token_scale


def attribution_token_heatmap_html(result: Any, *, samples: int | Sequence[int] = 8, merge: bool = True,
                                   tokenizer: Any = None, classes: Sequence[str] | None = None,
                                   vmax: float | None = None) -> str:
    """The token heat map as HTML: one ``<p>`` per sentence of ``<span>`` tokens on coloured backgrounds.

    Same rows, merging and colour scale as :func:`attribution_token_heatmap`; token text is
    escaped, and each span's ``title`` holds its score. For embedding in the report or a
    notebook. Made by :func:`neuralatlas.token_html.token_heatmap_html` (below plots, so that
    ``Attribution._repr_html_`` shows it without importing figures); the parameters are its.
    """
    return token_html.token_heatmap_html(result, samples=samples, merge=merge, tokenizer=tokenizer,
                                         classes=classes, vmax=vmax)


def attribution_token_heatmap(result: Any, *, ax=None, samples: int | Sequence[int] = 8, merge: bool = True,
                  tokenizer: Any = None, classes: Sequence[str] | None = None, wrap: int = 72,
                  fontsize: float = 10.0, vmax: float | None = None, title: str | None = None) -> Figure:
    """Sentences as rows of tokens, each token's box coloured by its attribution.

    Parameters
    ----------
    result : Attribution
        Token attributions (layer attribution of an embedding layer, ``[n, T, D]`` maps or
        ``[n, T]`` scores), with ``tokens`` kept or a ``tokenizer`` given.
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned).
    samples : int or sequence of int
        How many samples (the first ones) or which rows.
    merge : bool
        Show words, with sub-word pieces merged and their scores summed (see
        :func:`token_rows`); ``False`` shows the tokens exactly as the tokenizer wrote them.
    tokenizer, classes
        To turn ids into tokens when the result has none; class names for the captions.
    wrap : int
        Characters per line: longer sentences continue on the next line.
    fontsize : float
        Text size (points); the figure is sized to fit it.
    vmax : float, optional
        Top of the colour scale; default the largest ``|score|`` shown. One scale for all rows,
        diverging and centred on 0 for signed methods (``plots.style.DIVERGING``), from 0 for
        unsigned ones (``MAGNITUDE``).
    title : str, optional
        Default: the result's name (method and layer).

    Returns
    -------
    Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    rows = token_rows(result, samples=samples, merge=merge, tokenizer=tokenizer, classes=classes)
    signed = bool(getattr(result, "signed", True))
    lo, hi = _token_scale(rows, signed, vmax)
    norm = Normalize(lo, hi)
    cmap = plt.get_cmap(DIVERGING if signed else MAGNITUDE)
    # lay out in character cells of a monospace font: positions are exact without a renderer.
    # DejaVu Sans Mono advances 0.602 em; a little more keeps long lines inside their boxes.
    char_w, line_h = 0.61 * fontsize / 72, 1.7 * fontsize / 72  # inches per character cell / per line
    margin = 1.4  # inches right of the text: the colour bar and its label
    if ax is None:  # save_figure shrinks a figure wider than the display width while text keeps
        # its size, which would push every word past its box: wrap sooner instead
        wrap = min(int(wrap), int((DISPLAY_WIDTH_IN - margin) / char_w) - 1)
    wrap = max(8, int(wrap))
    placed: list[tuple[int, float, str, float]] = []  # (line, column, token, score)
    captions: list[tuple[int, str]] = []
    line = 0
    for caption, toks in rows:
        captions.append((line, caption))
        line += 1
        col = 0.0
        for tok, score in toks:
            width = len(tok)
            if col > 0 and col + width > wrap:
                line, col = line + 1, 0.0
            placed.append((line, col, tok, score))
            col += width + 1
        line += 1
    n_lines = max(1, line)
    cax = None
    if ax is None:
        # the axes spans exactly the wrap + 1 character cells of its x range, and the colour bar
        # has its own axes in the margin (taken from the text's axes it would squeeze the cells)
        text_w, height = (wrap + 1) * char_w, n_lines * line_h + 0.9
        fig = plt.figure(figsize=(text_w + margin, height))
        top = 0.96 - 0.5 / height
        ax = fig.add_axes((0.1 / (text_w + margin), 0.02, text_w / (text_w + margin), top))
        cax = fig.add_axes(((text_w + 0.25) / (text_w + margin), 0.02 + top * 0.1, 0.12 / (text_w + margin),
                            top * 0.8))
    fig = ax.figure
    ax.set_xlim(-0.5, wrap + 0.5)
    ax.set_ylim(n_lines, 0)
    ax.axis("off")
    for ln, caption in captions:
        ax.text(0, ln + 0.5, caption, va="center", ha="left", fontsize=fontsize * 0.8, color="0.35")
    for ln, col, tok, score in placed:
        ax.add_patch(Rectangle((col - 0.1, ln + 0.1), len(tok) + 0.2, 0.8, facecolor=cmap(norm(score)),
                               edgecolor="none"))
        ax.text(col, ln + 0.5, tok, va="center", ha="left", fontsize=fontsize, family="monospace",
                color="white" if abs(norm(score) - (0.5 if signed else 0.0)) > (0.35 if signed else 0.7) else "black")
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = (fig.colorbar(mappable, cax=cax) if cax is not None
           else fig.colorbar(mappable, ax=ax, fraction=0.03, pad=0.01))
    # short: a long vertical label would stretch the figure (the title names the method)
    bar.set_label(f"score per {'word' if merge else 'token'}", fontsize=fontsize * 0.8)
    title = title if title is not None else getattr(result, "name", None)
    if title:
        ax.set_title(title, fontsize=fontsize)
    return fig


def attribution_photo_grid(result: Any, *, alpha: float = 0.55, size: float = 1.9) -> Figure:
    """Photos (rows) with each method's map over them (columns), titled by the predictions.

    ``result`` is a :class:`~neuralatlas.attribution.photos.PhotoAttribution`. Each map is
    ``|map|`` summed over colour channels, scaled by its own 99.5th percentile, drawn with
    a sequential colour map over the photo (the photo as the model saw it, in [0, 1]).
    """
    import matplotlib.pyplot as plt

    methods = list(result.results)
    n = len(result.inputs)
    fig = Figure(figsize=(size * (len(methods) + 1), size * n + 0.4), layout="constrained")
    axes = fig.subplots(n, len(methods) + 1, squeeze=False)
    cmap = plt.get_cmap("inferno")
    for i in range(n):
        photo = np.moveaxis(np.clip(result.inputs[i], 0, 1), 0, -1)
        ax = axes[i, 0]
        ax.imshow(photo)
        guesses = "\n".join(f"{c[:20]} {p:.0%}" for c, p in result.top[i][:2])
        ax.set_title(f"{result.names[i]}\n{guesses}", fontsize=7)
        for j, m in enumerate(methods):
            heat = np.abs(heat_of(result.results[m].maps[i]))
            heat = heat / (np.percentile(heat, 99.5) + 1e-12)
            ax = axes[i, j + 1]
            ax.imshow(photo)
            ax.imshow(np.clip(heat, 0, 1), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
            if i == 0:
                ax.set_title(m.replace("_", " "), fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
sanity_curves = attribution_sanity_curves
sanity_maps = attribution_sanity_maps
faithfulness_curves = attribution_faithfulness
token_heatmap = attribution_token_heatmap
token_heatmap_html = attribution_token_heatmap_html
photo_attribution_grid = attribution_photo_grid
