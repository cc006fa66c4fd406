"""The architecture table of Flax and Keras models: capture's names, real parameter counts, MACs."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

from neuralatlas.architecture.foreign import (  # noqa: E402  (only once flax is there)
    foreign_summary,
    framework_summary,
    save_architecture,
)


class Net(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 3, (3, 3), rngs=rngs)
        self.layers = nnx.List([nnx.Linear(48, 8, rngs=rngs), nnx.Linear(8, 5, rngs=rngs)])

    def __call__(self, x):
        h = nnx.relu(self.conv(x)).reshape(x.shape[0], -1)
        return self.layers[1](nnx.relu(self.layers[0](h)))


@pytest.mark.slow  # a Flax model, captured and drawn
def test_nnx_table_matches_capture_names_and_counts(tmp_path):
    import neuralatlas as na
    from neuralatlas.data.dataset import ArrayDataset

    model, x = Net(nnx.Rngs(0)), np.zeros((2, 4, 4, 1), np.float32)
    summary = foreign_summary(model, x)
    table = summary.table.set_index("name")
    assert list(table.index) == ["conv", "layers.0", "layers.1"]
    assert table.loc["conv", "output_shape"] == (4, 4, 3)
    assert table.loc["conv", "params"] == 3 * 3 * 1 * 3 + 3
    assert table.loc["conv", "macs"] == 3 * 3 * 1 * 3 * 16
    assert table.loc["layers.0", "macs"] == 48 * 8
    assert summary.total_params == 30 + 48 * 8 + 8 + 8 * 5 + 5 == summary.trainable_params
    data = ArrayDataset(np.zeros((3, 4, 4, 1), np.float32), [0, 1, 2], list("abcde"))
    assert na.capture(model, data, out=tmp_path / "a.zarr").layers == list(table.index)
    assert "conv" in framework_summary(model, x)
    out = save_architecture(tmp_path, model, x)
    assert out["total_params"] == summary.total_params
    assert (tmp_path / "results" / "architecture" / "summary.csv").exists()


def test_keras_table():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend in this process")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="out")])
    summary = foreign_summary(model, np.zeros((2, 4, 4, 1), np.float32))
    table = summary.table.set_index("name")
    assert list(table.index) == ["conv", "flat", "out"]
    assert summary.total_params == model.count_params()
    assert table.loc["conv", "output_shape"] == (2, 2, 2) and table.loc["conv", "macs"] == 9 * 2 * 4
    assert "conv (Conv2D)" in framework_summary(model, np.zeros((2, 4, 4, 1), np.float32))
