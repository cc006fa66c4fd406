"""Multiply-accumulates of one module call, per sample: the cost side of the architecture.

Counted for the layers that carry the arithmetic (convolutions, linear and bilinear
layers, recurrent layers, attention modules) and for the tensor functions that do the same
inside other modules' ``forward`` (``torch.matmul``/``@``, ``bmm``, ``baddbmm``, ``F.linear``,
convolutions, ``scaled_dot_product_attention``, two-operand ``einsum``): see
:func:`function_macs`. Element-wise layers (activations, norms, pools, dropout, softmax)
count 0, as torchinfo counts them. Bias additions are not counted.
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


#: Module types :func:`module_macs` has a rule for; function calls inside them are theirs.
RULE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, nn.Bilinear, nn.RNN, nn.LSTM, nn.GRU, nn.MultiheadAttention,
)

_MATMULS = {"matmul", "__matmul__", "mm", "bmm", "mv", "dot", "inner"}
_ADD_MATMULS = {"addmm", "baddbmm", "addbmm", "addmv"}  # (input, a, b): bias + a @ b
_CONVS = {"conv1d", "conv2d", "conv3d"}
_CONV_TRANSPOSES = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}

#: Names of the tensor functions :func:`function_macs` counts.
COUNTED_FUNCTIONS = frozenset(_MATMULS | _ADD_MATMULS | _CONVS | _CONV_TRANSPOSES
                              | {"__rmatmul__", "linear", "bilinear", "scaled_dot_product_attention", "einsum"})


def function_name(func: Any) -> str:
    """``torch.matmul`` → ``"matmul"``, ``Tensor.__matmul__`` → ``"__matmul__"``, ``"bmm"`` → ``"bmm"``."""
    return func if isinstance(func, str) else getattr(func, "__name__", "")


def _einsum_macs(args: tuple[Any, ...]) -> int:
    """Two-operand einsum: the product of the sizes of all distinct indices (one MAC per term)."""
    if not args or not isinstance(args[0], str):
        return 0
    operands = args[1:]
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = tuple(operands[0])
    inputs = args[0].replace(" ", "").split("->")[0].split(",")
    if len(operands) != 2 or len(inputs) != 2 or "." in args[0]:
        return 0  # ellipses and 3+ operands: order-dependent, left uncounted rather than guessed
    sizes: dict[str, int] = {}
    for letters, t in zip(inputs, operands, strict=True):
        if not isinstance(t, torch.Tensor) or len(letters) != t.dim():
            return 0
        sizes.update({c: int(s) for c, s in zip(letters, t.shape, strict=True)})
    return int(math.prod(sizes.values()))


def function_macs(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None, output: Any,
                  batch: int) -> int:
    """Multiply-accumulates per sample of one tensor-function call, for a batch of ``batch``.

    The calls counted: a matmul, ``F.linear``, a convolution, ``scaled_dot_product_attention``, a two-operand
    ``einsum``.

    This is how attention written as ``q @ k.transpose(-1, -2)`` or with
    ``F.scaled_dot_product_attention`` (Hugging Face models, custom blocks) gets counted; other
    functions count 0.

    Example
    -------
    >>> q = torch.zeros(1, 4, 10, 8)          # batch, heads, tokens, head size
    >>> function_macs(torch.nn.functional.scaled_dot_product_attention, (q, q, q), {}, None, 1)
    6400
    """
    name = function_name(func)
    kwargs = kwargs or {}
    b = max(int(batch), 1)
    y = _first_tensor(output)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if name in _MATMULS or name == "__rmatmul__":
        if len(tensors) < 2 or y is None:
            return 0
        a = tensors[1] if name == "__rmatmul__" else tensors[0]
        return int(max(y.numel(), 1) * int(a.shape[-1]) / b)
    if name in _ADD_MATMULS:
        mats = tensors[1:3]
        if len(mats) < 2 or y is None:
            return 0
        return int(y.numel() * int(mats[0].shape[-1]) / b)
    if name == "linear":
        weight = tensors[1] if len(tensors) > 1 else kwargs.get("weight")
        if weight is None or y is None:
            return 0
        return int(y.numel() * int(weight.shape[-1]) / b)
    if name == "bilinear":
        weight = tensors[2] if len(tensors) > 2 else kwargs.get("weight")
        if weight is None or y is None:
            return 0
        return int(y.numel() * int(weight.shape[1]) * int(weight.shape[2]) / b)
    if name in _CONVS:
        weight = tensors[1] if len(tensors) > 1 else kwargs.get("weight")
        if weight is None or y is None:
            return 0
        return int(y.numel() * math.prod(int(s) for s in weight.shape[1:]) / b)
    if name in _CONV_TRANSPOSES:
        weight = tensors[1] if len(tensors) > 1 else kwargs.get("weight")
        if weight is None or not tensors:
            return 0
        return int(tensors[0].numel() * math.prod(int(s) for s in weight.shape[1:]) / b)
    if name == "scaled_dot_product_attention":
        q = tensors[0] if tensors else kwargs.get("query")
        k = tensors[1] if len(tensors) > 1 else kwargs.get("key")
        v = tensors[2] if len(tensors) > 2 else kwargs.get("value")
        if q is None or k is None or v is None:
            return 0
        heads = math.prod(int(s) for s in q.shape[:-2])
        l_q, e, s_k, e_v = int(q.shape[-2]), int(q.shape[-1]), int(k.shape[-2]), int(v.shape[-1])
        # scores Q Kᵀ, then the weighted sum of V
        return int(heads * l_q * s_k * (e + e_v) / b)
    if name == "einsum":
        return int(_einsum_macs(args) / b)
    return 0
