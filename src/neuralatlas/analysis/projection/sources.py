"""Projection's inputs: one layer as a matrix, and the names the projection modules share.

The sources themselves (a store or arrays, read by layer and epoch) are the data-access
layer's: :mod:`neuralatlas.analysis.sources`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from neuralatlas.analysis.sources import DEFAULT_N_SAMPLES, flatten
from neuralatlas.analysis.sources import INPUT as INPUT  # re-exported: the raw-input pseudo-layer
from neuralatlas.analysis.sources import ActivationSource as _Source  # noqa: F401  (old private names)
from neuralatlas.analysis.sources import ArraySource as _ArraySource  # noqa: F401
from neuralatlas.analysis.sources import StoreSource as _StoreSource  # noqa: F401
from neuralatlas.analysis.sources import open_source as _source
from neuralatlas.analysis.sources import stratified_subset as stratified_subset  # re-exported (public)

METHODS = ("tsne", "umap", "pca")
Key = tuple[str, int | None]
Progress = Callable[[int, int], None]


DEFAULT_N = DEFAULT_N_SAMPLES
"""Up to 2,000 samples (:class:`~neuralatlas.analysis.sources.AtMost`): every sample of a smaller store."""


def _flatten(block: np.ndarray, pool: str | None) -> np.ndarray:
    """Rows as float32 feature vectors (:func:`neuralatlas.analysis.sources.flatten`)."""
    return flatten(block, pool)


def layer_matrix(data: Any, layer: str, epoch: int | None = None, rows: np.ndarray | None = None, *,
                 pool: str | None = None, inputs: np.ndarray | None = None) -> np.ndarray:
    """One layer's activations as a ``[n_rows, n_features]`` float32 matrix.

    Parameters
    ----------
    data : ActivationStore, run folder, or {layer: array}
    layer : str
        Layer name (``"input"`` for the raw inputs passed as ``inputs=``).
    epoch : int, optional
        Checkpoint epoch; ``None`` for the final model.
    rows : array of int, optional
        Store row positions to read (default: all).
    pool : None, "mean" or "max"
        ``None`` flattens conv maps (one feature per unit); ``"mean"``/``"max"`` pools each
        channel over its spatial positions (one feature per channel).

    Example
    -------
    >>> layer_matrix({"fc": np.ones((4, 3))}, "fc").shape
    (4, 3)
    """
    src = _source(data, labels=np.zeros(_n_rows(data), np.int64) if isinstance(data, Mapping) else None,
                  inputs=inputs)
    layer = src.resolve_layers([layer])[0]
    rows = np.arange(src.n_samples) if rows is None else np.asarray(rows, np.int64)
    return _flatten(src.read(layer, epoch, rows), pool)


def _n_rows(data: Mapping[str, Any]) -> int:
    return len(next(iter(data.values()))) if data else 0

