"""Figures of adversarial examples: clean / perturbation / adversarial grids and robustness curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralatlas.plots.attribution import heat_of, image_of
from neuralatlas.plots.style import DIVERGING, new_figure, symmetric_limits


def adversarial_grid(result: Any, *, samples: int | Sequence[int] = 6, classes: Sequence[str] | None = None,
                     successful_first: bool = True) -> Figure:
    """Rows of clean input, perturbation and adversarial input, with the model's predictions.

    The perturbation is drawn diverging, on one scale for all rows; a changed prediction is written in red.

    Parameters
    ----------
    result : AttackResult
    samples : int or sequence of int
        How many rows, or which samples.
    classes : sequence of str, optional
        Class names (default: the result's).
    successful_first : bool
        With a count, show successful attacks first (the interesting ones).

    Examples
    --------
    >>> fig = adversarial_grid(pgd(model, test, eps=0.1))     # doctest: +SKIP
    """
    classes = classes or result.classes
    n = len(result)
    if isinstance(samples, (int, np.integer)):
        order = np.argsort(~result.success, kind="stable") if successful_first else np.arange(n)
        rows = [int(i) for i in order[:min(int(samples), n)]]
    else:
        rows = [int(s) for s in samples]
    pert = result.perturbation
    lim = symmetric_limits([heat_of(pert[i]) for i in rows])
    # clean and adversarial images on one grey scale, so the change is what one sees
    lo = float(min(result.clean.min(), result.adversarial.min()))
    hi = float(max(result.clean.max(), result.adversarial.max()))
    fig, axes = new_figure(len(rows), 3, size=(6.0, 1.9 * len(rows) + 0.5))

    def name(k: int) -> str:
        return classes[k] if classes is not None and 0 <= k < len(classes) else str(k)

    for r, i in enumerate(rows):
        img, gray = image_of(result.clean[i], (lo, hi))
        axes[r, 0].imshow(img, cmap=gray, vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].set_title(f"clean: {name(int(result.clean_pred[i]))} (label {name(int(result.labels[i]))})",
                             fontsize=7)
        im = axes[r, 1].imshow(heat_of(pert[i]), cmap=DIVERGING, vmin=lim[0], vmax=lim[1], interpolation="nearest")
        axes[r, 1].set_title("perturbation", fontsize=7)
        adv, gray = image_of(result.adversarial[i], (lo, hi))
        axes[r, 2].imshow(adv, cmap=gray, vmin=0, vmax=1, interpolation="nearest")
        changed = result.adv_pred[i] != result.clean_pred[i]
        axes[r, 2].set_title(f"adversarial: {name(int(result.adv_pred[i]))}", fontsize=7,
                             color="tab:red" if changed else "black")
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.4, label="perturbation")
    fig.suptitle(f"{result.method.upper()} ({result.norm}, eps={result.eps:g}): success rate"
                 f" {result.success_rate:.0%}", fontsize=9)
    return fig


def adversarial_robustness(curve: Any, *, ax=None) -> Figure:
    """Accuracy and attack success rate against the perturbation size ``eps``.

    Examples
    --------
    >>> fig = robustness_plot(robustness_curve(model, test, eps=[0, 0.05, 0.1, 0.2]))   # doctest: +SKIP
    """
    fig, axes = new_figure(1, 1, size=(4.6, 3.4), ax=ax)
    a = axes[0, 0] if ax is None else axes
    t = curve.table
    a.plot(t["eps"], t["accuracy"], marker="o", color="tab:blue", label="accuracy")
    a.plot(t["eps"], t["success_rate"], marker="s", color="tab:red", label="success rate")
    if "clean_accuracy" in t:
        a.axhline(float(t["clean_accuracy"].iloc[0]), color="0.6", linewidth=1, linestyle="--", label="clean accuracy")
    a.set_xlabel(f"eps ({curve.norm})")
    a.set_ylim(-0.02, 1.02)
    a.set_title(f"Robustness to {curve.method.upper()}", fontsize=10)
    a.legend(fontsize=7, frameon=False)
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
robustness_plot = adversarial_robustness
