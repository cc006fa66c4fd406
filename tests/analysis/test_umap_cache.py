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
