"""Capture of Flax models (NNX and linen): names, globs, resume, checkpoints, errors."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import CaptureError, LayerError, StoreError, StoreMismatchError

jax = pytest.importorskip("jax")
jnp = jax.numpy
nnx = pytest.importorskip("flax.nnx")
nn = pytest.importorskip("flax.linen")

from neuralatlas.capture.flax_adapter import save_params  # noqa: E402  (only once flax is there)


class Net(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 3, (3, 3), rngs=rngs)
        self.layers = nnx.List([nnx.Linear(3 * 4 * 4, 8, rngs=rngs), nnx.Linear(8, 5, rngs=rngs)])
        self.shared = nnx.Linear(5, 5, rngs=rngs)

    def __call__(self, x, twice: bool = False):
        h = nnx.relu(self.conv(x)).reshape(x.shape[0], -1)
        h = self.layers[1](nnx.relu(self.layers[0](h)))
        return self.shared(self.shared(h)) if twice else self.shared(h)


class Twice(nnx.Module):
    def __init__(self, rngs):
        self.net = Net(rngs)

    def __call__(self, x):
        return self.net(x, twice=True)


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(3, (3, 3))(x)).reshape(x.shape[0], -1)
        h = nn.Dense(8)(x)  # linen names modules in construction order: Dense_0, then Dense_1
        return nn.Dense(5)(nn.relu(h))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.random((21, 4, 4, 1), np.float32), rng.integers(0, 5, 21), list("abcde"))


@pytest.fixture(scope="module")
def net():
    return Net(nnx.Rngs(0))


@pytest.fixture(scope="module")
def full(net, data, tmp_path_factory):
    return na.capture(net, data, out=tmp_path_factory.mktemp("f") / "a.zarr", gradients=True, batch_size=8)


def forward_numpy(net, x):
    """The network by hand (numpy) from its own weights: an independent reference."""
    k, b = np.asarray(net.conv.kernel[...]), np.asarray(net.conv.bias[...])
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((len(x), 4, 4, 3), np.float32)
    for i in range(4):
        for j in range(4):
            conv[:, i, j] = np.einsum("nhwc,hwco->no", xp[:, i:i + 3, j:j + 3], k) + b
    h = np.maximum(conv, 0).reshape(len(x), -1)
    l0 = h @ np.asarray(net.layers[0].kernel[...]) + np.asarray(net.layers[0].bias[...])
    return conv, l0


def test_names_leaves_and_values(full, net, data):
    assert full.layers == ["conv", "layers.0", "layers.1", "shared"]   # call order, NNX paths
    assert full.attrs["framework"] == "flax.nnx"
    conv, l0 = forward_numpy(net, data.inputs)
    np.testing.assert_allclose(np.asarray(full.activations("conv")), conv.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(full.activations("layers.0")), l0, rtol=1e-5, atol=1e-5)
    # gradient of the label logit w.r.t. the last layer's output: one-hot of the label
    np.testing.assert_array_equal(np.asarray(full.gradients("shared")), np.eye(5, dtype=np.float32)[data.labels])
    # w.r.t. layers.1: the (transposed) kernel of `shared` picked by the label
    w = np.asarray(net.shared.kernel[...])
    np.testing.assert_allclose(np.asarray(full.gradients("layers.1")), w[:, data.labels].T, rtol=1e-5)
    # the last batch was padded to the batch size, and nothing of the padding was written
    assert full.n_samples == 21 and full.is_complete()


def test_globs_one_segment_and_across(net, data, tmp_path):
    assert na.capture(net, data, layers="layers.*", out=tmp_path / "a.zarr").layers == ["layers.0", "layers.1"]
    assert na.capture(Twice(nnx.Rngs(0)), data, layers="**", out=tmp_path / "b.zarr",
                      repeated="first").layers == ["net", "net.conv", "net.layers.0", "net.layers.1", "net.shared"]
    assert na.capture(Twice(nnx.Rngs(0)), data, layers="*", out=tmp_path / "c.zarr").layers == ["net"]


def test_unknown_layer_lists_the_real_ones(net, data, tmp_path):
    with pytest.raises(LayerError, match="conv, layers.0, layers.1, shared"):
        na.capture(net, data, layers=["layers.2"], out=tmp_path / "a.zarr")


def test_resume_and_mismatch(net, data, tmp_path):
    kw = {"layers": ["conv"], "batch_size": 8, "chunk_rows": 8}
    full = na.capture(net, data, out=tmp_path / "full.zarr", **kw)
    calls = []

    def stop_after_one_chunk(done, total):
        calls.append(done)
        if len(calls) == 1:
            raise KeyboardInterrupt

    out = tmp_path / "part.zarr"
    with pytest.raises(KeyboardInterrupt):
        na.capture(net, data, out=out, progress=stop_after_one_chunk, **kw)
    assert not na.ActivationStore.open(out).is_complete()
    again = na.capture(net, data, out=out, progress=lambda done, total: calls.append(done), **kw)
    assert calls[1:] == [16, 21, 21]  # chunk 0 was not computed again
    np.testing.assert_array_equal(np.asarray(again.activations("conv")), np.asarray(full.activations("conv")))
    with pytest.raises(StoreMismatchError, match="layers"):
        na.capture(net, data, out=out, **{**kw, "layers": ["shared"]})


def test_shared_module(data, tmp_path):
    model = Twice(nnx.Rngs(0))
    with pytest.raises(CaptureError, match="'net.shared' ran 2 times"):
        na.capture(model, data, layers=["net.shared"], out=tmp_path / "a.zarr")
    last = na.capture(model, data, layers=["net.shared"], out=tmp_path / "b.zarr", repeated="last", gradients=True)
    np.testing.assert_array_equal(np.asarray(last.gradients("net.shared")), np.eye(5, dtype=np.float32)[data.labels])


def test_reduce_mean_is_spatial_mean(full, net, data, tmp_path):
    pooled = na.capture(net, data, layers=["conv"], reduce="mean", out=tmp_path / "a.zarr", gradients=True)
    np.testing.assert_allclose(np.asarray(pooled.activations("conv")),
                               np.asarray(full.activations("conv")).mean((2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled.gradients("conv")),
                               np.asarray(full.gradients("conv")).mean((2, 3)), rtol=1e-5, atol=1e-6)


def test_native_layout(net, data, tmp_path):
    from neuralatlas.capture.foreign import capture_foreign

    store = capture_foreign(net, data, layers=["conv"], out=tmp_path / "a.zarr", layout="native")
    assert store.unit_shape("conv") == (4, 4, 3)
    assert store.attrs["layouts"]["conv"] == "channels_last"  # analyses will not take it for [C, H, W]
    with pytest.raises(na.NeuralAtlasError, match="channel-first"):
        na.naps(store, align="gradient", layers=["conv"])


def test_per_epoch_checkpoints_and_mismatching_tree(net, data, tmp_path):
    ck = tmp_path / "ck"
    for e, scale in enumerate((1.0, 2.0)):
        model = Net(nnx.Rngs(0))
        model.conv.kernel[...] = model.conv.kernel[...] * scale
        save_params(ck / f"epoch_{e:03d}.npz", model)
    store = na.capture(net, data, layers=["conv"], out=tmp_path / "a.zarr", checkpoints=ck)
    assert store.epochs == [0, 1]
    a0, a1 = (np.asarray(store.activations("conv", epoch=e)) for e in (0, 1))
    bias = np.asarray(net.conv.bias[...])[None, :, None, None]
    np.testing.assert_allclose(a1 - bias, 2 * (a0 - bias), rtol=1e-5, atol=1e-5)
    # the model itself is left as found
    np.testing.assert_array_equal(np.asarray(net.conv.kernel[...]), np.asarray(Net(nnx.Rngs(0)).conv.kernel[...]))
    np.savez(tmp_path / "bad" / "epoch_000.npz" if (tmp_path / "bad").mkdir() is None else None,
             **{"conv/kernel": np.zeros((3, 3, 1, 3), np.float32), "conv/bias": np.zeros(4, np.float32)})
    with pytest.raises(StoreError, match="'conv/bias' has shape \\[4\\], the module expects \\[3\\]"):
        na.capture(net, data, layers=["conv"], out=tmp_path / "b.zarr", checkpoints=tmp_path / "bad")


def test_msgpack_checkpoint(net, data, tmp_path):
    from flax import serialization

    _, _, weights = nnx.split(net, nnx.RngState, ...)
    (tmp_path / "epoch_003.msgpack").write_bytes(serialization.to_bytes(nnx.to_pure_dict(weights)))
    store = na.capture(net, data, layers=["conv"], out=tmp_path / "a.zarr", checkpoints=tmp_path)
    ref = na.capture(net, data, layers=["conv"], out=tmp_path / "b.zarr")
    np.testing.assert_array_equal(np.asarray(store.activations("conv", epoch=3)), np.asarray(ref.activations("conv")))


def test_linen(data, tmp_path):
    module = LinenNet()
    variables = module.init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
    store = na.capture((module, variables), data, out=tmp_path / "a.zarr", gradients=True, batch_size=8)
    assert store.layers == ["Conv_0", "Dense_0", "Dense_1"]
    assert store.attrs["framework"] == "flax.linen"
    logits = module.apply(variables, jnp.asarray(data.inputs))
    np.testing.assert_allclose(np.asarray(store.activations("Dense_1")), np.asarray(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(store.sample_table()["prediction"], np.asarray(logits).argmax(1))
    # a bound module carries its variables
    bound = na.capture(module.bind(variables), data, layers=["Dense_1"], out=tmp_path / "b.zarr")
    np.testing.assert_array_equal(np.asarray(bound.activations("Dense_1")), np.asarray(store.activations("Dense_1")))
    # params-only checkpoints of a linen module (no variables given)
    save_params(tmp_path / "ck" / "epoch_000.npz", variables["params"])
    per_epoch = na.capture(module, data, layers=["Dense_1"], out=tmp_path / "c.zarr", checkpoints=tmp_path / "ck")
    np.testing.assert_allclose(np.asarray(per_epoch.activations("Dense_1", epoch=0)), np.asarray(logits),
                               rtol=1e-5, atol=1e-6)
    bad = {**variables["params"], "Dense_9": {"bias": np.zeros(3)}}
    save_params(tmp_path / "bad" / "epoch_000.npz", bad)
    with pytest.raises(StoreError, match="'params/Dense_9/bias' is not a parameter"):
        na.capture((module, variables), data, out=tmp_path / "d.zarr", checkpoints=tmp_path / "bad")


def test_wrong_input_layout_says_so(net, data, tmp_path):
    nchw = ArrayDataset(data.inputs.transpose(0, 3, 1, 2), data.labels, data.classes)
    with pytest.raises(CaptureError, match="channels-last"):
        na.capture(net, nchw, out=tmp_path / "a.zarr")


def test_resumed_capture_keeps_writing_predictions(net, data, tmp_path):
    kw = {"layers": ["shared"], "batch_size": 8, "chunk_rows": 8}
    out = tmp_path / "a.zarr"

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        na.capture(net, data, out=out, progress=stop, **kw)
    store = na.capture(net, data, out=out, **kw)
    logits = np.asarray(store.activations("shared"))
    np.testing.assert_array_equal(store.sample_table()["prediction"], logits.argmax(1))
    np.testing.assert_array_equal(store.sample_table()["label"], data.labels)
