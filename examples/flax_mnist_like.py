"""A Flax (NNX) CNN on the built-in digits: train with optax, a checkpoint per epoch, capture
every epoch, analyse, report — the same run folder a torch model gets.

    python examples/flax_mnist_like.py [OUT_DIR]

Needs ``pip install 'neuralatlas[jax]'`` (and optax, which comes with flax). Flax convs are
channels-last, so the data set is given as ``[N, H, W, C]``; the store keeps conv maps
channels-first like every other store (``store.attrs["layouts"]`` records it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import neuralatlas as na
from neuralatlas import steps
from neuralatlas.architecture.foreign import save_architecture
from neuralatlas.capture.flax_adapter import save_params
from neuralatlas.data import digits
from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.steps.attribution import jax_step as attribution_step

EPOCHS = 4


class CNN(nnx.Module):
    """conv(8) - pool - conv(16) - pool - dense(32) - dense(10), channels-last."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 8, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(8, 16, (3, 3), rngs=rngs)
        self.fc1 = nnx.Linear(16 * 2 * 2, 32, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), (2, 2))
        x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), (2, 2))
        return self.out(nnx.relu(self.fc1(x.reshape(x.shape[0], -1))))


def nhwc(data: ArrayDataset) -> ArrayDataset:
    return ArrayDataset(data.inputs.transpose(0, 2, 3, 1), data.labels, data.classes, data.index, name=data.name)


def accuracy(model: CNN, data: ArrayDataset) -> float:
    return float((np.asarray(model(jnp.asarray(data.inputs))).argmax(1) == data.labels).mean())


def main(out: Path) -> None:
    train_set, test_set = (nhwc(d) for d in digits())
    model = CNN(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def train_step(model: CNN, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(m: CNN) -> jax.Array:
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    ckpt = out / "checkpoints"
    save_params(ckpt / "epoch_000.npz", model)  # epoch 0: before training
    metrics = [{"epoch": 0, "train_accuracy": accuracy(model, train_set), "test_accuracy": accuracy(model, test_set)}]
    rng = np.random.default_rng(0)
    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(len(train_set))
        losses = []
        for i in range(0, len(order) - 63, 64):  # full batches only: one compiled shape
            rows = order[i:i + 64]
            losses.append(float(train_step(model, optimizer, jnp.asarray(train_set.inputs[rows]),
                                           jnp.asarray(train_set.labels[rows]))))
        save_params(ckpt / f"epoch_{epoch:03d}.npz", model)
        metrics.append({"epoch": epoch, "loss": float(np.mean(losses)),
                        "train_accuracy": accuracy(model, train_set), "test_accuracy": accuracy(model, test_set)})
        print(f"epoch {epoch}: loss {metrics[-1]['loss']:.3f}, test accuracy {metrics[-1]['test_accuracy']:.3f}")
    (out / "metrics.json").write_text(json.dumps({"epochs": metrics}, indent=1))

    # Every epoch's checkpoint, with the gradient of the true class's logit, into one store.
    store = na.capture(model, test_set, out=out / "acts.zarr", gradients=True, checkpoints=ckpt,
                       overwrite=True, batch_size=128)
    print(store)
    print("layers:", store.layers, "epochs:", store.epochs, "layouts:", store.attrs["layouts"])

    # The analyses every run gets, on the final epoch and across epochs.
    steps.naps.step(out, epoch=EPOCHS)
    steps.projection.step(out, layers=["conv2", "fc1", "out"], epochs="all", method="pca", n_samples=300, neurons=[])
    save_architecture(out, model, test_set.inputs[:2])
    attribution_step(out, model, test_set, ["saliency", "integrated_gradients"], n_steps=32)
    report = na.write_report(out, data=(train_set, test_set))
    print(f"report: {report}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/flax_mnist_like"))
