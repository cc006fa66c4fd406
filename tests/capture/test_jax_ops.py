"""Host-side target checks of the jit-compiled Flax/Keras-on-JAX capture step."""

from __future__ import annotations

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import CaptureError

pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

from neuralatlas.capture.jax_ops import check_target  # noqa: E402  (only once jax is there)


class Two(nnx.Module):
    """Two logits."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.fc = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        return self.fc(x)


def test_labels_beyond_the_logits_are_refused_not_a_silent_zero_gradient(tmp_path):
    # before: jax indexing past the logits does not fail; labels 2..4 got all-zero gradients
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.normal(size=(10, 3)).astype(np.float32), np.arange(10) % 5, classes=list("abcde"))
    with pytest.raises(CaptureError, match="a label is 4 and the model output has 2 classes"):
        na.capture(Two(nnx.Rngs(0)), data, gradients=True, target="label", out=tmp_path / "a.zarr")


def test_labels_within_the_logits_pass():
    check_target("label", 3, np.array([0, 2, 1]))
    check_target("prediction", 2, np.array([4]))  # the prediction needs no label
    with pytest.raises(CaptureError, match="a label is 3"):
        check_target("loss", 3, np.array([0, 3]))


@pytest.mark.parametrize("side", ["right", "left"])
def test_token_reductions_take_the_real_first_and_last_token(side):
    # before: last_token took mask.sum() - 1 and first_token position 0, wrong under left padding
    import jax.numpy as jnp

    from neuralatlas.capture.jax_ops import reduce

    real = np.arange(5)[None] < np.array([2, 5, 1])[:, None]
    mask = (real if side == "right" else real[:, ::-1]).astype(np.int32)
    t = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    first, last = np.argmax(mask, 1), 4 - np.argmax(mask[:, ::-1], 1)
    rows = np.arange(3)
    np.testing.assert_allclose(np.asarray(reduce(jnp.asarray(t), "last_token", jnp.asarray(mask), ())), t[rows, last])
    np.testing.assert_allclose(np.asarray(reduce(jnp.asarray(t), "first_token", jnp.asarray(mask), ())), t[rows, first])
    mean = (t * mask[..., None]).sum(1) / mask.sum(1)[:, None]
    np.testing.assert_allclose(np.asarray(reduce(jnp.asarray(t), "token_mean", jnp.asarray(mask), ())), mean, rtol=1e-6)
