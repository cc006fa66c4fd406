"""Topographic activation maps: a 2-D layout of a layer's units, and images of values over it.

Following iNNtrospect (Krug et al., HHAI 2023): each unit (a channel of a conv layer, a neuron
of a dense one) is described by its **profile** — its NAP values across groups (and positions)
— and the units are laid out in 2-D so that units with similar profiles sit together. A
group's map is then the units' (spatially averaged) values interpolated over that layout: the
brain-like "topomap" of the layer for that group.

Layouts (:class:`TopomapLayout`):

* ``"umap"`` / ``"tsne"``: iNNtrospect's embeddings, then spread into a disc so every unit has
  room (:func:`spread_disc`);
* ``"som"``: a self-organising map (batch algorithm, vectorised), then spread;
* ``"grid"``: every unit its own cell of a square grid, by an optimal assignment of an
  embedding to the cells (:func:`assign_to_sites`).

iNNtrospect spreads with pairwise forces, O(n²) memory and time per iteration. Here spreading
and the grid are one assignment of the units to evenly spaced sites (a sunflower disc, or grid
cells): a KD-tree-style recursive bisection splits units and sites in proportion along the
sites' longer axis, and :func:`scipy.optimize.linear_sum_assignment` solves each leaf of at most
256 sites exactly — O(n log n) overall (4,096 units in well under a second), overlap-free by
construction.

Each layout reports its quality (:func:`layout_quality`): Spearman correlation between
unit–unit distances in profile space and on the map, k-nearest-neighbour preservation and
trustworthiness, each next to the same score of a random layout.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import Delaunay, QhullError, cKDTree
from scipy.spatial.distance import cdist, pdist

from neuralatlas.errors import AnalysisError, LayerError, StoreError, did_you_mean
from neuralatlas.results import Result

__all__ = [
    "METHODS",
    "TopomapLayout",
    "Topomaps",
    "assign_to_sites",
    "disc_sites",
    "grid_sites",
    "layout_quality",
    "map_similarity",
    "spread_disc",
    "sums_to_zero",
    "topomaps",
    "unit_profiles",
    "unit_values",
]

METHODS = ("umap", "tsne", "som", "grid")
FORMAT = "neuralatlas.topomaps/1"
_LEAF = 256


# ---------------------------------------------------------------------------- profiles
def unit_profiles(values: np.ndarray, min_abs: float = 0.01) -> np.ndarray:
    """Each unit's profile across groups (and positions): ``[n_units, n_features]``.

    ``values`` are NAPs ``[n_groups, C, *spatial]`` (channels-first) or ``[n_groups, units]``.
    A conv channel's profile is its values at every (group, position); a dense unit's its
    values per group. As in iNNtrospect, features that are (almost) zero for every unit
    (``max |value| <= min_abs``) are dropped; if that would drop all, none are.

    Example
    -------
    >>> unit_profiles(np.ones((10, 32, 4, 4))).shape
    (32, 160)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 2:
        raise AnalysisError(f"NAP values need shape [n_groups, units] or [n_groups, C, ...]; got {v.shape}.")
    n_units = v.shape[1]
    profiles = np.moveaxis(v, 1, -1).reshape(-1, n_units).T       # [units, groups * positions]
    keep = np.abs(profiles).max(axis=0) > min_abs
    return profiles[:, keep] if keep.any() else profiles


def unit_values(values: np.ndarray) -> np.ndarray:
    """The value of every unit per group ``[n_groups, n_units]`` (spatial mean for conv maps).

    Example
    -------
    >>> unit_values(np.ones((10, 32, 4, 4))).shape
    (10, 32)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 2:
        raise AnalysisError(f"NAP values need shape [n_groups, units] or [n_groups, C, ...]; got {v.shape}.")
    return v.reshape(v.shape[0], v.shape[1], -1).mean(axis=2)


# ---------------------------------------------------------------------------- sites and assignment
def disc_sites(n: int) -> np.ndarray:
    """``n`` evenly spaced points filling the disc of radius 0.5 around (0.5, 0.5) (a sunflower).

    Example
    -------
    >>> disc_sites(100).shape
    (100, 2)
    """
    i = np.arange(n) + 0.5
    r = 0.5 * np.sqrt(i / n)
    theta = i * np.pi * (3.0 - np.sqrt(5.0))                          # the golden angle
    return np.stack([0.5 + r * np.cos(theta), 0.5 + r * np.sin(theta)], axis=1)


def grid_sites(n: int) -> tuple[np.ndarray, int]:
    """Centres of the cells of the smallest square grid with at least ``n`` cells, and its side.

    Example
    -------
    >>> grid_sites(10)[0].shape, grid_sites(10)[1]
    ((16, 2), 4)
    """
    side = max(1, int(np.ceil(np.sqrt(n))))
    iy, ix = np.divmod(np.arange(side * side), side)
    return np.stack([(ix + 0.5) / side, (iy + 0.5) / side], axis=1), side


def _fit_box(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    lo, span = points.min(0), np.ptp(points, 0)
    tlo, tspan = target.min(0), np.ptp(target, 0)
    return (points - lo) / np.where(span > 0, span, 1.0) * tspan + tlo


def assign_to_sites(points: np.ndarray, sites: np.ndarray, leaf: int = _LEAF) -> np.ndarray:
    """Give every point its own site, keeping neighbours together: ``site index [n_points]``.

    A recursive bisection (sites split at the median of their longer axis, points in the same
    proportion by rank along it) brings the problem down to leaves of at most ``leaf`` sites,
    each solved exactly by :func:`scipy.optimize.linear_sum_assignment` on squared distances.
    O(n log n + n · leaf²); one exact assignment of 4,096 points takes ~50 s, this ~0.1 s.

    Parameters
    ----------
    points : array [n, 2]
    sites : array [m, 2], m >= n
    leaf : int
        Largest problem solved exactly.

    Example
    -------
    >>> pts = np.random.default_rng(0).random((50, 2))
    >>> idx = assign_to_sites(pts, grid_sites(50)[0])
    >>> len(set(idx.tolist())) == 50
    True
    """
    points = np.asarray(points, dtype=np.float64)
    sites = np.asarray(sites, dtype=np.float64)
    if len(sites) < len(points):
        raise AnalysisError(f"{len(points)} points cannot each get their own of {len(sites)} sites.")
    result = np.empty(len(points), dtype=np.int64)
    stack = [(np.arange(len(points)), np.arange(len(sites)))]
    while stack:
        u, s = stack.pop()
        if len(u) == 0:
            continue
        if len(s) <= leaf:
            cost = cdist(_fit_box(points[u], sites[s]), sites[s], "sqeuclidean")
            rows, cols = linear_sum_assignment(cost)
            result[u[rows]] = s[cols]
            continue
        axis = int(np.argmax(np.ptp(sites[s], axis=0)))
        s_order = np.argsort(sites[s, axis], kind="stable")
        half = len(s) // 2
        s_low, s_high = s[s_order[:half]], s[s_order[half:]]
        n_low = int(round(len(u) * half / len(s)))
        n_low = min(max(n_low, len(u) - len(s_high)), len(s_low))
        u_order = np.argsort(points[u, axis], kind="stable")
        stack.append((u[u_order[:n_low]], s_low))
        stack.append((u[u_order[n_low:]], s_high))
    return result


def _unit_square(points: np.ndarray) -> np.ndarray:
    """The zero-one scaling of each axis that iNNtrospect uses (constant axes go to 0.5)."""
    lo, span = points.min(0), np.ptp(points, 0)
    return np.where(span > 0, (points - lo) / np.where(span > 0, span, 1.0), 0.5)


def spread_disc(coordinates: np.ndarray, seed: int = 0, leaf: int = _LEAF) -> np.ndarray:
    """Spread a 2-D layout evenly over the disc of radius 0.5 around (0.5, 0.5), no overlaps.

    The units are assigned to a sunflower of ``n`` evenly spaced sites
    (:func:`assign_to_sites`): the layout's arrangement is kept (neighbours stay neighbours,
    clusters stay side by side) while clumps open up and every unit gets the same room —
    what iNNtrospect's force-based spreading does, in O(n log n). ``seed`` breaks exact ties
    (units at the same point) reproducibly.

    Example
    -------
    >>> xy = spread_disc(np.random.default_rng(0).normal(size=(500, 2)))
    >>> float(np.linalg.norm(xy - 0.5, axis=1).max()) <= 0.5
    True
    """
    pts = _unit_square(np.asarray(coordinates, dtype=np.float64))
    rng = np.random.default_rng(seed)
    pts = pts + rng.uniform(-1e-9, 1e-9, size=pts.shape)          # reproducible tie-breaking
    sites = disc_sites(len(pts))
    return sites[assign_to_sites(pts, sites, leaf)]


# ---------------------------------------------------------------------------- quality
def layout_quality(profiles: np.ndarray, coordinates: np.ndarray, *, k: int = 10, seed: int = 0,
                   max_units: int = 1000) -> dict[str, float]:
    """How faithfully a 2-D layout keeps the units' profile-space relations, vs a random layout.

    * ``spearman``: rank correlation between unit–unit distances in profile space and on the
      map (on at most ``max_units`` units drawn with ``seed``);
    * ``knn``: mean fraction of each unit's ``k`` nearest profile-space neighbours that are
      among its ``k`` nearest on the map (left out when ``k ≥ n_units − 1``, where it is 1
      for every layout);
    * ``trustworthiness`` (k = 7): map neighbours that are true neighbours;
    * the same three for a random layout in the disc (``random_spearman``, ...).

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(200, 5))
    >>> q = layout_quality(x, x[:, :2])
    >>> q["spearman"] > q["random_spearman"]
    True
    """
    X = np.asarray(profiles, dtype=np.float64)
    Y = np.asarray(coordinates, dtype=np.float64)
    n = len(X)
    if len(Y) != n:
        raise AnalysisError(f"{n} profiles but {len(Y)} coordinates; they must describe the same units.")
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(n, max_units, replace=False)) if n > max_units else np.arange(n)
    random = disc_sites(n)[rng.permutation(n)]
    out: dict[str, float] = {"units": float(n)}
    d_profile = pdist(X[sub])
    k = int(min(k, n - 1))
    # with k >= n − 1 every unit is every unit's neighbour: knn is 1 for any layout, so it says nothing
    high_nn = _neighbours(X, k) if 1 <= k < n - 1 else None
    for prefix, layout in (("", Y), ("random_", random)):
        out[prefix + "spearman"] = _spearman(d_profile, pdist(layout[sub]))
        if high_nn is not None:
            low_nn = _neighbours(layout, k)
            out[prefix + "knn"] = float((high_nn[:, :, None] == low_nn[:, None, :]).any(-1).mean())
        out[prefix + "trustworthiness"] = _trust(X[sub], layout[sub])
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def _neighbours(points: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points, return_distance=False)
    is_self = idx == np.arange(len(points))[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), k)             # a twin may come first
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(len(idx)), drop] = False
    return idx[keep].reshape(len(idx), k)


def _trust(high: np.ndarray, low: np.ndarray, k: int = 7) -> float:
    n = len(high)
    if 2 * n - 3 * k - 1 <= 0:
        return float("nan")
    try:
        from neuralatlas.analysis.quality import trustworthiness
    except ImportError:  # pragma: no cover - the projection module is optional here
        from sklearn.manifold import trustworthiness as sk_trust

        return float(sk_trust(high, low, n_neighbors=k))
    return float(trustworthiness(high, low, k=k))


# ---------------------------------------------------------------------------- embeddings
def _pca(X: np.ndarray, dims: int) -> np.ndarray:
    """Scores on the first ``dims`` principal components, signs fixed.

    Through the eigenvectors of the smaller Gram matrix (``F × F`` or ``n × n``): a few ms where
    a thin SVD of ``[4096, F]`` can take seconds when BLAS threads fight for busy cores.
    """
    X = X - X.mean(0)
    n, f = X.shape
    dims = min(dims, n, f)
    if dims < 1:
        return np.zeros((n, 1))
    if f <= n:
        evals, evecs = np.linalg.eigh(X.T @ X)
        axes = evecs[:, ::-1][:, :dims]                                  # [F, dims]
    else:
        evals, evecs = np.linalg.eigh(X @ X.T)
        u = evecs[:, ::-1][:, :dims]
        axes = X.T @ u
        axes /= np.linalg.norm(axes, axis=0, keepdims=True) + 1e-300
    # Fix each component's sign (largest |loading| positive) so the result does not flip.
    signs = np.sign(axes[np.abs(axes).argmax(0), np.arange(dims)])
    return X @ (axes * np.where(signs == 0, 1, signs))


def _pca2(X: np.ndarray) -> np.ndarray:
    Y = _pca(X, 2)
    return Y if Y.shape[1] == 2 else np.c_[Y, np.zeros(len(Y))][:, :2]


def _embed_umap(X: np.ndarray, seed: int, n_neighbors: int) -> np.ndarray:
    from neuralatlas.analysis._umap import import_umap, neighbour_kwargs

    umap = import_umap()  # numba compiled once per machine, not per process

    n = len(X)
    if n < 6:
        return _pca2(X)
    k = int(max(2, min(n_neighbors, n - 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral fallbacks
        # exact neighbours from 4,096 units: no pynndescent compile in every process
        model = umap.UMAP(n_components=2, n_neighbors=k, random_state=seed, init="spectral" if n > 20 else "random",
                          **neighbour_kwargs(X, k))
        return np.asarray(model.fit_transform(X), dtype=np.float64)


def _embed_tsne(X: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    n = len(X)
    if n < 6:
        return _pca2(X)
    from openTSNE import TSNE

    perp = float(max(1.0, min(perplexity, (n - 1) / 3.0)))
    # n_jobs=1: with several threads the gradient sums differ in order and the same seed
    # would not give the same layout.
    tsne = TSNE(n_components=2, perplexity=perp, initialization="pca", random_state=seed, n_jobs=1,
                verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(tsne.fit(X), dtype=np.float64)


def _embed_som(X: np.ndarray, seed: int, epochs: int = 20) -> np.ndarray:
    """A batch self-organising map; each unit's position is a soft-min over the map's nodes.

    Batch SOM: every epoch each node moves to the neighbourhood-weighted mean of the units
    whose best-matching node is near it. The Gaussian neighbourhood on a square grid is
    separable, so it is applied as two small matrix products over the node grid, O(side³)
    instead of O(nodes²). Deterministic (linear initialisation on the principal plane);
    ``seed`` is unused but kept for a uniform signature.
    """
    n = len(X)
    Z = _pca(X, 16).astype(np.float32)                                  # distances on ≤ 16 PCs
    Z /= Z.std() or 1.0
    f = Z.shape[1]
    side = max(2, int(np.ceil(np.sqrt(n / 4.0))))                       # ~4 units per node
    nodes, _ = grid_sites(side * side)                                  # node k at (k % side, k // side)
    k = min(2, f)
    W = np.zeros((side * side, f), np.float32)
    W[:, :k] = (nodes[:, :k] - 0.5) * 4 * (Z[:, :k].std(0) + 1e-12)    # the principal plane, ±2σ
    ticks = np.arange(side)
    sigma0 = side / 2.0
    for epoch in range(epochs):
        sigma = max(0.5, sigma0 * (0.5 / sigma0) ** (epoch / max(1, epochs - 1)))
        bmu = _best_nodes(Z, W)
        sums = np.zeros((side * side, f), np.float32)
        _segment_sum(sums, bmu, Z)
        counts = np.bincount(bmu, minlength=side * side).astype(np.float32)
        g = np.exp(-((ticks[:, None] - ticks[None, :]) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        grid_sums = sums.reshape(side, side, f)                           # [row=y, col=x, f]
        smooth = np.einsum("ya,abf,xb->yxf", g, grid_sums, g, optimize=True).reshape(side * side, f)
        weight = (g @ counts.reshape(side, side) @ g.T).reshape(side * side, 1)
        W = np.where(weight > 1e-12, smooth / np.maximum(weight, 1e-12), W)
    dist = _sq_distances(Z, W)
    dist -= dist.min(1, keepdims=True)
    scale = np.median(np.partition(dist, 1, axis=1)[:, 1]) + 1e-12    # gap to the 2nd-best node
    weight = np.exp(-dist / scale)
    weight /= weight.sum(1, keepdims=True)
    return (weight @ nodes).astype(np.float64)


def _sq_distances(Z: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (Z ** 2).sum(1)[:, None] - 2 * Z @ W.T + (W ** 2).sum(1)[None, :]


def _best_nodes(Z: np.ndarray, W: np.ndarray) -> np.ndarray:
    return _sq_distances(Z, W).argmin(1)


def _segment_sum(out: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """``out[index[i]] += values[i]`` as one sparse product (``np.add.at`` is slow)."""
    import scipy.sparse as sp

    onehot = sp.csr_matrix((np.ones(len(index), values.dtype), (index, np.arange(len(index)))),
                           shape=(len(out), len(index)))
    out += onehot @ values


# ---------------------------------------------------------------------------- the layout
class TopomapLayout:
    """A 2-D layout of a layer's units, and images of per-unit values over it.

    Parameters
    ----------
    method : "umap", "tsne", "som" or "grid"
        How to place the units (see the module docstring).
    seed : int
        Same seed, same layout.
    spread : bool, optional
        Spread the layout evenly over a disc (:func:`spread_disc`); default for umap, tsne,
        som. The grid never spreads (its cells already give each unit its own place).
    base : "umap", "tsne", "som" or "pca"
        For ``method="grid"``: the embedding assigned to the grid cells.
    resolution : int
        Side of the images :meth:`transform` makes.
    interpolation : "linear", "nearest" or "cells"
        How values fill the image; "cells" (the default for the grid) paints each unit's
        cell. Pixels outside the units' convex hull (and empty cells) are NaN, never 0.
    n_neighbors, perplexity : UMAP's and t-SNE's main parameters.
    quality_k : int
        Neighbours for the kNN preservation score.

    Attributes
    ----------
    coordinates_ : array [n_units, 2]
        Unit positions in [0, 1]².
    embedding_ : array [n_units, 2]
        The raw embedding before scaling and spreading.
    quality_ : dict
        :func:`layout_quality` of the layout (with the random-layout baseline).
    n_units_ : int
    cells_ : array [n_units, 2] of int
        (row, column) of each unit's cell, for the grid.
    side_ : int
        Grid side, for the grid.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> values = rng.normal(size=(10, 32, 4, 4))                         # NAPs of a conv layer
    >>> layout = TopomapLayout(method="grid", seed=0).fit(unit_profiles(values))
    >>> layout.transform(unit_values(values)).shape                      # [groups, 64, 64]
    (10, 64, 64)
    """

    def __init__(self, method: str = "umap", seed: int = 0, *, spread: bool | None = None,
                 base: str = "umap", resolution: int = 64, interpolation: str | None = None,
                 n_neighbors: int = 15, perplexity: float = 30.0, quality_k: int = 10):
        self.method = method
        self.seed = seed
        self.spread = spread
        self.base = base
        self.resolution = resolution
        self.interpolation = interpolation
        self.n_neighbors = n_neighbors
        self.perplexity = perplexity
        self.quality_k = quality_k

    # ------------------------------------------------------------------ fitting
    def _check(self) -> None:
        if self.method not in METHODS:
            raise AnalysisError(f"Unknown layout method {self.method!r}.{did_you_mean(str(self.method), METHODS)}"
                                f" Choose one of {', '.join(METHODS)}.")
        if self.base not in ("umap", "tsne", "som", "pca"):
            raise AnalysisError(f"Unknown grid base {self.base!r}; choose umap, tsne, som or pca.")
        if self.interpolation not in (None, "linear", "nearest", "cells"):
            raise AnalysisError(f"Unknown interpolation {self.interpolation!r}; choose linear, nearest or cells.")
        if self.interpolation == "cells" and self.method != "grid":
            raise AnalysisError("interpolation='cells' needs method='grid'; use 'linear' or 'nearest'.")
        if int(self.resolution) < 4:
            raise AnalysisError(f"resolution={self.resolution} is too small; use at least 4 pixels.")

    def _embedding(self, X: np.ndarray, how: str) -> np.ndarray:
        if how == "umap":
            return _embed_umap(X, self.seed, self.n_neighbors)
        if how == "tsne":
            return _embed_tsne(X, self.seed, self.perplexity)
        if how == "som":
            return _embed_som(X, self.seed)
        return _pca2(X)

    def fit(self, profiles: np.ndarray) -> TopomapLayout:
        """Lay out the units described by ``profiles`` ``[n_units, n_features]``.

        Raises
        ------
        AnalysisError
            Fewer than 3 units, non-finite values, an unknown method.
        """
        self._check()
        X = np.asarray(profiles, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise AnalysisError(f"profiles must be [n_units, n_features]; got shape {X.shape}"
                                " (use unit_profiles(nap_values) to make them).")
        if len(X) < 3:
            raise AnalysisError(f"A topomap needs at least 3 units; got {len(X)}.")
        if not np.isfinite(X).all():
            raise AnalysisError("profiles contain NaN or infinite values; check the NAPs they came from.")
        how = self.base if self.method == "grid" else self.method
        self.embedding_ = self._embedding(X, how)
        square = _unit_square(self.embedding_)
        self.n_units_ = len(X)
        if self.method == "grid":
            sites, side = grid_sites(len(X))
            rng = np.random.default_rng(self.seed)
            cell = assign_to_sites(square + rng.uniform(-1e-9, 1e-9, square.shape), sites)
            self.side_ = side
            self.cells_ = np.stack(np.divmod(cell, side), axis=1)          # (row, column)
            self.coordinates_ = sites[cell]
        elif self.spread is False:
            self.coordinates_ = square
        else:
            self.coordinates_ = spread_disc(square, self.seed)
        self.quality_ = layout_quality(X, self.coordinates_, k=self.quality_k, seed=self.seed)
        self._prepare_images()
        return self

    def fit_transform(self, profiles: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``fit(profiles)`` then ``transform(values)``."""
        return self.fit(profiles).transform(values)

    # ------------------------------------------------------------------ images
    @property
    def interpolation_(self) -> str:
        """The interpolation used: the one given, else ``cells`` for a grid and ``linear`` otherwise."""
        return self.interpolation or ("cells" if self.method == "grid" else "linear")

    def _prepare_images(self) -> None:
        res = int(self.resolution)
        centres = (np.arange(res) + 0.5) / res
        gx, gy = np.meshgrid(centres, centres)                            # image[row=y, col=x]
        self._pixels = np.stack([gx.ravel(), gy.ravel()], axis=1)
        if self.interpolation_ == "cells":
            cell = np.minimum((self._pixels * self.side_).astype(np.int64), self.side_ - 1)
            lookup = np.full(self.side_ * self.side_, -1, np.int64)
            lookup[self.cells_[:, 0] * self.side_ + self.cells_[:, 1]] = np.arange(self.n_units_)
            self._pixel_unit = lookup[cell[:, 1] * self.side_ + cell[:, 0]]
            self.mask_ = (self._pixel_unit >= 0).reshape(res, res)
            return
        try:
            simplices = Delaunay(self.coordinates_).simplices
        except QhullError:  # collinear units: no area to fill
            simplices = np.zeros((0, 3), np.int64)
        self._simplices = simplices
        self._pixel_tri, self._bary = _rasterise(self.coordinates_, simplices, res)
        self.mask_ = (self._pixel_tri >= 0).reshape(res, res)
        self._pixel_unit = cKDTree(self.coordinates_).query(self._pixels)[1]

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Images of per-unit values over the layout: ``[n_groups, res, res]`` (or ``[res, res]``).

        ``values`` is ``[n_groups, n_units]`` (e.g. :func:`unit_values` of NAPs) or
        ``[n_units]``. Row ``i`` of an image is ``y = (i + 0.5) / res`` (draw with
        ``origin="lower"``). Pixels outside the convex hull of the units (or in empty grid
        cells) are NaN: nothing is painted where no unit is.
        """
        if not hasattr(self, "coordinates_"):
            raise AnalysisError("This TopomapLayout is not fitted yet; call fit(profiles) first.")
        v = np.asarray(values, dtype=np.float64)
        single = v.ndim == 1
        v = v[None] if single else v
        if v.ndim != 2 or v.shape[1] != self.n_units_:
            raise AnalysisError(f"values must be [n_groups, {self.n_units_}] (one per unit of the layout);"
                                f" got shape {np.shape(values)}.")
        res = int(self.resolution)
        how = self.interpolation_
        if how == "linear":
            inside = self._pixel_tri >= 0
            corners = self._simplices[np.maximum(self._pixel_tri, 0)]          # [pixels, 3]
            flat = np.einsum("pk,gpk->gp", self._bary, v[:, corners])
            flat[:, ~inside] = np.nan
        else:
            flat = v[:, self._pixel_unit]
        flat = np.where(self.mask_.ravel()[None, :], flat, np.nan)
        images = flat.reshape(len(v), res, res).astype(np.float32)
        return images[0] if single else images

    def __repr__(self) -> str:
        return f"TopomapLayout(method={self.method!r}, seed={self.seed})"


def _rasterise(points: np.ndarray, simplices: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each pixel centre of a ``res × res`` image of [0, 1]², and where.

    Returns ``(triangle [res*res], barycentric weights [res*res, 3])``, triangle -1 outside
    every triangle. Vectorised over (triangle, pixel-in-its-bounding-box) pairs, O(pixels +
    triangles): :meth:`scipy.spatial.Delaunay.find_simplex` can take seconds on the evenly
    spaced (nearly co-circular) sites a spread layout has.
    """
    n_pix = res * res
    tri_of = np.full(n_pix, -1, np.int64)
    bary = np.zeros((n_pix, 3))
    if len(simplices) == 0:
        return tri_of, bary
    corners = points[simplices]                                         # [T, 3, 2]
    # Pixel i covers centre (i + 0.5) / res: the pixels of a box [lo, hi] are ceil/floor of it.
    lo = np.ceil(corners.min(1) * res - 0.5).astype(np.int64).clip(0, res - 1)
    hi = np.floor(corners.max(1) * res - 0.5).astype(np.int64).clip(-1, res - 1)
    width = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    height = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    sizes = width * height
    tri = np.repeat(np.arange(len(simplices)), sizes)
    offset = np.arange(len(tri)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    px = lo[tri, 0] + offset % width[tri]
    py = lo[tri, 1] + offset // width[tri]
    xy = np.stack([(px + 0.5) / res, (py + 0.5) / res], axis=1)
    a, b, c = corners[tri, 0], corners[tri, 1], corners[tri, 2]
    ab, ac, ap = b - a, c - a, xy - a
    det = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    ok = np.abs(det) > 1e-15
    det = np.where(ok, det, 1.0)
    l1 = (ap[:, 0] * ac[:, 1] - ap[:, 1] * ac[:, 0]) / det
    l2 = (ab[:, 0] * ap[:, 1] - ab[:, 1] * ap[:, 0]) / det
    l0 = 1.0 - l1 - l2
    eps = 1e-9
    inside = ok & (l0 >= -eps) & (l1 >= -eps) & (l2 >= -eps)
    pixel = (py * res + px)[inside]
    tri_of[pixel] = tri[inside]                                         # on a shared edge: either
    bary[pixel] = np.stack([l0, l1, l2], axis=1)[inside]
    return tri_of, bary


def sums_to_zero(images: np.ndarray, rtol: float = 1e-6) -> bool:
    """Whether the groups' maps cancel pixel by pixel (contrastive NAPs do, by construction).

    Then :func:`map_similarity` is fixed by the algebra near ``−1 / (n_groups − 1)`` and
    tells nothing about the layer.

    Example
    -------
    >>> a = np.random.default_rng(0).normal(size=(3, 4, 4))
    >>> sums_to_zero(a - a.mean(0)), sums_to_zero(a)
    (True, False)
    """
    imgs = np.asarray(images, dtype=np.float64)
    flat = imgs.reshape(len(imgs), -1)
    flat = flat[:, np.isfinite(flat).all(0)]
    scale = float(np.abs(flat).max(initial=0.0))
    return bool(scale > 0 and np.abs(flat.sum(0)).max(initial=0.0) <= rtol * scale * len(flat))


def map_similarity(images: np.ndarray) -> float:
    """Mean pairwise Pearson correlation between groups' maps (pixels valid in all maps).

    Near 1: the groups' maps look alike; lower: the layer tells the groups apart. Only
    meaningful for maps that do not cancel across groups (see :func:`sums_to_zero`):
    :func:`topomaps` leaves it out for contrastive NAPs.

    Example
    -------
    >>> a = np.random.default_rng(0).normal(size=(3, 8, 8))
    >>> round(map_similarity(np.stack([a[0], a[0], a[0]])), 6)
    1.0
    """
    imgs = np.asarray(images, dtype=np.float64)
    flat = imgs.reshape(len(imgs), -1)
    valid = np.isfinite(flat).all(0)
    flat = flat[:, valid]
    if len(flat) < 2 or flat.shape[1] < 2:
        return float("nan")
    corr = np.corrcoef(flat)
    iu = np.triu_indices(len(flat), 1)
    return float(np.nanmean(corr[iu]))


# ---------------------------------------------------------------------------- topomaps of NAPs
class Topomaps(Result):
    """Topographic maps of several layers for the groups of a NAPs result.

    Attributes
    ----------
    method : str
    seed : int
    groups : list of str
    kind : str
        "naps" or "contrastive" (which NAPs the maps show).
    layers : list of str
        Layers with a map (others are in ``skipped`` with the reason).
    coordinates, values, images, quality : dict by layer
        Unit positions ``[n_units, 2]``, unit values ``[n_groups, n_units]``, images
        ``[n_groups, res, res]`` (NaN outside the map), layout quality (:func:`layout_quality`
        plus ``map_similarity``).
    """

    kind = "topomaps"  # the format tag; an instance's ``kind`` ("naps"/"contrastive") shadows it

    def __init__(self, method: str, seed: int, groups: Sequence[str], kind: str,
                 coordinates: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray],
                 images: Mapping[str, np.ndarray], quality: Mapping[str, Mapping[str, float]],
                 skipped: Mapping[str, str] | None = None, options: Mapping[str, Any] | None = None):
        self.method, self.seed, self.kind = method, seed, kind
        self.groups = [str(g) for g in groups]
        self.coordinates = dict(coordinates)
        self.values = dict(values)
        self.images = dict(images)
        self.quality = {k: dict(v) for k, v in quality.items()}
        self.skipped = dict(skipped or {})
        self.options = dict(options or {})

    @property
    def layers(self) -> list[str]:
        """The layers with maps, in order."""
        return list(self.images)

    def image(self, layer: str, group: Any) -> np.ndarray:
        """The map of one group ``[res, res]``."""
        if layer not in self.images:
            why = f" ({self.skipped[layer]})" if layer in self.skipped else ""
            raise LayerError(f"No topomap of layer {layer!r}{why}.{did_you_mean(layer, self.layers)}"
                             f" Layers mapped: {', '.join(self.layers)}.")
        name = str(group)
        if name not in self.groups:
            raise AnalysisError(f"No group {name!r}.{did_you_mean(name, self.groups)}"
                                f" Groups: {', '.join(self.groups)}.")
        return self.images[layer][self.groups.index(name)]

    def summary(self) -> dict[str, Any]:
        """Method, seed, kind, groups, layout quality per layer and the skipped layers (strict JSON)."""
        return {"method": self.method, "seed": self.seed, "kind": self.kind, "groups": self.groups,
                "quality": self.quality, "skipped": self.skipped, "options": self.options}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``topomaps.json`` (+ ``summary.json``) and ``arrays.npz`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        keys = {layer: f"l{i}" for i, layer in enumerate(self.layers)}
        arrays: dict[str, Any] = {}  # Any: numpy types savez's **kwds as Any (it has a bool keyword)
        for layer, k in keys.items():
            arrays[f"{k}_coordinates"] = self.coordinates[layer]
            arrays[f"{k}_values"] = self.values[layer]
            arrays[f"{k}_images"] = self.images[layer]
        np.savez(directory / "arrays.npz", **arrays)
        # strict JSON: an undefined quality (NaN trustworthiness of a degenerate layout) is null
        self.write_json(directory / "topomaps.json", {"format": FORMAT, "layers": self.layers, **self.summary()})
        self.write_summary(directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Topomaps:
        """Read topomaps written by :meth:`save`."""
        directory = Path(directory)
        meta_file = cls._required(directory, "topomaps.json", "arrays.npz", what="topomaps",
                                  fix="make them with neuralatlas.analysis.topomap.topomaps(naps).save(dir) or"
                                      " `neuralatlas topomap RUN_DIR`")
        meta = cls.read_json(meta_file)
        if meta.get("format") != FORMAT:
            raise StoreError(f"{meta_file} is not a topomaps file (format {meta.get('format')!r}).")
        coords, values, images = {}, {}, {}
        with np.load(directory / "arrays.npz") as f:
            for i, layer in enumerate(meta["layers"]):
                coords[layer] = f[f"l{i}_coordinates"]
                values[layer] = f[f"l{i}_values"]
                images[layer] = f[f"l{i}_images"]
        # null in a quality entry was a NaN (undefined) measure: a number again, as before saving
        quality = {layer: {k: float("nan") if v is None else v for k, v in q.items()}
                   for layer, q in meta["quality"].items()}
        return cls(meta["method"], meta["seed"], meta["groups"], meta["kind"], coords, values, images,
                   quality, meta.get("skipped"), meta.get("options"))

    def to_frame(self) -> Any:
        """One row per layer (a DataFrame): its layout quality measures (skipped layers with the reason)."""
        import pandas as pd

        rows = [{"layer": layer, **q} for layer, q in self.quality.items()]
        rows += [{"layer": layer, "skipped": why} for layer, why in self.skipped.items()]
        return pd.DataFrame(rows).set_index("layer") if rows else pd.DataFrame()

    def __repr__(self) -> str:
        return f"Topomaps(method={self.method!r}, kind={self.kind!r}, layers={self.layers}, groups={len(self.groups)})"


MIN_UNITS = 16
"""Fewest units (channels) a layer needs for a topomap: iNNtrospect skips layers of ≤ 15."""


def topomaps(result: Any, layers: str | Sequence[str] | None = None, method: str = "umap", seed: int = 0,
             *, progress: Callable[[int, int], None] | None = None, min_units: int = MIN_UNITS,
             pixel_layers: Sequence[str] = ("input",), **layout_options: Any) -> Topomaps:
    """Topographic activation maps of NAPs (or contrastive NAPs), one layout per layer.

    Each layer's units are laid out from their profiles (:func:`unit_profiles`) and each
    group's unit values (:func:`unit_values`) are drawn over the layout. Layers with fewer
    than ``min_units`` units (channels) are skipped, with the reason in ``skipped``: a
    layout of a handful of units has no neighbourhoods to keep, and its quality measures
    cannot differ from a random layout's. An input layer (``pixel_layers``, with NAPs of
    shape ``[groups, C, H, W]`` or ``[groups, H, W]``) needs no layout: its map is the
    group's mean image on its own pixel grid (channels averaged), with no layout quality.
    ``map_similarity`` is reported only where the groups' maps do not cancel by
    construction (not for contrastive NAPs; see :func:`sums_to_zero`).

    Parameters
    ----------
    result : NAPs
        From :func:`neuralatlas.naps` or :func:`neuralatlas.contrastive_naps` (iNNtrospect
        lays out and draws contrastive NAPs).
    layers : str or list, optional
        Layer names or glob patterns; default all.
    method, seed, **layout_options
        Passed to :class:`TopomapLayout`.
    progress : callable(done, total), optional

    Returns
    -------
    Topomaps

    Example
    -------
    >>> from neuralatlas import capture
    >>> from neuralatlas.analysis.naps import contrastive_naps, naps
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> store = capture(build("cnn", seed=0).eval(), test.subset(slice(0, 100)), out="acts.zarr")
    >>> maps = topomaps(contrastive_naps(naps(store, layers="conv2")), method="grid")
    >>> maps.images["conv2"].shape
    (10, 64, 64)
    """
    from neuralatlas.analysis.naps import NAPs
    from neuralatlas.analysis.sources import resolve_layers

    if not isinstance(result, NAPs):
        raise AnalysisError(f"topomaps needs a NAPs result (neuralatlas.naps); got {type(result).__name__}.")
    chosen = resolve_layers(result, layers)
    coords, values, images, quality, skipped = {}, {}, {}, {}, {}
    for i, layer in enumerate(chosen):
        v = result.values(layer)
        n_units = v.shape[1] if v.ndim >= 2 else 0
        if layer in pixel_layers and v.ndim in (3, 4):
            grid = v if v.ndim == 3 else v.mean(axis=1)                # [groups, H, W]
            h, w = grid.shape[1:]
            yy, xx = np.mgrid[0:h, 0:w]
            coords[layer] = np.c_[xx.ravel(), h - 1 - yy.ravel()].astype(np.float32)
            values[layer] = grid.reshape(len(grid), -1).astype(np.float32)
            images[layer] = grid.astype(np.float32)
            quality[layer] = {"units": float(h * w), "layout": "pixel grid"}
        elif n_units < min_units:
            skipped[layer] = (f"{n_units} unit(s); a topomap needs at least {min_units}"
                              " (too few to lay out: iNNtrospect skips layers of 15 or fewer)")
        else:
            layout = TopomapLayout(method=method, seed=seed, **layout_options).fit(unit_profiles(v))
            coords[layer] = layout.coordinates_.astype(np.float32)
            values[layer] = unit_values(v).astype(np.float32)
            images[layer] = layout.transform(values[layer])
            quality[layer] = dict(layout.quality_)
        if layer in images and "layout" not in quality[layer] and not sums_to_zero(images[layer]):
            quality[layer]["map_similarity"] = map_similarity(images[layer])
        if progress is not None:
            progress(i + 1, len(chosen))
    return Topomaps(method, seed, result.groups, result.kind, coords, values, images, quality, skipped,
                    {k: v for k, v in layout_options.items() if isinstance(v, (int, float, str, bool))})
