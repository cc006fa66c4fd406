"""Multiply-accumulates of one module call, per sample: the cost side of the architecture.

Counted for the layers that carry the arithmetic (convolutions, linear and bilinear
layers, recurrent layers, attention); element-wise layers (activations, norms, pools,
dropout) count 0, as torchinfo counts them. Bias additions are not counted.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)):
        for item in x:
            t = _first_tensor(item)
            if t is not None:
                return t
    if isinstance(x, dict):
        for item in x.values():
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


def module_macs(module: nn.Module, inputs: Any, output: Any, batch: int) -> int:
    """Multiply-accumulates of ``module(inputs) -> output`` for one sample of a batch of ``batch``.

    Example
    -------
    >>> conv = nn.Conv2d(3, 8, 3, padding=1)
    >>> module_macs(conv, (torch.zeros(1, 3, 4, 4),), conv(torch.zeros(1, 3, 4, 4)), 1)
    3456
    """
    x = _first_tensor(inputs)
    y = _first_tensor(output)
    if x is None or y is None:
        return 0
    b = max(int(batch), 1)
    per_out = y.numel() / b
    per_in = x.numel() / b
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        k = math.prod(module.kernel_size)
        return int(per_out * (module.in_channels // module.groups) * k)
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        k = math.prod(module.kernel_size)
        return int(per_in * (module.out_channels // module.groups) * k)
    if isinstance(module, nn.Linear):
        return int(per_out * module.in_features)
    if isinstance(module, nn.Bilinear):
        return int(per_out * module.in1_features * module.in2_features)
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        gates = 4 if isinstance(module, nn.LSTM) else 3 if isinstance(module, nn.GRU) else 1
        steps = x.shape[0] if not module.batch_first and x.dim() == 3 else (x.shape[1] if x.dim() == 3 else 1)
        dirs = 2 if module.bidirectional else 1
        h = module.hidden_size
        total = 0
        size_in = module.input_size
        for _ in range(module.num_layers):
            total += dirs * gates * (size_in * h + h * h) * steps
            size_in = h * dirs
        return int(total)
    if isinstance(module, nn.MultiheadAttention):
        e = module.embed_dim
        t = x.shape[1] if module.batch_first else x.shape[0]
        # q, k, v and output projections, then scores and the weighted sum.
        return int(4 * t * e * e + 2 * t * t * e)
    return 0
