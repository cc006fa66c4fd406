"""Centred kernel alignment: linear (streamed, exact) and RBF, between arrays, layers, epochs and models."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from neuralatlas.analysis.similarity.covariance import _cross_hsic, _plan
from neuralatlas.analysis.similarity.result import SimilarityMatrix
from neuralatlas.analysis.similarity.sources import (
    DEFAULT_SUBSAMPLE,
    ProgressFn,
    SimilarityWarning,
    _array_source,
    _as_store,
    _block_rows,
    _check_n,
    _check_pool,
    _layer_sources,
    _old_cap,
    _requested,
    _resolve_layers,
    _Source,
    _store_name,
    _subsample_index,
    _subsample_size,
    _unique_sources,
)
from neuralatlas.analysis.sources import captured_epochs
from neuralatlas.analysis.streaming import (
    format_bytes,
    parse_memory_limit,
)
from neuralatlas.errors import AnalysisError, StoreError
from neuralatlas.vocabulary import Epochs, renamed_parameter


def _unbiased_centring(k: np.ndarray) -> np.ndarray:
    """Song et al.'s (2012) U-centring of a Gram matrix, in place.

    ``⟨K̃, L̃⟩`` is then ``n(n − 3)`` times the unbiased HSIC estimator (Kornblith et al. 2019's debiased CKA).
    """
    n = len(k)
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0.0)
    return k


def _centred_gram(x: np.ndarray, kernel: str, threshold: float, unbiased: bool = False) -> np.ndarray:
    """The doubly centred Gram matrix ``H K H`` of rows ``x`` (float64); U-centred if ``unbiased``."""
    x = np.asarray(x, np.float64)
    if kernel == "linear":
        x = x - x.mean(axis=0)
        gram = x @ x.T  # column-centred features give a doubly centred linear Gram
        return _unbiased_centring(gram) if unbiased else gram
    x = x - x.mean(axis=0)  # distances ignore shifts; centring keeps ‖a‖²+‖b‖²−2a·b from cancelling
    sq = np.einsum("ij,ij->i", x, x)
    gram = x @ x.T
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0.0)
    iu = np.triu_indices(len(x), k=1)
    sigma2 = float(np.median(dist2[iu])) * threshold**2
    if sigma2 <= 0:
        k = np.ones_like(dist2)  # all samples identical: a constant kernel, centred to zero
    else:
        k = np.exp(-dist2 / (2.0 * sigma2))
    if unbiased:
        return _unbiased_centring(k)
    k -= k.mean(axis=0, keepdims=True)
    k -= k.mean(axis=1, keepdims=True)
    return k


def _gram_hsic(sources: Sequence[_Source], pairs: set[tuple[int, int]], index: np.ndarray,
               budget: int, kernel: str, threshold: float,
               tick: Callable[[], None], unbiased: bool = False) -> dict[tuple[int, int], float]:
    """``⟨Kᵢ, Kⱼ⟩`` of centred Grams on the subsample rows ``index`` for the pairs asked."""
    involved = sorted({i for pair in pairs for i in pair})
    grams: dict[int, np.ndarray] = {}
    for i in involved:
        s = sources[i]
        step = _block_rows(s.n, s.width * 4, budget // 4, s.chunk_rows, None)
        grams[i] = _centred_gram(s.take(index, step), kernel, threshold, unbiased)
        tick()
    out: dict[tuple[int, int], float] = {}
    for i, j in pairs:
        out[(i, j)] = out[(j, i)] = float(np.vdot(grams[i], grams[j]))
    return out


def _cka_values(hsic: Mapping[tuple[int, int], float], rows: Sequence[int],
                cols: Sequence[int]) -> np.ndarray:
    values = np.full((len(rows), len(cols)), np.nan)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            denom = math.sqrt(max(hsic[(i, i)], 0.0) * max(hsic[(j, j)], 0.0))
            if denom > 0:
                values[a, b] = min(hsic[(i, j)] / denom, 1.0) if i == j else hsic[(i, j)] / denom
    return values


CKA_METHODS = ("auto", "feature", "gram")


def _cka(row_sources: Sequence[_Source], col_sources: Sequence[_Source], *, kernel: str = "linear",
         method: str = "auto", memory_limit: int | str | None = None, rows: int | None = None,
         n_samples: Any = DEFAULT_SUBSAMPLE, threshold: float = 1.0, seed: int = 0,
         progress: ProgressFn | None = None, client: Any = None,
         debiased: bool = False) -> tuple[np.ndarray, str, list[str]]:
    """CKA between every row source and every column source; returns (values, method, notes).

    ``debiased`` uses the unbiased HSIC estimator (Kornblith et al. 2019, after Song et al.
    2012) in the Gram form: on every sample when the n×n Grams fit the budget, else on a
    seeded subsample (with a note).

    Linear CKA picks, for ``method="auto"``, the cheaper *exact* form: streamed feature space
    (cost n·D²/2 for D summed widths) or the n×n Gram form on every sample (cost n²·D/2,
    only when all the Grams fit the budget: small n, wide layers). Pairs with a layer too
    wide for feature space whose Grams on all samples do not fit use a subsample.
    """
    budget = parse_memory_limit(memory_limit)
    if kernel not in ("linear", "rbf"):
        raise AnalysisError(f"kernel={kernel!r} is not known; choose 'linear' or 'rbf'.")
    if method not in CKA_METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose one of {', '.join(CKA_METHODS)}.")
    if not threshold > 0:
        raise AnalysisError(f"threshold={threshold} must be positive (bandwidth = threshold × median distance).")
    sources, unique = _unique_sources(row_sources, col_sources)
    n = _check_n(sources)
    subsample = _requested(n_samples, n)
    ri = [unique[s.key] for s in row_sources]
    ci = [unique[s.key] for s in col_sources]
    pairs = {(i, j) for i in ri for j in ci} | {(i, i) for i in (*ri, *ci)}
    involved = sorted({i for pair in pairs for i in pair})
    widths = {i: sources[i].width for i in involved}
    notes: list[str] = []
    # a layer is done exactly in feature space when its own d×d float64 accumulator fits
    # in half the budget; a pair touching a wider layer needs the Gram form
    max_exact = int(math.isqrt(max(1, budget // 2 // 8)))
    wide = {i for i in involved if widths[i] > max_exact}
    # Grams of every sample: one n×n float64 per layer, plus one layer's rows as read
    gram_fits = len(involved) * n * n * 8 + n * max(widths.values()) * 12 <= budget

    if debiased and n < 4:
        raise AnalysisError(f"debiased CKA needs at least 4 samples; got {n}.")
    if kernel == "rbf" or method == "gram" or debiased:
        exact_pairs, gram_pairs = set(), set(pairs)
    else:
        exact_pairs = {(i, j) for i, j in pairs if i not in wide and j not in wide}
        gram_pairs = pairs - exact_pairs
    plan = _plan(sources, exact_pairs, n, budget, rows) if exact_pairs else []
    if kernel == "linear" and method == "auto" and gram_fits and rows is None and client is None:
        feature_cost = sum(n * (sum(widths[i] for i in p.rows) * sum(widths[i] for i in p.cols) if p.cols
                                else sum(widths[i] for i in p.rows) ** 2 / 2) for p in plan)
        gram_cost = n * n * sum(widths.values()) / 2 + len(pairs) * n * n
        if wide or gram_cost < feature_cost:
            exact_pairs, gram_pairs, plan = set(), set(pairs), []
    gram_pairs |= {(i, i) for pair in gram_pairs for i in pair}
    gram_involved = sorted({i for pair in gram_pairs for i in pair})

    total = sum(-(-n // p.step) for p in plan) + len(gram_involved)
    done = 0

    def tick(k: int = 1) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, max(total, done))

    hsic: dict[tuple[int, int], float] = {}
    if exact_pairs:
        hsic.update(_cross_hsic(sources, exact_pairs, plan, n, tick, client=client))
    used = "feature" if exact_pairs else ""
    if gram_pairs:
        if kernel == "linear" and gram_fits and (method == "gram" and subsample >= n or method == "auto"):
            m = n
        elif debiased and kernel == "linear" and gram_fits:
            m = n
        else:
            m = _subsample_size(n, subsample, [widths[i] for i in gram_involved], len(gram_involved), budget)
        index = _subsample_index(n, m, seed)
        used = "+".join(filter(None, [used, "gram" if m == n else "gram-subsample"]))
        if kernel == "linear" and m < n:
            names = ", ".join(sorted(sources[i].label for i in wide)) or "every layer"
            why = (f" (wider than {max_exact} features: the exact d×d accumulators exceed the memory"
                   f" budget of {format_bytes(budget)})" if wide and method != "gram" else "")
            msg = (f"linear CKA of {names}{why} uses the n×n Gram form on {m} of {n} samples"
                   f" (seed {seed}): an estimate." + (" Raise memory_limit, or pass pool='mean' to pool"
                                                        " conv maps over space." if why else ""))
            warnings.warn(msg, SimilarityWarning, stacklevel=3)
            notes.append(msg)
        elif m < n:
            notes.append(f"RBF CKA on a seeded subsample of {m} of {n} samples (seed {seed}).")
            if m < min(n, subsample):
                warnings.warn(f"RBF CKA subsample reduced from {min(n, subsample)} to {m} samples to"
                              f" fit memory_limit={format_bytes(budget)}.", SimilarityWarning, stacklevel=3)
        # the Gram form's self-terms must come from the same subsample as its cross terms
        hsic.update(_gram_hsic(sources, gram_pairs, index, budget, kernel, threshold, tick, unbiased=debiased))
        if debiased and m < n:
            notes.append(f"debiased CKA on a seeded subsample of {m} of {n} samples (seed {seed}).")
    return _cka_values(hsic, ri, ci), used, notes


# ============================================================================ public: CKA
def linear_cka(x: Any, y: Any, *, pool: str | None = None, method: str = "auto",
               memory_limit: int | str | None = None, rows: int | None = None, client: Any = None,
               debiased: bool = False) -> float:
    """Linear CKA of two representations of the same samples, streamed, exact.

    Parameters
    ----------
    x, y : array-like ``[n_samples, *unit_shape]``
        numpy or zarr arrays (e.g. ``store.activations("fc1")``: read block by block).
        Samples are rows; each sample's activations are flattened (or pooled, see ``pool``).
    pool : {None, "mean", "max"}
        None flattens conv maps; "mean"/"max" pool them over the spatial axes (channels first).
    method : {"auto", "feature", "gram"}
        ``"feature"`` streams ``XᵀX``, ``YᵀY``, ``YᵀX`` (O(d²) memory); ``"gram"`` uses the
        n×n Gram matrices (O(n²) memory; a subsample when n > 2,000);
        ``"auto"`` takes the cheaper exact one. All give the same value.
    memory_limit : int or str, optional
        Bytes for accumulators and row blocks (default: a quarter of the free memory).
    rows : int, optional
        Rows per block (overrides what ``memory_limit`` would choose).
    debiased : bool
        Kornblith et al.'s (2019) debiased CKA: the unbiased HSIC estimator (Song et al.
        2012), which removes the upward bias of plain CKA when features outnumber samples
        (two independent random representations give ≈ 0 instead of a large value). Gram
        form, on every sample when the n×n Grams fit ``memory_limit``, else a subsample.

    Returns
    -------
    float
        In [0, 1] (debiased: may dip slightly below 0); 1 when ``y`` is an orthogonal
        transform and isotropic scaling of ``x`` (up to a shift); NaN when either
        representation is constant.

    Raises
    ------
    AnalysisError
        For different sample counts, fewer than 2 samples, or an unknown ``pool``.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(100, 8))
    >>> round(linear_cka(x, 3 * x @ np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))[0]), 6)
    1.0
    """
    pool = _check_pool(pool)
    sx, sy = _array_source(x, "x", pool), _array_source(y, "y", pool)
    values, _, _ = _cka([sx], [sy], method=method, memory_limit=memory_limit, rows=rows, client=client,
                        debiased=debiased)
    return float(values[0, 0])


@renamed_parameter("subsample", "n_samples", transform=_old_cap)
def rbf_cka(x: Any, y: Any, *, threshold: float = 1.0, n_samples: Any = DEFAULT_SUBSAMPLE,
            seed: int = 0, pool: str | None = None, memory_limit: int | str | None = None) -> float:
    """CKA with Gaussian (RBF) kernels, on a seeded subsample of the samples.

    The bandwidth σ is ``threshold`` × the median pairwise Euclidean distance of each
    representation (Kornblith et al. 2019); the kernels are compared by centred HSIC.

    Parameters
    ----------
    x, y : array-like ``[n_samples, *unit_shape]``
    threshold : float
        Bandwidth as a multiple of the median distance.
    n_samples : AtMost, int or None
        Samples used (the n×n Gram matrices cost ``8·m²`` bytes each): ``AtMost(2000)``
        (default) up to 2,000, an ``int`` exactly that many, ``None`` every sample; fewer
        when they do not fit ``memory_limit`` (with a warning). ``subsample=`` is the old
        name (deprecated; it meant "up to").
    seed : int
        Seed of the subsample; the same seed gives the same value.
    pool, memory_limit
        As in :func:`linear_cka`.

    Returns
    -------
    float

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(200, 5))
    >>> round(rbf_cka(x, x), 6)
    1.0
    """
    pool = _check_pool(pool)
    sx, sy = _array_source(x, "x", pool), _array_source(y, "y", pool)
    values, _, _ = _cka([sx], [sy], kernel="rbf", memory_limit=memory_limit, n_samples=n_samples,
                     threshold=threshold, seed=seed)
    return float(values[0, 0])


@renamed_parameter("subsample", "n_samples", transform=_old_cap)
def cka_matrix(store: Any, layers: Sequence[str] | str | None = None, *, epoch: int | None = None,
               other: Any = None, other_layers: Sequence[str] | str | None = None,
               other_epoch: int | None = None, kernel: str = "linear", method: str = "auto",
               pool: str | None = None, memory_limit: int | str | None = None, rows: int | None = None,
               n_samples: Any = DEFAULT_SUBSAMPLE, threshold: float = 1.0, seed: int = 0,
               progress: ProgressFn | None = None, client: Any = None,
               debiased: bool = False) -> SimilarityMatrix:
    """CKA between every pair of layers of a store, or between the layers of two stores.

    Linear CKA streams the store in row blocks with bounded memory and is exact (see the
    module notes on very wide layers); RBF CKA uses a seeded subsample.

    Parameters
    ----------
    store : ActivationStore or path
    layers : str or sequence of str, optional
        Layer names or glob patterns (default: every layer), kept in model order.
    epoch : int, optional
        Checkpoint epoch (default: the final model).
    other : ActivationStore or path, optional
        A second store of the *same samples* (a different model, or a different run):
        rows are ``store``'s layers, columns ``other``'s.
    other_layers, other_epoch
        Layers and epoch of ``other`` (defaults: every layer, the final model).
    kernel : {"linear", "rbf"}
    method : {"auto", "feature", "gram"}
        How linear CKA is computed (see :func:`linear_cka`); ``"auto"`` picks the cheaper
        exact form.
    pool : {None, "mean", "max"}
        Flatten conv maps (None) or pool them over space.
    memory_limit : int or str, optional
        Bytes (default: a quarter of the free memory); decides the rows per block.
    rows : int, optional
        Rows per block, overriding ``memory_limit``'s choice.
    n_samples, threshold, seed
        For RBF CKA and for the Gram-form fallback of very wide layers (see :func:`rbf_cka`;
        ``subsample=`` is the old name of ``n_samples``).
    debiased : bool
        Debiased CKA (Kornblith et al. 2019) beside the default biased one; see
        :func:`linear_cka`.
    progress : callable(done, total), optional
    client : dask.distributed.Client, optional
        Stream the linear CKA passes on a dask cluster (the store on shared storage): each
        worker accumulates the cross-products of a shard of chunks; the d×d partials are
        summed on the cluster. ``method="auto"`` then keeps the feature form.

    Returns
    -------
    SimilarityMatrix

    Raises
    ------
    LayerError
        For a layer that is not in the store.
    AnalysisError
        When ``other`` holds different samples (its ``index`` column differs).

    Example
    -------
    >>> m = cka_matrix(store)                       # doctest: +SKIP
    >>> m["fc1", "relu1"]                          # doctest: +SKIP
    0.93
    """
    store, row_sources, col_sources, col_axis = _layer_sources(store, layers, epoch, other, other_layers,
                                                               other_epoch, pool)
    name = ("debiased " if debiased else "") + ("linear" if kernel == "linear" else "RBF")
    title = (f"{name} CKA between layers" if other is None
             else f"{name} CKA: {_store_name(store)} vs {col_axis}")
    values, used, notes = _cka(row_sources, col_sources, kernel=kernel, method=method,
                               memory_limit=memory_limit, rows=rows, client=client,
                         n_samples=n_samples, threshold=threshold, seed=seed, progress=progress,
                         debiased=debiased)
    return SimilarityMatrix(values, [s.layer for s in row_sources], [s.layer for s in col_sources],
                            ("debiased_" if debiased else "") + f"{kernel}_cka",
                            "layer" if other is None else _store_name(store), col_axis, title, notes, used)


@renamed_parameter("subsample", "n_samples", transform=_old_cap)
def epoch_cka_matrix(store: Any, layer: str, epochs: Epochs = None, *,
                     kernel: str = "linear", method: str = "auto", pool: str | None = None,
                     memory_limit: int | str | None = None, rows: int | None = None,
                     n_samples: Any = DEFAULT_SUBSAMPLE, threshold: float = 1.0, seed: int = 0,
                     progress: ProgressFn | None = None, client: Any = None) -> SimilarityMatrix:
    """CKA of one layer between every pair of training epochs (how the layer changed).

    Parameters
    ----------
    store : ActivationStore or path
        A per-epoch capture (``capture(..., checkpoints=RUN_DIR)``).
    layer : str
    epochs : None, "all", "last", int or list of int
        A selection of captured epochs; default (None): every epoch captured.
    kernel, method, pool, memory_limit, rows, n_samples, threshold, seed, progress, client
        As in :func:`cka_matrix`.

    Returns
    -------
    SimilarityMatrix
        Rows and columns ``"epoch 0"``, ``"epoch 1"``, ...

    Raises
    ------
    StoreError
        When the store has no per-epoch activations, or an epoch is not in it.

    Example
    -------
    >>> m = epoch_cka_matrix(store, "relu1")           # doctest: +SKIP
    >>> m.values[0, -1]   # untrained vs trained        # doctest: +SKIP
    0.41
    """
    store = _as_store(store)
    pool = _check_pool(pool)
    chosen_layers = _resolve_layers(store, [layer]) if isinstance(layer, str) else []
    if len(chosen_layers) != 1:
        raise AnalysisError(f"epoch_cka_matrix compares one layer across epochs; {layer!r} names"
                            f" {len(chosen_layers)} layers. Pass one layer name, e.g. {store.layers[0]!r}.")
    layer = chosen_layers[0]
    available = store.epochs
    if not available:
        raise StoreError(f"The store {store.path} has no per-epoch activations; capture with"
                         " checkpoints=RUN_DIR (`neuralatlas capture --per-epoch`) to compare epochs.")
    # None is every epoch here (the matrix compares epochs); any other selection by the one rule
    chosen = captured_epochs(available, "all" if epochs is None else epochs, where=f"the store {store.path}")
    sources = [_Source(label=f"{layer}@{e}", n=store.n_samples, unit_shape=tuple(store.unit_shape(layer)),
                       pool=pool, store=store, layer=layer, epoch=e, chunk_rows=store.chunk_rows)
               for e in chosen]
    values, used, notes = _cka(sources, sources, kernel=kernel, method=method,
                               memory_limit=memory_limit, rows=rows, client=client,
                         n_samples=n_samples, threshold=threshold, seed=seed, progress=progress)
    labels = [f"epoch {e}" for e in chosen]
    return SimilarityMatrix(values, labels, labels, f"{kernel}_cka", "epoch", "epoch",
                            f"{layer}: {'linear' if kernel == 'linear' else 'RBF'} CKA between epochs", notes, used)
