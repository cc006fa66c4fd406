"""How good is a 2-D picture of high-dimensional data? Neighbourhood hit and trustworthiness.

Both measures are used by the projections (every embedding is scored) and by anything else
that draws points: the topomap layout, neuron maps.

* **Neighbourhood hit** (Paulovich et al. 2008; used with ``k = 6`` by Rauber et al. 2017):
  the fraction of each point's ``k`` nearest neighbours in the picture that share its label,
  averaged over points. It measures how well the classes are separated *on screen*.
* **Trustworthiness** (Venna and Kaski 2001): penalises points that are neighbours in the
  picture but not in the data, by how far down the data-space ranking they sit. 1 means
  every on-screen neighbourhood is a true one. ``k = 7`` follows the survey of Espadoto,
  Martins, Kerren, Hirata and Telea (2019).
* **Continuity** is the mirror image: true neighbours missing from the picture.

The implementations stream the data in row blocks, so 10,000+ points never need an
``n × n`` rank matrix in memory (scikit-learn's ``trustworthiness`` builds one).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from neuralatlas.errors import AnalysisError

__all__ = ["continuity", "neighborhood_hit", "trustworthiness"]

# Row block of the streamed rank computations: block × n distances plus a
# block × k × n comparison, ~50 MB at n = 10,000.
_BLOCK = 256


def _as_points(points: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise AnalysisError(f"{what} must be a 2-D array [n_points, n_dims]; got shape {np.shape(points)}.")
    if not np.all(np.isfinite(arr)):
        raise AnalysisError(f"{what} contains NaN or infinite values; drop or fill them first.")
    return arr.reshape(len(arr), -1)


def _check_k(k: int, n: int, what: str = "k") -> int:
    k = int(k)
    if k < 1 or k >= n:
        raise AnalysisError(f"{what}={k} is not possible with {n} points; choose 1 <= {what} <= {n - 1}.")
    return k


def _knn(points: np.ndarray, k: int) -> np.ndarray:
    """Indices of each point's ``k`` nearest neighbours, the point itself excluded."""
    nn = NearestNeighbors(n_neighbors=k + 1).fit(points)
    idx = nn.kneighbors(points, return_distance=False)
    # Duplicated points can put a twin before the point itself: drop the point wherever it
    # sits, else the last column.
    is_self = idx == np.arange(len(points))[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), k)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(len(idx)), drop] = False
    return idx[keep].reshape(len(idx), k)


def neighborhood_hit(points: np.ndarray, labels: np.ndarray, k: int = 6, *,
                     per_point: bool = False) -> float | np.ndarray:
    """Fraction of each point's ``k`` nearest neighbours that share its label, averaged.

    Parameters
    ----------
    points : array [n_points, n_dims]
        Usually a 2-D projection; any dimension works.
    labels : array [n_points]
        Class of each point.
    k : int
        Neighbours per point, the point itself not counted (6 in Rauber et al. 2017).
    per_point : bool
        Return the hit of every point instead of the mean.

    Returns
    -------
    float, or array [n_points] with ``per_point=True``
        In [0, 1]; 1 when every neighbourhood is pure.

    Raises
    ------
    AnalysisError
        Mismatched lengths, non-finite points, or ``k`` not in ``1..n-1``.

    Example
    -------
    >>> pts = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    >>> neighborhood_hit(pts, [0, 0, 0, 1, 1, 1], k=2)
    1.0
    """
    pts = _as_points(points, "points")
    lab = np.asarray(labels).reshape(-1)
    if len(lab) != len(pts):
        raise AnalysisError(f"{len(pts)} points but {len(lab)} labels; give one label per point.")
    k = _check_k(k, len(pts))
    hits = (lab[_knn(pts, k)] == lab[:, None]).mean(1)
    return hits if per_point else float(hits.mean())


def _rank_penalty(space_rank: np.ndarray, space_nn: np.ndarray, k: int, block: int = _BLOCK,
                  distance: bool = False) -> float:
    r"""Σ_i Σ_{j ∈ space_nn(i) \ kNN_rank(i)} (r(i, j) − k), ranks taken in ``space_rank``.

    ``r(i, j)`` is the 1-based rank of ``j`` among the neighbours of ``i`` in
    ``space_rank`` (``i`` itself excluded): one plus the number of points strictly closer.
    Points already among the ``k`` nearest have ``r <= k`` and contribute nothing, so the
    set difference is the clip at zero.
    """
    n = len(space_rank)
    sq = None if distance else np.einsum("ij,ij->i", space_rank, space_rank)
    total = 0.0
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        if sq is None:
            d = np.array(space_rank[rows], np.float64)
        else:
            d = sq[rows, None] - 2.0 * space_rank[rows] @ space_rank.T + sq[None, :]
        d[np.arange(len(rows)), rows] = -np.inf           # the point itself is never counted
        dij = np.take_along_axis(d, space_nn[rows], axis=1)  # [b, k]
        rank = (d[:, None, :] < dij[:, :, None]).sum(-1)      # points closer than j, incl. self
        # rank counts the point itself (−inf) once: strictly-closer others = rank − 1,
        # so the 1-based rank r = rank.
        total += np.clip(rank - k, 0, None).sum()
    return float(total)


def _neighbourhood_score(ranked: np.ndarray, neighbours: np.ndarray, k: int,
                         ranked_is_distance: bool = False) -> float:
    n = len(ranked)
    k = _check_k(k, n)
    if 2 * n - 3 * k - 1 <= 0:
        raise AnalysisError(f"k={k} is too large for {n} points; choose k < {(2 * n - 1) / 3:.0f}.")
    penalty = _rank_penalty(ranked, _knn(neighbours, k), k, distance=ranked_is_distance)
    return 1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * penalty


def _pair(high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = _as_points(high, "high")
    lo = _as_points(low, "low")
    if len(hi) != len(lo):
        raise AnalysisError(f"high has {len(hi)} points but low has {len(lo)}; they must be the same points.")
    return hi, lo


def trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 7, *, precomputed: bool = False) -> float:
    """Trustworthiness of an embedding ``low`` of the data ``high`` (Venna and Kaski 2001).

    ``T(k) = 1 − 2 / (n k (2n − 3k − 1)) Σ_i Σ_{j ∈ U_k(i)} (r(i, j) − k)`` where
    ``U_k(i)`` are the ``k`` nearest neighbours of ``i`` in the embedding that are not
    among its ``k`` nearest in the data, and ``r(i, j)`` is the rank of ``j`` in the data.
    Same value as :func:`sklearn.manifold.trustworthiness` (Euclidean, or
    ``metric="precomputed"``), but streamed in row blocks: memory ``O(block × k × n)``
    instead of ``O(n²)``.

    **Ties differ from scikit-learn on purpose.** When several points are at exactly the
    same data-space distance from ``i``, they share the best (minimum) rank here, so the
    value does not depend on the order the points happen to be stored in; scikit-learn
    ranks by ``np.argsort``, whose order among ties is an implementation detail. Without
    exact ties (continuous activations) the two agree to float precision; with ties
    (quantised, ReLU-saturated or duplicated points) this value is the higher of the
    possible ones.

    Parameters
    ----------
    high : array [n_points, n_features], or [n_points, n_points] with ``precomputed``
        The data (activations), or its distance matrix.
    low : array [n_points, n_dims]
        Its embedding.
    k : int
        Neighbourhood size (7 by default).
    precomputed : bool
        ``high`` is a symmetric distance matrix (zero diagonal) instead of points.

    Returns
    -------
    float
        In [0, 1] (1: every on-screen neighbour is a true neighbour).

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(100, 5))
    >>> trustworthiness(x, x[:, :2]) > 0.7
    True
    """
    hi, lo = _pair(high, low)
    if precomputed:
        if hi.shape != (len(hi), len(hi)):
            raise AnalysisError(f"precomputed=True needs a square distance matrix; got shape {hi.shape}.")
        return _neighbourhood_score(hi, lo, k, ranked_is_distance=True)
    return _neighbourhood_score(hi, lo, k)


def continuity(high: np.ndarray, low: np.ndarray, k: int = 7) -> float:
    """Continuity: true neighbours kept in the embedding (trustworthiness with roles swapped).

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(100, 5))
    >>> continuity(x, x) == 1.0
    True
    """
    hi, lo = _pair(high, low)
    return _neighbourhood_score(lo, hi, k)
