"""The activation store (zarr) and importers of data from other tools."""

from __future__ import annotations

from neuralatlas.store.core import ActivationStore

__all__ = ["ActivationStore"]
