"""Projections of hidden activity: samples and neurons as 2-D points (Rauber et al. 2017).

Rauber, Fadel, Falcão and Telea, "Visualizing the hidden activity of artificial neural
networks", IEEE TVCG 23(1), 2017, project the activations of a layer (one point per
sample) with t-SNE and follow the same samples from layer to layer and from epoch to
epoch. This module does that from an :class:`~neuralatlas.store.ActivationStore` (or from
plain arrays) for any model:

* :func:`project` embeds every requested (layer, epoch) of one seeded, class-stratified
  subset of samples, so a point can be followed through the network and through training.
  With ``align=True`` each embedding starts from the previous one in the sequence and is
  then rotated/reflected onto it (orthogonal Procrustes), so movement on screen is
  movement of the representation, not an arbitrary rotation of the picture.
* Every embedding is scored: neighbourhood hit (``k = 6``, as in the paper) and
  trustworthiness (:mod:`neuralatlas.analysis.quality`).
* :meth:`Projection.trails` turns a sequence into one smooth curve per sample (monotone
  cubic through its positions), optionally bundled with :func:`bundle_trails`, a vectorised
  kernel-density edge bundling (after Hurter, Ersoy and Telea 2012).
* :func:`neuron_projection` places the neurons of a layer (conv channels, spatially
  pooled) by the correlation of their activations over the samples.

t-SNE is openTSNE; its gradient method and settings are picked by size
(:func:`tsne_settings`): Barnes-Hut below a few thousand points, where openTSNE's FFT
interpolation has a large fixed cost, FFT above, exact neighbours (on a 100-component PCA
for layers wider than 1,024 units). ``benchmarks/projection.py`` measures the choice
against scikit-learn.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes

from neuralatlas.analysis.quality import neighborhood_hit, trustworthiness
from neuralatlas.analysis.streaming import (BlockReduction, block_rows, flatten_samples, parse_memory_limit,
                                            pooled_shape, reduce_blocks)
from neuralatlas.errors import AnalysisError, LayerError, StoreError, did_you_mean
from neuralatlas.patterns import layer_matches

__all__ = [
    "INPUT",
    "METHODS",
    "NeuronProjection",
    "Projection",
    "bundle_trails",
    "correlation_factor",
    "correlation_profiles",
    "embed",
    "layer_matrix",
    "neuron_projection",
    "procrustes_align",
    "project",
    "smooth_trails",
    "stratified_subset",
    "streamed_pca",
    "tsne_settings",
    "tsne_threads",
]

METHODS = ("tsne", "umap", "pca")
INPUT = "input"          # name of the raw-input pseudo-layer
Key = tuple[str, Union[int, None]]
Progress = Callable[[int, int], None]
# An embedding handed to openTSNE as initialisation is rescaled to this standard deviation:
# openTSNE's own PCA/spectral initialisations use it, larger spreads converge poorly.
_INIT_STD = 1e-4


class _AtMost(int):
    """A default ``n`` that means "at most": the whole store when it holds fewer samples.

    An ``n`` the caller passes explicitly must fit in the store; this default does not
    need to, so ``project(store)`` works on a 450-sample store too.
    """

    def __repr__(self) -> str:
        return int.__repr__(self)


DEFAULT_N = _AtMost(2000)


# ================================================================ reading activations
class _Source:
    """Activations by (layer, epoch) from a store or from arrays, plus the sample table."""

    layers: list[str]
    epochs: list[int]
    n_samples: int
    labels: np.ndarray
    index: np.ndarray
    classes: list[str]
    where: str

    def read(self, layer: str, epoch: int | None, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predictions(self, epoch: int | None) -> np.ndarray | None:
        return None

    def epoch_invariant(self, layer: str) -> bool:
        return False

    # -------------------------------------------------------------- validation
    def resolve_layers(self, layers: str | Sequence[str] | None) -> list[str]:
        if layers is None:
            return list(self.layers)
        patterns = [layers] if isinstance(layers, str) else list(layers)
        if not patterns:
            raise LayerError(f"layers=[] selects nothing; pass layer names or None for all of {self.layers}.")
        picked: list[str] = []
        for pattern in patterns:
            if pattern in self.layers:
                hits = [pattern]
            else:
                hits = [name for name in self.layers if layer_matches(name, pattern)]
            if not hits:
                raise LayerError(
                    f"Layer {pattern!r} is not in {self.where}.{did_you_mean(pattern, self.layers)}"
                    f" Layers available: {', '.join(self.layers)}."
                )
            picked.extend(h for h in hits if h not in picked)
        return picked

    def resolve_epochs(self, epochs: int | str | Sequence[int] | None) -> list[int | None]:
        if epochs is None:
            return [self.final_epoch()]
        if isinstance(epochs, str):
            if epochs != "all":
                raise AnalysisError(f"epochs={epochs!r} is not understood; pass None, 'all', an int or a list of ints.")
            wanted = list(self.epochs)
        elif isinstance(epochs, (int, np.integer)):
            wanted = [int(epochs)]
        else:
            wanted = [int(e) for e in epochs]
        if not self.epochs:
            raise StoreError(
                f"{self.where} has no per-epoch activations, so epochs={epochs!r} cannot be projected."
                " Capture with checkpoints=RUN_DIR (as `neuralatlas capture RUN_DIR` does for a trained"
                " run) to record every epoch, or pass epochs=None for the final model."
            )
        missing = [e for e in wanted if e not in self.epochs]
        if missing or not wanted:
            raise StoreError(
                f"Epoch(s) {missing or wanted} not in {self.where}; epochs captured:"
                f" {', '.join(map(str, self.epochs))}."
            )
        return wanted

    def final_epoch(self) -> int | None:
        return None

    def subset(self, n: int | None, seed: int) -> np.ndarray:
        if n is None or (isinstance(n, _AtMost) and n >= self.n_samples):
            return np.arange(self.n_samples)
        if int(n) > self.n_samples:
            raise AnalysisError(
                f"n={int(n)} samples asked for, but {self.where} holds only {self.n_samples}."
                f" Pass n<={self.n_samples}, or n=None for all of them."
            )
        return stratified_subset(self.labels, int(n), seed)


class _StoreSource(_Source):
    def __init__(self, store: Any, inputs: np.ndarray | None = None, by: str | None = None):
        self.store = store
        self.where = f"the store {store.path}"
        self.layers = list(store.layers)
        self.inputs = None
        if inputs is not None:
            self.inputs = np.asarray(inputs)
            if len(self.inputs) != store.n_samples:
                raise AnalysisError(
                    f"inputs has {len(self.inputs)} rows but the store holds {store.n_samples} samples;"
                    " pass the raw inputs of exactly the captured samples, in the same order."
                )
            if INPUT in self.layers:
                raise AnalysisError(f"The store already has a layer named {INPUT!r}; do not pass inputs= too.")
            self.layers = [INPUT, *self.layers]
        self.epochs = list(store.epochs)
        self.n_samples = store.n_samples
        table = store.samples
        self.labels = np.asarray(table["label"], np.int64) if "label" in table else np.full(self.n_samples, -1)
        self.index = np.asarray(table["index"], np.int64) if "index" in table else np.arange(self.n_samples)
        self.classes = list(store.classes) or [str(c) for c in np.unique(self.labels[self.labels >= 0])]
        if by is not None:  # colour (and stratify) by any sample-table column: token, position, ...
            from neuralatlas.analysis.naps import group_codes

            self.labels, self.classes, _ = group_codes(table, by)

    def final_epoch(self) -> int | None:
        return self.store._resolve_epoch(None)

    def epoch_invariant(self, layer: str) -> bool:
        return layer == INPUT and self.inputs is not None

    def read(self, layer: str, epoch: int | None, rows: np.ndarray) -> np.ndarray:
        if self.epoch_invariant(layer):
            return self.inputs[rows]
        arr = self.store.activations(layer, epoch)
        if len(rows) == arr.shape[0] and np.array_equal(rows, np.arange(len(rows))):
            return np.asarray(arr[:])
        return np.asarray(arr.oindex[rows])   # reads only the chunks that hold the rows

    def predictions(self, epoch: int | None) -> np.ndarray | None:
        table = self.store.sample_table(epoch)
        return np.asarray(table["prediction"], np.int64) if "prediction" in table else None


class _ArraySource(_Source):
    def __init__(self, arrays: Mapping[str, np.ndarray], labels: Any, predictions: Any = None,
                 classes: Sequence[str] | None = None, inputs: np.ndarray | None = None):
        self.where = "the arrays given"
        data = {str(k): np.asarray(v) for k, v in arrays.items()}
        if inputs is not None:
            data = {INPUT: np.asarray(inputs), **data}
        if not data:
            raise AnalysisError("No arrays given; pass {layer: array [n_samples, ...]}.")
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) != 1:
            raise AnalysisError(f"The arrays have different numbers of samples: {lengths}; one row per sample in each.")
        self.data = data
        self.layers = list(data)
        self.epochs = []
        self.n_samples = next(iter(lengths.values()))
        if labels is None:
            raise AnalysisError("Arrays need labels=[...] (one class per sample) for the subset and the scores.")
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        if len(self.labels) != self.n_samples:
            raise AnalysisError(f"{len(self.labels)} labels for {self.n_samples} samples; give one per sample.")
        self.index = np.arange(self.n_samples)
        self._pred = None if predictions is None else np.asarray(predictions, np.int64).reshape(-1)
        n_classes = int(self.labels.max()) + 1 if self.n_samples else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]

    def read(self, layer: str, epoch: int | None, rows: np.ndarray) -> np.ndarray:
        return self.data[layer][rows]

    def predictions(self, epoch: int | None) -> np.ndarray | None:
        return self._pred


def _source(data: Any, *, labels: Any = None, predictions: Any = None, classes: Sequence[str] | None = None,
            inputs: np.ndarray | None = None) -> _Source:
    from neuralatlas.store import ActivationStore

    if isinstance(data, _Source):
        return data
    if isinstance(data, (str, Path)):
        data = ActivationStore.locate(data)
    if isinstance(data, ActivationStore):
        return _StoreSource(data, inputs=inputs, by=labels if isinstance(labels, str) else None)
    if isinstance(data, Mapping):
        return _ArraySource(data, labels, predictions, classes, inputs)
    if isinstance(data, np.ndarray):
        return _ArraySource({"activations": data}, labels, predictions, classes, inputs)
    raise AnalysisError(
        f"Cannot read activations from a {type(data).__name__}; pass an ActivationStore, a run folder,"
        " a {layer: array} mapping (with labels=) or one array [n_samples, ...] (with labels=)."
    )


def _flatten(block: np.ndarray, pool: str | None) -> np.ndarray:
    """Rows as float32 feature vectors: flattened, or one value per channel for ``[n, C, *spatial]``."""
    return flatten_samples(np.asarray(block, np.float32), pool)


def layer_matrix(data: Any, layer: str, epoch: int | None = None, rows: np.ndarray | None = None, *,
                 pool: str | None = None, inputs: np.ndarray | None = None) -> np.ndarray:
    """One layer's activations as a ``[n_rows, n_features]`` float32 matrix.

    Parameters
    ----------
    data : ActivationStore, run folder, or {layer: array}
    layer : str
        Layer name (``"input"`` for the raw inputs passed as ``inputs=``).
    epoch : int, optional
        Checkpoint epoch; ``None`` for the final model.
    rows : array of int, optional
        Store row positions to read (default: all).
    pool : None, "mean" or "max"
        ``None`` flattens conv maps (one feature per unit); ``"mean"``/``"max"`` pools each
        channel over its spatial positions (one feature per channel).

    Example
    -------
    >>> layer_matrix({"fc": np.ones((4, 3))}, "fc").shape
    (4, 3)
    """
    src = _source(data, labels=np.zeros(_n_rows(data), np.int64) if isinstance(data, Mapping) else None,
                  inputs=inputs)
    layer = src.resolve_layers([layer])[0]
    rows = np.arange(src.n_samples) if rows is None else np.asarray(rows, np.int64)
    return _flatten(src.read(layer, epoch, rows), pool)


def _n_rows(data: Mapping[str, Any]) -> int:
    return len(next(iter(data.values()))) if data else 0


# ================================================================ subsets and alignment
def stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of ``n`` samples drawn per class in proportion to the class sizes.

    Every class gets its share (largest remainders break the rounding); the same labels,
    ``n`` and ``seed`` always give the same positions, so a subset drawn once serves every
    layer and epoch.

    Example
    -------
    >>> stratified_subset(np.repeat([0, 1], [80, 20]), 10, seed=0).size
    10
    """
    labels = np.asarray(labels).reshape(-1)
    total = len(labels)
    if not 0 < n <= total:
        raise AnalysisError(f"n={n} samples cannot be drawn from {total}; choose 1 <= n <= {total}.")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (n / total)
    take = np.floor(quota).astype(np.int64)
    short = n - int(take.sum())
    if short:
        # the classes whose share lost the most to rounding get the leftover samples
        order = np.lexsort((rng.random(len(classes)), -(quota - take)))
        take[order[:short]] += 1
    # one random key per sample; the lowest keys inside each class are taken (no per-class loop)
    keys = rng.random(total)
    order = np.lexsort((keys, inverse))                    # grouped by class, random within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(total, np.int64)
    rank[order] = np.arange(total) - np.repeat(starts, counts)
    return np.flatnonzero(rank < take[inverse])


def procrustes_align(points: np.ndarray, reference: np.ndarray, *, scale: bool = False) -> np.ndarray:
    """Rotate (and reflect) ``points`` onto ``reference``; translate to its centre.

    Orthogonal Procrustes (``scipy.linalg.orthogonal_procrustes``): the orthogonal ``R``
    — rotations and reflections — minimising ``‖(P − p̄) R − (Q − q̄)‖``. With
    ``scale=True`` also the best uniform scale. Distances inside ``points`` are unchanged
    (unless scaled), so neighbourhoods and quality scores are too.

    Parameters
    ----------
    points, reference : array [n, d]
        The same ``n`` samples in two embeddings.
    scale : bool
        Also match the overall size.

    Returns
    -------
    array [n, d]

    Example
    -------
    >>> q = np.random.default_rng(0).normal(size=(50, 2))
    >>> p = q @ np.array([[0.0, 1.0], [1.0, 0.0]]) + 3.0     # a reflection, shifted
    >>> np.allclose(procrustes_align(p, q), q)
    True
    """
    p = np.asarray(points, np.float64)
    q = np.asarray(reference, np.float64)
    if p.shape != q.shape:
        raise AnalysisError(f"points {p.shape} and reference {q.shape} must have the same shape (same samples).")
    pc, qc = p - p.mean(0), q - q.mean(0)
    rotation, singular_sum = orthogonal_procrustes(pc, qc)
    out = pc @ rotation
    if scale:
        norm = float((pc ** 2).sum())
        out *= singular_sum / norm if norm > 0 else 1.0
    return out + q.mean(0)


# ================================================================ embedding one matrix
def tsne_settings(n: int, warm: bool = False) -> dict[str, Any]:
    """openTSNE settings for ``n`` points (measured in ``benchmarks/projection.py``).

    * ``n < 5,000``: Barnes-Hut (``theta=0.5``). openTSNE's FFT interpolation costs a
      grid of at least 50 intervals per axis whatever ``n`` is, which dominates at a few
      thousand points (plain openTSNE FFT is 2–3× slower than scikit-learn at 2,000);
      Barnes-Hut is ``O(n log n)`` with a small constant there. Measured crossover: about
      5,000 points (10,000 × 256: FFT 24 s, Barnes-Hut 37 s on one thread).
    * ``n >= 5,000``: FFT-accelerated interpolation, ``O(n)``.
    * neighbours: exact (scikit-learn) up to 20,000 points, Annoy beyond.
    * iterations: openTSNE's defaults (250 exaggerated + 500). A ``warm`` start (from the
      previous embedding of a sequence) already has the global layout that early
      exaggeration exists to build, so it gets 125 exaggerated iterations (same
      neighbourhood hit on the benchmark's 4-layer sequence, ~20 % less time).
    """
    return {
        "negative_gradient_method": "bh" if n < 5000 else "fft",
        "neighbors": "exact" if n <= 20000 else "annoy",
        "theta": 0.5,
        "early_exaggeration_iter": 125 if warm else 250,
        "n_iter": 500,
    }


def tsne_threads(n: int, n_jobs: int | None = None) -> int:
    """Threads for a t-SNE of ``n`` points: ``n_jobs`` when given, else 1 below 5,000 points, all cores above.

    A Barnes-Hut iteration on a few thousand points takes well under a millisecond, less
    than it costs to synchronise OpenMP threads on a machine whose cores are busy with
    other work (measured: 2 threads 5–10× slower than 1 on a loaded 2-core machine); the
    FFT method's larger iterations do gain from threads.
    """
    if n_jobs is not None:
        return int(n_jobs)
    return 1 if n < 5000 else -1


# Layers at most this wide are embedded as they are; wider ones (conv maps: 16 × 16 × 64 =
# 16,384 units) are first reduced to PCA_COMPONENTS principal components, or the exact
# neighbour search dominates. Measured on 2,000 × 512 activations: PCA to 50 components
# saves no time there and loses neighbourhood hit (0.45 vs 0.51), so narrow layers keep
# every unit.
PCA_ABOVE = 1024
PCA_COMPONENTS = 100


def _reduce(features: np.ndarray, pca_dims: int | str | None, seed: int) -> np.ndarray:
    """Centred features; reduced by PCA when wider than ``PCA_ABOVE`` ("auto") or ``pca_dims``.

    The quality scores are measured against this same matrix.
    """
    x = np.asarray(features, np.float32).reshape(len(features), -1)
    x = x - x.mean(0)
    if pca_dims == "auto":
        pca_dims = PCA_COMPONENTS if x.shape[1] > PCA_ABOVE else None
    elif pca_dims is not None and not isinstance(pca_dims, (int, np.integer)):
        raise AnalysisError(f"pca_dims={pca_dims!r} is not understood; pass 'auto', an int or None.")
    if pca_dims and x.shape[1] > pca_dims and len(x) > pca_dims:
        from sklearn.decomposition import PCA

        x = PCA(int(pca_dims), random_state=seed).fit_transform(x).astype(np.float32)
    return x


def embed(features: np.ndarray, method: str = "tsne", *, init: np.ndarray | None = None, seed: int = 0,
          perplexity: float = 30.0, n_jobs: int | None = None, pca_dims: int | str | None = "auto",
          settings: Mapping[str, Any] | None = None, metric: str = "euclidean") -> np.ndarray:
    """Embed the rows of ``features`` in 2-D (centred).

    Parameters
    ----------
    features : array [n, ...]
        One row per point (flattened). With ``metric="precomputed"``: a distance matrix.
    method : "tsne", "umap" or "pca"
    init : array [n, 2], optional
        Starting positions (the previous embedding of a sequence); t-SNE and UMAP start
        from it instead of their own initialisation. PCA ignores it.
    seed : int
        Seed of every random step; same seed, same coordinates.
    perplexity : float
        t-SNE perplexity (capped at ``(n − 1) / 3``); for UMAP, ``n_neighbors = 3·perplexity``.
    n_jobs : int, optional
        Threads for t-SNE (−1: all cores). Default: see :func:`tsne_threads`.
    pca_dims : "auto", int or None
        Reduce wider features to this many principal components first. ``"auto"``:
        100 components for layers wider than 1,024 units, none otherwise; ``None``: never.
    settings : mapping, optional
        Overrides of :func:`tsne_settings` (any ``openTSNE.TSNE`` argument).

    Returns
    -------
    array [n, 2], float64

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(60, 10))
    >>> embed(x, "pca").shape
    (60, 2)
    """
    if method not in METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}.")
    x = np.asarray(features) if metric == "precomputed" else _reduce(features, pca_dims, seed)
    n = len(x)
    if n < 5:
        raise AnalysisError(f"{n} points are too few to embed; at least 5 are needed.")
    if method == "pca":
        from sklearn.decomposition import PCA

        # exact axes: sklearn's "auto" picks a randomised solver from 500 rows, whose axes
        # wander when the top eigenvalues are close (flat spectra are common in hidden layers)
        solver = "full" if min(x.shape) <= 4096 else "randomized"
        out = (PCA(2, random_state=seed, svd_solver=solver).fit_transform(x.astype(np.float64)) if x.shape[1] >= 2
               else np.c_[x, np.zeros(n)])
        return out - out.mean(0)
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0 - 1e-6)))
    if method == "tsne":
        from openTSNE import TSNE

        opts = {**tsne_settings(n, warm=init is not None), **dict(settings or {})}
        if metric == "precomputed":
            opts["neighbors"] = "exact"
        start: Any = "pca" if metric != "precomputed" else "spectral"
        if init is not None:
            start = np.asarray(init, np.float64) - np.mean(init, axis=0)
            spread = float(np.std(start[:, 0]))
            start = start * (_INIT_STD / spread) if spread > 0 else start
        tsne = TSNE(perplexity=perp, initialization=start, n_jobs=tsne_threads(n, n_jobs), random_state=seed,
                    metric=metric, **opts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.asarray(tsne.fit(x), np.float64)
    else:
        from neuralatlas.analysis._umap import import_umap

        umap = import_umap()  # numba compiled once per machine, not per process
        kwargs: dict[str, Any] = dict(n_components=2, n_neighbors=int(max(2, min(3 * perp, n - 1))),
                                      random_state=seed, metric=metric)
        if init is not None:
            kwargs["init"] = np.asarray(init, np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.asarray(umap.UMAP(**kwargs).fit_transform(x), np.float64)
    return out - out.mean(0)


# ================================================================ the result
class Projection:
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
        return list(dict.fromkeys(k[0] for k in self.coordinates))

    @property
    def epochs(self) -> list[int | None]:
        return list(dict.fromkeys(k[1] for k in self.coordinates))

    @property
    def n(self) -> int:
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
                    raise AnalysisError(f"Projected at epochs {self.epochs}; pick one for the inter-layer sequence (epoch=...).")
                epoch = self.epochs[0]
            keys = [(name, _epoch(epoch)) for name in self.layers if (name, _epoch(epoch)) in self.coordinates]
            if not keys:
                raise StoreError(f"No layer was projected at epoch {epoch}; epochs projected: {self.epochs}.")
        elif along == "epochs":
            if layer is None:
                if len(self.layers) != 1:
                    raise LayerError(f"Name the layer to follow over epochs (layer=...); layers projected: {self.layers}.")
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
        return _jsonable(out)

    # -------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
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
        (directory / "projection.json").write_text(json.dumps(_jsonable(meta), indent=1))
        (directory / "summary.json").write_text(json.dumps(self.summary(), indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Projection:
        """Read what :meth:`save` wrote (a ``results/projection`` folder, or a run folder)."""
        directory = Path(directory)
        if not (directory / "projection.json").exists() and (directory / "results" / "projection").is_dir():
            directory = directory / "results" / "projection"
        if not (directory / "projection.json").exists():
            raise StoreError(f"No projection saved in {directory}; run neuralatlas project RUN_DIR first.")
        meta = json.loads((directory / "projection.json").read_text())
        with np.load(directory / "coordinates.npz") as npz:
            arrays = {name: npz[name] for name in npz.files}
        keys = [(k[0], _epoch(k[1])) for k in meta["keys"]]
        return cls(dict(zip(keys, arrays["coordinates"])), rows=arrays["rows"], index=arrays["index"],
                   labels=arrays["labels"], predictions=dict(zip(meta["prediction_epochs"], arrays["predictions"])),
                   quality=dict(zip(keys, meta["quality"])), classes=meta["classes"], method=meta["method"],
                   params=meta["params"])

    def __repr__(self) -> str:
        return (f"Projection(method={self.method!r}, n={self.n}, layers={self.layers}, epochs={self.epochs})")

    def _repr_html_(self) -> str:
        return (f"<div><b>Projection</b> ({self.method}, {self.n} samples)"
                + self.quality_table().to_html(index=False, float_format=lambda v: f"{v:.3f}") + "</div>")


def _epoch(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return int(value)


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


# ================================================================ the sequence
def _plan(layers: list[str], epochs: list[int | None]) -> list[tuple[Key, Key | None]]:
    """(key, predecessor) in computing order: epoch by epoch, layer by layer.

    The first epoch runs along the layers (layer l starts from layer l−1); every later
    epoch's layer starts from the same layer at the epoch before, so both the inter-layer
    and the inter-epoch sequences are chains of small, aligned steps.
    """
    plan: list[tuple[Key, Key | None]] = []
    for j, e in enumerate(epochs):
        for i, layer in enumerate(layers):
            if j > 0:
                prev: Key | None = (layer, epochs[j - 1])
            elif i > 0:
                prev = (layers[i - 1], e)
            else:
                prev = None
            plan.append(((layer, e), prev))
    return plan


def project(
    data: Any,
    layers: str | Sequence[str] | None = None,
    epochs: int | str | Sequence[int] | None = None,
    method: str = "tsne",
    n: int | None = DEFAULT_N,
    align: bool = True,
    seed: int = 0,
    *,
    perplexity: float = 30.0,
    pca_dims: int | str | None = "auto",
    n_jobs: int | None = None,
    quality: bool = True,
    k: int = 6,
    inputs: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    predictions: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    memory_limit: int | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> Projection:
    """Embed the activations of layers (and epochs) for one class-stratified sample subset.

    Parameters
    ----------
    data : ActivationStore, run folder, or {layer: array [n_samples, ...]}
        Where the activations are. Arrays need ``labels=``.
    layers : str or list of str, optional
        Layer names or glob patterns, in the order to follow; default every layer.
        ``"input"`` is the raw input when ``inputs=`` is given (or the store has such a layer).
    epochs : None, int, list of int, or "all"
        ``None``: the final model. A list or ``"all"`` needs a store captured per epoch.
    method : "tsne", "umap" or "pca"
    n : int or None
        Samples in the subset (stratified by class, seeded). The default takes at most
        2,000 (all of a smaller store); an explicit ``n`` larger than the store is an
        error; ``None`` takes every sample.
    align : bool
        Start each embedding from its predecessor in the sequence and rotate/reflect it onto
        that predecessor (orthogonal Procrustes). ``False``: independent embeddings.
    seed : int
        Seed of the subset and of every embedding; same seed, same coordinates.
    perplexity, pca_dims, n_jobs, settings
        Passed to :func:`embed`.
    quality : bool
        Score each embedding: neighbourhood hit (``k`` neighbours) and trustworthiness.
    k : int
        Neighbours of the neighbourhood hit (6 as in Rauber et al. 2017).
    inputs : array [n_samples, ...], optional
        The raw inputs of the stored samples: projected as the pseudo-layer ``"input"``.
    labels, predictions, classes : optional
        The sample table, for ``data`` given as arrays. For a store, ``labels`` may name a
        sample-table column to colour (and stratify) by instead of ``label``: ``"token"``,
        ``"position"``, ``"group"``, ...
    memory_limit, client
        ``method="pca"`` with ``n=None`` on a store is out of core: the principal axes come
        from the layer's covariance, streamed over every sample in blocks that fit
        ``memory_limit`` (or on a dask cluster, ``client=``), and every sample is projected
        in a second streamed pass. Quality scores are then measured on a stratified subset
        of at most 2,000 samples. See :func:`neuralatlas.analysis.streaming.reduce_blocks`.
    progress : callable(done, total), optional
        Called after every embedding.

    Returns
    -------
    Projection

    Raises
    ------
    LayerError
        An unknown layer (the message lists the layers there are).
    StoreError
        Epochs asked for from a store without per-epoch activations, or unknown epochs.
    AnalysisError
        ``n`` larger than the store, an unknown method, too few samples.

    Example
    -------
    >>> res = project("runs/demo/mlp", layers=["fc1", "fc2"], epochs="all")   # doctest: +SKIP
    >>> res.quality_table()                                                   # doctest: +SKIP
    >>> res.save("runs/demo/mlp/results/projection")                          # doctest: +SKIP
    """
    if method not in METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}.")
    src = _source(data, labels=labels, predictions=predictions, classes=classes, inputs=inputs)
    names = src.resolve_layers(layers)
    slots = src.resolve_epochs(epochs)
    rows = src.subset(n, seed)
    if len(rows) < max(5, k + 1):
        raise AnalysisError(f"{len(rows)} samples are too few to project; use n >= {max(5, k + 1)}.")
    sub_labels = src.labels[rows]

    streamed = method == "pca" and n is None and isinstance(src, _StoreSource)
    scored = stratified_subset(src.labels, min(DEFAULT_N, src.n_samples), seed) if streamed else rows
    plan = _plan(names, slots)
    coords: dict[Key, np.ndarray] = {}
    scores: dict[Key, dict[str, float]] = {}
    for step, (key, prev) in enumerate(plan, start=1):
        layer, epoch = key
        if streamed and not src.epoch_invariant(layer):
            y = streamed_pca(src.store, layer, epoch=epoch, memory_limit=memory_limit, client=client)
            if align and prev is not None:
                y = procrustes_align(y, coords[prev])
            coords[key] = y
            if quality:
                features = _reduce(_flatten(src.read(layer, epoch, scored), None), pca_dims, seed)
                scores[key] = {"neighborhood_hit": neighborhood_hit(y[scored], sub_labels[scored], k=k),
                               "trustworthiness": trustworthiness(features, y[scored],
                                                                  k=min(7, len(scored) // 4))}
        elif src.epoch_invariant(layer) and prev is not None and prev[0] == layer:
            # the raw input is the same at every epoch: keep its first embedding
            coords[key] = coords[prev]
            if prev in scores:
                scores[key] = dict(scores[prev])
        else:
            features = _reduce(_flatten(src.read(layer, epoch, rows), None), pca_dims, seed)
            if np.ptp(features, axis=0).max(initial=0.0) == 0.0:
                raise AnalysisError(
                    f"The activations of {layer!r} (epoch {epoch}) are constant over the samples, so they"
                    " have no projection; leave the layer out (layers=[...])."
                )
            init = coords[prev] if (align and prev is not None) else None
            y = embed(features, method, init=init, seed=seed, perplexity=perplexity, n_jobs=n_jobs,
                      pca_dims=None, settings=settings)
            if align and prev is not None:
                y = procrustes_align(y, coords[prev])
            coords[key] = y
            if quality:
                scores[key] = {"neighborhood_hit": neighborhood_hit(y, sub_labels, k=k),
                               "trustworthiness": trustworthiness(features, y, k=min(7, len(y) // 4))}
        if progress is not None:
            progress(step, len(plan))

    preds = {}
    for e in slots:
        p = src.predictions(e)
        if p is not None:
            preds[e] = p[rows]
    params = {"n": int(len(rows)), "seed": int(seed), "align": bool(align), "perplexity": float(perplexity),
              "pca_dims": pca_dims, "k": int(k), "source": src.where}
    if streamed:
        params["streamed"] = True
        params["quality_n"] = int(len(scored))
    if method == "tsne":
        params["tsne"] = {**tsne_settings(len(rows)), **dict(settings or {})}
    return Projection(coords, rows=rows, index=src.index[rows], labels=sub_labels, predictions=preds,
                      quality=scores, classes=src.classes, method=method, params=params)


class _Projected(BlockReduction):
    """Second pass of the streamed PCA: every row's coordinates ``(x − mean) @ axes``."""

    def __init__(self, source: Any, mean: np.ndarray, axes: np.ndarray, step: int):
        self.source, self.mean, self.axes = source, mean, axes
        self.n, self.step = source.n, step

    def start(self) -> dict[int, np.ndarray]:
        return {}

    def read(self, rows: slice) -> np.ndarray:
        return self.source.read(rows)

    def add(self, partial: dict[int, np.ndarray], rows: slice, block: np.ndarray) -> dict[int, np.ndarray]:
        partial[rows.start] = (block.astype(np.float64) - self.mean) @ self.axes
        return partial

    def merge(self, a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        a.update(b)
        return a


def streamed_pca(store: Any, layer: str, *, epoch: int | None = None, n_components: int = 2,
                 memory_limit: int | str | None = None, client: Any = None) -> np.ndarray:
    """PCA coordinates of every sample of a store layer, in two streamed passes.

    The principal axes are the top eigenvectors of the layer's covariance (one pass,
    :func:`neuralatlas.analysis.similarity.layer_covariance`); the second pass projects each
    block. Memory: the d×d covariance plus one block, never the activations. Each axis is
    signed so that its largest loading is positive (the result is deterministic).

    Returns
    -------
    array [n_samples, n_components], float64, centred
    """
    from neuralatlas.analysis.similarity import _store_sources, layer_covariance

    budget = parse_memory_limit(memory_limit)
    mean, cov = layer_covariance(store, layer, epoch=epoch, memory_limit=budget, client=client)
    d = len(mean)
    values, vectors = np.linalg.eigh(cov)
    axes = vectors[:, ::-1][:, :min(n_components, d)]
    pick = np.abs(axes).argmax(axis=0)
    axes = axes * np.sign(axes[pick, np.arange(axes.shape[1])])
    if axes.shape[1] < n_components:
        axes = np.c_[axes, np.zeros((d, n_components - axes.shape[1]))]
    [source] = _store_sources(store, [layer], epoch, None)
    step = block_rows(source.n, d * 24, max(budget - 8 * d * d, d * 24), source.chunk_rows)
    parts = reduce_blocks(_Projected(source, mean, axes, step), client=client)
    return np.concatenate([parts[k] for k in sorted(parts)])


# ================================================================ trails and bundling
def smooth_trails(anchors: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
    """Smooth curves through each sample's positions, all samples at once.

    Each coordinate is a monotone piecewise-cubic (PCHIP) function of the step along the
    sequence: smooth (C1) at the positions, and between two positions it never leaves
    their range, so a curve cannot overshoot into loops the way a Catmull-Rom spline does
    when a point jumps far between layers.

    Parameters
    ----------
    anchors : array [n, L, 2]
        Position of each of ``n`` samples at each of ``L`` steps of a sequence.
    samples_per_segment : int
        Curve vertices per step (the anchors are vertices ``0, s, 2s, ...``).

    Returns
    -------
    array [n, (L − 1)·s + 1, 2]
        Passes exactly through every anchor; with ``L = 2``, straight segments.

    Example
    -------
    >>> smooth_trails(np.zeros((3, 4, 2)), 5).shape
    (3, 16, 2)
    """
    from scipy.interpolate import PchipInterpolator

    p = np.asarray(anchors, np.float64)
    if p.ndim != 3 or p.shape[1] < 2:
        raise AnalysisError(f"anchors must be [n_samples, n_steps >= 2, 2]; got shape {p.shape}.")
    s = max(1, int(samples_per_segment))
    steps = np.arange(p.shape[1], dtype=np.float64)
    fine = np.linspace(0.0, steps[-1], (p.shape[1] - 1) * s + 1)
    curve = PchipInterpolator(steps, p, axis=1)(fine)      # every trail and coordinate in one call
    curve[:, ::s] = p                                      # exactly through the positions
    return curve


def bundle_trails(paths: np.ndarray, *, anchor_every: int | None = None, groups: np.ndarray | None = None,
                  iterations: int = 10, bandwidth: float = 0.05, decay: float = 0.85, step: float = 0.4,
                  smoothing: float = 0.5, grid: int = 160) -> np.ndarray:
    """Kernel-density edge bundling of many curves (after Hurter, Ersoy and Telea 2012).

    Each iteration estimates the density of the curve vertices on a ``grid × grid`` image
    (a 2-D histogram blurred by a Gaussian of ``bandwidth`` × the picture's extent), moves
    every vertex a small ``step`` up the density gradient, and smooths every curve with a
    Laplacian filter. Curves that run side by side attract one another and merge into
    bundles, so thousands of trails read as a few flows. The bandwidth shrinks by ``decay``
    each iteration (coarse bundles first, then tighter ones).

    Vertices at the anchors (the real positions, every ``anchor_every`` vertices) never
    move and the movement tapers to zero towards them, so every trail still passes through
    its true positions. With ``groups`` (the class of each curve) every group follows its
    own density, so classes bundle among themselves and a bundle keeps one hue.

    Vectorised: per iteration one histogram, one blur per group, and one gradient lookup
    for all vertices of all curves.

    Parameters
    ----------
    paths : array [n, m, 2]
        Curves (e.g. from :func:`smooth_trails`).
    anchor_every : int, optional
        Vertex spacing of the fixed anchors (default: only the end points are fixed).
    groups : array [n] of int, optional
        Bundle each group separately (e.g. the class labels).
    iterations, bandwidth, decay, step, smoothing, grid
        The schedule; ``bandwidth`` is a fraction of the larger side of the picture,
        ``step`` a fraction of the current bandwidth, ``smoothing`` the Laplacian weight.

    Returns
    -------
    array [n, m, 2]

    Example
    -------
    >>> p = smooth_trails(np.random.default_rng(0).normal(size=(50, 3, 2)), 8)
    >>> bundle_trails(p, anchor_every=8).shape
    (50, 17, 2)
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    p = np.array(paths, np.float64)
    n, m, _ = p.shape
    if m < 3:
        return p
    if groups is None:
        group = np.zeros(n, np.int64)
    else:
        _, group = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
        if len(group) != n:
            raise AnalysisError(f"groups has {len(group)} entries for {n} curves; give one per curve.")
    n_groups = int(group.max()) + 1
    every = int(anchor_every) if anchor_every else m - 1
    j = np.arange(m)
    # movement weight: 0 at the anchors, 1 half-way between them
    weight = np.sin(np.pi * (j % every) / every) ** 2
    weight[-1] = 0.0
    w = weight[None, :, None]
    flat = p.reshape(-1, 2)
    extent = float((flat.max(0) - flat.min(0)).max()) or 1.0
    lo = flat.min(0) - 0.05 * extent
    cell = 1.1 * extent / grid                                 # data units per grid cell
    vertex_group = np.repeat(group, m).astype(np.float64)       # group of every vertex
    h = bandwidth * extent

    def laplacian(q: np.ndarray) -> np.ndarray:
        lap = np.zeros_like(q)
        lap[:, 1:-1] = 0.5 * (q[:, :-2] + q[:, 2:]) - q[:, 1:-1]
        return lap

    for _ in range(max(0, int(iterations))):
        g = (p.reshape(-1, 2) - lo) / cell                      # vertex positions in grid units
        ij = np.clip(g.astype(np.int64), 0, grid - 1)
        cells = (group.repeat(m) * grid + ij[:, 0]) * grid + ij[:, 1]
        density = np.bincount(cells, minlength=n_groups * grid * grid).reshape(n_groups, grid, grid)
        sigma = max(h / cell, 0.5)
        density = gaussian_filter(density.astype(np.float64), sigma=(0.0, sigma, sigma))
        gx, gy = np.gradient(density, axis=(1, 2))
        at = np.vstack([vertex_group, g.T - 0.5])               # (group, x, y) of every vertex
        grad = np.stack([map_coordinates(gx, at, order=1, mode="nearest"),
                         map_coordinates(gy, at, order=1, mode="nearest")], axis=1)
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        move = np.where(norm > 1e-12, grad / np.maximum(norm, 1e-12), 0.0).reshape(n, m, 2)
        p += (step * h) * w * move
        p += smoothing * w * laplacian(p)                       # keep the curves smooth while they bundle
        h *= decay
    for _ in range(3):                                          # a final relaxation rounds off the joins
        p += smoothing * w * laplacian(p)
    return p


# ================================================================ neurons as points
class NeuronProjection:
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
        return len(self.coordinates)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = _safe(self.layer) + ("" if self.epoch is None else f"_epoch{self.epoch}")
        np.savez(directory / f"neurons_{stem}.npz", coordinates=self.coordinates, dead=self.dead)
        meta = {"layer": self.layer, "epoch": self.epoch, "quality": self.quality, "method": self.method,
                "params": self.params}
        (directory / f"neurons_{stem}.json").write_text(json.dumps(_jsonable(meta), indent=1))
        return directory / f"neurons_{stem}.npz"

    @classmethod
    def load(cls, path: str | Path) -> NeuronProjection:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        with np.load(path) as npz:
            return cls(npz["coordinates"], dead=npz["dead"], layer=meta["layer"], epoch=meta["epoch"],
                       quality=meta["quality"], method=meta["method"], params=meta["params"])

    def __repr__(self) -> str:
        return f"NeuronProjection(layer={self.layer!r}, n_neurons={self.n_neurons}, method={self.method!r})"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def correlation_profiles(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neuron profiles standardised so that ``z_i · z_j`` is the Pearson correlation.

    Parameters
    ----------
    matrix : array [n_samples, n_neurons]

    Returns
    -------
    profiles : array [n_neurons, n_samples]
        Zero rows for dead (constant) neurons.
    dead : array [n_neurons] of bool
    """
    x = np.asarray(matrix, np.float64)
    x = x - x.mean(0)
    norm = np.linalg.norm(x, axis=0)
    dead = norm <= 1e-12 * max(1.0, float(np.abs(matrix).max(initial=0.0)))
    z = np.divide(x, norm, out=np.zeros_like(x), where=~dead)
    return z.T, dead


def correlation_factor(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``z_i`` with ``z_i · z_j`` = the Pearson correlation, from a covariance matrix.

    The streamed counterpart of :func:`correlation_profiles`: the same Gram matrix (so the
    same distances, embeddings and trustworthiness) from a ``[d, d]`` covariance instead of
    the ``[n, d]`` activations, via ``R = V Λ Vᵀ`` → ``Z = V Λ^½``.

    Returns
    -------
    profiles : array [n_neurons, n_neurons]
        Zero rows for dead (constant) neurons.
    dead : array [n_neurons] of bool
    """
    var = np.clip(np.diag(cov), 0.0, None)
    scale = max(1.0, float(np.max(np.abs(mean), initial=0.0)) ** 2, float(var.max(initial=0.0)))
    dead = var <= 1e-20 * scale
    sd = np.where(dead, 1.0, np.sqrt(var))
    corr = cov / np.outer(sd, sd)
    corr[dead] = 0.0
    corr[:, dead] = 0.0
    values, vectors = np.linalg.eigh((corr + corr.T) / 2)
    return vectors * np.sqrt(np.clip(values, 0.0, None)), dead


NEURON_METRICS = ("abs_correlation", "correlation")


def neuron_projection(data: Any, layer: str, *, epoch: int | None = None, method: str = "tsne",
                      n: int | None = DEFAULT_N, seed: int = 0, pool: str = "mean", perplexity: float = 30.0,
                      n_jobs: int | None = None, inputs: np.ndarray | None = None,
                      labels: np.ndarray | None = None, memory_limit: int | str | None = None,
                      client: Any = None, metric: str = "abs_correlation") -> NeuronProjection:
    """Place the neurons of ``layer`` in 2-D by the correlation of their activations.

    Each neuron is described by its activations over a class-stratified subset of samples;
    two neurons are close when these profiles correlate. The default distance is Rauber et
    al.'s (2017) ``1 − |r|`` (Pearson ``r``): a neuron and its mirror image (``r ≈ −1``)
    carry the same information and land together. ``metric="correlation"`` uses ``1 − r``
    instead, which puts anti-correlated neurons far apart.
    For conv layers a channel is a neuron, its map pooled over space (``pool``).

    Parameters
    ----------
    data : ActivationStore, run folder, or {layer: array}
    layer : str
    epoch : int, optional
        Checkpoint epoch; ``None`` for the final model.
    method : "tsne", "umap" or "pca"
        t-SNE and UMAP use the distance directly; "pca" is classical (Torgerson) scaling of
        the same distance, which for ``metric="correlation"`` is the PCA of the
        standardised profiles.
    n : int or None
        Samples describing each neuron (same rules as :func:`project`). ``None`` on a
        store: every sample, out of core: the neuron correlations come from the layer's
        covariance, streamed in blocks that fit ``memory_limit`` (or on a dask cluster with
        ``client=``); the result equals the in-memory one.
    seed : int
    pool : "mean" or "max"
        Spatial pooling of conv channels.
    perplexity : float
        Capped for small layers (``≤ (n_neurons − 1) / 3``).
    metric : "abs_correlation" or "correlation"
        ``1 − |r|`` (default, as in Rauber et al. 2017) or ``1 − r``. Trustworthiness
        (``quality``) is measured against this same distance.

    Returns
    -------
    NeuronProjection

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> acts = rng.normal(size=(200, 40))
    >>> neuron_projection({"fc": acts}, "fc", method="pca", labels=rng.integers(0, 3, 200)).coordinates.shape
    (40, 2)
    """
    if method not in METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}.")
    if metric not in NEURON_METRICS:
        raise AnalysisError(f"metric={metric!r} is not a neuron distance; choose one of"
                            f" {', '.join(NEURON_METRICS)} (1 − |r| or 1 − r).")
    src = _source(data, labels=labels, inputs=inputs)
    name = src.resolve_layers([layer])[0]
    slot = src.resolve_epochs([epoch])[0] if epoch is not None else src.final_epoch()
    if n is None and isinstance(src, _StoreSource) and not src.epoch_invariant(name):
        from neuralatlas.analysis.similarity import layer_covariance

        n_neurons = int(np.prod(pooled_shape(src.store.unit_shape(name), pool)))
        if n_neurons < 5:
            raise AnalysisError(f"Layer {name!r} has {n_neurons} neurons; at least 5 are needed for a neuron map.")
        mean, cov = layer_covariance(src.store, name, epoch=slot, pool=pool, memory_limit=memory_limit,
                                     client=client)
        profiles, dead = correlation_factor(mean, cov)
        rows = np.arange(src.n_samples)
    else:
        rows = src.subset(n, seed)
        matrix = _flatten(src.read(name, slot, rows), pool)
        if matrix.shape[1] < 5:
            raise AnalysisError(f"Layer {name!r} has {matrix.shape[1]} neurons; at least 5 are needed for a neuron map.")
        profiles, dead = correlation_profiles(matrix)
    k = max(1, min(7, (len(profiles) - 2) // 3))
    if metric == "correlation" and method == "pca":
        y = embed(profiles, "pca", seed=seed, pca_dims=None)
        # Euclidean distances of the unit-norm profiles are sqrt(2(1 − r)): the same ranking
        # as the correlation distance, so this is trustworthiness with respect to it
        quality = {"trustworthiness": trustworthiness(profiles, y, k=k)}
    else:
        distance = neuron_distance(profiles, dead, metric)
        if method == "pca":
            y = classical_scaling(distance)
        else:
            y = embed(distance, method, seed=seed, perplexity=perplexity, n_jobs=n_jobs, metric="precomputed")
        quality = {"trustworthiness": trustworthiness(distance, y, k=k, precomputed=True)}
    return NeuronProjection(y, layer=name, epoch=slot, dead=dead, quality=quality, method=method,
                            params={"n": int(len(rows)), "seed": int(seed), "pool": pool,
                                    "perplexity": float(perplexity), "metric": metric})


def neuron_distance(profiles: np.ndarray, dead: np.ndarray, metric: str = "abs_correlation") -> np.ndarray:
    """Pairwise neuron distances ``1 − |r|`` or ``1 − r`` from standardised profiles.

    Dead neurons correlate with nothing: distance 1 to every other neuron, 0 to themselves.

    Example
    -------
    >>> z, dead = correlation_profiles(np.array([[0., 1., 2.], [1., 0., 0.], [2., -1., 1.]]))
    >>> neuron_distance(z, dead).round(2)[0]
    array([0. , 0. , 0.5])
    """
    r = np.clip(profiles @ profiles.T, -1.0, 1.0)
    distance = 1.0 - (np.abs(r) if metric == "abs_correlation" else r)
    distance[dead] = 1.0
    distance[:, dead] = 1.0
    np.fill_diagonal(distance, 0.0)
    return distance


def classical_scaling(distance: np.ndarray, dims: int = 2) -> np.ndarray:
    """Torgerson's classical multidimensional scaling of a distance matrix.

    Double-centres ``−D² / 2`` and keeps the top ``dims`` eigenvectors scaled by the square
    roots of their eigenvalues; for Euclidean distances this equals PCA of the points.
    Axis signs are fixed (largest coordinate of each axis positive) so reruns agree.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(30, 2))
    >>> d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    >>> y = classical_scaling(d)
    >>> bool(np.allclose(np.linalg.norm(y[:, None] - y[None], axis=-1), d))
    True
    """
    d2 = np.asarray(distance, np.float64) ** 2
    n = len(d2)
    centred = d2 - d2.mean(0) - d2.mean(1)[:, None] + d2.mean()
    values, vectors = np.linalg.eigh(-0.5 * (centred + centred.T) / 2)
    top = np.argsort(values)[::-1][:dims]
    y = vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))
    if y.shape[1] < dims:
        y = np.pad(y, ((0, 0), (0, dims - y.shape[1])))
    signs = np.sign(y[np.abs(y).argmax(0), np.arange(dims)])
    return y * np.where(signs == 0, 1.0, signs) if n else y
