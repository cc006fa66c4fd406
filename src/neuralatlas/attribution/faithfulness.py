"""Faithfulness of attribution maps: deletion and insertion curves (Petsiuk et al., RISE, 2018).

Deletion replaces the most-attributed pixels first by a baseline and follows the target's
score as more go; a faithful map makes it fall fast (small area under the curve). Insertion
starts from the baseline and puts the most-attributed pixels back first; a faithful map makes
the score rise fast (large area). A random ordering is the reference every method should beat.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from neuralatlas.attribution.methods import InputBatches, attribute, resolve_method
from neuralatlas.attribution.result import Attribution
from neuralatlas.capture.hooks import preserved
from neuralatlas.capture.loop import pick_device
from neuralatlas.errors import AnalysisError
from neuralatlas.results import Result

RANDOM = "random"
MODES = ("deletion", "insertion")


@dataclass
class FaithfulnessResult(Result):
    """Deletion and insertion curves per method, with their areas.

    Attributes
    ----------
    fractions : numpy.ndarray
        ``[steps + 1]`` share of pixels removed (deletion) or put back (insertion), 0 to 1.
    curves : dict
        ``curves[mode][method]``: ``[n_samples, steps + 1]`` target scores.
    score : str
        ``"probability"`` (softmax of the target) or ``"logit"``.
    """

    fractions: np.ndarray
    curves: dict[str, dict[str, np.ndarray]]
    score: str = "probability"
    params: dict[str, Any] = field(default_factory=dict)

    kind = "faithfulness"

    @property
    def methods(self) -> list[str]:
        """The attribution methods compared (with ``random``)."""
        return list(next(iter(self.curves.values())))

    def mean_curve(self, mode: str, method: str) -> np.ndarray:
        """The mean over samples of ``method``'s ``mode`` curve."""
        return self.curves[mode][method].mean(0)

    def auc(self, mode: str = "deletion") -> dict[str, float]:
        """Area under the mean curve per method (trapezoid over fractions 0..1)."""
        if mode not in self.curves:
            raise AnalysisError(f"mode {mode!r} was not computed; computed: {', '.join(self.curves)}.")
        return {m: float(np.trapezoid(c.mean(0), self.fractions)) for m, c in self.curves[mode].items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per method: deletion AUC (lower is better), insertion AUC (higher is better)."""
        frame = pd.DataFrame({f"{mode}_auc": self.auc(mode) for mode in self.curves})
        frame.index.name = "method"
        return frame.reset_index()

    def beats_random(self, method: str) -> dict[str, bool]:
        """Whether ``method``'s curves are better than the random ordering's, per mode."""
        out = {}
        for mode in self.curves:
            auc = self.auc(mode)
            if RANDOM not in auc:
                raise AnalysisError("No random ordering was computed (random=False).")
            out[mode] = auc[method] < auc[RANDOM] if mode == "deletion" else auc[method] > auc[RANDOM]
        return out

    def summary(self) -> dict[str, Any]:
        """Score, steps, the settings and the area under each mean curve."""
        return {"score": self.score, "steps": len(self.fractions) - 1, **self.params,
                "auc": {mode: self.auc(mode) for mode in self.curves}}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``faithfulness.json`` and ``faithfulness.npz`` (the curves) into ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"{mode}__{m}": c for mode, per in self.curves.items() for m, c in per.items()}
        np.savez_compressed(directory / "faithfulness.npz", fractions=self.fractions, **arrays)
        self.write_json(directory / "faithfulness.json", self.summary())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FaithfulnessResult:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        meta_file = cls._required(directory, "faithfulness.json", "faithfulness.npz", what="faithfulness curves",
                                  fix="write them with deletion_curves(...).save(folder)")
        meta = cls.read_json(meta_file)
        curves: dict[str, dict[str, np.ndarray]] = {}
        with np.load(directory / "faithfulness.npz") as data:
            fractions = data["fractions"]
            for k in data.files:
                if "__" in k:
                    mode, m = k.split("__", 1)
                    curves.setdefault(mode, {})[m] = data[k]
        params = {k: v for k, v in meta.items() if k not in ("score", "steps", "auc")}
        return cls(fractions, curves, meta.get("score", "probability"), params)

    def _repr_html_(self) -> str:
        table = self.to_frame().to_html(index=False, float_format="%.3f", escape=True)  # method names are text
        return f"<div><b>Faithfulness</b>{table}</div>"


def _importance(maps: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Per-position importance ``[n, positions]``: channels summed for images."""
    maps = np.asarray(maps, np.float64)
    if len(input_shape) >= 3:  # [C, H, W]: a position is a pixel (all channels)
        if maps.shape[1:] == tuple(input_shape):
            maps = maps.sum(1)
        elif maps.ndim == 4 and maps.shape[1] == 1 and maps.shape[2:] == tuple(input_shape[1:]):
            maps = maps[:, 0]
        else:
            raise AnalysisError(f"maps of shape {list(maps.shape[1:])} do not cover inputs of shape"
                                f" {list(input_shape)}; use input-space maps (Grad-CAM is upsampled).")
    elif maps.shape[1:] != tuple(input_shape):
        raise AnalysisError(f"maps of shape {list(maps.shape[1:])} do not match inputs of shape {list(input_shape)}.")
    return maps.reshape(len(maps), -1)


def _as_maps(attributions: Any, model: nn.Module, x: torch.Tensor, targets: np.ndarray, dev: torch.device,
             seed: int) -> dict[str, np.ndarray]:
    if isinstance(attributions, Attribution):
        return {attributions.name: attributions.maps}
    if isinstance(attributions, str):
        attributions = [attributions]
    if isinstance(attributions, Mapping):
        return {str(k): (v.maps if isinstance(v, Attribution) else np.asarray(v)) for k, v in attributions.items()}
    out: dict[str, np.ndarray] = {}
    for item in attributions:
        if isinstance(item, Attribution):
            out[item.name] = item.maps
        else:
            name = resolve_method(item)
            out[name] = attribute(model, x, name, target=targets, device=dev, seed=seed, keep_inputs=False).maps
    return out


def deletion_curves(
    model: nn.Module,
    inputs: Any,
    attributions: Any = ("integrated_gradients", "saliency"),
    *,
    target: Any = "label",
    labels: Any = None,
    modes: str | Sequence[str] = MODES,
    steps: int = 20,
    baseline: float | str = 0.0,
    score: str = "probability",
    rank_by: str = "signed",
    random: bool = True,
    n_samples: int | None = None,
    batch_size: int = 512,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> FaithfulnessResult:
    """Deletion and insertion curves (and their areas) of attribution maps on the model.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (left as found).
    inputs : tensor, array or data set
        The inputs the maps explain, in the same order.
    attributions : method names, Attribution(s) or {name: maps}
        Names are computed here with :func:`attribute`; maps must be in input space
        (``[n, *input_shape]`` or ``[n, 1, H, W]``).
    target, labels : see :func:`attribute`
        Whose score the curves follow.
    modes : "deletion", "insertion" or both
    steps : int
        Points of each curve after the start (pixels go in ``steps`` equal shares).
    baseline : float or "mean" or "blur"
        What a removed pixel becomes (deletion), and the start image (insertion).
    score : "probability" or "logit"
    rank_by : "signed" or "abs"
        Order pixels by attribution value (most positive evidence first) or magnitude.
    random : bool
        Add a random ordering (seeded) as the reference.
    n_samples : int, optional
        Use only the first ``n_samples`` inputs.
    batch_size : int
        Rows per forward pass when scoring the perturbed inputs.

    Returns
    -------
    FaithfulnessResult

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> result = deletion_curves(model, test.subset(slice(0, 32)), ["integrated_gradients", "saliency"])
    >>> result.to_frame()["method"].tolist()                        # with a random ranking to compare
    ['integrated_gradients', 'saliency', 'random']
    """
    modes = [modes] if isinstance(modes, str) else list(modes)
    if not modes or any(m not in MODES for m in modes):
        raise AnalysisError(f"modes {modes!r}: choose 'deletion', 'insertion' or both.")
    if score not in ("probability", "logit"):
        raise AnalysisError(f"score={score!r}: choose 'probability' or 'logit'.")
    if rank_by not in ("signed", "abs"):
        raise AnalysisError(f"rank_by={rank_by!r}: choose 'signed' or 'abs'.")
    if int(steps) < 1:
        raise AnalysisError(f"steps={steps} must be at least 1.")
    source = InputBatches(inputs, labels, 1 << 30)
    n = source.n if n_samples is None else min(source.n, int(n_samples))
    x, y = next(source.batches(0, n))
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = "dict" if not isinstance(x, torch.Tensor) else f"integer ({x.dtype})"
        raise AnalysisError(f"Deletion/insertion curves replace input values by a baseline, step by step; these"
                            f" inputs are {what} (token ids?), which cannot be partly deleted that way. Compare"
                            " token attributions with their completeness error and sanity_check instead.")
    dev = pick_device(device)
    with preserved(model):
        model.to(dev).eval()
        x = x.to(dev)
        targets = attribute(model, x, "saliency", target=target, labels=None if y is None else y.numpy(),
                            device=dev, keep_inputs=False).targets
        maps = _as_maps(attributions, model, x, targets, dev, seed)
        rng = np.random.default_rng(seed)
        shape = tuple(x.shape[1:])
        positions = int(np.prod(shape[1:])) if len(shape) >= 3 else int(np.prod(shape))
        orders: dict[str, np.ndarray] = {}
        tie = rng.random((n, positions))  # random tie-breaking: flat maps do not favour the top-left
        for name, m in maps.items():
            if len(m) < n:
                raise AnalysisError(f"maps of {name!r} hold {len(m)} samples; the inputs hold {n}.")
            imp = _importance(m[:n], shape)
            imp = np.abs(imp) if rank_by == "abs" else imp
            orders[name] = np.lexsort((tie, -imp), axis=-1)
        if random:
            orders[RANDOM] = np.argsort(rng.random((n, positions)), axis=1)
        base = _fill(x, baseline)
        fractions = np.linspace(0.0, 1.0, int(steps) + 1)
        counts = np.round(fractions * positions).astype(np.int64)
        t = torch.as_tensor(targets, device=dev)
        curves = {mode: {name: _curve(model, x, base, order, counts, mode, t, score, batch_size)
                         for name, order in orders.items()} for mode in modes}
    params = {"baseline": baseline, "rank_by": rank_by, "n_samples": n, "seed": int(seed)}
    return FaithfulnessResult(fractions, curves, score, params)


def _fill(x: torch.Tensor, baseline: float | str) -> torch.Tensor:
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if baseline == "mean":
        return x.mean(0, keepdim=True).expand_as(x)
    if baseline == "blur":
        from neuralatlas.attribution.methods import _blur

        return _blur(x)
    raise AnalysisError(f"baseline={baseline!r}: give a number, 'mean' or 'blur'.")


def _curve(model: nn.Module, x: torch.Tensor, base: torch.Tensor, order: np.ndarray, counts: np.ndarray,
           mode: str, target: torch.Tensor, score: str, batch_size: int) -> np.ndarray:
    """Scores ``[n, steps + 1]`` as pixels are removed (or put back) in ``order``."""
    n, positions = order.shape
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(positions)[None, :].repeat(n, 0), axis=1)
    rank_t = torch.as_tensor(rank, device=x.device)
    spatial = x.shape[2:] if x.dim() >= 4 else x.shape[1:]
    out = np.empty((n, len(counts)), np.float64)
    # several steps of all samples per tensor op, scored in large no-grad passes
    per_step = max(1, batch_size // n) if n <= batch_size else 1
    with torch.no_grad():
        for s0 in range(0, len(counts), per_step):
            ks = torch.as_tensor(counts[s0:s0 + per_step], device=x.device)
            chosen = (rank_t[None, :, :] < ks[:, None, None])           # [steps, n, positions]
            mask = chosen.reshape(len(ks), n, *([1] if x.dim() >= 4 else []), *spatial)
            xs = x[None].expand(len(ks), *x.shape)
            bs = base[None].expand(len(ks), *base.shape)
            if mode == "deletion":
                pert = torch.where(mask, bs, xs)
            else:
                pert = torch.where(mask, xs, bs)
            flat = pert.reshape(-1, *x.shape[1:])
            scores = []
            for lo in range(0, len(flat), batch_size):
                logits = model(flat[lo:lo + batch_size])
                values = logits.softmax(1) if score == "probability" else logits
                tt = target.repeat(len(ks))[lo:lo + batch_size]
                scores.append(values.gather(1, tt.view(-1, 1)).squeeze(1))
            out[:, s0:s0 + len(ks)] = torch.cat(scores).view(len(ks), n).T.double().cpu().numpy()
    return out
