"""Neurons as points: a layer's neurons placed by the correlation of their activations."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralatlas.analysis.projection.embedding import embed
from neuralatlas.analysis.projection.result import NeuronProjection
from neuralatlas.analysis.projection.sources import (
    METHODS,
    _flatten,
    _source,
    _StoreSource,
)
from neuralatlas.analysis.quality import trustworthiness
from neuralatlas.analysis.sources import DEFAULT_N_SAMPLES, AtMost
from neuralatlas.analysis.streaming import (
    pooled_shape,
)
from neuralatlas.errors import AnalysisError
from neuralatlas.vocabulary import renamed_parameter


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


@renamed_parameter("n", "n_samples")
def neuron_projection(data: Any, layer: str, *, epoch: int | None = None, method: str = "tsne",
                      n_samples: int | AtMost | None = DEFAULT_N_SAMPLES, seed: int = 0,
                      pool: str = "mean", perplexity: float = 30.0,
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
    n_samples : int, AtMost or None
        Samples describing each neuron (same rules as :func:`project`; ``n=`` is the old name). ``None`` on a
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
    if n_samples is None and isinstance(src, _StoreSource) and not src.epoch_invariant(name):
        from neuralatlas.analysis.similarity import layer_covariance

        n_neurons = int(np.prod(pooled_shape(src.store.unit_shape(name), pool)))
        if n_neurons < 5:
            raise AnalysisError(f"Layer {name!r} has {n_neurons} neurons; at least 5 are needed for a neuron map.")
        mean, cov = layer_covariance(src.store, name, epoch=slot, pool=pool, memory_limit=memory_limit,
                                     client=client)
        profiles, dead = correlation_factor(mean, cov)
        rows = np.arange(src.n_samples)
    else:
        rows = src.subset(n_samples, seed)
        matrix = _flatten(src.read(name, slot, rows), pool)
        if matrix.shape[1] < 5:
            raise AnalysisError(
                f"Layer {name!r} has {matrix.shape[1]} neurons; at least 5 are needed for a neuron map."
            )
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
