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
