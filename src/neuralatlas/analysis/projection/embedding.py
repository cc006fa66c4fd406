"""Embedding one matrix (t-SNE, UMAP, PCA), aligning embeddings, and the projected sequence."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.linalg import orthogonal_procrustes

from neuralatlas.analysis.projection.result import Projection
from neuralatlas.analysis.projection.sources import (
    METHODS,
    Key,
    Progress,
    _flatten,
    _source,
    _StoreSource,
    stratified_subset,
)
from neuralatlas.analysis.quality import neighborhood_hit, trustworthiness
from neuralatlas.analysis.sources import DEFAULT_N_SAMPLES, AtMost
from neuralatlas.analysis.streaming import (
    BlockReduction,
    block_rows,
    parse_memory_limit,
    reduce_blocks,
)
from neuralatlas.errors import AnalysisError
from neuralatlas.vocabulary import renamed_parameter

# An embedding handed to openTSNE as initialisation is rescaled to this standard deviation:
# openTSNE's own PCA/spectral initialisations use it, larger spreads converge poorly.
_INIT_STD = 1e-4


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
def tsne_settings(n: int, warm: bool = False, next_epoch: bool = False) -> dict[str, Any]:
    """Settings of openTSNE for ``n`` points (measured in ``benchmarks/projection.py``).

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
    * ``next_epoch``: a warm start from the *same layer one captured epoch earlier* (the
      inter-epoch chain, where consecutive embeddings differ least) refines rather than
      rebuilds: no exaggeration and 250 iterations. Measured on the digits CNN, 10 layers ×
      11 epochs (110 embeddings of 2,000 points): 50 s against 121 s, neighbourhood hit per
      layer within 0.004 of the full schedule averaged over epochs and within 0.012 at the
      last epoch (the spread between seeds is ~0.008). This is what makes projecting every
      captured epoch affordable.
    """
    settings = {
        "negative_gradient_method": "bh" if n < 5000 else "fft",
        "neighbors": "exact" if n <= 20000 else "annoy",
        "theta": 0.5,
        "early_exaggeration_iter": 125 if warm else 250,
        "n_iter": 500,
    }
    if warm and next_epoch:
        settings.update(early_exaggeration_iter=0, n_iter=250)
    return settings


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
          settings: Mapping[str, Any] | None = None, metric: str = "euclidean",
          next_epoch: bool = False) -> np.ndarray:
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
    metric : str
        Distance of the features (``"precomputed"``: ``features`` is a distance matrix).
    next_epoch : bool
        ``init`` is the same layer's embedding one captured epoch earlier: t-SNE refines it
        with the shorter schedule of :func:`tsne_settings`.

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

        opts = {**tsne_settings(n, warm=init is not None, next_epoch=next_epoch), **dict(settings or {})}
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
        from neuralatlas.analysis._umap import import_umap, neighbour_kwargs

        umap = import_umap()  # numba compiled once per machine, not per process
        k = int(max(2, min(3 * perp, n - 1)))
        kwargs: dict[str, Any] = dict(n_components=2, n_neighbors=k, random_state=seed, metric=metric,
                                      **neighbour_kwargs(x, k, metric))  # no pynndescent compile per process
        if init is not None:
            kwargs["init"] = np.asarray(init, np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.asarray(umap.UMAP(**kwargs).fit_transform(x), np.float64)
    return out - out.mean(0)


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


@renamed_parameter("n", "n_samples")
def project(
    data: Any,
    layers: str | Sequence[str] | None = None,
    epochs: int | str | Sequence[int] | None = None,
    method: str = "tsne",
    n_samples: int | AtMost | None = DEFAULT_N_SAMPLES,
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
    by: str | None = None,
    predictions: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    memory_limit: int | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
    seeds: int = 1,
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
    n_samples : int, AtMost or None
        Samples in the subset (stratified by class, seeded). The default,
        ``AtMost(2000)``, takes up to 2,000 (all of a smaller store); an ``int`` takes
        exactly that many (more than the store holds is an error); ``None`` takes every
        sample. (``n=`` is the old name, deprecated.)
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
        The sample table, for ``data`` given as arrays.
    by : str, optional
        For a store: the sample-table column to colour (and stratify) by instead of
        ``label``: ``"token"``, ``"position"``, ``"group"``, ... (``labels="token"`` is the
        old spelling, deprecated).
    memory_limit, client
        ``method="pca"`` with ``n_samples=None`` on a store is out of core: the principal axes come
        from the layer's covariance, streamed over every sample in blocks that fit
        ``memory_limit`` (or on a dask cluster, ``client=``), and every sample is projected
        in a second streamed pass. Quality scores are then measured on a stratified subset
        of at most 2,000 samples. See :func:`neuralatlas.analysis.streaming.reduce_blocks`.
    progress : callable(done, total), optional
        Called after every embedding.
    seeds : int
        t-SNE and UMAP are random: differences of neighbourhood hit between layers can be as
        small as the spread between runs. With ``seeds > 1`` every layer of the last epoch is
        embedded ``seeds − 1`` more times, independently (seeds ``seed + 1, ...``, no
        initialisation from a neighbour), on the same samples, and its quality gets
        ``nh_mean``, ``nh_min``, ``nh_max`` over the ``seeds`` runs (the kept, aligned
        embedding among them) and ``nh_seeds``. The coordinates are those of the kept run.
        It costs ``seeds − 1`` more embeddings per layer. PCA is deterministic: no extra runs.

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
        ``n_samples`` larger than the store, an unknown method, too few samples.

    Example
    -------
    >>> res = project("runs/demo/mlp", layers=["fc1", "fc2"], epochs="all")   # doctest: +SKIP
    >>> res.quality_table()                                                   # doctest: +SKIP
    >>> res.save("runs/demo/mlp/results/projection")                          # doctest: +SKIP
    """
    if method not in METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose one of {', '.join(METHODS)}.")
    if int(seeds) != seeds or seeds < 1:
        raise AnalysisError(f"seeds={seeds!r}: give 1 (one embedding) or more (a spread of neighbourhood hit).")
    if isinstance(labels, str):
        warnings.warn(f"project(labels={labels!r}) is deprecated since 0.2: grouping is by=; use by={labels!r}",
                      DeprecationWarning, stacklevel=3)
        labels, by = None, labels
    src = _source(data, labels=labels, predictions=predictions, classes=classes, inputs=inputs, by=by)
    names = src.resolve_layers(layers)
    slots = src.resolve_epochs(epochs)
    rows = src.subset(n_samples, seed)
    if len(rows) < max(5, k + 1):
        raise AnalysisError(f"{len(rows)} samples are too few to project; use n_samples >= {max(5, k + 1)}.")
    sub_labels = src.labels[rows]

    streamed = method == "pca" and n_samples is None and isinstance(src, _StoreSource)
    scored = stratified_subset(src.labels, DEFAULT_N_SAMPLES.of(src.n_samples), seed) if streamed else rows
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
                      pca_dims=None, settings=settings, next_epoch=init is not None and prev[0] == layer)
            if align and prev is not None:
                y = procrustes_align(y, coords[prev])
            coords[key] = y
            if quality:
                scores[key] = {"neighborhood_hit": neighborhood_hit(y, sub_labels, k=k),
                               "trustworthiness": trustworthiness(features, y, k=min(7, len(y) // 4))}
        if progress is not None:
            progress(step, len(plan))

    if seeds > 1 and quality and method != "pca" and not streamed:
        last = slots[-1]
        for layer in names:
            key = (layer, last)
            if key not in scores:
                continue
            features = _reduce(_flatten(src.read(layer, last, rows), None), pca_dims, seed)
            hits = [scores[key]["neighborhood_hit"]]
            for extra in range(1, seeds):
                y = embed(features, method, seed=seed + extra, perplexity=perplexity, n_jobs=n_jobs,
                          pca_dims=None, settings=settings)
                hits.append(neighborhood_hit(y, sub_labels, k=k))
            scores[key].update(nh_mean=float(np.mean(hits)), nh_min=float(np.min(hits)),
                               nh_max=float(np.max(hits)), nh_seeds=int(seeds))

    preds = {}
    for e in slots:
        p = src.predictions(e)
        if p is not None:
            preds[e] = p[rows]
    params = {"n": int(len(rows)), "seed": int(seed), "align": bool(align), "perplexity": float(perplexity),
              "pca_dims": pca_dims, "k": int(k), "source": src.where, "seeds": int(seeds)}
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
