"""The whole similarity analysis of a run: every measure, in one call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from neuralatlas.analysis.similarity.cka import cka_matrix, epoch_cka_matrix
from neuralatlas.analysis.similarity.probes import linear_probes
from neuralatlas.analysis.similarity.result import SimilarityResult
from neuralatlas.analysis.similarity.rsa import rsa_matrix
from neuralatlas.analysis.similarity.sources import (
    DEFAULT_SUBSAMPLE,
    ProgressFn,
    _as_store,
    _resolve_layers,
    check_same_samples,
)


def similarity(store: Any, *, other: Any = None, layers: Sequence[str] | str | None = None,
               other_layers: Sequence[str] | str | None = None, epoch: int | None = None,
               epochs: bool = True, rbf: bool = True, rsa: bool = True, probes: bool = True,
               debiased: bool = False,
               pool: str | None = None, subsample: int = DEFAULT_SUBSAMPLE, metric: str = "correlation",
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
    epochs : bool
        Also the epoch×epoch linear CKA of every layer (per-epoch stores).
    rbf, rsa, probes : bool
        Which of the subsampled measures and the probes to compute.
    debiased : bool
        Also the debiased linear CKA (Kornblith et al. 2019) layer × layer, beside the
        biased one (Gram form on up to ``subsample`` samples).
    pool, subsample, metric, cv, max_features, seed, memory_limit
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
    epoch_list = store.epochs if epochs and len(store.epochs) > 1 else []
    plan: list[tuple[str, Callable[[], Any]]] = []
    common = dict(pool=pool, memory_limit=memory_limit, seed=seed)
    linear = dict(common, client=client)     # the streamed passes may run on the cluster
    plan.append(("linear_cka", lambda: cka_matrix(store, names, epoch=epoch, **linear)))
    if debiased:
        plan.append(("debiased_linear_cka", lambda: cka_matrix(store, names, epoch=epoch, debiased=True,
                                                               subsample=subsample, **common)))
    if rbf:
        plan.append(("rbf_cka", lambda: cka_matrix(store, names, epoch=epoch, kernel="rbf",
                                                   subsample=subsample, **common)))
    if rsa:
        plan.append(("rsa", lambda: rsa_matrix(store, names, epoch=epoch, metric=metric,
                                               subsample=subsample, **common)))
    for layer in names if epoch_list else []:
        plan.append((f"epoch_cka/{layer}",
                     lambda layer=layer: epoch_cka_matrix(store, layer, epoch_list, subsample=subsample,
                                                             **linear)))
    if other is not None:
        plan.append(("linear_cka_vs_other", lambda: cka_matrix(store, names, epoch=epoch, other=other,
                                                               other_layers=other_layers, **linear)))
        if rsa:
            plan.append(("rsa_vs_other", lambda: rsa_matrix(store, names, epoch=epoch, other=other,
                                                            other_layers=other_layers, metric=metric,
                                                            subsample=subsample, **common)))
    if probes:
        plan.append(("probes", lambda: linear_probes(store, names, epoch=epoch, cv=cv, seed=seed,
                                                     max_features=max_features, pool=pool,
                                                     memory_limit=memory_limit)))
        if other is not None:
            plan.append(("other_probes", lambda: linear_probes(other, other_layers, cv=cv, seed=seed,
                                                               max_features=max_features, pool=pool,
                                                               memory_limit=memory_limit)))
    result = SimilarityResult(info={
        "store": str(store.path), "other": str(other.path) if other is not None else None,
        "n_samples": store.n_samples, "layers": names,
        "settings": {"epoch": epoch, "pool": pool, "subsample": subsample, "metric": metric, "cv": cv,
                     "max_features": max_features, "seed": seed},
    })
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
