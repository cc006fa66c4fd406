"""Activation maximisation: optimise images, many units at once, so a unit shows what it wants."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis import objectives as obj
from neuralatlas.featurevis.objectives import INPUT, Objective, as_objective
from neuralatlas.featurevis.param import make_param
from neuralatlas.featurevis.taps import default_input_shape, prepared
from neuralatlas.featurevis.transforms import Transform, compose, default_transforms, resize
from neuralatlas.results import Result, files_of, folder_of
from neuralatlas.vocabulary import Progress


@dataclass
class FeatureVisResult(Result):
    """Images optimised for an objective, with the objective's trace.

    Attributes
    ----------
    images : numpy.ndarray
        ``[N, C, H, W]`` float32 in ``value_range``; image ``i`` is for ``labels[i]``.
    trace : numpy.ndarray
        ``[steps, N]``: the objective of each image at every step (under that step's random
        transforms, regularisers included), to see convergence.
    values : numpy.ndarray
        ``[N]``: the objective of each final image, without transforms.
    labels : list of str
        What each image is for (``"conv2:5"``, ``"class 3"``, ...).
    objective : str
        The objective's readable name.
    layers : list of str
        The layers the objective reads.
    settings : dict
        Parameterisation, steps, learning rate, seed, transforms, device, seconds.
    """

    images: np.ndarray
    trace: np.ndarray
    values: np.ndarray
    labels: list[str]
    objective: str
    layers: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    kind = "featurevis"

    def __len__(self) -> int:
        return len(self.images)

    def summary(self) -> dict[str, Any]:
        """Objective, layers, and the final value of each image by its label."""
        return {"objective": self.objective, "layers": self.layers, "images": len(self),
                "values": {label: float(v) for label, v in zip(self.labels, self.values, strict=True)},
                "steps": int(self.trace.shape[0]) if self.trace.ndim else 0, "settings": self.settings}

    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``featurevis.npz`` (images, trace, values) and ``featurevis.json`` into ``directory``; return it."""
        d = folder_of("FeatureVisResult", directory, name)  # name: deprecated, a subfolder
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / "featurevis.npz", images=self.images, trace=self.trace, values=self.values)
        meta = {"labels": self.labels, "objective": self.objective, "layers": self.layers,
                "settings": self.settings, "values": [float(v) for v in self.values]}
        self.write_json(d / "featurevis.json", meta)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str | None = None) -> FeatureVisResult:
        """Read what :meth:`save` wrote (``name`` is deprecated: load ``directory / name``)."""
        stem = files_of(cls.__name__, directory, "featurevis", name)
        meta = cls.read_json(cls._required(stem.parent, f"{stem.name}.json", f"{stem.name}.npz",
                                           what="feature visualisation",
                                           fix="run visualize_feature(...).save(directory) first"))
        with np.load(stem.parent / f"{stem.name}.npz") as arrays:
            return cls(arrays["images"], arrays["trace"], arrays["values"], meta["labels"],
                       meta["objective"], meta.get("layers", []), meta.get("settings", {}))

    def __repr__(self) -> str:
        return (f"FeatureVisResult({self.objective!r}, images={tuple(self.images.shape)},"
                f" steps={self.trace.shape[0]})")


def _transforms(spec: str | Sequence[Transform | Callable] | None, h: int, w: int) -> Transform | None:
    if spec is None or (isinstance(spec, (list, tuple)) and not spec):
        return None
    if isinstance(spec, str):
        if spec != "default":
            raise AnalysisError(f"transforms={spec!r}: pass 'default', None, or a list of transforms"
                                " from neuralatlas.featurevis.transforms.")
        return compose(default_transforms(h, w))
    return compose(list(spec))


def n_images_for(objective: Objective, n_images: int | None) -> int:
    """How many images to optimise: the objective's, or ``n_images`` for single-unit objectives."""
    if n_images is None:
        return objective.n_images or 1
    n = int(n_images)
    if n < 1:
        raise AnalysisError(f"n_images must be at least 1, got {n_images!r}.")
    if objective.n_images not in (None, 1, n):
        raise AnalysisError(
            f"The objective {objective.name!r} asks for {objective.n_images} images (one per unit),"
            f" but n_images={n}; leave n_images out, or use a single-unit objective to get several"
            " images of one unit.")
    return n


def visualize_feature(
    model: nn.Module,
    objective: Objective | str,
    *,
    input_shape: Sequence[int] | None = None,
    n_images: int | None = None,
    param: str = "fourier",
    decorrelate: bool = True,
    transforms: str | Sequence[Transform | Callable] | None = "default",
    steps: int = 256,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    tv: float = 0.0,
    init: np.ndarray | torch.Tensor | None = None,
    output: int | str | Callable | None = None,
    progress: Progress | None = None,
) -> FeatureVisResult:
    """Optimise images that maximise ``objective`` (activation maximisation).

    All images of the batch are optimised together in one loop: ``channel("conv2",
    range(64))`` optimises 64 images, one per channel, for the price of a batched forward
    and backward per step. The model is left as found (mode, ``requires_grad``, device,
    hooks; its weights are frozen, never changed, their ``.grad`` untouched).

    Parameters
    ----------
    model : torch.nn.Module
        Any module mapping a ``[B, C, H, W]`` batch to an output (logits for class
        objectives).
    objective : Objective or str
        From :mod:`neuralatlas.featurevis.objectives` (combine with ``+``, ``-``, ``*``), or
        a short form: ``"conv2:5"`` (a channel), ``"logit:3"``, ``"layer:conv2"``.
    input_shape : (C, H, W), optional
        Shape of one input; default the shape a zoo model was built for.
    n_images : int, optional
        Several images of a single-unit objective (add :func:`objectives.diversity` so
        they differ). Default: one per unit of the objective.
    param : "fourier" or "pixel"
        Image parameterisation: a ``1/f``-scaled spectrum (decorrelated; readable images)
        or raw pixels.
    decorrelate : bool
        For RGB, optimise in a decorrelated colour basis.
    transforms : "default", list or None
        Random transforms per step (transformation robustness); ``"default"`` picks them
        by image size (:func:`transforms.default_transforms`: ``jitter(1)`` on 8×8).
    steps : int
        Optimisation steps (Adam).
    lr : float, optional
        Adam's learning rate. Default by image size, measured: 0.2 under 16 px (on the 8×8
        digits CNN, 96 steps at 0.05 reach 1.06× the best test digit's logit and 0.2 reaches
        1.24×, against a 1.30× plateau at 256–512 steps for any rate; conv2 channels plateau
        at 1.43× from 96 steps at 0.2), 0.05 from 16 px up (Lucid's rate for ImageNet models:
        on EfficientNet-Lite0 at 64–112 px, 24–64 steps already beat the best natural patch
        2–9×).
    seed : int
        Seeds the initial image and the transforms; the same seed gives the same images.
    device : str, optional
        ``None`` picks CUDA when present, else CPU.
    value_range : (low, high)
        The model's input range; images stay inside it.
    preprocess : callable, optional
        Applied to the images before the model, e.g. a mean/std normalisation.
    l1, l2, tv : float
        Weights of the L1, L2 (around the middle of ``value_range``) and total-variation
        penalties subtracted from the objective.
    init : array, optional
        Start from these images (``[N, C, H, W]`` or ``[C, H, W]`` inside ``value_range``)
        instead of random ones.
    output : int, str or callable, optional
        Which tensor of the model's output holds the logits (for class objectives).
    progress : callable(done, total), optional
        Called after every step.

    Returns
    -------
    FeatureVisResult
        ``images`` ``[N, C, H, W]``, ``trace`` ``[steps, N]``, final ``values``, ``labels``.

    Raises
    ------
    LayerError
        A layer of the objective is not in the model (the message lists those that are).
    AnalysisError
        Bad settings, a unit out of range, or a model that fails on ``input_shape``.

    Example
    -------
    >>> from neuralatlas.featurevis import objectives as O
    >>> from neuralatlas.zoo import cnn
    >>> res = visualize_feature(cnn(), O.class_logit(range(10)), steps=16)   # few steps: a fast example
    >>> res.images.shape
    (10, 1, 8, 8)
    """
    objective = as_objective(objective)
    lo, hi = (float(v) for v in value_range)
    mid = 0.5 * (lo + hi)
    penalty = [(w, f) for w, f in ((l1, obj.l1(mid)), (l2, obj.l2(mid)), (tv, obj.total_variation())) if w]
    for w, f in penalty:
        objective = objective - float(w) * f
    n = n_images_for(objective, n_images)
    shape = tuple(int(s) for s in (input_shape if input_shape is not None else default_input_shape(model)))
    if len(shape) != 3 or min(shape) < 1:
        raise AnalysisError(f"input_shape must be (channels, height, width), got {shape}; feature"
                            " visualisation optimises images.")
    if int(steps) < 1:
        raise AnalysisError(f"steps must be at least 1, got {steps!r}.")
    c, h, w = shape
    if lr is None:
        lr = 0.2 if min(h, w) < 16 else 0.05
    pipeline = _transforms(transforms, h, w)
    image_param = make_param(param, (n, c, h, w), seed=seed, decorrelate=decorrelate,
                             value_range=(lo, hi))
    if init is not None:
        start = torch.as_tensor(np.asarray(init), dtype=torch.float32)
        start = start[None] if start.dim() == 3 else start
        if tuple(start.shape[1:]) != shape or start.shape[0] not in (1, n):
            raise AnalysisError(
                f"init has shape {tuple(start.shape)}; expected [{n}, {c}, {h}, {w}] or [{c}, {h}, {w}]."
            )
        image_param.set_images(start.expand(n, c, h, w))
    rng = random.Random(int(seed))
    t0 = time.perf_counter()
    with prepared(model, objective.keys, device, output) as (taps, dev, dtype):
        image_param.to(dev)
        optimizer = torch.optim.Adam(image_param.parameters(), lr=float(lr))
        trace = torch.empty((int(steps), n), device=dev)

        def evaluate(images: torch.Tensor, transform: bool) -> torch.Tensor:
            x = images
            if transform and pipeline is not None:
                x = resize(pipeline(x, rng), (h, w))
            if preprocess is not None:
                x = preprocess(x)
            tensors = taps.run(x.to(dtype))
            tensors[INPUT] = images
            values = objective(tensors)
            return values.float().expand(n) if values.dim() == 0 else values.float()

        for step in range(int(steps)):
            optimizer.zero_grad(set_to_none=True)
            values = evaluate(image_param(), transform=True)
            # Each image's value depends only on its own image (diversity aside), so the
            # gradient of the sum is every image's own gradient.
            (-values.sum()).backward()
            optimizer.step()
            trace[step] = values.detach()
            if progress is not None:
                progress(step + 1, int(steps))
        with torch.no_grad():
            final_images = image_param()
            final_values = evaluate(final_images, transform=False)
        images = final_images.detach().cpu().numpy().astype(np.float32)
        values_np = final_values.detach().cpu().numpy().astype(np.float32)
        trace_np = trace.cpu().numpy()
    settings = {"param": param, "decorrelate": decorrelate, "steps": int(steps), "lr": float(lr),
                "seed": int(seed), "transforms": getattr(pipeline, "name", None),
                "value_range": [lo, hi], "input_shape": list(shape), "device": str(dev),
                "l1": float(l1), "l2": float(l2), "tv": float(tv),
                "seconds": round(time.perf_counter() - t0, 3)}
    return FeatureVisResult(images, trace_np, values_np, objective.image_labels(n), objective.name,
                            objective.layers, settings)
