"""umap-learn with its numba functions compiled once per machine, not once per process.

Most of umap-learn's numba functions are declared without ``cache=True``, so every new
process compiles them again on its first ``fit``: ~13 s on a quiet core (most of a pipeline's
topomap step), ~60 s measured on a busy one. :func:`import_umap` re-declares each such
dispatcher of umap's modules with ``cache=True`` (the same Python function, the same options,
so the same machine code and results), before any of them is compiled; numba then keeps the
compiled code in its on-disk cache (beside umap's files, or under ``NUMBA_CACHE_DIR``) and
later processes load it. Measured in fresh processes on the loaded development machine:
first ``fit`` of a 500-point UMAP 58.6 s without, 2.0 s with the cache warm.

``NEURALATLAS_UMAP_CACHE=0`` leaves umap as installed. A function numba cannot cache (no
writable cache location, a closure) keeps its original dispatcher.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_done = False
MODULES = ("umap.layouts", "umap.umap_", "umap.utils", "umap.spectral")


def _uncached(obj: Any) -> bool:
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba comes with umap-learn
        return False
    return isinstance(obj, CPUDispatcher) and type(getattr(obj, "_cache", None)).__name__ == "NullCache"


def recache(module: ModuleType) -> int:
    """Re-declare ``module``'s uncached numba dispatchers with ``cache=True``; how many."""
    import numba

    n = 0
    for name, obj in list(vars(module).items()):
        if not _uncached(obj):
            continue
        options = {k: v for k, v in obj.targetoptions.items() if k not in ("nopython", "boundscheck")}
        try:
            setattr(module, name, numba.njit(cache=True, **options)(obj.py_func))
            n += 1
        except Exception:  # noqa: BLE001 - uncachable (no cache locator, closure): keep as is
            continue
    return n


def import_umap() -> ModuleType:
    """``import umap``, its numba functions re-declared with ``cache=True`` once per process."""
    global _done
    import importlib

    import umap

    if not _done and os.environ.get("NEURALATLAS_UMAP_CACHE", "1") != "0":
        with _lock:
            if not _done:
                for name in MODULES:
                    try:
                        recache(importlib.import_module(name))
                    except ImportError:  # a umap version without that module
                        continue
                _done = True
    return umap


# umap-learn finds neighbours exactly below this many points (its own cached code) and with
# pynndescent's NN-descent from here on.
NN_DESCENT_FROM = 4096
# Up to this many points the exact neighbours are computed here instead (numba-free).
EXACT_KNN_UP_TO = 32768
_SKLEARN_METRICS = ("euclidean", "cosine", "manhattan", "l1", "l2", "cityblock", "chebyshev", "correlation")


def neighbour_kwargs(X: Any, n_neighbors: int, metric: str = "euclidean") -> dict[str, Any]:
    """``precomputed_knn=`` for ``umap.UMAP`` where that spares pynndescent's per-process compile.

    pynndescent's NN-descent (umap's neighbour search from 4,096 points) takes the distance
    function as an argument, and numba cannot reuse the compiled code of such functions from
    its on-disk cache: re-declaring them with ``cache=True`` as :func:`import_umap` does for
    umap was measured to write cache entries that never load (each fresh process compiled
    ~50 functions again: a 5,000-point UMAP fit took 168-184 s under load, nearly all of it
    compiling). From 4,096 to :data:`EXACT_KNN_UP_TO` points the exact k nearest neighbours
    (scikit-learn, brute force, no numba) are passed instead: the same graph NN-descent
    approximates, at most a few seconds to compute. Smaller inputs (umap's own exact path),
    larger ones, and metrics scikit-learn does not know keep umap's search: ``{}``.
    """
    n = len(X)
    if not NN_DESCENT_FROM <= n <= EXACT_KNN_UP_TO or metric not in _SKLEARN_METRICS:
        return {}
    if os.environ.get("NEURALATLAS_UMAP_EXACT_KNN", "1") == "0":
        return {}
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    k = int(min(n_neighbors, n - 1))
    data = np.asarray(X, np.float32)
    # n_jobs=1: the same neighbours on any machine (ties aside) and no pool fighting for cores
    dist, idx = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute", n_jobs=1).fit(data).kneighbors(data)
    # umap expects each point as its own first neighbour; a duplicate point may come first instead
    rows = np.arange(n)
    own = idx[:, 0] != rows
    if own.any():
        where = np.argmax(idx == rows[:, None], axis=1)
        has = (idx == rows[:, None]).any(axis=1)
        for i in np.flatnonzero(own):
            j = where[i] if has[i] else k - 1
            idx[i, 1:j + 1], dist[i, 1:j + 1] = idx[i, :j].copy(), dist[i, :j].copy()
            idx[i, 0], dist[i, 0] = i, 0.0
    return {"precomputed_knn": (idx.astype(np.int32), dist.astype(np.float32), None)}
