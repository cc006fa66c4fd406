"""The activation store (zarr) and importers of data from other tools."""

from __future__ import annotations

from neuralatlas.store.core import ActivationStore
from neuralatlas.store.innspect import import_innspect_output, read_innspect_corpus

__all__ = ["ActivationStore"]
__all__ += ["import_innspect_output", "read_innspect_corpus"]


def __getattr__(name: str) -> object:
    """``import_innspect_corpus`` runs a model, so it moved to :mod:`neuralatlas.capture.innspect` (0.2)."""
    if name == "import_innspect_corpus":
        import warnings

        warnings.warn("neuralatlas.store.import_innspect_corpus is deprecated since 0.2; use "
                      "neuralatlas.import_innspect_corpus (neuralatlas.capture.innspect)", DeprecationWarning,
                      stacklevel=2)
        from neuralatlas.capture.innspect import import_innspect_corpus  # deprecated shim: upward, until 0.3

        return import_innspect_corpus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
