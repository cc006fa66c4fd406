"""Adversarial figures: grids of clean / perturbation / adversarial inputs and robustness curves."""

from __future__ import annotations

import matplotlib

from neuralatlas.adversarial import pgd, robustness_curve
from neuralatlas.plots import adversarial_grid, robustness_plot
from neuralatlas.plots.style import DIVERGING


def test_adversarial_figures(trained_cnn_run):
    test = trained_cnn_run.test.subset(slice(0, 20))
    res = pgd(trained_cnn_run.model, test, eps=0.15, steps=5)
    fig = adversarial_grid(res, samples=4)
    pert = [im for ax in fig.axes for im in ax.images if im.get_cmap().name == DIVERGING]
    assert len(pert) == 4 and len({im.get_clim() for im in pert}) == 1  # one shared scale
    titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("adversarial")]
    assert len(titles) == 4
    matplotlib.pyplot.close(fig)
    fig = robustness_plot(robustness_curve(trained_cnn_run.model, test, eps=[0, 0.1], steps=3))
    assert fig.axes[0].get_legend() is not None
    matplotlib.pyplot.close(fig)
