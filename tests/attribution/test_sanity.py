"""Sanity checks (Adebayo et al. 2018): model-independent maps fail, saliency passes, model restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from neuralatlas.attribution import SanityResult, sanity_check, spearman_rows, ssim_rows
from neuralatlas.errors import AnalysisError, LayerError


def edge_detector(model, x, targets):
    """A 'method' that never looks at the model: the Laplacian of the input."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    return torch.nn.functional.conv2d(x, kernel.view(1, 1, 3, 3).expand(x.shape[1], 1, 3, 3).contiguous(),
                                      padding=1, groups=x.shape[1])


def test_spearman_and_ssim_against_references():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 3, 4))
    b[1] = a[1] * 2 + 1  # monotone: rank correlation 1
    ref = [stats.spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(5)]
    np.testing.assert_allclose(spearman_rows(a, b), ref, atol=1e-12)
    assert spearman_rows(np.ones((1, 9)), a[:1].reshape(1, -1)[:, :9])[0] == 0.0
    np.testing.assert_allclose(ssim_rows(a, a), 1.0, atol=1e-12)
    assert np.all(ssim_rows(a, -a) < 0.5)


def test_model_independent_method_fails_and_saliency_passes(trained_cnn_run):
    model, test = trained_cnn_run.model, trained_cnn_run.test
    before = {k: v.clone() for k, v in model.state_dict().items()}
    edges = sanity_check(model, test, edge_detector, n_samples=32)
    assert not edges.passed
    np.testing.assert_allclose(edges.steps["spearman"], 1.0)
    np.testing.assert_allclose(edges.steps["ssim"], 1.0)
    sal = sanity_check(model, test, "saliency", n_samples=32)
    assert sal.passed and sal.final_spearman < 0.5
    casc = sal.steps[sal.steps["mode"] == "cascading"]
    assert list(casc["layer"]) == ["out", "fc1", "conv2", "conv1"]  # top layer first
    assert casc["spearman"].iloc[-1] < casc["spearman"].iloc[0]  # more randomised, less similar
    assert set(sal.maps) == {"original", "out", "fc1", "conv2", "conv1"}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not model.training


def test_seeded_and_saved(trained_cnn_run, tmp_path):
    model, test = trained_cnn_run.model, trained_cnn_run.test
    a = sanity_check(model, test, "gradient_x_input", n_samples=16, mode="independent", layers=["conv1", "out"])
    b = sanity_check(model, test, "gradient_x_input", n_samples=16, mode="independent", layers=["conv1", "out"])
    np.testing.assert_array_equal(a.steps["spearman"], b.steps["spearman"])
    assert list(a.steps["layer"]) == ["out", "conv1"]
    a.save(tmp_path)
    back = SanityResult.load(tmp_path)
    assert back.passed == a.passed and back.method == "gradient_x_input"
    np.testing.assert_allclose(back.steps["spearman"], a.steps["spearman"])


def test_bad_arguments(trained_cnn_run):
    model, test = trained_cnn_run.model, trained_cnn_run.test
    with pytest.raises(LayerError, match="holds no parameters.*Layers with parameters: conv1, conv2, fc1, out"):
        sanity_check(model, test, "saliency", layers=["relu1"])
    with pytest.raises(AnalysisError, match="mode"):
        sanity_check(model, test, "saliency", mode="sideways")


def test_ssim_is_scikit_image_structural_similarity():
    """Same value as scikit-image's default SSIM (window 7, sample covariance, border crop)."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(7)
    for shape in ((12, 15), (8, 8), (5, 9)):
        a = rng.random((4, *shape))
        b = a + 0.3 * rng.normal(size=a.shape)
        ours = ssim_rows(a, b)
        scale = lambda m: (m - m.min()) / (m.max() - m.min())      # noqa: E731 (each map to [0, 1], as Adebayo et al.)
        win = min(7, *shape) - (1 - min(7, *shape) % 2)
        ref = [
            structural_similarity(scale(x), scale(y), data_range=1.0, win_size=win) for x, y in zip(a, b, strict=True)
        ]
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_sanity_figures_show_what_the_verdict_measured(trained_cnn_run):
    import matplotlib.pyplot as plt

    from neuralatlas.plots import sanity_curves, sanity_maps

    model, data = trained_cnn_run.model, trained_cnn_run.test
    result = sanity_check(model, data, "gradient_x_input", n_samples=8, mode="cascading", keep_maps=2)
    assert result.absolute and result.summary()["absolute"] is True
    fig = sanity_maps(result, samples=2)
    assert "|map|" in fig._suptitle.get_text()
    # every drawn map is the magnitude the verdict compared: nothing below zero
    assert all(im.get_array().min() >= 0 for ax in fig.axes for im in ax.images[:1] if ax.get_title() != "input")
    signed = sanity_maps(result, samples=2, signed=True)
    assert "signed" in signed._suptitle.get_text()
    curves = sanity_curves(result)
    labels = [t.get_text() for t in curves.axes[0].get_legend().get_texts()]
    assert any("pass threshold" in t for t in labels) and "|maps|" in curves.axes[0].get_ylabel()
    plt.close("all")
