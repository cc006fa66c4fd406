"""Your own model: any nn.Module, with layers named as named_modules() names them.

    python examples/own_model.py [OUT_DIR]

A builder like `build_model` can also be named in a config: model: "examples.own_model:build_model".
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import neuralatlas as na
from neuralatlas.data import moons


class TwoBranch(nn.Module):
    """A small residual network on 2-D points."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(2, 16)
        self.branch = nn.Sequential(nn.ReLU(), nn.Linear(16, 16))
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.relu(h + self.branch(h)))


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TwoBranch()


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/own_model")
    data = moons(n_samples=400, seed=0)
    model = build_model()
    na.train(model, data, epochs=30, lr=1e-2, run_dir=out)
    store = na.capture(model, data, layers=["stem", "branch.*", "head"], out=out / "acts.zarr",
                       gradients=True, overwrite=True)
    print(store.layers)
    print(na.summary(model, input_shape=(2,)))
