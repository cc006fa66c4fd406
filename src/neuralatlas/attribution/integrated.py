"""Integrated gradients that size their own batches and say how complete they are.

The integral is captum's (its quadrature nodes and step sizes; layer IG through captum's
``LayerIntegratedGradients``), summed directly for input IG (:func:`path_integral`, tested equal
to captum's ``IntegratedGradients``); this module adds what captum leaves to the user: the
internal batch size, the completeness error, and raising ``n_steps`` until that error is under
a tolerance.

Why the batch size matters: captum's default (``internal_batch_size=None``) pushes all
``batch × n_steps`` interpolated inputs through the model at once. On a CPU that working set
(hundreds of MB of activations for 64 images × 50 steps) no longer fits in the caches and its
buffers are freshly mapped and zeroed by the kernel on every call, which makes the same
arithmetic about 2.5× slower. Passes whose activations stay around a few tens of MB run at
the machine's speed; on a GPU the limit is free memory instead.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas.capture.hooks import module_tree
from neuralatlas.errors import AnalysisError

INTEGRATIONS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")

# Bytes of activations one forward+backward pass may touch on a CPU: around the size of a
# last-level cache times a few, where measured throughput stops improving (see module doc)...
CPU_PASS_BYTES = 20 * 2**20
# ...but never fewer rows than this: below it the per-pass costs (op dispatch, thread
# start-up, small-batch kernels) outweigh the cache (a VGG pass of 25 rows ran 5-8% slower
# than one of 64-128 on 2 cores).
CPU_MIN_ROWS = 128
# Share of free accelerator memory one pass may use (the rest: weights, allocator slack).
GPU_MEMORY_FRACTION = 0.4
# Autograd keeps each layer's output (and the backward makes a gradient of the same size).
AUTOGRAD_FACTOR = 2.0

# per model: (its structure when measured, {input key: bytes per row}); weak, so no model is kept alive
_bytes_cache: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict[tuple, int]]] = weakref.WeakKeyDictionary()


def structure(modules: Sequence[nn.Module], params: Sequence[nn.Parameter]) -> tuple:
    """What a cached measurement of a model depends on: its modules, and its parameters' shapes.

    ``modules`` and ``params`` are :func:`~neuralatlas.capture.hooks.module_tree`'s. A module
    replaced (``model.fc = nn.Linear(64, 5)``), added or removed anywhere in the tree, or a
    parameter of another shape, gives another structure. Module ids are safe to compare as
    long as the cache entry holds those modules (the probe's does: none of them is freed, so
    no id is reused); where it does not, the parameter shapes and the module count still
    change with any new layer of another size.
    """
    return tuple(map(id, modules)), tuple([p.shape for p in params])


def activation_bytes_per_row(model: nn.Module, sample: torch.Tensor,
                             forward: Callable[..., torch.Tensor] | None = None,
                             extras: Sequence[torch.Tensor] = ()) -> int:
    """Bytes of layer outputs one input row creates in a forward pass (measured, then cached).

    Every leaf module's output is counted once (plus the input), from one forward of two
    rows (``forward(rows, *extras_of_those_rows)``); the result is cached per model, input
    shape, dtype and device, and measured again when the model's structure changed
    (:func:`structure`).
    """
    now = structure(*module_tree(model))
    key = (tuple(sample.shape[1:]), sample.dtype, sample.device.type,
           tuple((tuple(e.shape[1:]), e.dtype) for e in extras))
    entry = _bytes_cache.get(model)
    if entry is None or entry[0] != now:
        entry = _bytes_cache[model] = (now, {})
    cached = entry[1].get(key)
    if cached is not None:
        return cached
    total = [0]

    def hook(module: nn.Module, args, output) -> None:
        for t in (output if isinstance(output, (tuple, list)) else (output,)):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * t.element_size()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    rows = sample[:2] if len(sample) >= 2 else sample
    try:
        with torch.no_grad():
            (forward or model)(rows, *(e[:len(rows)] for e in extras))
    finally:
        for h in handles:
            h.remove()
    per_row = int((total[0] + rows.numel() * rows.element_size()) / len(rows))
    entry[1][key] = max(1, per_row)
    return max(1, per_row)


def rows_per_pass(model: nn.Module, sample: torch.Tensor,
                  forward: Callable[..., torch.Tensor] | None = None,
                  extras: Sequence[torch.Tensor] = ()) -> int:
    """How many input rows one forward+backward pass should carry on this model and device.

    From the measured activation bytes per row (:func:`activation_bytes_per_row`) and the
    memory at hand: on CUDA a share of ``torch.cuda.mem_get_info()``'s free memory, on a CPU
    about :data:`CPU_PASS_BYTES` of activations but at least :data:`CPU_MIN_ROWS` rows
    (capped by a quarter of the available RAM).

    Examples
    --------
    >>> rows_per_pass(model, x[:1])                        # doctest: +SKIP
    1024
    """
    per_row = activation_bytes_per_row(model, sample, forward, extras) * AUTOGRAD_FACTOR
    if sample.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(sample.device)
        budget = GPU_MEMORY_FRACTION * free
    else:
        import psutil

        available = 0.25 * psutil.virtual_memory().available
        return max(1, int(min(max(CPU_PASS_BYTES // per_row, CPU_MIN_ROWS), available // per_row)))
    return max(1, int(budget // per_row))


def choose_internal_batch_size(model: nn.Module, inputs: torch.Tensor, n_steps: int,
                               forward: Callable[..., torch.Tensor] | None = None,
                               extras: Sequence[torch.Tensor] = ()) -> tuple[int, int]:
    """``(samples_per_call, internal_batch_size)`` for captum's ``IntegratedGradients``.

    captum runs ``internal_batch_size // samples`` integration steps per pass, never fewer
    than one; when even one step of all samples is too big, the samples are split instead.
    """
    n = len(inputs)
    rows = rows_per_pass(model, inputs[:1], forward, [e[:1] for e in extras])
    if rows >= n:
        steps = max(1, min(n_steps, rows // n))
        return n, steps * n
    return rows, rows


def summed_gradients(forward_fn: Callable, inputs: tuple[torch.Tensor, ...], target_ind: Any = None,
                     additional_forward_args: Any = None) -> tuple[torch.Tensor, ...]:
    """Drop-in for captum's ``compute_gradients`` (its ``gradient_func``), with one backward root.

    captum differentiates ``torch.unbind(outputs)``: one root per row, which for 64 samples ×
    50 steps is 3200 roots whose bookkeeping costs more than the model's own backward on a
    small network (10× on the digits CNN). Rows of a model in eval mode do not interact, so
    the gradient of the summed target scores is, row by row, the same gradient.
    """
    extra = additional_forward_args
    if extra is not None and not isinstance(extra, tuple):
        extra = (extra,)
    with torch.enable_grad():
        out = forward_fn(*inputs, *(extra or ()))
        if target_ind is None:
            scores = out
        elif isinstance(target_ind, int):
            scores = out[:, target_ind]
        elif isinstance(target_ind, torch.Tensor) and target_ind.dim() <= 1:
            t = target_ind.to(out.device)
            scores = out[:, int(t)] if t.dim() == 0 else out.gather(1, t.view(-1, 1))
        else:  # lists and tuples of targets: captum's own path
            from captum._utils.gradient import compute_gradients

            return compute_gradients(forward_fn, inputs, target_ind, additional_forward_args)
        return torch.autograd.grad(scores.sum(), inputs)


def target_scores(forward: Callable[..., torch.Tensor], x: torch.Tensor,
                  target: torch.Tensor, extras: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F_target(x), logits)`` without gradients; ``extras`` are passed after ``x``."""
    with torch.no_grad():
        logits = forward(x, *extras)
    return logits.gather(1, target.view(-1, 1)).squeeze(1), logits


def completeness(forward: Callable[..., torch.Tensor], inputs: torch.Tensor,
                 baseline: torch.Tensor, target: torch.Tensor, maps: torch.Tensor,
                 extras: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(delta, relative_error, logits_of_inputs)`` of attributions that should be complete.

    ``delta = sum(maps) - (F(x) - F(baseline))``; the relative error divides ``|delta|`` by
    ``|F(x) - F(baseline)|``, floored at 1% of the batch's median ``|F(x) - F(baseline)|`` so that
    a sample whose score barely moves (a gap of 1e-5, say) does not read as a huge error.
    One forward of inputs and baselines together (``extras``, the tensors passed through such
    as an attention mask, go with both); a baseline of one row shared by every sample (and no
    ``extras``) is run once, as one row, not once per sample. For layer attribution ``maps``
    are the layer's and ``baseline`` the input whose layer output is the reference.
    """
    n = len(inputs)
    if baseline.dim() == inputs.dim() and len(baseline) == 1 and n > 1 and not extras:
        # F(baseline) is one logit row for every sample: a forward of n + 1 rows, not 2n
        # (~2% of integrated gradients of 64 digits at 50 steps)
        scores, logits = target_scores(forward, inputs, target)
        with torch.no_grad():
            base_logits = forward(baseline)
        gap = scores - base_logits[0].gather(0, target.to(base_logits.device))
        delta = maps.reshape(n, -1).sum(1).to(gap.dtype) - gap
        return delta, relative_error(delta, gap), logits
    base = baseline.expand_as(inputs) if baseline.shape != inputs.shape else baseline
    scores, logits = target_scores(forward, torch.cat([inputs, base]), torch.cat([target, target]),
                                   [torch.cat([e, e]) for e in extras])
    gap = scores[:n] - scores[n:]
    delta = maps.reshape(n, -1).sum(1).to(gap.dtype) - gap
    return delta, relative_error(delta, gap), logits[:n]


def relative_error(delta: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """``|delta| / |gap|`` with the gap floored at 1% of its batch median (and at 1e-6)."""
    floor = max(1e-6, 0.01 * float(gap.abs().median())) if gap.numel() else 1e-6
    return delta.abs() / gap.abs().clamp_min(floor)


@dataclass
class IntegratedOutput:
    """Attributions and their bookkeeping (tensors on the model's device)."""

    maps: torch.Tensor
    delta: torch.Tensor
    relative: torch.Tensor
    n_steps: torch.Tensor
    logits: torch.Tensor
    internal_batch_size: int


def integrated_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor,
                         baseline: torch.Tensor, *, n_steps: int = 50,
                         integration: str = "gausslegendre",
                         internal_batch_size: int | str | None = "auto",
                         tolerance: float | None = None, max_steps: int = 1024,
                         forward: Callable[..., torch.Tensor] | None = None,
                         extras: Sequence[torch.Tensor] = (), layer: nn.Module | None = None
                         ) -> IntegratedOutput:
    """Integrated gradients of ``inputs`` (a tensor batch on the model's device), via captum.

    With ``layer``, layer integrated gradients (captum's ``LayerIntegratedGradients``): the
    path runs from the layer's output on ``baseline`` to its output on ``inputs`` (for an
    embedding layer and token ids: from the pad tokens' embeddings to the sentence's), the
    maps have the layer's output shape, and completeness holds for them in the same way.

    Parameters
    ----------
    model : nn.Module
        The (wrapped) model; captum differentiates ``forward`` (default: ``model``).
    inputs, target, baseline : torch.Tensor
        ``[n, ...]`` inputs, ``[n]`` class indices, a baseline broadcastable to the inputs.
    n_steps : int
        Integration steps (the first try when ``tolerance`` is given).
    integration : str
        captum's approximation: ``"gausslegendre"`` (default) or ``"riemann_trapezoid"``, ...
    internal_batch_size : "auto", int or None
        Rows per forward+backward pass. ``"auto"`` picks it from the measured activation
        size and free memory (:func:`choose_internal_batch_size`); ``None`` is captum's
        default (everything in one pass).
    tolerance : float, optional
        Largest acceptable relative completeness error. Samples above it are recomputed
        with twice the steps, up to ``max_steps``.
    max_steps : int
        Upper limit of ``n_steps`` when raising it.
    layer : nn.Module, optional
        Attribute to this layer's output instead of the inputs (which may then be integer
        token ids: they are never interpolated, only the layer's output is).
    extras : sequence of tensors
        ``[n, ...]`` tensors passed to ``forward`` after the inputs, unchanged along the path
        (captum's ``additional_forward_args``: an attention mask, labels of a target function).

    Returns
    -------
    IntegratedOutput
    """
    if integration not in INTEGRATIONS:
        raise AnalysisError(f"integration={integration!r} is not an approximation captum knows;"
                            f" choose one of {', '.join(INTEGRATIONS)}.")
    if int(n_steps) < (2 if integration == "riemann_trapezoid" else 1):
        raise AnalysisError(f"n_steps={n_steps} is too few integration steps for {integration};"
                            " give at least 2 for the trapezoid rule, 1 otherwise.")
    if tolerance is not None and not tolerance > 0:
        raise AnalysisError(f"tolerance={tolerance} must be a positive relative error, e.g. 0.01.")
    forward = forward or model
    ig: Any = None
    if layer is not None:
        from captum.attr import LayerIntegratedGradients

        ig = LayerIntegratedGradients(forward, layer)
    n = len(inputs)
    base = baseline.expand_as(inputs) if baseline.shape != inputs.shape else baseline
    one_baseline = baseline.dim() == inputs.dim() and len(baseline) == 1
    maps: torch.Tensor | None = None
    steps_used = torch.full((n,), int(n_steps), dtype=torch.long, device=inputs.device)
    rows = torch.arange(n, device=inputs.device)
    steps, ibs_used = int(n_steps), 0
    delta = relative = logits = None
    while True:
        x, b, t = inputs[rows], base[rows], target[rows]
        ex = tuple(e[rows] for e in extras)
        if internal_batch_size == "auto":
            per_call, ibs = choose_internal_batch_size(model, x, steps, forward, ex)
        elif internal_batch_size is None:
            per_call, ibs = len(x), None
        else:
            ibs = int(internal_batch_size)
            per_call = min(len(x), ibs)
        if ig is None:  # input IG: captum's sum, without its per-call machinery (path_integral)
            parts = [path_integral(forward, x[lo:lo + per_call], b[lo:lo + per_call], t[lo:lo + per_call],
                                   n_steps=steps, method=integration, internal_batch_size=ibs,
                                   extras=tuple(e[lo:lo + per_call] for e in ex))
                     for lo in range(0, len(x), per_call)]
        else:
            parts = [ig.attribute(x[lo:lo + per_call], baselines=b[lo:lo + per_call], target=t[lo:lo + per_call],
                                  n_steps=steps, method=integration, internal_batch_size=ibs,
                                  additional_forward_args=tuple(e[lo:lo + per_call] for e in ex) or None)
                     for lo in range(0, len(x), per_call)]
        part = torch.cat(parts) if len(parts) > 1 else parts[0]
        if integration == "riemann_trapezoid":
            # captum's trapezoid weights are 1/n (halved at the ends) on n points spaced 1/(n-1):
            # they sum to 1 - 1/n, not 1. The rule's own weights are n/(n-1) times larger.
            part = part * (steps / (steps - 1)) if steps > 1 else part
        # the baseline row itself when it is one for all: its score is then computed once
        d, rel, lg = completeness(forward, x, baseline if one_baseline else b, t, part, ex)
        if maps is None:
            maps = torch.empty((n, *part.shape[1:]), dtype=part.dtype, device=part.device)
        maps[rows] = part.detach()
        steps_used[rows] = steps
        ibs_used = ibs_used or (ibs or len(x) * steps)
        if delta is None:
            delta, relative, logits = d, rel, lg
        else:
            delta[rows], relative[rows] = d, rel
        if tolerance is None:
            break
        bad = rel > tolerance
        if not bool(bad.any()) or steps * 2 > max_steps:
            break
        rows, steps = rows[bad], steps * 2
    return IntegratedOutput(maps, delta, relative, steps_used, logits, int(ibs_used))


@functools.lru_cache(maxsize=64)
def _nodes(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(alphas, step sizes)`` captum uses for ``method`` with ``n_steps`` points (computed once).

    captum recomputes them on every call (a Legendre root solve: ~1.4 ms per call of 50
    steps, 1-2% of an IG call on the digits CNN); they are the same numbers each time.
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(method)
    a, w = np.asarray(alphas(n_steps), np.float64), np.asarray(step_sizes(n_steps), np.float64)
    a.setflags(write=False)
    w.setflags(write=False)
    return a, w


def path_integral(forward: Callable[..., torch.Tensor], inputs: torch.Tensor, baseline: torch.Tensor,
                  target: torch.Tensor, *, n_steps: int, method: str = "gausslegendre",
                  internal_batch_size: int | None = None, extras: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """Integrated gradients of ``forward`` along the straight path: captum's sum, computed directly.

    The same quantity as ``captum.attr.IntegratedGradients(forward).attribute(inputs, baseline,
    target, n_steps=, method=, internal_batch_size=)`` (captum's nodes and step sizes, its
    steps per pass ``max(1, internal_batch_size // n)``, the same step-major stacking of
    interpolated inputs and of ``extras``), tested equal to it. What it leaves out is captum's
    per-call machinery: rebuilding the quadrature nodes, a list of per-step tensors
    concatenated, ``torch.unbind`` of the outputs into one backward root per row (here one
    root: the summed target scores, whose gradient is row by row the same for a model in eval
    mode; see :func:`summed_gradients`), and the reshaping of every pass's gradients.

    Parameters
    ----------
    forward : callable
        ``forward(x, *extras) -> [rows, outputs]``.
    inputs, baseline : torch.Tensor
        ``[n, ...]``, the same shape.
    target : torch.Tensor
        ``[n]`` output indices.
    n_steps, method
        captum's integration (``"gausslegendre"``, ``"riemann_trapezoid"``, ...).
    internal_batch_size : int, optional
        Rows per forward+backward pass (whole steps of all ``n`` samples, at least one);
        None: all steps in one pass (captum's default).
    extras : sequence of tensors
        ``[n, ...]`` tensors passed after the inputs, repeated along the path.

    Returns
    -------
    torch.Tensor
        ``[n, ...]`` attributions (``(inputs - baseline) ×`` the weighted sum of gradients).
    """
    alphas, weights = _nodes(method, int(n_steps))
    n = len(inputs)
    diff = inputs - baseline
    ones = (1,) * (inputs.dim() - 1)
    # copies (n_steps numbers): the cached nodes are read-only arrays, which torch warns about
    a_all = torch.tensor(alphas, dtype=inputs.dtype, device=inputs.device)
    w_all = torch.tensor(weights, dtype=inputs.dtype, device=inputs.device)
    per = int(n_steps) if internal_batch_size is None else max(1, int(internal_batch_size) // max(1, n))
    total = torch.zeros_like(inputs)
    for lo in range(0, int(n_steps), per):
        a, w = a_all[lo:lo + per], w_all[lo:lo + per]
        k = len(a)
        with torch.enable_grad():
            xs = (baseline.unsqueeze(0) + a.view(k, 1, *ones) * diff.unsqueeze(0)).reshape(k * n, *inputs.shape[1:])
            xs.requires_grad_(True)
            out = forward(xs, *(e.repeat(k, *(1,) * (e.dim() - 1)) for e in extras))
            # seeded with the targets' one-hot: the gradient of the summed target scores
            # without a gather and a sum on the graph (the same numbers)
            seed = torch.zeros_like(out).scatter_(1, target.to(out.device).repeat(k).view(-1, 1), 1)
            (grad,) = torch.autograd.grad(out, xs, seed)
        # the weighted sum over this pass's steps, in place: no per-step temporaries
        total.add_(torch.tensordot(w, grad.view(k, n, -1), dims=1).view_as(inputs))
    return total * diff


def gauss_legendre(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alphas`` in (0, 1) and weights (summing to 1) of the ``n_steps``-point rule."""
    nodes, weights = np.polynomial.legendre.leggauss(int(n_steps))
    return (nodes + 1) / 2, weights / 2
