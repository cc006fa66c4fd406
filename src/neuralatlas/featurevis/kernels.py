"""Convolution kernels as pictures: what the weights of a conv layer look like."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from neuralatlas.capture.hooks import resolve_layers
from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.results import Result, files_of, folder_of, safe_name

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass
class Filters(Result):
    """The kernels of one conv layer.

    Attributes
    ----------
    layer : str
        The layer's name as ``model.named_modules()`` gives it.
    weights : numpy.ndarray
        ``[out_channels, in_channels, kh, kw]`` (1-D kernels get ``kh = 1``; 3-D kernels
        are summed over depth; transposed convolutions are given as ``[out, in, ...]`` too).
    layer_type : str
        The module's class name.
    """

    layer: str
    weights: np.ndarray
    layer_type: str = "Conv2d"

    kind = "filters"

    @property
    def is_image_like(self) -> bool:
        """Kernels that read an image (1 or 3 input channels) can be shown as images."""
        return self.weights.shape[1] in (1, 3)

    def as_images(self) -> np.ndarray:
        """``[out, kh, kw, in]`` kernels mapped to [0, 1] with one symmetric scale for all.

        Zero weight is mid-grey, so the sign is readable and kernels compare with each other.

        Example
        -------
        >>> filters(model).as_images().shape       # doctest: +SKIP
        (16, 3, 3, 1)
        """
        m = float(np.abs(self.weights).max()) or 1.0
        return np.transpose(0.5 + 0.5 * self.weights / m, (0, 2, 3, 1))

    def summary(self) -> dict[str, Any]:
        """Layer, type, kernel shape and the weights' range."""
        w = self.weights
        return {"layer": self.layer, "layer_type": self.layer_type, "shape": list(w.shape),
                "min": float(w.min()) if w.size else 0.0, "max": float(w.max()) if w.size else 0.0,
                "mean_abs": float(np.abs(w).mean()) if w.size else 0.0}

    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``filters.npz`` (weights) and ``filters.json`` into ``directory``; return it.

        Run folders use ``results/featurevis/filters_<safe_name(layer)>/``.
        """
        d = folder_of("Filters", directory, name)  # name: deprecated, a subfolder
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / "filters.npz", weights=self.weights)
        self.write_json(d / "filters.json", {"layer": self.layer, "layer_type": self.layer_type})
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], layer: str | None = None) -> Filters:
        """Read what :meth:`save` wrote.

        ``layer`` is deprecated: it reads ``directory/filters_<layer>/`` or an older run's flat
        ``directory/filters_<layer>.npz``.
        """
        stem = files_of(cls.__name__, directory, "filters", None if layer is None else f"filters_{safe_name(layer)}")
        if layer is not None and not stem.with_suffix(".json").is_file():
            stem = Path(directory) / f"filters_{layer}"  # the unescaped name older runs used
        meta = cls.read_json(cls._required(stem.parent, f"{stem.name}.json", f"{stem.name}.npz", what="filters",
                                           fix="write them with filters(model, layer).save(directory)"))
        with np.load(stem.parent / f"{stem.name}.npz") as a:
            return cls(meta["layer"], a["weights"], meta["layer_type"])


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's convolution layers, in model order."""
    return [n for n, m in model.named_modules() if n and isinstance(m, _CONV)]


def filters(model: nn.Module, layer: str | None = None) -> Filters:
    """The kernels of a conv layer (default: the first one) as an array.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str, optional
        A conv layer's name; default the model's first convolution.

    Returns
    -------
    Filters

    Raises
    ------
    LayerError
        No such layer, or it is not a convolution (the message lists the conv layers).

    Example
    -------
    >>> from neuralatlas.zoo import cnn
    >>> f = filters(cnn())
    >>> f.layer, f.weights.shape
    ('conv1', (16, 1, 3, 3))
    """
    convs = conv_layers(model)
    if layer is None:
        if not convs:
            raise LayerError(f"{type(model).__name__} has no convolution layers, so it has no filters to show.")
        layer = convs[0]
    modules = dict(model.named_modules())
    if layer not in modules:
        resolve_layers(model, layer)  # raises LayerError naming what exists
    module = modules[layer]
    if not isinstance(module, _CONV):
        raise LayerError(f"Layer {layer!r} is a {type(module).__name__}, not a convolution; conv layers"
                         f" of this model: {convs or 'none'}.")
    w = module.weight.detach().float().cpu().numpy()
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        w = np.swapaxes(w, 0, 1)  # stored [in, out, ...]
    if w.ndim == 3:
        w = w[:, :, None, :]
    elif w.ndim == 5:
        w = w.sum(axis=2)
    if w.ndim != 4:
        raise AnalysisError(f"Layer {layer!r} has weights of shape {w.shape}; expected a 1-D, 2-D or 3-D convolution.")
    return Filters(layer, np.ascontiguousarray(w, dtype=np.float32), type(module).__name__)
