"""Attribution figures: built from results alone, with the colour conventions of plots.style."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from neuralatlas.attribution import attribute, deletion_curves, sanity_check
from neuralatlas.plots import attribution_grid, faithfulness_curves, sanity_curves, sanity_maps
from neuralatlas.plots.style import DIVERGING, MAGNITUDE


@pytest.fixture(scope="module")
def results(trained_cnn_run):
    test = trained_cnn_run.test.subset(slice(0, 16))
    return [attribute(trained_cnn_run.model, test, m, n_steps=8) for m in ("saliency", "ig", "grad_cam")]


def test_attribution_grid_shares_one_scale(results):
    fig = attribution_grid(results, samples=3)
    images = [ax.images for ax in fig.axes if ax.images]
    assert len(fig.axes) >= 3 * 4
    heat = [ims[-1] for ims in images if ims[-1].get_cmap().name in (DIVERGING, MAGNITUDE)]
    signed = [im for im in heat if im.get_cmap().name == DIVERGING]
    unsigned = [im for im in heat if im.get_cmap().name == MAGNITUDE]
    assert signed and unsigned
    assert {im.get_clim() for im in signed} == {(-1.0, 1.0)}
    assert {im.get_clim() for im in unsigned} == {(0.0, 1.0)}
    matplotlib.pyplot.close(fig)
    fig = attribution_grid({"a": results[1]}, samples=[0, 2], scale="column", overlay=False)
    lims = {im.get_clim() for ax in fig.axes for im in ax.images if im.get_cmap().name == DIVERGING}
    assert len(lims) == 1 and next(iter(lims))[0] == -next(iter(lims))[1]
    matplotlib.pyplot.close(fig)


def test_sanity_and_faithfulness_figures(trained_cnn_run):
    test = trained_cnn_run.test.subset(slice(0, 16))
    s1 = sanity_check(trained_cnn_run.model, test, "saliency", n_samples=16)
    s2 = sanity_check(trained_cnn_run.model, test, "gradient_x_input", n_samples=16, mode="cascading")
    for fig in (sanity_curves(s1), sanity_curves([s1, s2]), sanity_maps(s1, samples=2)):
        assert fig.axes
        matplotlib.pyplot.close(fig)
    f = deletion_curves(trained_cnn_run.model, test, ["saliency"], steps=4)
    fig = faithfulness_curves(f)
    assert len(fig.axes) == 2 and all(ax.get_legend() is not None for ax in fig.axes)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("random") for label in labels)
    assert np.isfinite(list(f.auc("deletion").values())).all()
    matplotlib.pyplot.close(fig)
