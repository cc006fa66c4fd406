"""What an attribution call returns: maps, the targets they explain, and how good they are."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.errors import AnalysisError
from neuralatlas.results import Result, folder_of, jsonable
from neuralatlas.token_html import token_heatmap_html  # below plots: HTML, no figure

_ARRAYS = ("maps", "targets", "inputs", "labels", "predictions", "index", "delta", "completeness",
           "n_steps", "mask", "tokens")


@dataclass
class Attribution(Result):
    """Attribution maps of one method over a set of inputs.

    Attributes
    ----------
    method : str
        Canonical method name (``"integrated_gradients"``, ``"saliency"``, ...).
    maps : numpy.ndarray
        ``[n, *map_shape]``: the input's shape for input methods, ``[n, 1, H, W]`` for
        Grad-CAM (upsampled to the input), the layer's output shape for layer attribution.
    targets : numpy.ndarray or None
        ``[n]`` class index each map explains (``None`` for neuron attribution).
    signed : bool
        Whether values carry a sign (drawn with a diverging colour map).
    inputs, labels, predictions, index : numpy.ndarray or None
        The inputs attributed, their labels, the model's predictions, the sample index.
    delta : numpy.ndarray or None
        ``[n]`` completeness gap ``sum(map) - (F(x) - F(baseline))`` (integrated gradients,
        DeepLift, layer integrated gradients).
    completeness : numpy.ndarray or None
        ``[n]`` relative completeness error ``|delta| / |F(x) - F(baseline)|``.
    n_steps : numpy.ndarray or None
        ``[n]`` integration steps each sample needed (integrated gradients).
    mask : numpy.ndarray or None
        ``[n, T]`` attention mask of dict inputs that have one (1 = real token).
    tokens : numpy.ndarray or None
        ``[n, T]`` token strings of token-id inputs, when the tokenizer was known (a
        ``TextDataset``); ``""`` at padding.
    layer : str or None
        The layer of Grad-CAM or of layer attribution.
    neuron : tuple or None
        ``(layer, unit)`` for neuron attribution.
    params : dict
        The settings used (baseline, steps, internal batch size, noise tunnel, ...).

    Examples
    --------
    >>> import neuralatlas
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> result = neuralatlas.attribute(model, test.subset(slice(0, 32)), method="saliency")
    >>> result.maps.shape, result.summary()["method"]
    ((32, 1, 8, 8), 'saliency')
    """

    method: str
    maps: np.ndarray
    targets: np.ndarray | None = None
    signed: bool = True
    inputs: np.ndarray | None = None
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    index: np.ndarray | None = None
    delta: np.ndarray | None = None
    completeness: np.ndarray | None = None
    n_steps: np.ndarray | None = None
    mask: np.ndarray | None = None
    tokens: np.ndarray | None = None
    layer: str | None = None
    neuron: tuple | None = None
    params: dict[str, Any] = field(default_factory=dict)

    kind = "attribution"

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def name(self) -> str:
        """A key naming method, layer or neuron, and noise tunnel, e.g. ``grad_cam@conv2``."""
        base = self.method
        smooth = self.params.get("smooth")
        if smooth and self.method != "smoothgrad":
            base = f"{smooth.get('kind', 'smoothgrad')}({base})"
        if self.neuron is not None:
            return f"{base}->{self.neuron[0]}:{_unit_text(self.neuron[1])}"
        if self.layer is not None:
            return f"{base}@{self.layer}"
        return base

    @property
    def is_text(self) -> bool:
        """Whether the inputs were token ids (maps are then per token, ``[n, T, ...]``)."""
        return self.inputs is not None and self.inputs.ndim == 2 and self.inputs.dtype.kind in "iu"

    @property
    def token_scores(self) -> np.ndarray:
        """``[n, T]`` one score per token: an embedding layer's maps summed over its dimension.

        Summing keeps completeness: the token scores of a sample add up to the same total
        as the maps (``F(x) - F(baseline)`` for integrated gradients). Padding positions
        (``mask == 0``) are set to exactly 0.
        """
        m = np.asarray(self.maps)
        if m.ndim == 2:
            scores = m
        elif m.ndim >= 3:
            scores = m.reshape(*m.shape[:2], -1).sum(-1)
        else:
            raise AnalysisError(f"maps of shape {list(m.shape)} have no token axis; token scores need maps"
                                " [n, tokens, ...] (layer attribution of an embedding layer).")
        if self.mask is not None and self.mask.shape == scores.shape:
            scores = np.where(self.mask != 0, scores, 0.0)
        return scores

    def summary(self) -> dict[str, Any]:
        """Headline numbers: method, samples, completeness error (median, max) where known."""
        out: dict[str, Any] = {"method": self.method, "name": self.name, "n_samples": len(self),
                               "map_shape": list(self.maps.shape[1:]), "signed": self.signed}
        if self.completeness is not None and len(self.completeness):
            out["completeness_median"] = float(np.median(self.completeness))
            out["completeness_max"] = float(np.max(self.completeness))
        if self.n_steps is not None and len(self.n_steps):
            out["n_steps_max"] = int(np.max(self.n_steps))
        if "internal_batch_size" in self.params:
            out["internal_batch_size"] = self.params["internal_batch_size"]
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``attribution.npz`` (arrays) and ``attribution.json`` (settings) into ``directory``; return it.

        The caller picks the folder, e.g. ``results/attribution/<safe_name(result.name)>/``.
        """
        directory = folder_of("Attribution", directory, name)  # name: deprecated, a subfolder
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in _ARRAYS if getattr(self, k) is not None}
        np.savez_compressed(directory / "attribution.npz", **arrays)
        self.write_json(directory / "attribution.json", self._meta())
        return directory

    def _meta(self) -> dict[str, Any]:
        # settings record what was used: a tensor baseline or a callable target is kept as its repr
        return {"method": self.method, "signed": self.signed, "layer": self.layer,
                "neuron": list(self.neuron) if self.neuron is not None else None,
                "params": jsonable(self.params, default=repr), "summary": self.summary()}

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Attribution:
        """Read back what :meth:`save` wrote.

        ``directory`` may also be the ``<name>.npz`` file an older neuralatlas wrote beside others.
        """
        path = Path(directory)
        if not path.is_dir() and path.with_suffix(".npz").is_file():  # an older run's <name>.npz beside others
            folder, stem = path.parent, path.with_suffix("").name
        else:
            folder, stem = path, "attribution"
        npz = cls._required(folder, f"{stem}.npz", f"{stem}.json", what="saved attribution",
                            fix="write one with attribute(...).save(folder)")
        meta = cls.read_json(folder / f"{stem}.json")
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        neuron = meta.get("neuron")
        if neuron is not None:
            unit = neuron[1]
            neuron = (neuron[0], tuple(unit) if isinstance(unit, list) else unit)
        return cls(method=meta["method"], signed=meta["signed"], layer=meta.get("layer"), neuron=neuron,
                   params=meta.get("params", {}), **arrays)

    def _equals_state(self) -> dict[str, Any]:
        # settings compare as written to disk (a tensor baseline as its repr)
        return {**super()._equals_state(), "params": jsonable(self.params, default=repr)}

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in self.summary_json().items())
        tokens = ""
        if self.tokens is not None:  # text: the first sentences as a token heat map
            tokens = token_heatmap_html(self, samples=4)
        return f"<div><b>Attribution</b><table>{rows}</table>{tokens}</div>"

    def __repr__(self) -> str:
        extra = ""
        if self.completeness is not None and len(self.completeness):
            extra = f", completeness_max={float(np.max(self.completeness)):.2e}"
        return f"Attribution({self.name!r}, maps={tuple(self.maps.shape)}{extra})"


def _unit_text(unit: Any) -> str:
    return "_".join(map(str, unit)) if isinstance(unit, (tuple, list)) else str(unit)


