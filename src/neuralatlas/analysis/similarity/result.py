"""The similarity results: matrices (CKA, RSA), probes, and everything of one run."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from neuralatlas.errors import LayerError, did_you_mean
from neuralatlas.results import Result, read_json, write_json


@dataclass
class SimilarityMatrix(Result):
    """A matrix of similarities: rows and columns are layers (or epochs) of one or two stores.

    Attributes
    ----------
    values : ndarray ``[len(rows), len(cols)]``
    rows, cols : list of str
        Labels of the rows and columns (layer names, or ``"epoch 3"``).
    measure : str
        ``"linear_cka"``, ``"debiased_linear_cka"``, ``"rbf_cka"`` or ``"rsa"``.
    row_axis, col_axis : str
        What the labels are (``"layer"``, ``"epoch"``, or a model/run name).
    title : str
    notes : list of str
        How values were estimated when not exact (subsamples, fallbacks).
    method : str
        How they were computed: ``"feature"`` (streamed feature space), ``"gram"`` (n×n
        Grams of every sample), ``"gram-subsample"``, or a combination joined by ``+``.
    """

    kind: ClassVar[str] = "similarity_matrix"

    values: np.ndarray
    rows: list[str]
    cols: list[str]
    measure: str
    row_axis: str = "layer"
    col_axis: str = "layer"
    title: str = ""
    notes: list[str] = field(default_factory=list)
    method: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The matrix as a labelled DataFrame."""
        return pd.DataFrame(self.values, index=pd.Index(self.rows, name=self.row_axis),
                            columns=pd.Index(self.cols, name=self.col_axis))

    def __getitem__(self, key: tuple[str, str]) -> float:
        r, c = key
        for label, labels in ((r, self.rows), (c, self.cols)):
            if label not in labels:
                raise LayerError(f"{label!r} is not a row/column of this matrix.{did_you_mean(str(label), labels)}"
                                 f" Labels: {', '.join(labels)}.")
        return float(self.values[self.rows.index(r), self.cols.index(c)])

    def _repr_html_(self) -> str:
        # pandas escapes the labels; the title may hold a layer or run name too
        return (f"<div class='neuralatlas-result'><b>{html.escape(self.title or self.measure)}</b>"
                + self.to_frame().round(3).to_html() + "</div>")

    def as_json(self) -> dict[str, Any]:
        """The labels and settings (everything but the values), as plain JSON types."""
        return {"measure": self.measure, "rows": list(self.rows), "cols": list(self.cols),
                "row_axis": self.row_axis, "col_axis": self.col_axis, "title": self.title,
                "notes": list(self.notes), "method": self.method}

    def summary(self) -> dict[str, Any]:
        """Labels, settings and the range of the values (off the diagonal for a layer × layer matrix)."""
        out: dict[str, Any] = self.as_json()
        values = np.asarray(self.values, np.float64)
        if list(self.rows) == list(self.cols) and len(self.rows) > 1:
            values = values[~np.eye(len(self.rows), dtype=bool)]
        finite = values[np.isfinite(values)]
        out["min"] = float(finite.min()) if finite.size else None
        out["max"] = float(finite.max()) if finite.size else None
        out["mean"] = float(finite.mean()) if finite.size else None
        return out

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``matrix.npz`` (the values) and ``matrix.json`` (labels, settings) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "matrix.npz", values=np.asarray(self.values))
        write_json(directory / "matrix.json", self.as_json(), kind=self.kind, version=self.format_version)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SimilarityMatrix:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        meta = cls.read_json(cls._required(directory, "matrix.json", "matrix.npz", what="similarity matrix",
                                           fix="save one with SimilarityMatrix.save(directory) first"))
        with np.load(directory / "matrix.npz") as arrays:
            return cls._from_meta(arrays["values"], meta)

    @classmethod
    def _from_meta(cls, values: np.ndarray, m: Mapping[str, Any]) -> SimilarityMatrix:
        return cls(np.asarray(values), list(m["rows"]), list(m["cols"]), m["measure"], m["row_axis"],
                   m["col_axis"], m["title"], list(m["notes"]), m.get("method", ""))


# ============================================================================ probes
@dataclass
class ProbeResult(Result):
    """Cross-validated linear-probe accuracy per layer.

    Attributes
    ----------
    layers : list of str
        In model order (depth).
    accuracy, std : ndarray
        Mean and standard deviation over the folds.
    n_features : list of int
        Width of each layer (after pooling).
    n_components : list of int or None
        PCA components the probe saw (None: no reduction).
    chance : float
        Accuracy of always guessing the most frequent class.
    cv, n_samples, seed : int
    """

    kind: ClassVar[str] = "probes"

    layers: list[str]
    accuracy: np.ndarray
    std: np.ndarray
    n_features: list[int]
    n_components: list[int | None]
    chance: float
    cv: int
    n_samples: int
    seed: int = 0
    name: str = ""

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: accuracy, its standard deviation and the probe's input size."""
        return pd.DataFrame({"layer": self.layers, "accuracy": self.accuracy, "std": self.std,
                             "n_features": self.n_features, "n_components": self.n_components})

    def __getitem__(self, layer: str) -> float:
        if layer not in self.layers:
            raise LayerError(f"No probe of {layer!r}.{did_you_mean(layer, self.layers)}"
                             f" Layers probed: {', '.join(self.layers)}.")
        return float(self.accuracy[self.layers.index(layer)])

    def as_json(self) -> dict[str, Any]:
        """The result as plain JSON types."""
        return {"layers": list(self.layers), "accuracy": [float(a) for a in self.accuracy],
                "std": [float(s) for s in self.std], "n_features": [int(k) for k in self.n_features],
                "n_components": [None if c is None else int(c) for c in self.n_components],
                "chance": float(self.chance), "cv": int(self.cv), "n_samples": int(self.n_samples),
                "seed": int(self.seed), "name": self.name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeResult:
        """The result from :meth:`as_json`'s output."""
        return cls(
            list(data["layers"]),
            np.asarray(data["accuracy"], float),
            np.asarray(data["std"], float),
            list(data["n_features"]),
            list(data["n_components"]),
            float("nan") if data["chance"] is None else float(data["chance"]),
            int(data["cv"]),
            int(data["n_samples"]),
            int(data.get("seed", 0)),
            data.get("name", ""),
        )

    def _repr_html_(self) -> str:
        title = "linear probes" + (f" of {self.name}" if self.name else "")
        return (f"<div class='neuralatlas-result'><b>{html.escape(title)}</b>"
                + self.to_frame().round(3).to_html(index=False) + "</div>")

    def summary(self) -> dict[str, Any]:
        """Accuracy per layer, chance, the best layer and the settings."""
        accuracy = {layer: _num(a) for layer, a in zip(self.layers, self.accuracy, strict=True)}
        finite = [(a, layer) for layer, a in accuracy.items() if a is not None]
        best = max(finite)[1] if finite else None
        return {"name": self.name, "accuracy": accuracy, "chance": _num(self.chance), "best_layer": best,
                "best_accuracy": accuracy[best] if best is not None else None, "cv": int(self.cv),
                "n_samples": int(self.n_samples), "seed": int(self.seed)}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``probes.json`` into ``directory``; return it."""
        directory = Path(directory)
        write_json(directory / "probes.json", self.as_json(), kind=self.kind, version=self.format_version)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ProbeResult:
        """Read what :meth:`save` wrote (not the ``probes.json`` of a :class:`SimilarityResult`)."""
        path = cls._required(directory, "probes.json", what="probes", fix="save them with ProbeResult.save first")
        return cls.from_json(cls.read_json(path))


# ============================================================================ the whole analysis
@dataclass
class SimilarityResult(Result):
    """Everything :func:`similarity` computed for a run: named matrices and probes.

    Attributes
    ----------
    matrices : dict of str to SimilarityMatrix
        ``"linear_cka"``, ``"rbf_cka"``, ``"rsa"`` (layer × layer), ``"epoch_cka/<layer>"``
        (epoch × epoch), ``"linear_cka_vs_other"`` and ``"rsa_vs_other"`` (model vs model).
    probes : ProbeResult or None
    other_probes : ProbeResult or None
        Probes of the other model, when one was compared.
    info : dict
        Store paths, sample count, settings.
    """

    kind: ClassVar[str] = "similarity"

    matrices: dict[str, SimilarityMatrix] = field(default_factory=dict)
    probes: ProbeResult | None = None
    other_probes: ProbeResult | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def epoch_matrices(self) -> dict[str, SimilarityMatrix]:
        """The epoch×epoch matrices by layer name."""
        return {k.split("/", 1)[1]: m for k, m in self.matrices.items() if k.startswith("epoch_cka/")}

    def summary(self) -> dict[str, Any]:
        """Headline numbers (JSON-ready): adjacent-layer CKA, epoch change, probes, best matches."""
        out: dict[str, Any] = {**self.info}
        lin = self.matrices.get("linear_cka")
        if lin is not None:
            out["adjacent_layer_cka"] = {f"{a} → {b}": _num(lin.values[i, i + 1])
                                         for i, (a, b) in enumerate(pairwise(lin.rows))}
        for key in ("rbf_cka", "rsa"):
            mat = self.matrices.get(key)
            if mat is not None and len(mat.rows) > 1:
                off = mat.values[~np.eye(len(mat.rows), dtype=bool)]
                out[f"{key}_mean_between_layers"] = _num(np.nanmean(off)) if np.isfinite(off).any() else None
        epochs = self.epoch_matrices
        if epochs:
            out["cka_first_vs_last_epoch"] = {layer: _num(m.values[0, -1]) for layer, m in epochs.items()}
        for key in ("linear_cka_vs_other", "rsa_vs_other"):
            cross = self.matrices.get(key)
            if cross is not None:
                best = {}
                for i, layer in enumerate(cross.rows):
                    row = cross.values[i]
                    if np.isfinite(row).any():
                        j = int(np.nanargmax(row))
                        best[layer] = {"layer": cross.cols[j], "value": _num(row[j])}
                out[f"{key}_best_match"] = best
        for key, probes in (("probe_accuracy", self.probes), ("other_probe_accuracy", self.other_probes)):
            if probes is not None:
                out[key] = {layer: _num(a) for layer, a in zip(probes.layers, probes.accuracy, strict=True)}
                out[key.replace("accuracy", "chance")] = _num(probes.chance)
        notes = sorted({note for m in self.matrices.values() for note in m.notes})
        if notes:
            out["notes"] = notes
        return out

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``matrices.npz``, ``matrices.json``, ``probes.json`` and ``summary.json``; return ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {f"m{i}": m.values for i, m in enumerate(self.matrices.values())}
        meta = {key: {**m.as_json(), "array": f"m{i}"} for i, (key, m) in enumerate(self.matrices.items())}
        np.savez(directory / "matrices.npz", **arrays)
        write_json(directory / "matrices.json", meta, kind=self.kind, version=self.format_version, indent=2)
        probes = {k: p.as_json() for k, p in (("probes", self.probes), ("other_probes", self.other_probes))
                  if p is not None}
        write_json(directory / "probes.json", probes, kind=self.kind, version=self.format_version, indent=2)
        self.write_summary(directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SimilarityResult:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        cls._required(directory, "matrices.json", "matrices.npz", what="similarity results",
                      fix="run `neuralatlas similarity RUN_DIR` or similarity(...).save(dir) first")
        version = cls.format_version
        meta = read_json(directory / "matrices.json", kind=cls.kind, version=version)
        with np.load(directory / "matrices.npz") as arrays:
            matrices = {key: SimilarityMatrix._from_meta(arrays[m["array"]], m) for key, m in meta.items()}
        # the summary's kind is not required: a run-folder step may rewrite it with its own tag
        summary = read_json(directory / "summary.json") if (directory / "summary.json").exists() else {}
        if (directory / "probes.json").exists():
            probes = read_json(directory / "probes.json", kind=cls.kind, version=version)
        elif "probe_accuracy" in summary or "other_probe_accuracy" in summary:  # lost since: not "no probes"
            cls._required(directory, "probes.json", what="similarity probes (the summary lists their accuracy)",
                          fix="save the result again with similarity(...).save(dir)")
        else:  # older runs without probes wrote no probes.json
            probes = {}
        info: dict[str, Any] = {k: summary[k] for k in ("store", "other", "n_samples", "layers", "settings")
                                if k in summary}
        return cls(matrices,
                   ProbeResult.from_json(probes["probes"]) if "probes" in probes else None,
                   ProbeResult.from_json(probes["other_probes"]) if "other_probes" in probes else None,
                   info)

    def _repr_html_(self) -> str:
        parts = [f"<div class='neuralatlas-result'><b>Similarity</b>"
                 f" ({html.escape(str(self.info.get('n_samples', '?')))} samples):"
                 f" {html.escape(', '.join(self.matrices))}</div>"]
        if "linear_cka" in self.matrices:
            parts.append(self.matrices["linear_cka"]._repr_html_())
        if self.probes is not None:
            parts.append(self.probes._repr_html_())
        return "".join(parts)


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
