"""Saliency and integrated gradients for JAX models: analytic cases, completeness, torch agreement."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import AnalysisError

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")


class Linear(nnx.Module):
    def __init__(self):
        self.fc = nnx.Linear(4, 3, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.fc(x)


class Conv(nnx.Module):
    def __init__(self):
        self.conv = nnx.Conv(1, 3, (3, 3), rngs=nnx.Rngs(1))
        self.fc = nnx.Linear(3 * 16, 3, rngs=nnx.Rngs(2))

    def __call__(self, x):
        return self.fc(nnx.tanh(self.conv(x)).reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.normal(size=(10, 4)).astype(np.float32), rng.integers(0, 3, 10), list("abc"))


def test_linear_model_analytic(points):
    model = Linear()
    w = np.asarray(model.fc.kernel[...])
    sal = na.attribute(model, points, "saliency")
    np.testing.assert_allclose(sal.maps, np.abs(w[:, points.labels].T), rtol=1e-6)
    assert not sal.signed and sal.method == "saliency"
    ig = na.attribute(model, points, "integrated_gradients", n_steps=4)
    np.testing.assert_allclose(ig.maps, points.inputs * w[:, points.labels].T, rtol=1e-5, atol=1e-6)
    assert ig.summary()["completeness_max"] < 1e-5


def test_completeness_nonlinear_and_result_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = ArrayDataset(rng.random((6, 4, 4, 1), np.float32), rng.integers(0, 3, 6), list("abc"))
    ig = na.attribute(Conv(), images, "ig", n_steps=32, target="prediction")
    assert ig.maps.shape == (6, 1, 4, 4)            # channels-first, like torch maps
    assert ig.summary()["completeness_max"] < 0.01
    ig.save(tmp_path)
    back = na.Attribution.load(tmp_path)
    np.testing.assert_array_equal(back.maps, ig.maps)
    coarse = na.attribute(Conv(), images, "ig", n_steps=2, target="prediction")
    assert coarse.summary()["completeness_max"] > ig.summary()["completeness_max"]


def test_same_as_torch_for_same_weights(points):
    import torch

    model = Linear()
    tm = torch.nn.Linear(4, 3)
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(np.asarray(model.fc.kernel[...]).T))
        tm.bias.copy_(torch.from_numpy(np.asarray(model.fc.bias[...])))
    for method in ("saliency", "integrated_gradients"):
        ours = na.attribute(model, points, method, n_steps=16)
        ref = na.attribute(tm, points, method, n_steps=16, device="cpu")
        np.testing.assert_allclose(ours.maps, ref.maps, rtol=1e-4, atol=1e-6)


def test_errors(points):
    with pytest.raises(AnalysisError, match="torch/captum only"):
        na.attribute(Linear(), points, "grad_cam")
    with pytest.raises(AnalysisError, match="needs labels"):
        na.attribute(Linear(), points.inputs, "saliency")
    with pytest.raises(AnalysisError, match="3 outputs"):
        na.attribute(Linear(), points, "saliency", target=5)


def test_the_jax_run_folder_step_reads_n_samples_as_every_other_step(tmp_path, points):
    """``n_samples=None`` / ``"all"`` is every sample (it was a TypeError in ``min()``)."""
    from neuralatlas.steps.attribution import jax_step

    every = jax_step(tmp_path / "all", Linear(), points, methods=("saliency",), n_samples="all")
    first = jax_step(tmp_path / "three", Linear(), points, methods=("saliency",), n_samples=3)
    assert every["n_samples"] == len(points) and first["n_samples"] == 3
    assert (tmp_path / "all" / "figures" / "attribution").is_dir()
