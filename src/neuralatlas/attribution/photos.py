"""Attribution on photographs for an ImageNet classifier: the predicted class explained.

Each photo is explained for the class the model predicts (``target="prediction"``), with
saliency, integrated gradients, SmoothGrad and Grad-CAM by default. Grad-CAM reads the
layer a model card names (``card.extra["cam_layer"]``: for EfficientNet-Lite0 ``head.act``,
the output of the last block's activation, pytorch-grad-cam's convention for EfficientNets:
``model.features[-1]``), else :func:`attribute`'s default (the last convolution).

Zoo models normalise their own input, so the maps are over the [0, 1] photo itself and
figures draw them over the photo as the model saw it (no de-normalisation to forget).
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas._moved import resolve_moved
from neuralatlas.attribution.methods import attribute, resolve_method
from neuralatlas.attribution.result import Attribution
from neuralatlas.errors import AnalysisError
from neuralatlas.results import Result, safe_name
from neuralatlas.vocabulary import renamed_parameter

DEFAULT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "grad_cam")


@dataclass
class PhotoAttribution(Result):
    """Maps of several methods over the same photos, with the model's top-k predictions.

    Attributes
    ----------
    results : dict of str to Attribution
    inputs : numpy.ndarray
        ``[n, 3, H, W]`` the photos in [0, 1].
    names : list of str
        Photo names.
    top : list of list of (class name, probability)
        The ``k`` likeliest classes per photo; maps explain the first.
    settings : dict
    """

    results: dict[str, Attribution]
    inputs: np.ndarray
    names: list[str]
    top: list[list[tuple[str, float]]]
    settings: dict[str, Any] = field(default_factory=dict)

    kind = "photo_attribution"

    def figure(self, **kwargs: Any) -> Any:
        """Deprecated (goes in 0.3): draw with :func:`neuralatlas.plots.attribution_photo_grid` (result).

        A result does not draw itself: figures live in :mod:`neuralatlas.plots`, above the
        analyses (docs/ARCHITECTURE.md); this alias warns and calls that function.
        """
        # by name through the root table: plots sit above attribution (no upward import here)
        return resolve_moved("neuralatlas.attribution.photos:PhotoAttribution.figure")(self, **kwargs)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{html.escape(', '.join(f'{c} {p:.0%}' for c, p in t))}</td></tr>"
            for n, t in zip(self.names, self.top, strict=True)
        )
        return (f"<div><b>PhotoAttribution</b> ({html.escape(', '.join(self.results))})"
                f"<table><tr><th>photo</th><th>top classes</th></tr>{rows}</table></div>")

    def summary(self) -> dict[str, Any]:
        """The top classes per photo, the methods and the settings."""
        return {"photos": {n: [[c, round(p, 4)] for c, p in t] for n, t in zip(self.names, self.top, strict=True)},
                "methods": list(self.results), **{k: v for k, v in self.settings.items() if k != "top_k"}}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``photos.json``, ``photos.npy`` and one folder per method (``<safe_name(method)>/``); return it."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, res in self.results.items():
            res.save(d / safe_name(name))
        np.save(d / "photos.npy", self.inputs)
        meta = {"names": self.names, "top": self.top, "settings": self.settings, "methods": list(self.results)}
        self.write_json(d / "photos.json", meta)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PhotoAttribution:
        """Read what :meth:`save` wrote (also the flat ``<method>.npz`` files of older runs)."""
        d = Path(directory)
        meta = cls.read_json(cls._required(d, "photos.json", "photos.npy", what="photo attribution",
                                           fix="write one with attribute_photos(...).save(directory)"))
        results = {}
        for m in meta["methods"]:
            folder = d / safe_name(m)
            old = d / (re.sub(r"[^A-Za-z0-9_.-]+", "_", m).strip("_") + ".npz")  # before one folder per result
            results[m] = Attribution.load(folder if folder.is_dir() else old)
        top = [[(str(c), float(p)) for c, p in t] for t in meta["top"]]
        return cls(results, np.load(d / "photos.npy"), meta["names"], top, meta.get("settings", {}))


@renamed_parameter("smooth_samples", "smooth_draws")
def attribute_photos(model: nn.Module, data: Any, methods: tuple[str, ...] | list[str] = DEFAULT_METHODS, *,
                     n_steps: int = 32, smooth_draws: int = 16, smooth_noise: float = 0.15,
                     cam_layer: str | None = None, top_k: int = 3, classes: list[str] | None = None,
                     seed: int = 0, device: Any = None) -> PhotoAttribution:
    """Explain the predicted class of each photo with several methods.

    Parameters
    ----------
    model : torch.nn.Module
        An image classifier taking [0, 1] RGB (zoo models with a card normalise themselves).
    data : ArrayDataset
        Photos ``[n, 3, H, W]`` (e.g. :func:`neuralatlas.data.photos`); ``classes`` name them.
    methods : sequence of str
        Names of :func:`attribute`; ``"smoothgrad"`` uses ``smooth_draws`` noisy copies.
    n_steps : int
        Integrated-gradient steps (Gauss-Legendre; completeness is reported).
    smooth_draws, smooth_noise : int, float
        SmoothGrad's copies and noise (share of the value range).
    cam_layer : str, optional
        Grad-CAM's layer; default the card's ``cam_layer``, else the last convolution.
    top_k : int
        Predictions listed per photo.
    classes : list of str, optional
        Class names of the logits; default the model card's.
    seed : int

    Returns
    -------
    PhotoAttribution
    """
    from neuralatlas.zoo.efficientnet import model_card

    card = model_card(model)
    names = classes or (list(card.classes) if card is not None else None)
    if names is None:
        raise AnalysisError("No class names: pass classes=[...] or use a zoo model with a card.")
    inputs = np.asarray(data.inputs, dtype=np.float32)
    if inputs.ndim != 4 or inputs.shape[1] != 3:
        raise AnalysisError(f"attribute_photos needs RGB images [n, 3, H, W], got {inputs.shape}.")
    layer = cam_layer or (card.extra.get("cam_layer") if card is not None else None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(inputs).to(next(model.parameters()).device)).float().cpu()
    finally:
        model.train(was_training)
    if logits.shape[-1] != len(names):
        raise AnalysisError(f"The model gives {logits.shape[-1]} logits but {len(names)} class names were given.")
    p = torch.softmax(logits, -1)
    vals, idx = p.topk(int(top_k), -1)
    top = [[(names[int(i)], float(v)) for v, i in zip(vr, ir, strict=True)] for vr, ir in zip(vals, idx, strict=True)]
    results: dict[str, Attribution] = {}
    for m in methods:
        key = resolve_method(m)
        opts: dict[str, Any] = {}
        if key == "integrated_gradients":
            opts["n_steps"] = int(n_steps)
        elif key == "smoothgrad":
            opts["smooth"] = {"draws": int(smooth_draws), "noise": float(smooth_noise)}
        elif key in ("grad_cam", "guided_grad_cam") and layer is not None:
            opts["layer"] = layer
        results[key] = attribute(model, torch.from_numpy(inputs), key, target="prediction", seed=seed,
                                 device=device, batch_size=8, **opts)
    settings = {"n_steps": int(n_steps), "smooth_draws": int(smooth_draws), "smooth_noise": float(smooth_noise),
                "cam_layer": results["grad_cam"].layer if "grad_cam" in results else layer, "seed": int(seed)}
    return PhotoAttribution(results, inputs, [str(data.classes[int(y)]) for y in data.labels], top, settings)


def cam_peak(cam: np.ndarray) -> tuple[int, int]:
    """(row, column) of a Grad-CAM map's maximum (``[1, H, W]`` or ``[H, W]``)."""
    m = np.asarray(cam).reshape(np.asarray(cam).shape[-2:]) if np.asarray(cam).ndim > 2 else np.asarray(cam)
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(r), int(c)


__all__ = ["DEFAULT_METHODS", "PhotoAttribution", "attribute_photos", "cam_peak"]
