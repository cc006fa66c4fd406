"""umap's numba functions re-declared with cache=True: the same Python functions and options."""

from __future__ import annotations

import importlib

import pytest

pytest.importorskip("umap")


def test_uncached_dispatchers_become_cached_with_the_same_function_and_options():
    from numba.core.registry import CPUDispatcher

    from neuralatlas.analysis import _umap

    layouts = importlib.import_module("umap.layouts")
    before = {k: v for k, v in vars(layouts).items() if _umap._uncached(v)}
    _umap.import_umap()
    assert not any(_umap._uncached(v) for v in vars(layouts).values())
    for name, old in before.items():  # when there were any left to convert
        new = getattr(layouts, name)
        assert isinstance(new, CPUDispatcher) and new.py_func is old.py_func
        assert type(new._cache).__name__ != "NullCache"
        for key in ("fastmath", "parallel", "nogil"):
            assert new.targetoptions.get(key) == old.targetoptions.get(key)


def test_neighbour_kwargs_exact_neighbours_against_brute_force():
    import numpy as np

    from neuralatlas.analysis import _umap

    rng = np.random.default_rng(0)
    X = rng.normal(size=(_umap.NN_DESCENT_FROM, 8)).astype(np.float32)
    X[7] = X[3]                                        # a duplicate: each point must still come first
    idx, dist, index = _umap.neighbour_kwargs(X, 5)["precomputed_knn"]
    assert index is None and idx.shape == dist.shape == (len(X), 5)
    assert np.array_equal(idx[:, 0], np.arange(len(X))) and np.all(dist[:, 0] == 0)
    # a point's neighbours are its 5 nearest (itself included), as a full distance scan finds them
    for i in (0, 3, 7, 1234):
        d = np.linalg.norm(X - X[i], axis=1)
        assert np.allclose(np.sort(d)[:5], np.sort(dist[i]), atol=1e-4)
        assert np.allclose(d[idx[i]], dist[i], atol=1e-4)
    assert 3 in idx[7] and 7 in idx[3]


def test_neighbour_kwargs_leave_umap_its_own_search_where_it_is_cheap_or_unknown(monkeypatch):
    import numpy as np

    from neuralatlas.analysis import _umap

    small = np.zeros((_umap.NN_DESCENT_FROM - 1, 3))
    assert _umap.neighbour_kwargs(small, 15) == {}                # umap's own exact (cached) path
    assert _umap.neighbour_kwargs(np.zeros((_umap.NN_DESCENT_FROM, 3)), 15, metric="haversine") == {}
    monkeypatch.setenv("NEURALATLAS_UMAP_EXACT_KNN", "0")
    assert _umap.neighbour_kwargs(np.zeros((_umap.NN_DESCENT_FROM, 3)), 15) == {}
