"""The same small CNN in torch, Flax NNX and Keras (JAX backend), with the same weights, gives
the same activations, gradients and NAPs in the store (conv maps stored channels-first)."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest
import torch
from torch import nn

import neuralatlas as na
from neuralatlas.data.dataset import ArrayDataset

pytestmark = pytest.mark.slow  # builds and captures the same network in torch, Flax and Keras

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

N = 40
LAYERS = ["conv1", "fc1", "fc2"]


class TorchCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 8 * 8, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.relu(self.conv1(x)).flatten(1))))


class FlaxCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv1 = nnx.Conv(1, 4, (3, 3), padding="SAME", rngs=rngs)
        self.fc1 = nnx.Linear(4 * 8 * 8, 16, rngs=rngs)
        self.fc2 = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.conv1(x)).reshape(x.shape[0], -1)
        return self.fc2(nnx.relu(self.fc1(h)))


def converted(tm: TorchCNN) -> dict[str, np.ndarray]:
    """torch weights in the channels-last frameworks' layout (flatten order h, w, c)."""
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    fc1 = sd["fc1.weight"].reshape(16, 4, 8, 8).transpose(2, 3, 1, 0).reshape(256, 16)
    return {"conv1/kernel": sd["conv1.weight"].transpose(2, 3, 1, 0), "conv1/bias": sd["conv1.bias"],
            "fc1/kernel": fc1, "fc1/bias": sd["fc1.bias"],
            "fc2/kernel": sd["fc2.weight"].T, "fc2/bias": sd["fc2.bias"]}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from neuralatlas.data import digits

    _, test = digits()
    nchw = test.subset(slice(0, N))
    nhwc = ArrayDataset(nchw.inputs.transpose(0, 2, 3, 1), nchw.labels, nchw.classes, index=nchw.index)
    torch.manual_seed(0)
    tm = TorchCNN()
    w = converted(tm)
    fm = FlaxCNN(nnx.Rngs(0))
    for layer in ("conv1", "fc1", "fc2"):
        getattr(fm, layer).kernel[...] = jax.numpy.asarray(w[f"{layer}/kernel"])
        getattr(fm, layer).bias[...] = jax.numpy.asarray(w[f"{layer}/bias"])
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend in this process")
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1", activation=None)(inp)
    x = keras.layers.Flatten()(keras.layers.ReLU()(x))
    x = keras.layers.Dense(16, name="fc1")(x)
    out = keras.layers.Dense(10, name="fc2")(keras.layers.ReLU()(x))
    km = keras.Model(inp, out)
    for layer in ("conv1", "fc1", "fc2"):
        km.get_layer(layer).set_weights([w[f"{layer}/kernel"], w[f"{layer}/bias"]])
    root = tmp_path_factory.mktemp("cross")
    kw = {"layers": LAYERS, "gradients": True, "batch_size": 16, "overwrite": True}
    return {"torch": na.capture(tm, nchw, out=root / "t.zarr", **kw),
            "flax": na.capture(fm, nhwc, out=root / "f.zarr", **kw),
            "keras": na.capture(km, nhwc, out=root / "k.zarr", **kw)}


@pytest.mark.parametrize("other", ["flax", "keras"])
def test_same_activations_and_gradients(stores, other):
    ref, got = stores["torch"], stores[other]
    assert got.layers == LAYERS
    for layer in LAYERS:
        assert got.unit_shape(layer) == ref.unit_shape(layer)  # conv1 channels-first: (4, 8, 8)
        np.testing.assert_allclose(np.asarray(got.activations(layer)), np.asarray(ref.activations(layer)),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(got.gradients(layer)), np.asarray(ref.gradients(layer)),
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got.sample_table()["prediction"], ref.sample_table()["prediction"])
    np.testing.assert_array_equal(got.sample_table()["label"], ref.sample_table()["label"])
    assert got.attrs["layouts"] == ref.attrs["layouts"] == {"conv1": "channels_first", "fc1": "flat", "fc2": "flat"}
    assert got.attrs["framework_layouts"] == {"conv1": "channels_last"}


@pytest.mark.parametrize("other", ["flax", "keras"])
def test_same_naps(stores, other):
    ref, got = na.naps(stores["torch"]), na.naps(stores[other])
    for layer in LAYERS:
        np.testing.assert_allclose(got.values(layer), ref.values(layer), rtol=1e-4, atol=1e-5)
    aligned_ref = na.naps(stores["torch"], layers=["conv1"], align="gradient")
    aligned = na.naps(stores[other], layers=["conv1"], align="gradient")
    np.testing.assert_allclose(aligned.values("conv1"), aligned_ref.values("conv1"), rtol=1e-4, atol=1e-5)


def test_gradient_is_that_of_the_label_logit(stores):
    """Analytic check: the gradient at the last layer is the one-hot of the label."""
    g = np.asarray(stores["flax"].gradients("fc2"))
    labels = stores["flax"].sample_table()["label"].to_numpy()
    np.testing.assert_array_equal(g, np.eye(10, dtype=np.float32)[labels])


@pytest.mark.parametrize("other", ["flax", "keras"])
def test_similarity_across_frameworks_is_identity(stores, other):
    """Downstream analyses read these stores as torch ones: CKA of a layer with its twin is 1."""
    cka = na.cka_matrix(stores[other], layers=LAYERS, other=stores["torch"], other_layers=LAYERS)
    np.testing.assert_allclose(np.diag(cka.values), 1.0, atol=1e-5)
