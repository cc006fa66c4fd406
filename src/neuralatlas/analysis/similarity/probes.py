"""Linear probes: cross-validated logistic-regression accuracy of each layer's activations."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuralatlas.analysis.similarity.result import ProbeResult
from neuralatlas.analysis.similarity.sources import (
    ProgressFn,
    SimilarityWarning,
    _as_store,
    _block_rows,
    _check_pool,
    _old_cap,
    _store_name,
    _store_sources,
    _subsample_index,
)
from neuralatlas.analysis.sources import AtMost, resolve_sample_count
from neuralatlas.analysis.streaming import (
    format_bytes,
    parse_memory_limit,
)
from neuralatlas.errors import AnalysisError
from neuralatlas.vocabulary import renamed_parameter

DEFAULT_PROBE_SAMPLES = AtMost(10_000)
"""Up to 10,000 samples per probe (a seeded random subset)."""


@renamed_parameter("max_samples", "n_samples", transform=_old_cap)
def linear_probes(store: Any, layers: Sequence[str] | str | None = None, *, epoch: int | None = None,
                  labels: Sequence[int] | np.ndarray | None = None, cv: int = 5, seed: int = 0,
                  max_features: int = 128, n_samples: Any = DEFAULT_PROBE_SAMPLES, C: float = 1.0,
                  pool: str | None = None, memory_limit: int | str | None = None,
                  progress: ProgressFn | None = None) -> ProbeResult:
    """Cross-validated logistic-regression accuracy of each layer's activations.

    Each probe standardises the features, reduces layers wider than ``max_features`` with
    PCA (fitted on the training folds only), and fits a multinomial logistic regression;
    the folds are stratified and seeded. On token rows (``capture(..., rows="tokens")``) the
    folds keep each sentence whole (grouped by the ``sample`` column), so a probe is never
    tested on tokens of a sentence it was trained on. A class with fewer than ``cv`` samples
    is left out, with a warning, when at least two classes remain (e.g.
    ``labels=store.samples["position"]``: the last positions of the longest sentences).

    Parameters
    ----------
    store : ActivationStore or path
    layers : str or sequence of str, optional
        Default: every layer.
    epoch : int, optional
        Checkpoint epoch (default: the final model).
    labels : array-like, optional
        Class per sample (default: the store's ``label`` column).
    cv : int
        Folds (a class needs at least ``cv`` samples, else it is left out; see above).
    seed : int
        Seeds the folds, the sample subset and the PCA; the same seed gives the same result.
    max_features : int
        Layers wider than this are PCA-reduced to it first.
    n_samples : AtMost, int or None
        Samples probed (a seeded, stratification-free random subset): ``AtMost(10000)``
        (default) up to 10,000, an ``int`` exactly that many, ``None`` all.
        ``max_samples=`` is the old name (deprecated; it meant "up to").
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    pool, memory_limit, progress
        As in :func:`cka_matrix`.

    Returns
    -------
    ProbeResult

    Raises
    ------
    AnalysisError
        When the store has no labels, or a class has fewer than ``cv`` samples.

    Example
    -------
    >>> probes = linear_probes(store)                 # doctest: +SKIP
    >>> probes["relu2"] > probes["flatten"]           # doctest: +SKIP
    True
    """
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    store = _as_store(store)
    pool = _check_pool(pool)
    budget = parse_memory_limit(memory_limit)
    sources = _store_sources(store, layers, epoch, pool)
    y_all = np.asarray(store.samples["label"] if labels is None else labels)
    if y_all.shape != (store.n_samples,):
        raise AnalysisError(f"labels have shape {y_all.shape}; the store has {store.n_samples} samples.")
    if labels is None and y_all.dtype.kind == "f" and not np.array_equal(y_all, np.round(y_all)):
        raise AnalysisError(f"The store {store.path} has float labels (regression targets); a linear probe"
                            " classifies. Pass labels= classes (e.g. binned targets, or the token"
                            " rows' position column).")
    if labels is None and np.all(y_all < 0):
        raise AnalysisError(f"The store {store.path} has no labels (all -1); pass labels=... or capture"
                            " a labelled data set to run linear probes.")
    if int(cv) < 2:
        raise AnalysisError(f"cv={cv} must be at least 2 folds.")
    n = store.n_samples
    m = resolve_sample_count(n_samples, n, where=f"the store {store.path}")
    widest = max(s.width for s in sources)
    # one layer's subset is in memory at a time (float32 plus the scaler's float64 copy)
    fit = max(2, budget // max(1, widest * 20))
    if fit < m:
        warnings.warn(f"linear probes use {fit} of {m} samples so that the widest layer ({widest}"
                      f" features) fits memory_limit={format_bytes(budget)}; pass pool='mean' or raise"
                      " memory_limit to use more.", SimilarityWarning, stacklevel=2)
        m = fit
    index = _subsample_index(n, m, seed)
    y = y_all[index]
    keep = y >= 0
    classes, counts = np.unique(y[keep], return_counts=True)
    if len(classes) < 2:
        raise AnalysisError(f"Linear probes need at least 2 classes; the samples have {len(classes)}.")
    rare = classes[counts < cv]
    if len(rare) and len(classes) - len(rare) >= 2:
        # a class in fewer rows than folds cannot be stratified (the last token positions of
        # the longest sentences, a rare token): probe the others, and say which were left out
        keep &= ~np.isin(y, rare)
        warnings.warn(f"linear probes leave out {len(rare)} of {len(classes)} classes with fewer than cv={cv}"
                      f" samples ({', '.join(map(str, rare[:8]))}{' ...' if len(rare) > 8 else ''};"
                      f" {int(np.isin(y, rare).sum())} samples); the accuracy is over the other classes."
                      " Merge rare classes (e.g. np.minimum(position, 15)) to keep them.",
                      SimilarityWarning, stacklevel=2)
        classes, counts = np.unique(y[keep], return_counts=True)
    elif len(rare):
        worst = classes[int(np.argmin(counts))]
        raise AnalysisError(f"Class {worst} has only {counts.min()} samples, fewer than cv={cv} folds;"
                            f" lower cv (e.g. cv={max(2, int(counts.min()))}) or use more samples.")
    # token rows (one row per token, a "sample" column naming the sentence): the tokens of one
    # sentence share its context, so folds keep each sentence whole; a sentence in both the
    # training and the test folds would let a probe recognise the sentence, not the class
    table_columns = store.samples.columns
    sentence = (np.asarray(store.samples["sample"])[index]
                if {"sample", "position"} <= set(table_columns) else None)
    if sentence is not None:
        from sklearn.model_selection import StratifiedGroupKFold

        folds: Any = StratifiedGroupKFold(n_splits=int(cv), shuffle=True, random_state=seed)
    else:
        folds = StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=seed)
    acc, std, n_comp = [], [], []
    for k, s in enumerate(sources):
        step = _block_rows(n, s.width * 4, budget // 4, s.chunk_rows, None)
        x = s.take(index, step)[keep]
        steps: list[Any] = [StandardScaler()]
        comps = None
        if s.width > max_features:
            comps = int(min(max_features, len(x) - len(x) // cv - 1))
            steps.append(PCA(n_components=comps, svd_solver="randomized", random_state=seed))
        steps.append(LogisticRegression(C=C, max_iter=2000))
        # small probes are many tiny BLAS calls, where a threaded BLAS spends its time waking
        # threads (10-100x slower on a loaded machine); large ones keep every thread
        limit = 1 if x.size < 5_000_000 else None
        with warnings.catch_warnings(), threadpool_limits(limits=limit, user_api="blas"):
            # a probe that has not fully converged after 2000 iterations is still a fair read-out
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(make_pipeline(*steps), x, y[keep], cv=folds, n_jobs=None,
                                     groups=None if sentence is None else sentence[keep])
        acc.append(scores.mean())
        std.append(scores.std())
        n_comp.append(comps)
        if progress is not None:
            progress(k + 1, len(sources))
    chance = float(counts.max() / counts.sum())
    return ProbeResult([s.layer for s in sources], np.asarray(acc), np.asarray(std),
                       [s.width for s in sources], n_comp, chance, int(cv), int(keep.sum()), int(seed),
                       _store_name(store))
