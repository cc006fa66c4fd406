"""Discriminative neurons: which neurons tell one class from the rest (Rauber et al. 2017).

For every neuron of a layer and every class ``c``: how much the neuron helps to separate
``c`` from all other classes. Two ways:

* ``method="trees"`` (the paper's): the feature importances (mean decrease in impurity) of
  an extremely randomised trees classifier trained one-vs-rest, one forest per class.
  Multivariate: a neuron that only helps together with others still scores.
* ``method="anova"``: the one-vs-rest ANOVA F statistic of each neuron, computed for all
  neurons and classes at once from class sums — hundreds of times faster, univariate.

:func:`importance_agreement` measures how far the two agree (Spearman rank correlation
per class); on trained networks they broadly do, which makes the fast option a fair
preview. Importances are normalised so each class's column sums to 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuralatlas.analysis.projection import _epoch
from neuralatlas.analysis.sources import DEFAULT_N_SAMPLES, AtMost, class_labels, flatten, open_source
from neuralatlas.errors import AnalysisError
from neuralatlas.results import Result
from neuralatlas.vocabulary import renamed_parameter

__all__ = [
    "DISCRIMINATIVE_METHODS",
    "DiscriminativeNeurons",
    "anova_importances",
    "discriminative_neurons",
    "importance_agreement",
    "streamed_anova_importances",
    "tree_importances",
]

DISCRIMINATIVE_METHODS = ("trees", "anova")


def _check(x: np.ndarray, y: np.ndarray, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise AnalysisError(f"activations must be [n_samples, n_neurons]; got shape {x.shape}.")
    y = np.asarray(y, np.int64).reshape(-1)
    if len(y) != len(x):
        raise AnalysisError(f"{len(x)} samples but {len(y)} labels; give one label per sample.")
    if (y < 0).any():
        raise AnalysisError("Some labels are negative (unknown); discriminative neurons need a class per sample.")
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    present = np.bincount(y, minlength=k)
    if (present[:k] == 0).any() or len(present) > k:
        missing = np.flatnonzero(present[:k] == 0).tolist()
        raise AnalysisError(
            f"Classes {missing} have no samples in the subset (or labels exceed n_classes={k});"
            " use more samples (n_samples=...) or check the labels."
        )
    return x, y, k


def _normalise(scores: np.ndarray) -> np.ndarray:
    scores = np.nan_to_num(np.maximum(scores, 0.0))
    total = scores.sum(0, keepdims=True)
    return np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)


def anova_importances(x: np.ndarray, y: np.ndarray, n_classes: int | None = None, *,
                      normalise: bool = True) -> np.ndarray:
    """One-vs-rest ANOVA F of every neuron for every class, ``[n_neurons, n_classes]``.

    For class ``c`` split the samples into ``c`` and the rest; ``F = SS_between /
    (SS_within / (n − 2))`` — the same value as ``sklearn.feature_selection.f_classif(x,
    y == c)``, but for all classes in one pass over the data. Constant neurons score 0.

    Parameters
    ----------
    x : array [n_samples, n_neurons]
    y : array [n_samples]
    n_classes : int, optional
    normalise : bool
        Scale each class's column to sum to 1 (comparable with tree importances).

    Example
    -------
    >>> x = np.c_[np.repeat([0.0, 1.0], 50), np.random.default_rng(0).normal(size=100)]
    >>> anova_importances(x, np.repeat([0, 1], 50)).argmax(0)
    array([0, 0])
    """
    x, y, k = _check(x, y, n_classes)
    n = len(x)
    x = x - x.mean(0)                                        # grand mean 0: between-SS from class sums only
    counts = np.bincount(y, minlength=k).astype(np.float64)  # [C]
    onehot = np.zeros((k, n))
    onehot[y, np.arange(n)] = 1.0
    sums = onehot @ x                                        # [C, d] class sums, one matrix product
    return _anova_f(counts, sums, (x * x).sum(0), normalise)


def _anova_f(counts: np.ndarray, sums: np.ndarray, ss_total: np.ndarray, normalise: bool) -> np.ndarray:
    """One-vs-rest F ``[d, C]`` from class counts, centred class sums ``[C, d]`` and total SS ``[d]``.

    "Centred" means about the grand mean; the streamed form (:func:`streamed_anova_importances`)
    gets these from any shifted sums, so both forms share this code.
    """
    counts = np.asarray(counts, np.float64)
    n = counts.sum()
    rest = n - counts
    # class c vs rest with grand mean 0: SS_between = S_c² / n_c + S_c² / (n − n_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        ss_between = sums ** 2 * (1.0 / counts + 1.0 / np.where(rest > 0, rest, np.inf))[:, None]
        ss_within = ss_total[None, :] - ss_between
        f = ss_between / (ss_within / (n - 2))
    f = np.where(ss_within > 1e-12 * np.maximum(ss_total[None, :], 1e-300), f, np.where(ss_between > 0, np.inf, 0.0))
    f = np.where(ss_total[None, :] > 0, f, 0.0).T            # [d, C]
    if normalise:
        # a perfectly separating neuron (F = inf) takes the whole column
        inf = np.isinf(f)
        f = np.where(inf.any(0, keepdims=True), inf.astype(np.float64), f)
        return _normalise(f)
    return f


def streamed_anova_importances(store: Any, layer: str, *, epoch: int | None = None, pool: str | None = "mean",
                               normalise: bool = True, memory_limit: int | str | None = None,
                               rows: int | None = None, client: Any = None,
                               progress: Any = None, labels: np.ndarray | None = None,
                               n_classes: int | None = None) -> np.ndarray:
    """:func:`anova_importances` over every sample of a store, streamed in bounded memory.

    One pass of grouped sums and sums of squares by label (the NAP pass of
    :mod:`neuralatlas.analysis.naps`, so ``memory_limit=`` and ``client=`` work as there);
    equal to the in-memory F to float rounding.

    ``labels`` (one class per sample, with ``n_classes``) replaces the store's labels.

    Returns
    -------
    array [n_neurons, n_classes]
    """
    from neuralatlas.analysis.naps import grouped_moments

    if labels is None:
        labels = class_labels(store.sample_table(columns=["label"])["label"], f"the store {store.path}")
        k = len(store.classes) or int(labels.max()) + 1
    else:
        labels = np.asarray(labels, np.int64)
        k = int(n_classes) if n_classes else int(labels.max()) + 1
    if (labels < 0).any():
        raise AnalysisError(f"{int((labels < 0).sum())} samples of {store.path} have no label;"
                            " discriminative neurons need a class per sample.")
    counts = np.bincount(labels, minlength=k)
    if (counts == 0).any():
        raise AnalysisError(f"Classes {np.flatnonzero(counts == 0).tolist()} have no samples in {store.path}.")
    acc = grouped_moments(store, layer, labels, k, epoch=epoch, std=True, statistics=False, pool=pool,
                          memory_limit=memory_limit, rows=rows, client=client, progress=progress)
    # sums about a per-unit shift s: S_c = Σ(x − s), Q = Σ(x − s)²; both forms are shift-free
    total = acc.s1.sum(0)
    n = counts.sum()
    centred = acc.s1 - counts[:, None] * (total / n)[None, :]
    ss_total = np.maximum(acc.s2.sum(0) - total ** 2 / n, 0.0)
    return _anova_f(counts, centred, ss_total, normalise)


def tree_importances(x: np.ndarray, y: np.ndarray, n_classes: int | None = None, *, n_estimators: int = 100,
                     seed: int = 0, n_jobs: int = -1, max_features: str | float = "sqrt") -> np.ndarray:
    """Extremely-randomised-trees importances, one-vs-rest, ``[n_neurons, n_classes]``.

    One ``sklearn.ensemble.ExtraTreesClassifier`` per class on ``y == c``; column ``c``
    is its ``feature_importances_`` (mean decrease in impurity, summing to 1).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> x = np.c_[rng.normal(size=(200, 5)), y + 0.1 * rng.normal(size=200)]
    >>> int(tree_importances(x, y, n_estimators=20)[:, 1].argmax())
    5
    """
    from sklearn.ensemble import ExtraTreesClassifier

    x, y, k = _check(x, y, n_classes)
    out = np.zeros((x.shape[1], k))
    for c in range(k):      # one forest per class (classes, not neurons or samples)
        forest = ExtraTreesClassifier(n_estimators=n_estimators, max_features=max_features,
                                      random_state=seed + c, n_jobs=n_jobs)
        forest.fit(x, y == c)
        out[:, c] = forest.feature_importances_
    return _normalise(out)


def importance_agreement(a: np.ndarray | DiscriminativeNeurons, b: np.ndarray | DiscriminativeNeurons) -> np.ndarray:
    """Spearman rank correlation between two importance matrices, per class (column).

    Either may be a :class:`DiscriminativeNeurons`, whose ``importances`` are compared.

    Ranks with ties averaged (``scipy.stats.rankdata``), then the Pearson correlation of
    the ranks, all columns at once. A column constant in either matrix gives NaN.

    Example
    -------
    >>> a = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    >>> importance_agreement(a, a ** 2)
    array([1., 1.])
    """
    from scipy.stats import rankdata

    a = getattr(a, "importances", a)
    b = getattr(b, "importances", b)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AnalysisError(f"importance matrices of shapes {a.shape} and {b.shape} cannot be compared.")
    ra = rankdata(a, axis=0)
    rb = rankdata(b, axis=0)
    ra -= ra.mean(0)
    rb -= rb.mean(0)
    denom = np.sqrt((ra ** 2).sum(0) * (rb ** 2).sum(0))
    return np.divide((ra * rb).sum(0), denom, out=np.full(a.shape[1], np.nan), where=denom > 0)


class DiscriminativeNeurons(Result):
    """Per neuron and class, how well the neuron separates the class from the rest.

    Attributes
    ----------
    importances : array [n_neurons, n_classes]
        Each column sums to 1 (0 where nothing discriminates).
    classes : list of str
    layer : str
    epoch : int or None
    method : "trees" or "anova"
    params : dict
    """

    kind = "discriminative"

    def __init__(self, importances: np.ndarray, *, classes: Sequence[str], layer: str, epoch: int | None = None,
                 method: str = "trees", params: dict[str, Any] | None = None):
        self.importances = np.asarray(importances, np.float64)
        self.classes = list(classes)
        self.layer = layer
        self.epoch = _epoch(epoch)
        self.method = method
        self.params = dict(params or {})

    @property
    def best_class(self) -> np.ndarray:
        """For every neuron, the class it discriminates best ``[n_neurons]``."""
        return self.importances.argmax(1)

    @property
    def strength(self) -> np.ndarray:
        """For every neuron, its importance for its best class ``[n_neurons]``."""
        return self.importances.max(1)

    def top(self, cls: int | str, k: int = 10) -> np.ndarray:
        """The ``k`` neurons most discriminative for class ``cls`` (index or name), best first."""
        c = self._class_index(cls)
        return np.argsort(-self.importances[:, c], kind="stable")[:k]

    def _class_index(self, cls: int | str) -> int:
        if isinstance(cls, str):
            if cls not in self.classes:
                raise AnalysisError(f"Class {cls!r} is not one of {self.classes}.")
            return self.classes.index(cls)
        if not 0 <= int(cls) < self.importances.shape[1]:
            raise AnalysisError(f"Class index {cls} out of range 0..{self.importances.shape[1] - 1}.")
        return int(cls)

    def agreement(self, other: DiscriminativeNeurons | np.ndarray) -> pd.Series:
        """Spearman correlation with another importance matrix, per class."""
        return pd.Series(importance_agreement(self.importances, other), index=self.classes, name="spearman")

    def summary(self) -> dict[str, Any]:
        """Layer, method, epoch, sizes, and per class the best neuron and its importance."""
        top = self.importances.argmax(0) if self.importances.size else np.zeros(0, int)
        return {
            "layer": self.layer,
            "method": self.method,
            "epoch": self.epoch,
            "n_neurons": int(self.importances.shape[0]),
            "n_classes": int(self.importances.shape[1]),
            "best_neuron": {c: int(i) for c, i in zip(self.classes, top, strict=True)},
            "best_importance": {
                c: float(self.importances[i, j]) for j, (c, i) in enumerate(zip(self.classes, top, strict=True))
            },
            "params": self.params,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per neuron: best class, strength, and every class's importance."""
        frame = pd.DataFrame(self.importances, columns=self.classes)
        frame.insert(0, "strength", self.strength)
        frame.insert(0, "best_class", [self.classes[c] for c in self.best_class])
        frame.index.name = "neuron"
        return frame

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``discriminative.npz`` (importances) and ``discriminative.json`` into ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "discriminative.npz", importances=self.importances)
        meta = {"classes": self.classes, "layer": self.layer, "epoch": self.epoch, "method": self.method,
                "params": self.params}
        self.write_json(directory / "discriminative.json", meta)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DiscriminativeNeurons:
        """Read what :meth:`save` wrote (or, from older runs, a ``discriminative_*.npz`` file)."""
        path = Path(directory)
        if not (path.suffix == ".npz" and path.is_file()):  # else an older run's discriminative_*.npz
            path = path / "discriminative.npz"
        meta = cls.read_json(cls._required(path.parent, path.with_suffix(".json").name, path.name,
                                           what="discriminative neurons",
                                           fix="write them with discriminative_neurons(...).save(dir)"))
        with np.load(path) as npz:
            return cls(npz["importances"], **meta)

    def __repr__(self) -> str:
        return (f"DiscriminativeNeurons(layer={self.layer!r}, method={self.method!r},"
                f" n_neurons={self.importances.shape[0]}, n_classes={self.importances.shape[1]})")


@renamed_parameter("n", "n_samples")
def discriminative_neurons(
    data: Any,
    layer: str | None = None,
    *,
    epoch: int | None = None,
    method: str = "trees",
    n_samples: int | AtMost | None = DEFAULT_N_SAMPLES,
    seed: int = 0,
    pool: str = "mean",
    n_estimators: int = 100,
    n_jobs: int = -1,
    labels: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    memory_limit: int | str | None = None,
    client: Any = None,
) -> DiscriminativeNeurons:
    """How well each neuron of ``layer`` separates each class from the rest.

    Parameters
    ----------
    data : ActivationStore, run folder, {layer: array}, or one array [n_samples, n_neurons]
        Arrays need ``labels=``.
    layer : str
        Layer name (optional for a single array).
    epoch : int, optional
        Checkpoint epoch; ``None`` for the final model.
    method : "trees" or "anova"
        Extremely randomised trees one-vs-rest (Rauber et al.), or the fast ANOVA F.
    n_samples : int, AtMost or None
        Samples used (class-stratified, seeded; the same subset :func:`project` draws;
        the default ``AtMost(2000)`` is up to 2,000). ``None``: every sample. (``n=`` is
        the old name, deprecated.) With ``method="anova"`` on a store that is one streamed
        pass in bounded memory (``memory_limit=``, ``client=`` as for :func:`naps`); the
        trees need their samples in memory, so keep ``n_samples`` to what fits.
    seed : int
    pool : "mean" or "max"
        Conv layers: a channel is a neuron, its map pooled over space.
    n_estimators, n_jobs
        Forest size and threads (trees only).
    memory_limit, client
        For the streamed ANOVA (``n_samples=None`` on a store).

    Returns
    -------
    DiscriminativeNeurons
        ``importances`` ``[n_neurons, n_classes]``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 300)
    >>> acts = np.c_[rng.normal(size=(300, 8)), (y == 2) + 0.1 * rng.normal(size=300)]
    >>> res = discriminative_neurons(acts, labels=y, method="anova")
    >>> int(res.top(2, 1)[0])
    8
    """
    if method not in DISCRIMINATIVE_METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose 'trees' or 'anova'.")
    src = open_source(data, labels=labels, classes=classes)
    if layer is None:
        if len(src.layers) != 1:
            raise AnalysisError(f"Name the layer (layer=...); layers: {', '.join(src.layers)}.")
        layer = src.layers[0]
    name = src.resolve_layers([layer])[0]
    slot = src.resolve_epochs([epoch])[0] if epoch is not None else src.final_epoch()
    store = getattr(src, "store", None)
    if method == "anova" and n_samples is None and store is not None and not src.epoch_invariant(name):
        # the source's labels: the store's, or the caller's labels= (never silently the store's)
        imp = streamed_anova_importances(store, name, epoch=slot, pool=pool, memory_limit=memory_limit,
                                         client=client, labels=src.labels, n_classes=len(src.classes) or None)
        return DiscriminativeNeurons(imp, classes=src.classes, layer=name, epoch=slot, method=method,
                                     params={"n_samples": int(store.n_samples), "seed": int(seed), "pool": pool,
                                             "n_estimators": int(n_estimators), "streamed": True})
    rows = src.subset(n_samples, seed)
    x = flatten(src.read(name, slot, rows), pool)
    y = src.labels[rows]
    k = len(src.classes) or None
    if method == "trees":
        imp = tree_importances(x, y, k, n_estimators=n_estimators, seed=seed, n_jobs=n_jobs)
    else:
        imp = anova_importances(x, y, k)
    return DiscriminativeNeurons(imp, classes=src.classes or [str(i) for i in range(imp.shape[1])], layer=name,
                                 epoch=slot, method=method,
                                 params={"n_samples": int(len(rows)), "seed": int(seed), "pool": pool,
                                         "n_estimators": int(n_estimators)})
