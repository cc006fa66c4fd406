"""The whole similarity analysis of a run: every measure, in one call."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neuralatlas.analysis.similarity.cka import cka_matrix, epoch_cka_matrix
from neuralatlas.analysis.similarity.probes import linear_probes
from neuralatlas.analysis.similarity.result import SimilarityResult
from neuralatlas.analysis.similarity.rsa import rsa_matrix
from neuralatlas.analysis.similarity.sources import (
    DEFAULT_SUBSAMPLE,
    ProgressFn,
    _as_store,
    _old_cap,
    _requested,
    _resolve_layers,
    check_same_samples,
)
from neuralatlas.analysis.sources import captured_epochs
from neuralatlas.errors import AnalysisError
from neuralatlas.vocabulary import Epochs, renamed_parameter


@renamed_parameter("subsample", "n_samples", transform=_old_cap)
def similarity(store: Any, *, other: Any = None, layers: Sequence[str] | str | None = None,
               other_layers: Sequence[str] | str | None = None, epoch: int | None = None,
               epochs: Epochs | bool = "all", rbf: bool = True, rsa: bool = True, probes: bool = True,
               debiased: bool = False,
               pool: str | None = None, n_samples: Any = DEFAULT_SUBSAMPLE, metric: str = "correlation",
               cv: int = 5, max_features: int = 128, seed: int = 0,
               memory_limit: int | str | None = None, client: Any = None,
               progress: ProgressFn | None = None) -> SimilarityResult:
    """The similarity analysis of a run: layer×layer CKA/RSA, epoch×epoch CKA, probes, model vs model.

    Parameters
    ----------
    store : ActivationStore or path (of a store or a run folder)
    other : ActivationStore or path, optional
        A second model's store of the same samples, compared layer by layer.
    layers, other_layers : str or sequence of str, optional
        Default: every layer.
    epoch : int, optional
        Epoch of the layer×layer matrices and probes (default: final model).
    epochs : "all", list of int, or None
        The epochs of the epoch×epoch linear CKA of every layer: ``"all"`` (default) every
        epoch of a per-epoch store (nothing on a store of the final model only), a list (or
        ``"last"``…) those epochs, ``None`` no epoch×epoch matrices. (``True``/``False`` are
        the old spellings of ``"all"``/``None``, deprecated.)
    rbf, rsa, probes : bool
        Which of the subsampled measures and the probes to compute.
    debiased : bool
        Also the debiased linear CKA (Kornblith et al. 2019) layer × layer, beside the
        biased one (Gram form on up to ``n_samples`` samples).
    pool, n_samples, metric, cv, max_features, seed, memory_limit
        See :func:`cka_matrix`, :func:`rsa_matrix` and :func:`linear_probes`.
    client : dask.distributed.Client, optional
        Stream the linear CKA matrices on this dask cluster (the subsampled measures and
        the probes run here: their data is a subsample that fits in memory).
    progress : callable(done, total), optional
        Called after each step (a matrix or a probe set).

    Returns
    -------
    SimilarityResult

    Example
    -------
    >>> result = similarity("runs/demo/mlp")              # doctest: +SKIP
    >>> result.save("runs/demo/mlp/results/similarity")  # doctest: +SKIP
    """
    store = _as_store(store)
    other = _as_store(other, "other") if other is not None else None
    if other is not None:
        check_same_samples(store, other)
    names = _resolve_layers(store, layers)
    epoch_list = _epoch_selection(store, epochs)
    plan: list[tuple[str, Callable[[], Any]]] = []
    common: dict[str, Any] = dict(pool=pool, memory_limit=memory_limit, seed=seed)
    linear: dict[str, Any] = dict(common, client=client)     # the streamed passes may run on the cluster
    plan.append(("linear_cka", lambda: cka_matrix(store, names, epoch=epoch, **linear)))
    if debiased:
        plan.append(("debiased_linear_cka", lambda: cka_matrix(store, names, epoch=epoch, debiased=True,
                                                               n_samples=n_samples, **common)))
    if rbf:
        plan.append(("rbf_cka", lambda: cka_matrix(store, names, epoch=epoch, kernel="rbf",
                                                   n_samples=n_samples, **common)))
    if rsa:
        plan.append(("rsa", lambda: rsa_matrix(store, names, epoch=epoch, metric=metric,
                                               n_samples=n_samples, **common)))
    for layer in names if epoch_list else []:
        plan.append((f"epoch_cka/{layer}",
                     lambda layer=layer: epoch_cka_matrix(store, layer, epoch_list, n_samples=n_samples,
                                                             **linear)))
    if other is not None:
        plan.append(("linear_cka_vs_other", lambda: cka_matrix(store, names, epoch=epoch, other=other,
                                                               other_layers=other_layers, **linear)))
        if rsa:
            plan.append(("rsa_vs_other", lambda: rsa_matrix(store, names, epoch=epoch, other=other,
                                                            other_layers=other_layers, metric=metric,
                                                            n_samples=n_samples, **common)))
    if probes:
        plan.append(("probes", lambda: linear_probes(store, names, epoch=epoch, cv=cv, seed=seed,
                                                     max_features=max_features, pool=pool,
                                                     memory_limit=memory_limit)))
        if other is not None:
            plan.append(("other_probes", lambda: linear_probes(other, other_layers, cv=cv, seed=seed,
                                                               max_features=max_features, pool=pool,
                                                               memory_limit=memory_limit)))
    result = SimilarityResult(
        info={
            "store": str(store.path),
            "other": str(other.path) if other is not None else None,
            "n_samples": store.n_samples,
            "layers": names,
            "settings": {
                "epoch": epoch,
                "pool": pool,
                "subsample": _requested(n_samples, store.n_samples),
                "metric": metric,
                "cv": cv,
                "max_features": max_features,
                "seed": seed,
            },
        }
    )
    for k, (key, run) in enumerate(plan):
        value = run()
        if key == "probes":
            result.probes = value
        elif key == "other_probes":
            result.other_probes = value
        else:
            result.matrices[key] = value
        if progress is not None:
            progress(k + 1, len(plan))
    return result


def _epoch_selection(store: Any, epochs: Any) -> list[int]:
    """The epochs of the epoch×epoch matrices (empty: none) from a selection."""
    if isinstance(epochs, (bool, np.bool_)):
        warnings.warn(f"similarity(epochs={epochs}) is deprecated since 0.2: epochs is a selection; use"
                      f" epochs={'all' if epochs else None!r}", DeprecationWarning, stacklevel=3)
        epochs = "all" if epochs else None
    if epochs is None:
        return []
    if isinstance(epochs, str) and epochs.strip().lower() == "all":
        # the default: every epoch of a per-epoch store, nothing to compare on a final-only one
        return list(store.epochs) if len(store.epochs) > 1 else []
    chosen = captured_epochs(store.epochs, epochs, where=f"the store {store.path}")
    if len(chosen) < 2:
        raise AnalysisError(f"epochs={epochs!r} selects {len(chosen)} epoch; an epoch×epoch matrix needs two or"
                            " more (e.g. epochs='all'), or pass epochs=None for none.")
    return chosen
