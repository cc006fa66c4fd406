"""Similarity's data sources: a store layer at an epoch, or an array, read in row blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.analysis.sources import (
    DEFAULT_N_SAMPLES,
    AtMost,
    check_pool,
    open_store,
    random_subset,
    resolve_layers,
    resolve_sample_count,
)
from neuralatlas.analysis.sources import POOLS as POOLS  # re-exported: similarity.POOLS
from neuralatlas.analysis.streaming import (
    block_rows,
    flatten_samples,
    pooled_shape,
)
from neuralatlas.errors import AnalysisError
from neuralatlas.store.core import read_rows

MiB = 2**20
RSA_METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine")
DEFAULT_SUBSAMPLE = DEFAULT_N_SAMPLES
"""Up to 2,000 samples for the subsampled measures (RBF/debiased CKA, RSA, the Gram fallback)."""
ProgressFn = Callable[[int, int], None]


class SimilarityWarning(UserWarning):
    """A similarity value is an estimate (subsample) rather than the exact streamed value."""


# ============================================================================ sources
@dataclass
class _Source:
    """One representation ``[n, ...]`` to compare: a store layer at an epoch, or an array.

    Reads row blocks (the store's array opened once per process), flattens each sample, or
    pools conv maps over their spatial axes (channels first) when ``pool`` is given.
    """

    label: str
    n: int
    unit_shape: tuple[int, ...]
    pool: str | None = None
    store: Any = None
    layer: str | None = None
    epoch: int | None = None
    array: Any = None
    chunk_rows: int = 0
    _array: Any = field(default=None, repr=False, compare=False)

    @property
    def width(self) -> int:
        return int(np.prod(pooled_shape(self.unit_shape, self.pool), dtype=np.int64))

    @property
    def key(self) -> tuple:
        if self.store is not None:
            return ("store", str(self.store.path), self.layer, self.epoch, self.pool)
        return ("array", id(self.array), self.pool)

    def _flat(self, block: np.ndarray) -> np.ndarray:
        return flatten_samples(block, self.pool)

    def read(self, rows: slice) -> np.ndarray:
        """Rows ``rows`` flattened (or pooled); the store's array is opened once per process."""
        if self.store is not None:
            if self._array is None:
                self._array = self.store.activations(self.layer, self.epoch)
            return self._flat(read_rows(self._array, rows))
        return self._flat(self.array[rows])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def take(self, index: np.ndarray, rows: int) -> np.ndarray:
        """Rows ``index`` (sorted), read block by block so no more than one block is extra."""
        arr = self.store.activations(self.layer, self.epoch) if self.store is not None else self.array
        # float32 halves the memory of store activations; float64 inputs keep their precision
        dtype = np.float64 if np.dtype(getattr(arr, "dtype", np.float64)) == np.float64 else np.float32
        out = np.empty((len(index), self.width), dtype)
        pos = 0
        for start in range(0, self.n, rows):
            stop = min(start + rows, self.n)
            lo, hi = np.searchsorted(index, [start, stop])
            if hi > lo:
                sel = index[lo:hi]
                if hasattr(arr, "oindex"):  # zarr: read only the chunks holding the rows
                    part = arr.oindex[sel]
                else:
                    part = np.asarray(arr[sel])
                out[pos:pos + hi - lo] = self._flat(part)
                pos += hi - lo
        return out


_check_pool = check_pool  # the data-access layer's rule (kept under its old private name)


def _array_source(x: Any, what: str, pool: str | None) -> _Source:
    if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
        x = np.asarray(x)
    shape = tuple(int(s) for s in x.shape)
    if len(shape) < 2:
        raise AnalysisError(f"{what} must be an array [n_samples, *unit_shape]; got shape {shape}.")
    if shape[0] < 2:
        raise AnalysisError(f"{what} has {shape[0]} sample(s); similarity needs at least 2.")
    return _Source(label=what, n=shape[0], unit_shape=shape[1:], pool=pool, array=x,
                   chunk_rows=int(getattr(x, "chunks", (0,))[0] or 0))


def _store_sources(store: Any, layers: Sequence[str] | str | None, epoch: int | None,
                   pool: str | None, prefix: str = "") -> list[_Source]:
    from neuralatlas.store.safety import warn_nonfinite

    names = _resolve_layers(store, layers)
    warn_nonfinite(store, names, epoch, analysis="Similarity (CKA/RSA)")
    return [_Source(label=prefix + name, n=store.n_samples, unit_shape=tuple(store.unit_shape(name)),
                    pool=pool, store=store, layer=name, epoch=epoch, chunk_rows=store.chunk_rows)
            for name in names]


def _resolve_layers(store: Any, layers: Sequence[str] | str | None) -> list[str]:
    """Layer names of ``store`` by the package's one rule (:func:`neuralatlas.analysis.sources.resolve_layers`)."""
    return resolve_layers(store, layers)


_as_store = open_store  # the data-access layer's opener (kept under its old private name)


def check_same_samples(store: Any, other: Any) -> None:
    """Raise unless two stores hold the same samples in the same order (``index`` columns).

    Raises
    ------
    AnalysisError
        Naming the sample counts or the first row where the indices differ.
    """
    n_a, n_b = store.n_samples, other.n_samples
    fix = (" Capture both models on the same data set and split, in the same order"
           " (e.g. the same `neuralatlas capture --data ... --split ...`).")
    if n_a != n_b:
        raise AnalysisError(f"The stores hold different samples: {store.path} has {n_a},"
                            f" {other.path} has {n_b}.{fix}")
    a = np.asarray(store.samples["index"])
    b = np.asarray(other.samples["index"])
    diff = np.flatnonzero(a != b)
    if diff.size:
        r = int(diff[0])
        raise AnalysisError(
            f"The stores hold different samples: {diff.size} of {n_a} rows differ in the sample"
            f" index (first at row {r}: {a[r]} in {store.path} vs {b[r]} in {other.path}).{fix}"
        )


def _unique_sources(row_sources: Sequence[_Source], col_sources: Sequence[_Source]
                    ) -> tuple[list[_Source], dict[tuple, int]]:
    """The distinct sources of a matrix's rows and columns (each read once) and each key's index."""
    unique: dict[tuple, int] = {}
    sources: list[_Source] = []
    for s in [*row_sources, *col_sources]:
        if s.key not in unique:
            unique[s.key] = len(sources)
            sources.append(s)
    return sources, unique


def _check_n(sources: Sequence[_Source]) -> int:
    ns = {s.n for s in sources}
    if len(ns) > 1:
        desc = ", ".join(f"{s.label}: {s.n}" for s in sources)
        raise AnalysisError(f"Representations must hold the same samples; sample counts differ ({desc}).")
    n = ns.pop()
    if n < 2:
        raise AnalysisError(f"Similarity needs at least 2 samples; got {n}.")
    return n


def _block_rows(n: int, bytes_per_row: int, budget: int, chunk_rows: int, rows: int | None) -> int:
    """Rows per streamed block: as many as ``budget`` allows, a multiple of the store's chunks."""
    return block_rows(n, bytes_per_row, max(budget, bytes_per_row), chunk_rows, rows)


_subsample_index = random_subset


def _old_cap(value: Any) -> Any:
    """The deprecated ``subsample=``/``max_samples=`` were caps ("up to"): the same as ``AtMost``."""
    if value is None or isinstance(value, AtMost):
        return value
    return AtMost(int(value))


def _requested(n_samples: Any, n: int) -> int:
    """Samples asked of the ``n`` there are, by the one rule (None: all; AtMost(k): up to k; int: exactly)."""
    return resolve_sample_count(n_samples, n, where="the data compared", name="n_samples")


def _subsample_size(n: int, requested: int, widths: Sequence[int], n_kept: int, budget: int,
                    per_value: int = 8) -> int:
    """Largest m ≤ requested so that one gathered block plus ``n_kept`` m×m matrices fit."""
    if requested < 2:
        raise AnalysisError(f"n_samples={requested} must be at least 2 samples.")
    m = min(n, int(requested))
    widest = max(widths)
    while m > 2 and m * widest * 12 + n_kept * m * m * per_value > budget:
        m = int(m * 0.8)
    return max(m, 2)


def _store_name(store: Any) -> str:
    path = Path(store.path)
    return path.parent.name if path.name == "acts.zarr" else path.stem


def _layer_sources(store: Any, layers: Any, epoch: int | None, other: Any, other_layers: Any,
                   other_epoch: int | None, pool: str | None) -> tuple[Any, list[_Source], list[_Source], str]:
    """Rows: ``store``'s layers; columns: the same, or ``other``'s (same samples, checked)."""
    store = _as_store(store)
    pool = _check_pool(pool)
    row_sources = _store_sources(store, layers, epoch, pool)
    if other is None:
        return store, row_sources, row_sources, "layer"
    other = _as_store(other, "other")
    check_same_samples(store, other)
    col_axis = _store_name(other)
    return store, row_sources, _store_sources(other, other_layers, other_epoch, pool, prefix=f"{col_axis}:"), col_axis
