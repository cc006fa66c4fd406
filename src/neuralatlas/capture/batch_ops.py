"""What the capture loop computes per batch, shared with the Flax/Keras adapters.

That is: the target whose gradient is captured, per-sample reductions of a layer output, the epochs to
capture, non-finite rows.

Below :mod:`.loop` and the adapters, which both use these (so they need not import each other).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralatlas.capture.fingerprints import positional_count
from neuralatlas.capture.hooks import SPATIAL_REDUCTIONS
from neuralatlas.errors import CaptureError, StoreError
from neuralatlas.patterns import match_pattern

# The per-sample scalar whose gradient is captured: a name, a class index, or a function of
# (output, labels) or (output, labels, inputs).
Target = str | int | Callable[..., torch.Tensor]


# ---------------------------------------------------------------------------- targets, reductions
def _takes_inputs(fn: Callable[..., Any]) -> bool:
    """Whether a target function takes (output, labels, inputs) rather than (output, labels)."""
    return positional_count(fn, 3, unknown=0) >= 3


def target_values(target: Target, logits: torch.Tensor, labels: torch.Tensor,
                  inputs: Any = None) -> torch.Tensor:
    """The scalar per sample whose gradient is captured.

    ``target`` is ``"label"``, ``"prediction"``, ``"loss"`` or a class index (these need class
    logits ``[batch, classes]``), or a function ``f(output, labels)`` or
    ``f(output, labels, inputs)`` returning one value per sample (reconstruction error, a
    language-model loss, the last real token's logit).

    Raises
    ------
    CaptureError
        A named target on an output that is not class logits (the message shows a function
        to pass instead), float labels for ``"label"``/``"loss"``, or a function whose result
        is not one value per sample.
    """
    n = logits.shape[0]
    if callable(target):
        values = target(logits, labels, inputs) if _takes_inputs(target) else target(logits, labels)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (n,):
            got = list(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise CaptureError(
                f"The target function {getattr(target, '__name__', target)!r} returned {got}; it must"
                f" return one value per sample, shape [{n}] (reduce other axes, e.g."
                " .flatten(1).mean(1))."
            )
        return values
    known = target in ("label", "prediction", "loss") or isinstance(target, (int, np.integer))
    if not known:
        raise CaptureError(f"Unknown target {target!r}; use 'label', 'prediction', 'loss', a class"
                           " index, or a function (output, labels[, inputs]) -> per-sample values.")
    if logits.dim() != 2 or (logits.shape[1] < 2 and not isinstance(target, (int, np.integer))):
        raise CaptureError(
            f"target={target!r} picks a class logit, but the model output has shape"
            f" {list(logits.shape)}, not class logits [batch, classes]. Pass target= a function"
            " (output, labels, inputs) -> one value per sample, e.g. for an autoencoder"
            " lambda out, y, x: ((out - x) ** 2).flatten(1).mean(1), for a regression net"
            " target=0 or lambda out, y: out[:, 0]; or pass output= to pick the logits."
        )
    if target in ("label", "loss"):
        if labels.is_floating_point() or labels.dim() != 1:
            raise CaptureError(f"target={target!r} needs integer class labels; these labels are"
                               f" {labels.dtype} of shape {list(labels.shape)}. Pass target= a function"
                               " (output, labels[, inputs]) -> per-sample values instead.")
        lowest, highest = (int(v) for v in torch.aminmax(labels))  # one host sync for both checks
        if lowest < 0:
            raise CaptureError(f"target={target!r} needs labels; this data has none (label -1)."
                               " Use target='prediction' or a class index.")
        if highest >= logits.shape[1]:
            # gather would index past the logits (an opaque torch error; a device assert on CUDA)
            raise CaptureError(
                f"target={target!r} picks each sample's label logit, but a label is {highest} and"
                f" the model output has {logits.shape[1]} classes (0..{logits.shape[1] - 1}). The data's"
                " labels do not index this model's classes: pass output= if the logits are another output,"
                " or target='prediction', a class index, or a function (output, labels[, inputs])."
            )
    if target == "label":
        return logits.gather(1, labels.view(-1, 1)).squeeze(1)
    if target == "prediction":
        return logits.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
    if target == "loss":
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    if not 0 <= int(target) < logits.shape[1]:
        raise CaptureError(f"target={target} is out of range: the model has {logits.shape[1]}"
                           f" outputs (0..{logits.shape[1] - 1}).")
    return logits[:, int(target)]


def reduction_for(layer: str, reduce: str | Mapping[str, str] | None) -> str | None:
    """The reduction of one layer: ``reduce`` itself, or the value of its first matching pattern."""
    if reduce is None or isinstance(reduce, str):
        return reduce
    return match_pattern(reduce, layer)


def apply_reduction(t: torch.Tensor, mode: str | None, mask: torch.Tensor | None) -> torch.Tensor:
    """Reduce one layer output per sample: spatial mean/max, or over tokens honouring a mask."""
    if mode is None or t.dim() <= 2:
        return t
    if mode in SPATIAL_REDUCTIONS:
        flat = t.flatten(2)
        return flat.mean(2) if mode == "mean" else flat.amax(2)
    if mode == "first_token":
        if mask is None or mask.shape[1] != t.shape[1]:
            # no mask, or a layer with other positions than the mask's (the loop lets first_token
            # through there): position 0, as before
            return t[:, 0]
        # the first real token ([CLS]) also under left padding
        first = (mask != 0).to(torch.int8).argmax(1)
        return t[torch.arange(t.shape[0], device=t.device), first]
    if mask is None:
        mask = torch.ones(t.shape[:2], device=t.device, dtype=t.dtype)
    mask = mask.to(t.dtype)
    if mode == "last_token":
        # the last 1 of the mask, not mask.sum() - 1: with left padding (decoder LMs batched
        # with padding_side="left") the count points at a pad or a middle token
        positions = torch.arange(mask.shape[1], device=t.device).expand(mask.shape[0], -1)
        last = torch.where(mask != 0, positions, -1).amax(1).clamp(min=0)
        return t[torch.arange(t.shape[0], device=t.device), last]
    m = mask.view(*mask.shape, *([1] * (t.dim() - 2)))
    if mode == "token_mean":
        return (t * m).sum(1) / m.sum(1).clamp(min=1)
    return t.masked_fill(m == 0, float("-inf")).amax(1)  # token_max


def select_epochs(found: Mapping[int, Path], epochs: Sequence[int] | None) -> dict[int, Path]:
    """The checkpoints of ``epochs`` (all when ``None``), in epoch order; each must exist.

    Shared by the torch capture and the Flax/Keras one (:mod:`neuralatlas.capture.foreign`).
    """
    found = dict(found)
    if epochs is not None:
        missing = [e for e in epochs if e not in found]
        if missing:
            raise StoreError(f"Epochs {missing} have no checkpoint; available: {sorted(found)}.")
        found = {e: found[e] for e in epochs}
    for e, p in found.items():
        if not p.exists():
            raise StoreError(f"Checkpoint of epoch {e} is missing: {p}.")
    return dict(sorted(found.items()))


def _nonfinite_rows(buffers: Mapping[str, np.ndarray], grad_buffers: Mapping[str, np.ndarray],
                    layers: Sequence[str], m: int) -> np.ndarray:
    """``[m, n_layers]`` bool: which rows of each layer hold a NaN or inf (activation or gradient)."""
    flags = np.zeros((m, len(layers)), bool)
    for j, name in enumerate(layers):
        for buf in (buffers[name], grad_buffers.get(name)):
            if buf is not None:
                flags[:, j] |= _bad_rows(buf[:m].reshape(m, -1))
    return flags


def _bad_rows(block: np.ndarray) -> np.ndarray:
    # A row's sum is finite when all its values are (one cheap pass); rows whose sum is not
    # are confirmed value by value, so a sum that merely overflows is not called non-finite.
    with np.errstate(over="ignore", invalid="ignore"):
        suspect = ~np.isfinite(block.sum(1))
    if suspect.any():
        suspect[suspect] = ~np.isfinite(block[suspect]).all(1)
    return suspect
