"""The activation store (zarr) and importers of data from other tools."""

from __future__ import annotations

from neuralatlas._moved import moved_attribute_getter
from neuralatlas.store.core import ActivationStore
from neuralatlas.store.innspect import import_innspect_output, read_innspect_corpus

__all__ = ["ActivationStore"]
__all__ += ["import_innspect_output", "read_innspect_corpus"]

# ``import_innspect_corpus`` runs a model, so it moved to neuralatlas.capture.innspect (0.2)
__getattr__ = moved_attribute_getter(__name__)
