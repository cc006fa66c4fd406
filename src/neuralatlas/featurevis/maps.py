"""Feature maps: every channel of chosen conv layers for one input, from a store or a model."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.results import Result, files_of, folder_of
from neuralatlas.store.core import ActivationStore


@dataclass
class FeatureMaps(Result):
    """The feature maps of one input.

    Attributes
    ----------
    maps : dict of str to numpy.ndarray
        Layer name → ``[C, H, W]`` activations, layers in model order.
    input : numpy.ndarray or None
        The input ``[C, H, W]`` when known (a store holds activations, not inputs: pass
        ``data=`` to show it).
    sample : int
        The row of the store / batch the maps belong to.
    label : str or None
        The input's class name, when known.
    source : "store" or "model"
    """

    maps: dict[str, np.ndarray]
    input: np.ndarray | None = None
    sample: int = 0
    label: str | None = None
    source: str = "model"
    extra: dict[str, Any] = field(default_factory=dict)

    kind = "feature_maps"

    @property
    def layers(self) -> list[str]:
        """The layers with maps, in order."""
        return list(self.maps)

    def summary(self) -> dict[str, Any]:
        """Sample, label, source, and per layer the maps' shape and range."""
        return {"sample": self.sample, "label": self.label, "source": self.source,
                "layers": {k: {"shape": list(v.shape), "min": float(v.min()) if v.size else 0.0,
                               "max": float(v.max()) if v.size else 0.0} for k, v in self.maps.items()}}

    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``feature_maps.npz`` and ``feature_maps.json`` into ``directory``; return it."""
        d = folder_of("FeatureMaps", directory, name)  # name: deprecated, a subfolder
        d.mkdir(parents=True, exist_ok=True)
        # arrays keyed by position: a layer name may hold any character
        arrays: dict[str, Any] = {f"map{i}": v for i, v in enumerate(self.maps.values())}
        if self.input is not None:
            arrays["input"] = self.input
        np.savez_compressed(d / "feature_maps.npz", **arrays)
        self.write_json(d / "feature_maps.json", {"layers": self.layers, "sample": self.sample, "label": self.label,
                                                  "source": self.source, "extra": self.extra})
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str | None = None) -> FeatureMaps:
        """Read what :meth:`save` wrote (``name`` is deprecated: load ``directory / name``)."""
        stem = files_of(cls.__name__, directory, "feature_maps", name)
        meta = cls.read_json(cls._required(stem.parent, f"{stem.name}.json", f"{stem.name}.npz", what="feature maps",
                                           fix="write them with feature_maps(...).save(directory)"))
        with np.load(stem.parent / f"{stem.name}.npz") as a:
            maps = {k: a[f"map{i}"] if f"map{i}" in a.files else a[f"map:{k}"]  # map:<layer>: older files
                    for i, k in enumerate(meta["layers"])}
            inputs = a["input"] if "input" in a.files else None
        return cls(maps, inputs, meta["sample"], meta.get("label"), meta.get("source", "model"), meta.get("extra", {}))

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{list(v.shape)}</td></tr>"
                       for k, v in self.maps.items())
        return (f"<div><b>FeatureMaps</b> of sample {self.sample} ({html.escape(str(self.label))})"
                f"<table>{rows}</table></div>")


_MAP_MODULES = (nn.Conv2d, nn.ConvTranspose2d)


def _map_layers_of_store(store: ActivationStore) -> list[str]:
    return [n for n in store.layers if len(store.unit_shape(n)) == 3]


def feature_maps(
    source: nn.Module | ActivationStore | str | Path,
    inputs: np.ndarray | torch.Tensor | None = None,
    layers: str | Sequence[str] | None = None,
    *,
    sample: int = 0,
    epoch: int | None = None,
    data: Any = None,
    device: str | torch.device | None = None,
) -> FeatureMaps:
    """Every channel of chosen conv layers for one input.

    From a store (or a run folder / store path) the maps are read, not recomputed: row
    ``sample`` of each layer. From a model, ``inputs`` are run through it once (eval mode,
    no gradients, the model left as found).

    Parameters
    ----------
    source : torch.nn.Module, ActivationStore, or path of a store or run folder
    inputs : array ``[C, H, W]`` or ``[B, C, H, W]``, optional
        With a model: the input(s); ``sample`` picks one of a batch. With a store: the
        input image to show beside the maps (else taken from ``data``).
    layers : str or list of str, optional
        Layer names or glob patterns; default every layer with ``[C, H, W]`` outputs (a
        store) or every ``Conv2d`` (a model).
    sample : int
        Row of the store, or index into the batch of ``inputs``.
    epoch : int, optional
        Checkpoint epoch of a per-epoch store.
    data : ArrayDataset, optional
        The data set the store was captured from; the input is looked up by its sample index.
    device : str, optional
        For a model: ``None`` picks CUDA when present.

    Returns
    -------
    FeatureMaps

    Raises
    ------
    LayerError
        A layer is unknown, or its output is not a ``[C, H, W]`` map (e.g. captured with
        ``reduce="mean"``).

    Example
    -------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> from neuralatlas import capture
    >>> store = capture(model, test.subset(slice(0, 32)), out="acts.zarr")
    >>> fm = feature_maps(store, sample=3, data=test)
    >>> fm.maps["conv1"].shape
    (16, 8, 8)
    """
    if isinstance(source, nn.Module):
        return _from_model(source, inputs, layers, sample, device)
    store = _open_store(source)
    return _from_store(store, inputs, layers, sample, epoch, data)


def _open_store(source: ActivationStore | str | Path) -> ActivationStore:
    if isinstance(source, ActivationStore):
        return source
    path = Path(source)
    if (path / "acts.zarr").is_dir():
        path = path / "acts.zarr"
    return ActivationStore.open(path)


def _match(names: Sequence[str], patterns: str | Sequence[str], where: str) -> list[str]:
    """Layers of ``names`` by the package's one selection rule (order given; ``[]`` an error)."""
    from neuralatlas.patterns import select_layers

    return select_layers(names, patterns, where)


def _from_store(store: ActivationStore, inputs: Any, layers: Any, sample: int, epoch: int | None,
                data: Any) -> FeatureMaps:
    if not 0 <= int(sample) < store.n_samples:
        raise AnalysisError(f"sample={sample} is out of range: the store holds {store.n_samples} samples"
                            f" (0..{store.n_samples - 1}).")
    names = _map_layers_of_store(store) if layers is None else _match(store.layers, layers, f"the store {store.path}")
    if not names:
        raise LayerError(
            f"The store {store.path} holds no [C, H, W] feature maps (layer shapes:"
            f" {({n: store.unit_shape(n) for n in store.layers})}); capture conv layers without reduce=.")
    bad = {n: store.unit_shape(n) for n in names if len(store.unit_shape(n)) != 3}
    if bad:
        raise LayerError(f"Layers {bad} are not [C, H, W] maps in the store; feature maps need conv"
                         " outputs captured without reduce= (choose conv layers).")
    maps = {n: np.asarray(store.activations(n, epoch)[int(sample)], dtype=np.float32) for n in names}
    table = store.sample_table(epoch)
    row = table.iloc[int(sample)]
    label = str(row["label_name"]) if "label_name" in table else None
    image = None
    if inputs is not None:
        image = np.asarray(inputs, dtype=np.float32)
        image = image[int(sample)] if image.ndim == 4 else image
    elif data is not None:
        index = int(row["index"]) if "index" in table else int(sample)
        where = np.flatnonzero(np.asarray(data.index) == index)
        if len(where) == 0:
            raise AnalysisError(f"Sample index {index} (store row {sample}) is not in the data set"
                                f" {getattr(data, 'name', '')!r}; pass the data the store was captured from.")
        image = np.asarray(data.inputs[int(where[0])], dtype=np.float32)
    return FeatureMaps(maps, image, int(sample), label, "store")


def _from_model(model: nn.Module, inputs: Any, layers: Any, sample: int,
                device: str | torch.device | None) -> FeatureMaps:
    from neuralatlas.capture.hooks import hooks, resolve_layers
    from neuralatlas.capture.loop import pick_device
    from neuralatlas.featurevis.taps import as_batch

    if inputs is None:
        raise AnalysisError("feature_maps(model, ...) needs inputs: an image [C, H, W] or a batch.")
    batch = as_batch(inputs, "inputs")
    if not 0 <= int(sample) < batch.shape[0]:
        raise AnalysisError(f"sample={sample} is out of range for a batch of {batch.shape[0]} inputs.")
    x = batch[int(sample): int(sample) + 1]
    if layers is None:
        names = [n for n, m in model.named_modules() if n and isinstance(m, _MAP_MODULES)]
        if not names:
            raise LayerError(f"{type(model).__name__} has no Conv2d layers; name the layers to show with layers=.")
    else:
        names = resolve_layers(model, layers)
    dev = pick_device(device)
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    with hooks(model, names, repeated="first") as rec, torch.no_grad():
        model.eval()
        model.to(dev)
        model(x.to(dev, dtype))
        outs = {n: rec.outputs[n] for n in names}
    bad = {n: tuple(t.shape[1:]) for n, t in outs.items() if t.dim() != 4}
    if bad:
        raise LayerError(f"Layers {bad} do not output [C, H, W] maps; choose conv layers.")
    maps = {n: t[0].float().cpu().numpy() for n, t in outs.items()}
    return FeatureMaps(maps, x[0].numpy(), int(sample), None, "model")
