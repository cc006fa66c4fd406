"""Capture of Keras 3 models: Sequential, functional, subclassed; JAX backend in-process, torch
backend in a subprocess (KERAS_BACKEND is read once, when keras is imported)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import LayerError, StoreError

keras = pytest.importorskip("keras")
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.random((19, 4, 4, 1), np.float32), rng.integers(0, 3, 19), list("abc"))


def sequential():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                             keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="out")])


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(6, name="hidden")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, x):
        return self.head(keras.ops.relu(self.hidden(keras.ops.reshape(x, (-1, 16)))))


@pytest.fixture(scope="module")
def jax_backend():
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend in this process")


def test_sequential_values_and_gradients(data, tmp_path, jax_backend):
    model = sequential()
    store = na.capture(model, data, out=tmp_path / "a.zarr", gradients=True, batch_size=8)
    assert store.layers == ["conv", "flat", "out"] and store.attrs["framework"] == "keras:jax"
    conv = keras.Model(model.inputs, model.get_layer("conv").output)(data.inputs)
    np.testing.assert_allclose(np.asarray(store.activations("conv")), np.asarray(conv).transpose(0, 3, 1, 2),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(store.gradients("out")), np.eye(3, dtype=np.float32)[data.labels])
    kernel = model.get_layer("out").get_weights()[0]  # d logit_label / d flat = kernel[:, label]
    np.testing.assert_allclose(np.asarray(store.gradients("flat")), kernel[:, data.labels].T, rtol=1e-6)


def test_subclassed_and_unknown_layer(data, tmp_path, jax_backend):
    model = Subclassed()
    model(data.inputs[:1])
    store = na.capture(model, data, out=tmp_path / "a.zarr", target="prediction", gradients=True)
    assert store.layers == ["hidden", "head"]
    logits = np.asarray(model(data.inputs))
    np.testing.assert_allclose(np.asarray(store.activations("head")), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(store.gradients("head")), np.eye(3, dtype=np.float32)[logits.argmax(1)])
    with pytest.raises(LayerError, match="as keras:jax names them: hidden, head"):
        na.capture(model, data, layers=["hiden"], out=tmp_path / "b.zarr")


def test_checkpoints_and_mismatch(data, tmp_path, jax_backend):
    from neuralatlas.capture.keras_adapter import save_weights

    model = sequential()
    save_weights(tmp_path / "ck" / "epoch_000.npz", model)
    before = [w.copy() for w in model.get_weights()]
    model.get_layer("out").set_weights([w * 3 for w in model.get_layer("out").get_weights()])
    save_weights(tmp_path / "ck" / "epoch_001.npz", model)
    store = na.capture(model, data, layers=["out"], out=tmp_path / "a.zarr", checkpoints=tmp_path / "ck")
    np.testing.assert_allclose(np.asarray(store.activations("out", epoch=1)),
                               3 * np.asarray(store.activations("out", epoch=0)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.get_weights()[-2], 3 * before[-2])  # left as found (epoch 1 weights)
    np.savez(tmp_path / "epoch_000.npz", **{"sequential/conv/kernel": np.zeros((3, 3, 1, 2), np.float32)})
    with pytest.raises(StoreError, match="is missing"):
        na.capture(model, data, out=tmp_path / "b.zarr", checkpoints={0: tmp_path / "epoch_000.npz"})


def test_keras_file_loads(data, tmp_path, jax_backend):
    from neuralatlas.capture.keras_adapter import load_model

    model = sequential()
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    a = na.capture(model, data, layers=["out"], out=tmp_path / "a.zarr")
    b = na.capture(loaded, data, layers=["out"], out=tmp_path / "b.zarr")
    np.testing.assert_array_equal(np.asarray(a.activations("out")), np.asarray(b.activations("out")))


TORCH_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np, keras, torch
    import neuralatlas as na
    from neuralatlas.data.dataset import ArrayDataset
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.random((19, 4, 4, 1), np.float32), rng.integers(0, 3, 19), list("abc"))
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inp)
    out = keras.layers.Dense(3, name="out")(keras.layers.Flatten(name="flat")(x))
    model = keras.Model(inp, out)
    store = na.capture(model, data, out=sys.argv[1] + "/a.zarr", gradients=True, batch_size=8)
    assert store.attrs["framework"] == "keras:torch", store.attrs["framework"]
    assert store.layers == ["conv", "flat", "out"], store.layers
    conv = keras.Model(model.inputs, model.get_layer("conv").output)(data.inputs)
    np.testing.assert_allclose(np.asarray(store.activations("conv")),
                               keras.ops.convert_to_numpy(conv).transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(store.gradients("out")), np.eye(3, dtype=np.float32)[data.labels])
    kernel = model.get_layer("out").get_weights()[0]
    np.testing.assert_allclose(np.asarray(store.gradients("flat")), kernel[:, data.labels].T, rtol=1e-6)
    print("ok")
""")


@pytest.mark.slow  # a fresh interpreter with Keras on torch
def test_torch_backend_in_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", TORCH_SCRIPT, str(tmp_path)], capture_output=True, check=False,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout[-2000:] + result.stderr[-4000:]


def test_tensorflow_backend():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed here (the TF backend is untested)")
