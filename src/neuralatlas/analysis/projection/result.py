"""The projection results: samples (:class:`Projection`) and neurons (:class:`NeuronProjection`) as points."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from neuralatlas.analysis.projection.sources import Key
from neuralatlas.analysis.projection.trails import bundle_trails, smooth_trails
from neuralatlas.errors import AnalysisError, LayerError, StoreError, did_you_mean
from neuralatlas.results import Result, jsonable, read_json, safe_name, write_json


# ================================================================ the result
class Projection(Result):
    """Coordinates of one sample subset for every (layer, epoch), with quality scores.

    Attributes
    ----------
    coordinates : dict {(layer, epoch): array [n, 2]}
        ``epoch`` is ``None`` for a store's final model.
    rows : array [n]
        Positions of the subset in the store.
    index : array [n]
        The samples' ``index`` column (position in the original data set).
    labels : array [n]
    predictions : dict {epoch: array [n]}
        Predicted classes at each epoch (``-1`` where the store has none).
    quality : dict {(layer, epoch): {"neighborhood_hit": float, "trustworthiness": float}}
    classes : list of str
    method : str
    params : dict
        Everything needed to reproduce it (``n``, ``seed``, ``align``, ``perplexity``, ...).
    """

    kind: ClassVar[str] = "projection"

    def __init__(self, coordinates: Mapping[Key, np.ndarray], *, rows: np.ndarray, index: np.ndarray,
                 labels: np.ndarray, predictions: Mapping[int | None, np.ndarray] | None = None,
                 quality: Mapping[Key, Mapping[str, float]] | None = None, classes: Sequence[str] = (),
                 method: str = "tsne", params: Mapping[str, Any] | None = None):
        self.coordinates = {(str(k[0]), _epoch(k[1])): np.asarray(v, np.float64) for k, v in coordinates.items()}
        self.rows = np.asarray(rows, np.int64)
        self.index = np.asarray(index, np.int64)
        self.labels = np.asarray(labels, np.int64)
        self.predictions = {_epoch(e): np.asarray(p, np.int64) for e, p in (predictions or {}).items()}
        self.quality = {(str(k[0]), _epoch(k[1])): dict(v) for k, v in (quality or {}).items()}
        self.classes = list(classes)
        self.method = method
        self.params = dict(params or {})

    # -------------------------------------------------------------- access
    @property
    def layers(self) -> list[str]:
        """The projected layers, in order."""
        return list(dict.fromkeys(k[0] for k in self.coordinates))

    @property
    def epochs(self) -> list[int | None]:
        """The projected epochs, in order (None: the final model)."""
        return list(dict.fromkeys(k[1] for k in self.coordinates))

    @property
    def n(self) -> int:
        """The number of projected samples."""
        return len(self.rows)

    def _key(self, layer: str | None, epoch: int | None | str = "any") -> Key:
        if layer is None:
            if len(self.layers) != 1:
                raise LayerError(f"This projection holds layers {self.layers}; name one (layer=...).")
            layer = self.layers[0]
        if layer not in self.layers:
            raise LayerError(f"Layer {layer!r} was not projected.{did_you_mean(layer, self.layers)}"
                             f" Layers projected: {', '.join(self.layers)}.")
        have = [k[1] for k in self.coordinates if k[0] == layer]
        if epoch == "any":
            if len(have) != 1:
                raise AnalysisError(f"Layer {layer!r} was projected at epochs {have}; name one (epoch=...).")
            epoch = have[0]
        if (layer, epoch) not in self.coordinates:
            raise StoreError(f"Layer {layer!r} was not projected at epoch {epoch}; epochs projected: {have}.")
        return layer, _epoch(epoch)

    def __getitem__(self, key: str | Key) -> np.ndarray:
        if isinstance(key, tuple):
            return self.coordinates[self._key(*key)]
        return self.coordinates[self._key(key)]

    def prediction(self, epoch: int | None) -> np.ndarray:
        """Predicted classes at ``epoch`` (``-1`` when unknown)."""
        return self.predictions.get(_epoch(epoch), np.full(self.n, -1, np.int64))

    def sequence(self, along: str = "layers", *, layer: str | None = None,
                 epoch: int | None | str = "any") -> tuple[list[Key], list[np.ndarray]]:
        """The keys and coordinates of an inter-layer (one epoch) or inter-epoch (one layer) sequence."""
        if along == "layers":
            if epoch == "any":
                if len(self.epochs) != 1:
                    raise AnalysisError(
                        f"Projected at epochs {self.epochs}; pick one for the inter-layer sequence (epoch=...)."
                    )
                epoch = self.epochs[0]
            keys = [(name, _epoch(epoch)) for name in self.layers if (name, _epoch(epoch)) in self.coordinates]
            if not keys:
                raise StoreError(f"No layer was projected at epoch {epoch}; epochs projected: {self.epochs}.")
        elif along == "epochs":
            if layer is None:
                if len(self.layers) != 1:
                    raise LayerError(
                        f"Name the layer to follow over epochs (layer=...); layers projected: {self.layers}."
                    )
                layer = self.layers[0]
            if layer not in self.layers:
                raise LayerError(f"Layer {layer!r} was not projected.{did_you_mean(layer, self.layers)}"
                                 f" Layers projected: {', '.join(self.layers)}.")
            keys = [k for k in self.coordinates if k[0] == layer]
            if len(keys) < 2:
                raise StoreError(
                    f"Layer {layer!r} was projected at {len(keys)} epoch(s); an inter-epoch sequence needs"
                    " two or more: project(store, epochs='all') on a store captured with checkpoints=RUN_DIR."
                )
            keys.sort(key=lambda k: -1 if k[1] is None else k[1])
        else:
            raise AnalysisError(f"along={along!r} is not known; choose 'layers' or 'epochs'.")
        return keys, [self.coordinates[k] for k in keys]

    def trails(self, along: str = "layers", *, layer: str | None = None, epoch: int | None | str = "any",
               samples_per_segment: int = 12, bundle: bool = False,
               **bundle_options: Any) -> tuple[np.ndarray, np.ndarray]:
        """One smooth curve per sample through its positions along a sequence.

        Returns
        -------
        paths : array [n, m, 2]
            Smooth curves through the positions (bundled with :func:`bundle_trails`
            when ``bundle=True``, each class on its own so bundles keep their hue).
        depth : array [m]
            Position along the sequence of every curve vertex, 0 (first) to 1 (last).
        """
        _, coords = self.sequence(along, layer=layer, epoch=epoch)
        anchors = np.stack(coords, axis=1)                          # [n, L, 2]
        paths = smooth_trails(anchors, samples_per_segment)
        if bundle:
            bundle_options.setdefault("groups", self.labels)
            paths = bundle_trails(paths, anchor_every=samples_per_segment, **bundle_options)
        depth = np.linspace(0.0, 1.0, paths.shape[1])
        return paths, depth

    def quality_table(self) -> pd.DataFrame:
        """One row per (layer, epoch): neighbourhood hit and trustworthiness."""
        rows = [{"layer": k[0], "epoch": k[1], **self.quality.get(k, {})} for k in self.coordinates]
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """Headline numbers (what ``summary.json`` holds)."""
        table = self.quality_table()
        out: dict[str, Any] = {"method": self.method, "n": self.n, "layers": self.layers,
                               "epochs": self.epochs, "scores": table.to_dict(orient="records")}
        if "neighborhood_hit" in table and len(table):
            best = table.loc[table["neighborhood_hit"].idxmax()]
            out["best"] = {"layer": best["layer"], "epoch": _epoch(best["epoch"]),
                           "neighborhood_hit": float(best["neighborhood_hit"])}
        return jsonable(out)

    def to_frame(self) -> pd.DataFrame:
        """The quality scores, one row per (layer, epoch) (:meth:`quality_table`)."""
        return self.quality_table()

    # -------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``coordinates.npz``, ``projection.json`` and ``summary.json`` into ``directory``.

        Use ``RUN_DIR/results/projection`` for a run (the CLI and report look there).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        keys = list(self.coordinates)
        pred_epochs = list(self.predictions)
        np.savez(directory / "coordinates.npz",
                 coordinates=np.stack([self.coordinates[k] for k in keys]) if keys else np.zeros((0, self.n, 2)),
                 rows=self.rows, index=self.index, labels=self.labels,
                 predictions=np.stack([self.predictions[e] for e in pred_epochs]) if pred_epochs
                 else np.zeros((0, self.n), np.int64))
        meta = {"format": "neuralatlas.projection/1", "keys": [list(k) for k in keys],
                "prediction_epochs": pred_epochs, "quality": [self.quality.get(k, {}) for k in keys],
                "classes": self.classes, "method": self.method, "params": self.params}
        write_json(directory / "projection.json", meta, kind=self.kind, version=self.format_version)
        self.write_summary(directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Projection:
        """Read what :meth:`save` wrote (a ``results/projection`` folder, or a run folder)."""
        directory = Path(directory)
        if not (directory / "projection.json").exists() and (directory / "results" / "projection").is_dir():
            directory = directory / "results" / "projection"
        meta = cls.read_json(cls._required(directory, "projection.json", "coordinates.npz", what="projection",
                                           fix="run neuralatlas project RUN_DIR first"))
        with np.load(directory / "coordinates.npz") as npz:
            arrays = {name: npz[name] for name in npz.files}
        keys = [(k[0], _epoch(k[1])) for k in meta["keys"]]
        return cls(
            dict(zip(keys, arrays["coordinates"], strict=True)),
            rows=arrays["rows"],
            index=arrays["index"],
            labels=arrays["labels"],
            predictions=dict(zip(meta["prediction_epochs"], arrays["predictions"], strict=True)),
            quality=dict(zip(keys, map(_scores, meta["quality"]), strict=True)),
            classes=meta["classes"],
            method=meta["method"],
            params=meta["params"],
        )

    def __repr__(self) -> str:
        return (f"Projection(method={self.method!r}, n={self.n}, layers={self.layers}, epochs={self.epochs})")

    def _repr_html_(self) -> str:
        # pandas escapes the layer names in the table; the header is escaped here
        return (f"<div class='neuralatlas-result'><b>Projection</b> ({html.escape(str(self.method))},"
                f" {self.n} samples)"
                + self.quality_table().to_html(index=False, float_format=lambda v: f"{v:.3f}") + "</div>")


def _epoch(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return int(value)


def _scores(values: Mapping[str, Any]) -> dict[str, float]:
    """Quality scores as read back: strict JSON wrote an undefined score (NaN) as null."""
    return {k: float("nan") if v is None else v for k, v in values.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


# ================================================================ neurons as points
class NeuronProjection(Result):
    """The neurons of one layer as 2-D points, placed by the correlation of their activations.

    Attributes
    ----------
    coordinates : array [n_neurons, 2]
    layer : str
    epoch : int or None
    dead : array [n_neurons] of bool
        Neurons constant over the samples (no correlation defined; drawn apart).
    quality : dict
        ``trustworthiness`` with respect to the correlation distance.
    method : str
    params : dict
    """

    kind: ClassVar[str] = "neuron_projection"

    def __init__(self, coordinates: np.ndarray, *, layer: str, epoch: int | None = None,
                 dead: np.ndarray | None = None, quality: Mapping[str, float] | None = None,
                 method: str = "tsne", params: Mapping[str, Any] | None = None):
        self.coordinates = np.asarray(coordinates, np.float64)
        self.layer = layer
        self.epoch = _epoch(epoch)
        self.dead = np.zeros(len(self.coordinates), bool) if dead is None else np.asarray(dead, bool)
        self.quality = dict(quality or {})
        self.method = method
        self.params = dict(params or {})

    @property
    def n_neurons(self) -> int:
        """The number of projected neurons."""
        return len(self.coordinates)

    @property
    def stem(self) -> str:
        """The file stem of this layer (and epoch): ``neurons_<layer>[_epoch<k>]``."""
        return "neurons_" + safe_name(self.layer) + ("" if self.epoch is None else f"_epoch{self.epoch}")

    def summary(self) -> dict[str, Any]:
        """Layer, epoch, neuron counts, trustworthiness and the settings."""
        return {"layer": self.layer, "epoch": self.epoch, "n_neurons": self.n_neurons,
                "n_dead": int(self.dead.sum()), "method": self.method, "quality": dict(self.quality),
                "params": dict(self.params)}

    def to_frame(self) -> pd.DataFrame:
        """One row per neuron: its coordinates and whether it is dead."""
        return pd.DataFrame({"neuron": np.arange(self.n_neurons), "x": self.coordinates[:, 0],
                             "y": self.coordinates[:, 1], "dead": self.dead})

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``neurons_<layer>.npz`` and ``.json`` into ``directory`` (one folder holds every layer's)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / f"{self.stem}.npz", coordinates=self.coordinates, dead=self.dead)
        meta = {"layer": self.layer, "epoch": self.epoch, "quality": self.quality, "method": self.method,
                "params": self.params}
        write_json(directory / f"{self.stem}.json", meta, kind=self.kind, version=self.format_version)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str], layer: str | None = None,
             epoch: int | None = None) -> NeuronProjection:
        """Read what :meth:`save` wrote: from ``directory`` (``layer=`` picks one of several), or an ``.npz`` path.

        Raises
        ------
        StoreError
            No neuron projection there, or several and ``layer`` not given (the message lists them).
        """
        path = Path(directory)
        if path.suffix == ".npz":
            json_path = path.with_suffix(".json")
        else:
            found = sorted(path.glob("neurons_*.json"))
            metas = {f: read_json(f, kind=cls.kind, version=cls.format_version) for f in found}
            if layer is not None:
                metas = {f: m for f, m in metas.items() if m.get("layer") == layer
                         and (epoch is None or m.get("epoch") == epoch)}
            if len(metas) != 1:
                layers = sorted({f"{m.get('layer')}" + ("" if m.get("epoch") is None else f"@{m['epoch']}")
                                 for m in (read_json(f) for f in found)})
                what = "No" if not metas else f"{len(metas)}"
                raise StoreError(f"{what} neuron projections{'' if layer is None else f' of {layer!r}'} in {path};"
                                 + (f" name one with layer= (there: {', '.join(layers)})." if layers else
                                    " save one with NeuronProjection.save(directory) first."))
            json_path = next(iter(metas))
        cls._required(json_path.parent, json_path.name, json_path.with_suffix(".npz").name, what="neuron projection",
                      fix="save one with NeuronProjection.save(directory)")
        meta = read_json(json_path, kind=cls.kind, version=cls.format_version)
        with np.load(json_path.with_suffix(".npz")) as npz:
            return cls(npz["coordinates"], dead=npz["dead"], layer=meta["layer"], epoch=meta["epoch"],
                       quality=_scores(meta["quality"]), method=meta["method"], params=meta["params"])

    def __repr__(self) -> str:
        return f"NeuronProjection(layer={self.layer!r}, n_neurons={self.n_neurons}, method={self.method!r})"


_safe = safe_name  # file names from layer names: the one rule of neuralatlas.results
