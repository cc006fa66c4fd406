"""JAX capture speed: Flax NNX capture vs a bare jitted forward, and vs torch capture of the same net.

    .venv/bin/python benchmarks/jax_capture.py [--quick] [--n 8000] [--threads 1]

The same CNN (conv 8 - pool - conv 16 - pool - dense 32 - dense 10 on 8x8 digits) in Flax NNX and
torch, with the same weights, the same number of CPU threads, timed in turns (interleaved, so
both see the same machine load). Prints

  1. flax capture (all layers streamed to a store)   / bare jitted forward      (goal <= 1.5x)
  2. flax capture with gradients                      / bare jitted value_and_grad of the input
  3. flax capture / torch capture (same layers, same store layout)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import race


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat = 1024, 2
    # the same threads for both frameworks (XLA's CPU client reads these at import)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
                               f" intra_op_parallelism_threads={args.threads}")
    import jax
    import jax.numpy as jnp
    import torch
    from flax import nnx
    from torch import nn

    import neuralatlas as na
    from neuralatlas.data import ArrayDataset, digits

    torch.set_num_threads(args.threads)
    train, _ = digits()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(train), args.n)
    nchw = ArrayDataset(train.inputs[pick], train.labels[pick], train.classes, name=f"digits-x{args.n}")
    nhwc = ArrayDataset(nchw.inputs.transpose(0, 2, 3, 1), nchw.labels, nchw.classes, name=nchw.name)

    class Flax(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(1, 8, (3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(8, 16, (3, 3), rngs=rngs)
            self.fc1 = nnx.Linear(64, 32, rngs=rngs)
            self.out = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), (2, 2))
            x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), (2, 2))
            return self.out(nnx.relu(self.fc1(x.reshape(x.shape[0], -1))))

    class Torch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
            self.fc1, self.out = nn.Linear(64, 32), nn.Linear(32, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
            return self.out(torch.relu(self.fc1(x.flatten(1))))

    fm, tm = Flax(nnx.Rngs(0)), Torch().eval()
    with torch.no_grad():  # same weights (conv OIHW -> HWIO; fc1 rows in h, w, c order)
        for name in ("conv1", "conv2"):
            getattr(tm, name).weight.copy_(
                torch.from_numpy(np.asarray(getattr(fm, name).kernel[...]).transpose(3, 2, 0, 1))
            )
            getattr(tm, name).bias.copy_(torch.from_numpy(np.asarray(getattr(fm, name).bias[...])))
        k = np.asarray(fm.fc1.kernel[...]).reshape(2, 2, 16, 32).transpose(3, 2, 0, 1).reshape(32, 64)
        tm.fc1.weight.copy_(torch.from_numpy(k))
        tm.fc1.bias.copy_(torch.from_numpy(np.asarray(fm.fc1.bias[...])))
        tm.out.weight.copy_(torch.from_numpy(np.asarray(fm.out.kernel[...]).T))
        tm.out.bias.copy_(torch.from_numpy(np.asarray(fm.out.bias[...])))
    layers = ["conv1", "conv2", "fc1", "out"]
    tmp = Path(tempfile.mkdtemp(prefix="na-jaxbench-"))
    graphdef, state = nnx.split(fm)

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x)

    @jax.jit
    def input_grad(state, x, y):
        return jax.grad(lambda x: jnp.take_along_axis(nnx.merge(graphdef, state)(x), y[:, None], 1).sum())(x)

    def bare(grad: bool):
        def run():
            for i in range(0, args.n, args.batch):
                x = nhwc.inputs[i:i + args.batch]
                if len(x) < args.batch:  # padded like capture: one compiled shape
                    x = np.concatenate([x, np.repeat(x[-1:], args.batch - len(x), 0)])
                if grad:
                    y = jnp.asarray(np.resize(nhwc.labels[i:i + args.batch], args.batch), jnp.int32)
                    np.asarray(input_grad(state, jnp.asarray(x), y))
                else:
                    np.asarray(forward(state, jnp.asarray(x)))
        return run

    def cap(model, data, name, grad):
        def run():
            return na.capture(model, data, layers=layers, out=tmp / f"{name}.zarr", overwrite=True,
                              gradients=grad, batch_size=args.batch, device="cpu" if name.startswith("t") else None)
        return run

    for fn in (bare(False), bare(True), cap(fm, nhwc, "f", False), cap(fm, nhwc, "fg", True)):
        fn()  # compile and warm up outside the timings
    res = race({"bare": bare(False), "bare_grad": bare(True), "flax": cap(fm, nhwc, "f", False),
                "flax_grad": cap(fm, nhwc, "fg", True), "torch": cap(tm, nchw, "t", False),
                "torch_grad": cap(tm, nchw, "tg", True)}, args.repeat)
    t = {k: v[0] for k, v in res.items()}
    same = np.allclose(
        np.asarray(res["flax"][1].activations("conv2")), np.asarray(res["torch"][1].activations("conv2")), atol=1e-4
    )
    report = {
        "n": args.n, "batch": args.batch, "threads": args.threads,
        "seconds": {k: round(v, 4) for k, v in t.items()},
        "flax_capture_over_bare_forward": round(t["flax"] / t["bare"], 2),
        "flax_grad_capture_over_bare_input_grad": round(t["flax_grad"] / t["bare_grad"], 2),
        "flax_over_torch_capture": round(t["flax"] / t["torch"], 2),
        "flax_over_torch_capture_with_gradients": round(t["flax_grad"] / t["torch_grad"], 2),
        "same_activations_as_torch": bool(same),
    }
    print(json.dumps(report, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
