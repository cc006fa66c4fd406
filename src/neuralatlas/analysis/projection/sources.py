"""Projection's data sources: activations by (layer, epoch) from a store or arrays, the sample subset."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from neuralatlas.analysis.streaming import (
    flatten_samples,
)
from neuralatlas.errors import AnalysisError, LayerError, StoreError, did_you_mean
from neuralatlas.patterns import layer_matches

METHODS = ("tsne", "umap", "pca")
INPUT = "input"          # name of the raw-input pseudo-layer
Key = tuple[str, Union[int, None]]
Progress = Callable[[int, int], None]


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
