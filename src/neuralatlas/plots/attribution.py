"""Figures of attribution: heat-map grids, sanity-check curves and maps, deletion/insertion curves.

Pure functions of results (``Attribution``, ``SanityResult``, ``FaithfulnessResult``, read by
their attributes); no computing beyond what drawing needs, no file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas.plots.style import DIVERGING, MAGNITUDE, class_colors, new_figure


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
            if r == 0:
                ax.set_title(name, fontsize=8)
        if scale == "column":  # under the column's last panel: the panels above keep their size
            fig.colorbar(im, ax=axes[-1, col], location="bottom", shrink=0.9, pad=0.05)
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
        for signed, im in handles.items():
            cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.5, location="right", pad=0.02)
            cb.set_label("attribution / robust max" if signed else "|attribution| / robust max", fontsize=8)
    return fig


def _name(k: Any, classes: Sequence[str] | None) -> str:
    k = int(k)
    return classes[k] if classes is not None and 0 <= k < len(classes) else str(k)


# ---------------------------------------------------------------------------- sanity checks
def sanity_curves(results: Any, *, ax=None, show_ssim: bool = True) -> Figure:
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


def sanity_maps(result: Any, *, samples: int = 3, overlay: bool = False, signed: bool | None = None) -> Figure:
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
        for c, (key, h) in enumerate(zip(keys, heats)):
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
def faithfulness_curves(result: Any, *, ax=None) -> Figure:
    """Deletion and insertion curves (mean target score against share of pixels), AUC in the legend.

    Examples
    --------
    >>> fig = faithfulness_curves(deletion_curves(model, test, ["integrated_gradients", "saliency"]))  # doctest: +SKIP
    """
    modes = list(result.curves)
    if ax is not None and len(modes) > 1:
        raise ValueError("faithfulness_curves draws one panel per mode; pass ax=None, or a result with one mode.")
    fig, axes = new_figure(1, len(modes), size=(4.2 * len(modes), 3.4), ax=ax)
    axes_list = [axes] if ax is not None else list(axes[0])
    methods = [m for m in result.methods if m != "random"]
    colors = class_colors(max(1, len(methods)))
    for a, mode in zip(axes_list, modes):
        auc = result.auc(mode)
        for k, m in enumerate(methods):
            a.plot(result.fractions, result.mean_curve(mode, m), color=colors[k], label=f"{m} ({auc[m]:.3f})")
        if "random" in result.curves[mode]:
            a.plot(result.fractions, result.mean_curve(mode, "random"), "--", color="0.5",
                   label=f"random ({auc['random']:.3f})")
        a.set_xlabel(f"share of pixels {'removed' if mode == 'deletion' else 'inserted'}, most attributed first")
        a.set_ylabel(f"target {result.score}")
        better = "lower" if mode == "deletion" else "higher"
        a.set_title(f"{mode.capitalize()} (AUC, {better} is better)", fontsize=10)
        a.set_xlim(0, 1)
        a.legend(fontsize=7, frameon=False)
    return fig
