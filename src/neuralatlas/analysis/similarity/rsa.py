"""Representational similarity analysis: RDMs compared by the Spearman correlation of their upper triangles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neuralatlas.analysis.similarity.result import SimilarityMatrix
from neuralatlas.analysis.similarity.sources import (
    DEFAULT_SUBSAMPLE,
    RSA_METRICS,
    ProgressFn,
    _array_source,
    _block_rows,
    _check_n,
    _check_pool,
    _layer_sources,
    _old_cap,
    _requested,
    _Source,
    _store_name,
    _subsample_index,
    _subsample_size,
    _unique_sources,
)
from neuralatlas.analysis.streaming import (
    parse_memory_limit,
)
from neuralatlas.errors import AnalysisError
from neuralatlas.vocabulary import renamed_parameter


# ============================================================================ RSA
def rdm(x: Any, metric: str = "correlation") -> np.ndarray:
    """The representational dissimilarity matrix of rows ``x``, condensed (upper triangle).

    Parameters
    ----------
    x : array-like ``[n_samples, *unit_shape]`` (flattened per sample)
    metric : {"correlation", "euclidean", "sqeuclidean", "cosine"}
        ``correlation`` is ``1 − Pearson r`` between two samples' activation vectors.
        Pairs involving a constant (e.g. all-zero) sample, where correlation and cosine are
        undefined, get the distance 1 (uncorrelated).

    Returns
    -------
    ndarray ``[n·(n−1)/2]`` in ``scipy.spatial.distance.pdist`` order;
    ``scipy.spatial.distance.squareform`` makes it square.

    Example
    -------
    >>> rdm(np.eye(3)).round(3)
    array([1.5, 1.5, 1.5])
    """
    from scipy.spatial.distance import pdist

    if metric not in RSA_METRICS:
        raise AnalysisError(f"metric={metric!r} is not known; choose one of {', '.join(RSA_METRICS)}.")
    arr = np.asarray(x, np.float64)
    arr = arr.reshape(len(arr), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = pdist(arr, metric=metric)
    return np.where(np.isfinite(d), d, 1.0)


def _ranked(d: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(d)


def _spearman_matrix(rows: Sequence[np.ndarray], cols: Sequence[np.ndarray]) -> np.ndarray:
    """Spearman correlation = Pearson correlation of ranks, for every (row, col) pair."""
    def standardised(r: np.ndarray) -> np.ndarray:
        r = r - r.mean()
        norm = np.linalg.norm(r)
        return r / norm if norm > 0 else np.full_like(r, np.nan)

    a = np.stack([standardised(r) for r in rows])
    b = np.stack([standardised(r) for r in cols])
    return np.clip(a @ b.T, -1.0, 1.0)


@renamed_parameter("subsample", "n_samples", transform=_old_cap)
def rsa(x: Any, y: Any, *, metric: str = "correlation", n_samples: Any = DEFAULT_SUBSAMPLE,
        seed: int = 0, pool: str | None = None) -> float:
    """Representational similarity: Spearman correlation between the two RDMs' upper triangles.

    Parameters
    ----------
    x, y : array-like ``[n_samples, *unit_shape]``
    metric : str
        Dissimilarity of :func:`rdm` (default ``"correlation"``).
    n_samples : AtMost, int or None
        Samples used (an RDM has n·(n−1)/2 entries): ``AtMost(2000)`` (default) up to
        2,000, an ``int`` exactly that many, ``None`` every sample. ``subsample=`` is the old
        name (deprecated; it meant "up to").
    seed : int
    pool : {None, "mean", "max"}

    Returns
    -------
    float in [−1, 1]; NaN when an RDM is constant.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(50, 6))
    >>> round(rsa(x, 2 * x + 1), 6)
    1.0
    """
    pool = _check_pool(pool)
    sx, sy = _array_source(x, "x", pool), _array_source(y, "y", pool)
    values, _ = _rsa([sx], [sy], metric=metric, n_samples=n_samples, seed=seed, memory_limit=None)
    return float(values[0, 0])


def _rsa(row_sources: Sequence[_Source], col_sources: Sequence[_Source], *, metric: str, n_samples: Any,
         seed: int, memory_limit: int | str | None,
         progress: ProgressFn | None = None) -> tuple[np.ndarray, list[str]]:
    if metric not in RSA_METRICS:
        raise AnalysisError(f"metric={metric!r} is not known; choose one of {', '.join(RSA_METRICS)}.")
    budget = parse_memory_limit(memory_limit)
    sources, unique = _unique_sources(row_sources, col_sources)
    n = _check_n(sources)
    subsample = _requested(n_samples, n)
    # one condensed RDM (m²/2 float64) is kept per layer, plus one gathered block
    m = _subsample_size(n, subsample, [s.width for s in sources], len(sources), budget, per_value=4)
    index = _subsample_index(n, m, seed)
    notes = []
    if m < n:
        notes.append(f"RSA on a seeded subsample of {m} of {n} samples (seed {seed}), {metric} distance.")
    ranked = []
    for k, s in enumerate(sources):
        step = _block_rows(s.n, s.width * 4, budget // 4, s.chunk_rows, None)
        ranked.append(_ranked(rdm(s.take(index, step), metric)))
        if progress is not None:
            progress(k + 1, len(sources))
    values = _spearman_matrix([ranked[unique[s.key]] for s in row_sources],
                              [ranked[unique[s.key]] for s in col_sources])
    return values, notes


@renamed_parameter("subsample", "n_samples", transform=_old_cap)
def rsa_matrix(store: Any, layers: Sequence[str] | str | None = None, *, epoch: int | None = None,
               other: Any = None, other_layers: Sequence[str] | str | None = None,
               other_epoch: int | None = None, metric: str = "correlation",
               n_samples: Any = DEFAULT_SUBSAMPLE, seed: int = 0, pool: str | None = None,
               memory_limit: int | str | None = None,
               progress: ProgressFn | None = None) -> SimilarityMatrix:
    """RSA between every pair of layers of a store (or of two stores of the same samples).

    Parameters are those of :func:`cka_matrix` and :func:`rsa`.

    Returns
    -------
    SimilarityMatrix
        Spearman correlations of the layers' RDMs (``measure="rsa"``).

    Example
    -------
    >>> m = rsa_matrix(store, ["fc1", "fc2"])          # doctest: +SKIP
    """
    store, row_sources, col_sources, col_axis = _layer_sources(store, layers, epoch, other, other_layers,
                                                               other_epoch, pool)
    title = (f"RSA between layers ({metric} RDMs, Spearman)" if other is None
             else f"RSA: {_store_name(store)} vs {col_axis}")
    values, notes = _rsa(row_sources, col_sources, metric=metric, n_samples=n_samples, seed=seed,
                         memory_limit=memory_limit, progress=progress)
    return SimilarityMatrix(values, [s.layer for s in row_sources], [s.layer for s in col_sources], "rsa",
                            "layer" if other is None else _store_name(store), col_axis, title, notes,
                            "rdm" if len(notes) == 0 else "rdm-subsample")
