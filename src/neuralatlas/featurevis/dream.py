"""DeepDream: amplify whatever a layer already sees in a given image, octave by octave."""

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
import torch.nn.functional as F
from torch import nn

from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis import objectives as obj
from neuralatlas.featurevis.objectives import INPUT, Objective, as_objective
from neuralatlas.featurevis.taps import as_batch, prepared
from neuralatlas.results import Result, files_of, folder_of
from neuralatlas.vocabulary import Progress


@dataclass
class DreamResult(Result):
    """A dreamed image (or batch) beside the original.

    Attributes
    ----------
    images : numpy.ndarray
        ``[B, C, H, W]`` dreamed images, inside ``value_range``.
    original : numpy.ndarray
        ``[B, C, H, W]`` the input images.
    trace : numpy.ndarray
        ``[total_steps, B]`` the objective at every step (octaves one after another).
    octave_sizes : list of (int, int)
        The image size of each octave, smallest first.
    objective : str
    settings : dict
    """

    images: np.ndarray
    original: np.ndarray
    trace: np.ndarray
    octave_sizes: list[tuple[int, int]]
    objective: str
    settings: dict[str, Any] = field(default_factory=dict)

    kind = "dream"

    @property
    def image(self) -> np.ndarray:
        """The first dreamed image ``[C, H, W]``."""
        return self.images[0]

    def summary(self) -> dict[str, Any]:
        """Objective, image size, octaves and the objective's first and last value per image."""
        first = self.trace[0] if len(self.trace) else np.zeros(0)
        last = self.trace[-1] if len(self.trace) else np.zeros(0)
        return {"objective": self.objective, "images": int(len(self.images)),
                "image_shape": list(self.images.shape[1:]), "octave_sizes": [list(s) for s in self.octave_sizes],
                "steps": int(len(self.trace)), "objective_first": [float(v) for v in first],
                "objective_last": [float(v) for v in last], "settings": self.settings}

    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``dream.npz`` (images, original, trace) and ``dream.json`` into ``directory``; return it."""
        d = folder_of("DreamResult", directory, name)  # name: deprecated, a subfolder
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / "dream.npz", images=self.images, original=self.original, trace=self.trace)
        meta = {"octave_sizes": [list(s) for s in self.octave_sizes], "objective": self.objective,
                "settings": self.settings, "summary": self.summary()}
        self.write_json(d / "dream.json", meta)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str | None = None) -> DreamResult:
        """Read what :meth:`save` wrote (``name`` is deprecated: load ``directory / name``)."""
        stem = files_of(cls.__name__, directory, "dream", name)
        meta = cls.read_json(cls._required(stem.parent, f"{stem.name}.json", f"{stem.name}.npz",
                                           what="DeepDream result", fix="run deepdream(...).save(directory)"))
        with np.load(stem.parent / f"{stem.name}.npz") as a:
            return cls(a["images"], a["original"], a["trace"], [tuple(s) for s in meta["octave_sizes"]],
                       meta["objective"], meta.get("settings", {}))


def octave_sizes(height: int, width: int, octaves: int, octave_scale: float,
                 min_size: int) -> list[tuple[int, int]]:
    """Image sizes of the octaves, smallest first, the full size last.

    Octaves whose smaller side would fall under ``min_size`` are left out (on an 8×8 digit
    with ``min_size=8``, only the full size remains).

    Example
    -------
    >>> octave_sizes(64, 64, 3, 1.4, 8)
    [(33, 33), (46, 46), (64, 64)]
    """
    if int(octaves) < 1:
        raise AnalysisError(f"octaves must be at least 1, got {octaves!r}.")
    if float(octave_scale) <= 1.0:
        raise AnalysisError(f"octave_scale must be above 1 (each octave that much smaller), got {octave_scale!r}.")
    floor = min(int(min_size), height, width)
    sizes = []
    for k in range(int(octaves) - 1, -1, -1):
        f = float(octave_scale) ** k
        size = (max(1, round(height / f)), max(1, round(width / f)))
        if min(size) >= floor and size not in sizes:
            sizes.append(size)
    return sizes


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def deepdream(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    layer: str | Sequence[str] | None = None,
    *,
    objective: Objective | str | None = None,
    octaves: int = 3,
    octave_scale: float = 1.4,
    steps: int = 20,
    step_size: float = 0.02,
    jitter: int | None = None,
    min_size: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    output: int | str | Callable | None = None,
    progress: Progress | None = None,
) -> DreamResult:
    """DeepDream: change ``image`` so that ``layer`` responds more strongly to it.

    Gradient ascent on the mean squared activation of ``layer`` (or any ``objective``),
    over octaves: the image is first dreamed at a reduced size, the detail gained is scaled
    up and the next octave continues from it, so patterns grow at several scales. Each step
    shifts the image by a random jitter (rolled back after) and normalises the gradient by
    its mean absolute value, so ``step_size`` is a fraction of the value range per step.

    Parameters
    ----------
    model : torch.nn.Module
    image : array ``[C, H, W]`` or ``[B, C, H, W]``
        Inside ``value_range``.
    layer : str or list of str
        Layer(s) to amplify, named as ``model.named_modules()`` names them.
    objective : Objective or str, optional
        Instead of ``layer``: any objective (e.g. ``channel("conv2", 5)``).
    octaves : int
        Number of scales.
    octave_scale : float
        Size ratio between consecutive octaves.
    steps : int
        Gradient steps per octave.
    step_size : float
        Step per iteration as a fraction of ``value_range``'s width (gradients are normalised).
    jitter : int, optional
        Largest random shift in pixels; default ``max(1, size // 32)``.
    min_size : int
        Octaves whose smaller side is below this are skipped.
    value_range : (low, high)
        The model's input range; the image is clipped to it after every step.
    preprocess : callable, optional
        Applied before the model (e.g. normalisation).
    seed : int
        Seeds the jitter; the same seed gives the same dream.
    device : str, optional
        ``None`` picks CUDA when present.
    output : int, str or callable, optional
        Which tensor of the model's output holds logits (for class objectives).
    progress : callable(done, total), optional

    Returns
    -------
    DreamResult

    Example
    -------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> res = deepdream(model, test.inputs[0], "conv2", octaves=1, steps=30)
    >>> res.image.shape
    (1, 8, 8)
    """
    if objective is None:
        if layer is None:
            raise AnalysisError("deepdream needs a layer (e.g. 'conv2') or an objective.")
        names = [layer] if isinstance(layer, str) else list(layer)
        if not names:
            raise AnalysisError("deepdream got an empty list of layers; name at least one.")
        objective = sum((obj.layer(n) for n in names[1:]), obj.layer(names[0]))
    objective = as_objective(objective)
    base = as_batch(image)
    b, c, h, w = base.shape
    if objective.n_images not in (None, 1, b):
        raise AnalysisError(f"The objective {objective.name!r} asks for {objective.n_images} images"
                            f" but {b} were given.")
    lo, hi = (float(v) for v in value_range)
    if float(base.min()) < lo - 1e-6 or float(base.max()) > hi + 1e-6:
        raise AnalysisError(
            f"The image's values span [{float(base.min()):.3g}, {float(base.max()):.3g}], outside"
            f" value_range=({lo:g}, {hi:g}); pass the model's input range as value_range, or scale the image.")
    sizes = octave_sizes(h, w, octaves, octave_scale, min_size)
    if int(steps) < 1:
        raise AnalysisError(f"steps must be at least 1, got {steps!r}.")
    rng = random.Random(int(seed))
    total = len(sizes) * int(steps)
    t0 = time.perf_counter()
    with prepared(model, objective.keys, device, output) as (taps, dev, dtype):
        base = base.to(dev)
        trace = torch.empty((total, b), device=dev)
        detail = torch.zeros((b, c, *sizes[0]), device=dev)
        done = 0
        img = base
        for size in sizes:
            octave_base = _resize(base, size)
            img = (octave_base + _resize(detail, size)).clamp(lo, hi)
            shift = int(jitter) if jitter is not None else max(1, min(size) // 32)
            for _ in range(int(steps)):
                dy, dx = rng.randint(-shift, shift), rng.randint(-shift, shift)
                rolled = torch.roll(img, (dy, dx), (2, 3)).requires_grad_(True)
                x = preprocess(rolled) if preprocess is not None else rolled
                tensors = taps.run(x.to(dtype))
                tensors[INPUT] = rolled
                values = objective(tensors).float()
                values = values.expand(b) if values.dim() == 0 else values
                (grad,) = torch.autograd.grad(values.sum(), rolled)
                # Normalised per image: every image moves by step_size whatever its gradient scale.
                grad = grad / (grad.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-12)
                stepped = rolled.detach() + float(step_size) * (hi - lo) * grad
                img = torch.roll(stepped, (-dy, -dx), (2, 3)).clamp(lo, hi)
                trace[done] = values.detach()
                done += 1
                if progress is not None:
                    progress(done, total)
            detail = img - octave_base
        result = img.detach().cpu().numpy().astype(np.float32)
        trace_np = trace.cpu().numpy()
    settings = {"layers": objective.layers, "octaves": int(octaves), "octave_scale": float(octave_scale),
                "steps": int(steps), "step_size": float(step_size), "jitter": jitter,
                "min_size": int(min_size), "value_range": [lo, hi], "seed": int(seed),
                "device": str(dev), "seconds": round(time.perf_counter() - t0, 3)}
    return DreamResult(result, as_batch(image).numpy().astype(np.float32), trace_np, sizes,
                       objective.name, settings)
