"""Representational similarity: linear and RBF CKA, RSA, and linear probes per layer.

How alike are two representations of the same samples — two layers of one model, one layer
at two training epochs, or the layers of two models? And how much of the label can a linear
read-out find in each layer?

* **Linear CKA** (centred kernel alignment; Kornblith, Norouzi, Lee and Hinton, 2019) is
  computed *exactly in feature space*::

      CKA(X, Y) = ‖YcᵀXc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)

  with Xc, Yc the column-centred ``[n, d]`` activations. Only the cross-product matrices are
  needed, so the store is read chunk by chunk and the cost is O(n·d²) time and O(d²) memory
  — not the O(n²·d) time and O(n²) memory of the n×n Gram form (``HSIC(K, L)`` with
  ``K = XXᵀ``), which gives the same number. Centring is exact: each streamed block is
  shifted by the first block's column means (which keeps float64 accumulators far from
  cancellation), sums and cross-products are accumulated, and the mean is corrected at the
  end: ``C = Σ(z−s)ᵀ(z−s) − S Sᵀ / n``.

  **Memory.** The d×d accumulators of every layer of one pass are float64: a layer of
  width d costs ``8·d²`` bytes (d = 4,096 → 128 MiB; d = 16,384 → 2 GiB). All layers of a
  layer×layer matrix are concatenated so one symmetric product (BLAS ``syrk``) per block
  gives every pair; when the concatenation does not fit in ``memory_limit`` the layers are
  split into groups and the group pairs are done in separate passes. A *single* layer
  whose ``8·d²`` exceeds half the budget (very wide conv maps, e.g. 64×112×112) cannot be
  done exactly in feature space. Its pairs use the Gram form instead: exactly, on every
  sample, when one n×n float64 Gram per layer (``8·n²`` bytes each) fits the budget;
  otherwise on a seeded subsample of ``subsample`` samples (an estimate, with a warning).
  Pass ``pool="mean"`` to average conv maps over space instead (d = channels), the usual
  choice for wide CNNs. With ``method="auto"`` (default) the exact Gram form is also used
  when its Grams fit and it is the cheaper of the two: it costs about n²·D/2 against
  n·D²/2 for the D summed widths of a pass, so it wins when n < D (few samples, wide
  layers, e.g. 450 digits through a CNN). Both forms give the same value to float64
  rounding; ``method="feature"`` forces streaming.

* **RBF CKA** uses Gaussian kernels on a seeded subsample (the n×n Gram form is
  unavoidable for a non-linear kernel); the bandwidth is ``threshold`` × the median
  pairwise distance (Kornblith et al.'s choice, with ``threshold=1``).
* **RSA** (Kriegeskorte, Mur and Bandettini, 2008): each layer's representational
  dissimilarity matrix (RDM; correlation distance ``1 − r`` between the samples'
  activation vectors by default) on a seeded subsample, compared by the Spearman rank
  correlation of the RDMs' upper triangles.
* **Linear probes** (Alain and Bengio, 2016): cross-validated accuracy of a logistic
  regression on each layer's standardised activations (PCA-reduced first when a layer is
  wider than ``max_features``), seeded folds.

Every function works on a store (streaming) or on arrays; :func:`similarity` computes the
lot for a run and :class:`SimilarityResult` saves it into ``results/similarity/``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuralatlas.analysis.streaming import (BlockReduction, block_rows, default_memory_limit, flatten_samples,
                                            format_bytes, parse_memory_limit, pooled_shape, reduce_blocks)
from neuralatlas.errors import AnalysisError, LayerError, StoreError, did_you_mean
from neuralatlas.store.core import read_rows

__all__ = [
    "ProbeResult",
    "SimilarityMatrix",
    "SimilarityResult",
    "check_same_samples",
    "cka_matrix",
    "default_memory_limit",
    "epoch_cka_matrix",
    "layer_covariance",
    "linear_cka",
    "linear_probes",
    "rbf_cka",
    "rdm",
    "rsa",
    "rsa_matrix",
    "run_similarity",
    "save_figures",
    "similarity",
]

MiB = 2**20
POOLS = (None, "mean", "max")
RSA_METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine")
DEFAULT_SUBSAMPLE = 2000
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


def _check_pool(pool: str | None) -> str | None:
    if pool not in POOLS:
        raise AnalysisError(f"pool={pool!r} is not known; choose None (flatten), 'mean' or 'max'"
                            " (over the spatial axes of channels-first conv maps).")
    return pool


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
    """Layer names of ``store`` in model order; glob patterns allowed; unknown names raise."""
    from neuralatlas.patterns import layer_matches

    available = store.layers
    if layers is None:
        return list(available)
    patterns = [layers] if isinstance(layers, str) else list(layers)
    chosen: list[str] = []
    for pattern in patterns:
        matches = [name for name in available if layer_matches(name, pattern)] \
            if any(ch in pattern for ch in "*?[") else [pattern] if pattern in available else []
        if not matches:
            raise LayerError(
                f"Layer {pattern!r} is not in the store {store.path}.{did_you_mean(pattern, available)}"
                f" Layers stored: {', '.join(available)}."
            )
        chosen.extend(m for m in matches if m not in chosen)
    return [name for name in available if name in chosen]


def _as_store(store: Any, what: str = "store") -> Any:
    from neuralatlas.store import ActivationStore

    if isinstance(store, ActivationStore):
        return store
    if isinstance(store, (str, Path)):
        return ActivationStore.locate(store)
    raise AnalysisError(f"{what} must be an ActivationStore or the path of one (or of a run folder);"
                        f" got {type(store).__name__}.")


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


# ============================================================================ linear CKA core
def _groups(widths: Sequence[int], max_width: int) -> list[list[int]]:
    """Pack sources (in order) into groups whose summed width stays within ``max_width``."""
    groups: list[list[int]] = []
    total = 0
    for i, w in enumerate(widths):
        if groups and total + w <= max_width:
            groups[-1].append(i)
            total += w
        else:
            groups.append([i])
            total = w
    return groups


@dataclass
class _Pass:
    """One streamed read of some sources: their cross-products for one pair of groups."""

    rows: list[int]      # sources whose columns form the left factor
    cols: list[int]      # right factor; empty for a diagonal pass (rows × rows, one syrk)
    step: int            # rows per block


def _plan(sources: Sequence[_Source], pairs: set[tuple[int, int]], n: int, budget: int,
          rows: int | None) -> list[_Pass]:
    """Group the sources so that every pass's accumulator fits in half of ``budget``."""
    widths = [s.width for s in sources]
    max_width = max(max(widths[i] for pair in pairs for i in pair),
                    int(math.isqrt(max(1, budget // 2 // 8))))
    involved = sorted({i for pair in pairs for i in pair})
    groups = _groups([widths[i] for i in involved], max_width)
    groups = [[involved[k] for k in g] for g in groups]
    where = {i: g for g, members in enumerate(groups) for i in members}
    plan = []
    for ga, gb in sorted({tuple(sorted((where[i], where[j]))) for i, j in pairs}):
        left, right = groups[ga], ([] if ga == gb else groups[gb])
        wl, wr = sum(widths[i] for i in left), sum(widths[i] for i in right)
        accum = 8 * (wl * wl if not right else wl * wr)
        chunk = max(sources[i].chunk_rows for i in left + right)
        # per row: the float64 buffers plus the float32 blocks as read (and zarr's own copies)
        # blocks of ~32 MiB of float64 rows: BLAS is as fast as on larger ones, and the next
        # block is read while this one is multiplied
        free = max(budget - accum, budget // 4, (wl + wr) * 24)
        step = block_rows(n, (wl + wr) * 24, free, chunk, rows, target_rows=32 * MiB // ((wl + wr) * 8))
        plan.append(_Pass(left, right, step))
    return plan


class _CrossProducts(BlockReduction):
    """Centred cross-products of one pass as a block reduction (so it can run on dask).

    Partial: ``(prod, sums)`` with ``prod = Σ(z−s)ᵀ(z'−s')`` over the rows seen and ``sums``
    the column sums of ``z−s`` per side, about shifts ``s`` fixed before streaming (the first
    block's column means: they keep the float64 sums far from cancellation; the exact mean is
    corrected at the end). ``prod`` is updated in place by BLAS: ``dsyrk`` for a diagonal
    pass (upper triangle only), ``dgemm`` otherwise.
    """

    def __init__(self, sources: Sequence[_Source], sides: Sequence[Sequence[int]], n: int, step: int):
        self.sides = [[sources[i] for i in side] for side in sides]
        self.offsets = [np.concatenate([[0], np.cumsum([s.width for s in side])]).astype(int)
                        for side in self.sides]
        self.widths = [int(o[-1]) for o in self.offsets]
        self.n, self.step = n, step
        self._buffers: list[np.ndarray] | None = None
        # the shift needs a sample of rows, not a whole block (a block may be all the data)
        first = min(step, n, max(256, max((src.chunk_rows for side in self.sides for src in side), default=0)))
        self.shifts = [np.zeros(w) for w in self.widths]
        self.shifts = [z.mean(axis=0) for z in self._stacked(self.read(slice(0, first)))]

    def read(self, rows: slice) -> list[np.ndarray]:
        return [src.read(rows) for side in self.sides for src in side]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_buffers": None}

    def _stacked(self, blocks: Sequence[np.ndarray]) -> list[np.ndarray]:
        r = len(blocks[0])
        if self._buffers is None or self._buffers[0].shape[0] < r:
            # reused across blocks: a fresh buffer per block costs its page faults every time
            # C order: its transpose is Fortran, which BLAS reads without a copy
            self._buffers = [np.empty((r, int(off[-1]))) for off in self.offsets]
        zs, k = [], 0
        for side, off, shift, buf in zip(self.sides, self.offsets, self.shifts, self._buffers):
            z = buf[:r]
            for a in range(len(side)):
                z[:, off[a]:off[a + 1]] = blocks[k]
                k += 1
            z -= shift
            zs.append(z)
        return zs

    def start(self) -> tuple[np.ndarray, list[np.ndarray]]:
        # Fortran order: BLAS updates the accumulator in place instead of copying it
        return np.zeros((self.widths[0], self.widths[-1]), order="F"), [np.zeros(w) for w in self.widths]

    def add(self, partial: Any, rows: slice, blocks: Any) -> Any:
        from scipy.linalg import blas

        prod, sums = partial
        zs = self._stacked(blocks)
        for z, total in zip(zs, sums):
            total += z.sum(axis=0)
        if len(zs) == 2:
            blas.dgemm(1.0, zs[0].T, zs[1].T, beta=1.0, c=prod, trans_b=1, overwrite_c=1)
        else:
            blas.dsyrk(1.0, zs[0].T, beta=1.0, c=prod, trans=0, lower=0, overwrite_c=1)
        return prod, sums

    def merge(self, a: Any, b: Any) -> Any:
        a[0][...] += b[0]
        for x, y in zip(a[1], b[1]):
            x += y
        return a

    def centred(self, partial: Any) -> np.ndarray:
        """``C = Σ(z−s)ᵀ(z−s) − n·m mᵀ`` (m: the mean deviation from the shift); upper triangle
        only for a diagonal pass."""
        from scipy.linalg import blas

        prod, sums = partial
        devs = [total / self.n for total in sums]
        if len(devs) == 2:
            return blas.dger(-float(self.n), devs[0], devs[1], a=prod, overwrite_a=1)
        return blas.dsyr(-float(self.n), devs[0], a=prod, lower=0, overwrite_a=1)


def _cross_hsic(sources: Sequence[_Source], pairs: set[tuple[int, int]], plan: Sequence[_Pass], n: int,
                tick: Callable[..., None], client: Any = None) -> dict[tuple[int, int], float]:
    """``‖Cᵢⱼ‖²_F``, the squared Frobenius norm of the centred cross-product ``XᵢcᵀXⱼc``, per pair.

    A pass holds one d×d matrix and its row blocks, nothing more (per worker on a cluster).
    """
    out: dict[tuple[int, int], float] = {}
    for p in plan:
        sides = [p.rows, p.cols] if p.cols else [p.rows]
        reduction = _CrossProducts(sources, sides, n, p.step)
        seen = [0]

        def advance(done: int, total: int) -> None:
            tick(done - seen[0])
            seen[0] = done

        partial = reduce_blocks(reduction, client=client, progress=advance)
        prod = reduction.centred(partial)
        rows_off, cols_off = reduction.offsets[0], reduction.offsets[-1]
        col_members = p.cols or p.rows
        for a, i in enumerate(p.rows):
            for b, j in enumerate(col_members):
                if ((i, j) not in pairs and (j, i) not in pairs) or (not p.cols and b < a):
                    continue
                block = prod[rows_off[a]:rows_off[a + 1], cols_off[b]:cols_off[b + 1]]
                if not p.cols and a == b:
                    # a diagonal block of the syrk result holds its upper triangle only
                    upper, diag = np.triu(block), np.diag(block)
                    value = 2.0 * np.einsum("ij,ij->", upper, upper) - np.einsum("i,i->", diag, diag)
                else:
                    value = np.einsum("ij,ij->", block, block)
                out[(i, j)] = out[(j, i)] = float(value)
    return out


def layer_covariance(store: Any, layer: str, *, epoch: int | None = None, pool: str | None = None,
                     memory_limit: int | str | None = None, rows: int | None = None, client: Any = None,
                     progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and covariance ``[d, d]`` (population, ddof=0) of a layer over all samples.

    The cross-product pass of linear CKA on one layer: streamed in blocks that fit
    ``memory_limit``, or on a dask cluster with ``client=``. Used by the streamed PCA
    projection and the streamed neuron correlation map.

    Raises
    ------
    AnalysisError
        When the d×d float64 accumulator does not fit in half of ``memory_limit``; pool conv
        maps (``pool="mean"``) or raise the limit.
    """
    budget = parse_memory_limit(memory_limit)
    pool = _check_pool(pool)
    [src] = _store_sources(store, [layer], epoch, pool)
    d, n = src.width, src.n
    if 8 * d * d > budget // 2:
        pooling = ", pool conv maps (pool='mean')" if pool is None and len(src.unit_shape) >= 2 else ""
        raise AnalysisError(
            f"The covariance of {layer!r} ({d:,} features) needs {format_bytes(8 * d * d)}, more than half of"
            f" memory_limit={format_bytes(budget)}. Raise memory_limit={pooling}, or use a subset of samples"
            " in memory (n=...).")
    step = _block_rows(n, d * 24, budget - 8 * d * d, src.chunk_rows, rows)
    reduction = _CrossProducts([src], [[0]], n, step)
    partial = reduce_blocks(reduction, client=client, progress=progress)
    upper = np.triu(reduction.centred(partial))
    mean = reduction.shifts[0] + partial[1][0] / n
    return mean, (upper + upper.T - np.diag(np.diag(upper))) / n


def _subsample_index(n: int, m: int, seed: int) -> np.ndarray:
    if m >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def _subsample_size(n: int, requested: int, widths: Sequence[int], n_kept: int, budget: int,
                    per_value: int = 8) -> int:
    """Largest m ≤ requested so that one gathered block plus ``n_kept`` m×m matrices fit."""
    if requested < 2:
        raise AnalysisError(f"subsample={requested} must be at least 2 samples.")
    m = min(n, int(requested))
    widest = max(widths)
    while m > 2 and m * widest * 12 + n_kept * m * m * per_value > budget:
        m = int(m * 0.8)
    return max(m, 2)


def _unbiased_centring(k: np.ndarray) -> np.ndarray:
    """Song et al.'s (2012) U-centring of a Gram matrix, in place: ``⟨K̃, L̃⟩`` is then
    ``n(n − 3)`` times the unbiased HSIC estimator (Kornblith et al. 2019's debiased CKA)."""
    n = len(k)
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0.0)
    return k


def _centred_gram(x: np.ndarray, kernel: str, threshold: float, unbiased: bool = False) -> np.ndarray:
    """The doubly centred Gram matrix ``H K H`` of rows ``x`` (float64); U-centred if ``unbiased``."""
    x = np.asarray(x, np.float64)
    if kernel == "linear":
        x = x - x.mean(axis=0)
        gram = x @ x.T  # column-centred features give a doubly centred linear Gram
        return _unbiased_centring(gram) if unbiased else gram
    x = x - x.mean(axis=0)  # distances ignore shifts; centring keeps ‖a‖²+‖b‖²−2a·b from cancelling
    sq = np.einsum("ij,ij->i", x, x)
    gram = x @ x.T
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0.0)
    iu = np.triu_indices(len(x), k=1)
    sigma2 = float(np.median(dist2[iu])) * threshold**2
    if sigma2 <= 0:
        k = np.ones_like(dist2)  # all samples identical: a constant kernel, centred to zero
    else:
        k = np.exp(-dist2 / (2.0 * sigma2))
    if unbiased:
        return _unbiased_centring(k)
    k -= k.mean(axis=0, keepdims=True)
    k -= k.mean(axis=1, keepdims=True)
    return k


def _gram_hsic(sources: Sequence[_Source], pairs: set[tuple[int, int]], index: np.ndarray,
               budget: int, kernel: str, threshold: float,
               tick: Callable[[], None], unbiased: bool = False) -> dict[tuple[int, int], float]:
    """``⟨Kᵢ, Kⱼ⟩`` of centred Grams on the subsample rows ``index`` for the pairs asked."""
    involved = sorted({i for pair in pairs for i in pair})
    grams: dict[int, np.ndarray] = {}
    for i in involved:
        s = sources[i]
        step = _block_rows(s.n, s.width * 4, budget // 4, s.chunk_rows, None)
        grams[i] = _centred_gram(s.take(index, step), kernel, threshold, unbiased)
        tick()
    out: dict[tuple[int, int], float] = {}
    for i, j in pairs:
        out[(i, j)] = out[(j, i)] = float(np.vdot(grams[i], grams[j]))
    return out


def _cka_values(hsic: Mapping[tuple[int, int], float], rows: Sequence[int],
                cols: Sequence[int]) -> np.ndarray:
    values = np.full((len(rows), len(cols)), np.nan)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            denom = math.sqrt(max(hsic[(i, i)], 0.0) * max(hsic[(j, j)], 0.0))
            if denom > 0:
                values[a, b] = min(hsic[(i, j)] / denom, 1.0) if i == j else hsic[(i, j)] / denom
    return values


CKA_METHODS = ("auto", "feature", "gram")


def _cka(row_sources: Sequence[_Source], col_sources: Sequence[_Source], *, kernel: str = "linear",
         method: str = "auto", memory_limit: int | str | None = None, rows: int | None = None,
         subsample: int = DEFAULT_SUBSAMPLE, threshold: float = 1.0, seed: int = 0,
         progress: ProgressFn | None = None, client: Any = None,
         debiased: bool = False) -> tuple[np.ndarray, str, list[str]]:
    """CKA between every row source and every column source; returns (values, method, notes).

    ``debiased`` uses the unbiased HSIC estimator (Kornblith et al. 2019, after Song et al.
    2012) in the Gram form: on every sample when the n×n Grams fit the budget, else on a
    seeded subsample (with a note).

    Linear CKA picks, for ``method="auto"``, the cheaper *exact* form: streamed feature space
    (cost n·D²/2 for D summed widths) or the n×n Gram form on every sample (cost n²·D/2,
    only when all the Grams fit the budget: small n, wide layers). Pairs with a layer too
    wide for feature space whose Grams on all samples do not fit use a subsample.
    """
    budget = parse_memory_limit(memory_limit)
    if kernel not in ("linear", "rbf"):
        raise AnalysisError(f"kernel={kernel!r} is not known; choose 'linear' or 'rbf'.")
    if method not in CKA_METHODS:
        raise AnalysisError(f"method={method!r} is not known; choose one of {', '.join(CKA_METHODS)}.")
    if not threshold > 0:
        raise AnalysisError(f"threshold={threshold} must be positive (bandwidth = threshold × median distance).")
    unique: dict[tuple, int] = {}
    sources: list[_Source] = []
    for s in [*row_sources, *col_sources]:
        if s.key not in unique:
            unique[s.key] = len(sources)
            sources.append(s)
    n = _check_n(sources)
    ri = [unique[s.key] for s in row_sources]
    ci = [unique[s.key] for s in col_sources]
    pairs = {(i, j) for i in ri for j in ci} | {(i, i) for i in (*ri, *ci)}
    involved = sorted({i for pair in pairs for i in pair})
    widths = {i: sources[i].width for i in involved}
    notes: list[str] = []
    # a layer is done exactly in feature space when its own d×d float64 accumulator fits
    # in half the budget; a pair touching a wider layer needs the Gram form
    max_exact = int(math.isqrt(max(1, budget // 2 // 8)))
    wide = {i for i in involved if widths[i] > max_exact}
    # Grams of every sample: one n×n float64 per layer, plus one layer's rows as read
    gram_fits = len(involved) * n * n * 8 + n * max(widths.values()) * 12 <= budget

    if debiased and n < 4:
        raise AnalysisError(f"debiased CKA needs at least 4 samples; got {n}.")
    if kernel == "rbf" or method == "gram" or debiased:
        exact_pairs, gram_pairs = set(), set(pairs)
    else:
        exact_pairs = {(i, j) for i, j in pairs if i not in wide and j not in wide}
        gram_pairs = pairs - exact_pairs
    plan = _plan(sources, exact_pairs, n, budget, rows) if exact_pairs else []
    if kernel == "linear" and method == "auto" and gram_fits and rows is None and client is None:
        feature_cost = sum(n * (sum(widths[i] for i in p.rows) * sum(widths[i] for i in p.cols) if p.cols
                                else sum(widths[i] for i in p.rows) ** 2 / 2) for p in plan)
        gram_cost = n * n * sum(widths.values()) / 2 + len(pairs) * n * n
        if wide or gram_cost < feature_cost:
            exact_pairs, gram_pairs, plan = set(), set(pairs), []
    gram_pairs |= {(i, i) for pair in gram_pairs for i in pair}
    gram_involved = sorted({i for pair in gram_pairs for i in pair})

    total = sum(-(-n // p.step) for p in plan) + len(gram_involved)
    done = 0

    def tick(k: int = 1) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, max(total, done))

    hsic: dict[tuple[int, int], float] = {}
    if exact_pairs:
        hsic.update(_cross_hsic(sources, exact_pairs, plan, n, tick, client=client))
    used = "feature" if exact_pairs else ""
    if gram_pairs:
        if kernel == "linear" and gram_fits and (method == "gram" and subsample >= n or method == "auto"):
            m = n
        elif debiased and kernel == "linear" and gram_fits:
            m = n
        else:
            m = _subsample_size(n, subsample, [widths[i] for i in gram_involved], len(gram_involved), budget)
        index = _subsample_index(n, m, seed)
        used = "+".join(filter(None, [used, "gram" if m == n else "gram-subsample"]))
        if kernel == "linear" and m < n:
            names = ", ".join(sorted(sources[i].label for i in wide)) or "every layer"
            why = (f" (wider than {max_exact} features: the exact d×d accumulators exceed the memory"
                   f" budget of {format_bytes(budget)})" if wide and method != "gram" else "")
            msg = (f"linear CKA of {names}{why} uses the n×n Gram form on {m} of {n} samples"
                   f" (seed {seed}): an estimate." + (" Raise memory_limit, or pass pool='mean' to pool"
                                                        " conv maps over space." if why else ""))
            warnings.warn(msg, SimilarityWarning, stacklevel=3)
            notes.append(msg)
        elif m < n:
            notes.append(f"RBF CKA on a seeded subsample of {m} of {n} samples (seed {seed}).")
            if m < min(n, subsample):
                warnings.warn(f"RBF CKA subsample reduced from {min(n, subsample)} to {m} samples to"
                              f" fit memory_limit={format_bytes(budget)}.", SimilarityWarning, stacklevel=3)
        # the Gram form's self-terms must come from the same subsample as its cross terms
        hsic.update(_gram_hsic(sources, gram_pairs, index, budget, kernel, threshold, tick, unbiased=debiased))
        if debiased and m < n:
            notes.append(f"debiased CKA on a seeded subsample of {m} of {n} samples (seed {seed}).")
    return _cka_values(hsic, ri, ci), used, notes


# ============================================================================ public: CKA
def linear_cka(x: Any, y: Any, *, pool: str | None = None, method: str = "auto",
               memory_limit: int | str | None = None, rows: int | None = None, client: Any = None,
               debiased: bool = False) -> float:
    """Linear CKA of two representations of the same samples, streamed, exact.

    Parameters
    ----------
    x, y : array-like ``[n_samples, *unit_shape]``
        numpy or zarr arrays (e.g. ``store.activations("fc1")``: read block by block).
        Samples are rows; each sample's activations are flattened (or pooled, see ``pool``).
    pool : {None, "mean", "max"}
        None flattens conv maps; "mean"/"max" pool them over the spatial axes (channels first).
    method : {"auto", "feature", "gram"}
        ``"feature"`` streams ``XᵀX``, ``YᵀY``, ``YᵀX`` (O(d²) memory); ``"gram"`` uses the
        n×n Gram matrices (O(n²) memory; a subsample when n > ``DEFAULT_SUBSAMPLE``);
        ``"auto"`` takes the cheaper exact one. All give the same value.
    memory_limit : int or str, optional
        Bytes for accumulators and row blocks (default: a quarter of the free memory).
    rows : int, optional
        Rows per block (overrides what ``memory_limit`` would choose).
    debiased : bool
        Kornblith et al.'s (2019) debiased CKA: the unbiased HSIC estimator (Song et al.
        2012), which removes the upward bias of plain CKA when features outnumber samples
        (two independent random representations give ≈ 0 instead of a large value). Gram
        form, on every sample when the n×n Grams fit ``memory_limit``, else a subsample.

    Returns
    -------
    float
        In [0, 1] (debiased: may dip slightly below 0); 1 when ``y`` is an orthogonal
        transform and isotropic scaling of ``x`` (up to a shift); NaN when either
        representation is constant.

    Raises
    ------
    AnalysisError
        For different sample counts, fewer than 2 samples, or an unknown ``pool``.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(100, 8))
    >>> round(linear_cka(x, 3 * x @ np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))[0]), 6)
    1.0
    """
    pool = _check_pool(pool)
    sx, sy = _array_source(x, "x", pool), _array_source(y, "y", pool)
    values, _, _ = _cka([sx], [sy], method=method, memory_limit=memory_limit, rows=rows, client=client,
                        debiased=debiased)
    return float(values[0, 0])


def rbf_cka(x: Any, y: Any, *, threshold: float = 1.0, subsample: int = DEFAULT_SUBSAMPLE,
            seed: int = 0, pool: str | None = None, memory_limit: int | str | None = None) -> float:
    """CKA with Gaussian (RBF) kernels, on a seeded subsample of the samples.

    The bandwidth σ is ``threshold`` × the median pairwise Euclidean distance of each
    representation (Kornblith et al. 2019); the kernels are compared by centred HSIC.

    Parameters
    ----------
    x, y : array-like ``[n_samples, *unit_shape]``
    threshold : float
        Bandwidth as a multiple of the median distance.
    subsample : int
        Samples used (the n×n Gram matrices cost ``8·m²`` bytes each); all when n ≤ subsample.
    seed : int
        Seed of the subsample; the same seed gives the same value.
    pool, memory_limit
        As in :func:`linear_cka`.

    Returns
    -------
    float

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(200, 5))
    >>> round(rbf_cka(x, x), 6)
    1.0
    """
    pool = _check_pool(pool)
    sx, sy = _array_source(x, "x", pool), _array_source(y, "y", pool)
    values, _, _ = _cka([sx], [sy], kernel="rbf", memory_limit=memory_limit, subsample=subsample,
                     threshold=threshold, seed=seed)
    return float(values[0, 0])


@dataclass
class SimilarityMatrix:
    """A matrix of similarities: rows and columns are layers (or epochs) of one or two stores.

    Attributes
    ----------
    values : ndarray ``[len(rows), len(cols)]``
    rows, cols : list of str
        Labels of the rows and columns (layer names, or ``"epoch 3"``).
    measure : str
        ``"linear_cka"``, ``"debiased_linear_cka"``, ``"rbf_cka"`` or ``"rsa"``.
    row_axis, col_axis : str
        What the labels are (``"layer"``, ``"epoch"``, or a model/run name).
    title : str
    notes : list of str
        How values were estimated when not exact (subsamples, fallbacks).
    method : str
        How they were computed: ``"feature"`` (streamed feature space), ``"gram"`` (n×n
        Grams of every sample), ``"gram-subsample"``, or a combination joined by ``+``.
    """

    values: np.ndarray
    rows: list[str]
    cols: list[str]
    measure: str
    row_axis: str = "layer"
    col_axis: str = "layer"
    title: str = ""
    notes: list[str] = field(default_factory=list)
    method: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The matrix as a labelled DataFrame."""
        return pd.DataFrame(self.values, index=pd.Index(self.rows, name=self.row_axis),
                            columns=pd.Index(self.cols, name=self.col_axis))

    def __getitem__(self, key: tuple[str, str]) -> float:
        r, c = key
        for label, labels in ((r, self.rows), (c, self.cols)):
            if label not in labels:
                raise LayerError(f"{label!r} is not a row/column of this matrix.{did_you_mean(str(label), labels)}"
                                 f" Labels: {', '.join(labels)}.")
        return float(self.values[self.rows.index(r), self.cols.index(c)])

    def _repr_html_(self) -> str:
        return f"<b>{self.title or self.measure}</b>" + self.to_frame().round(3).to_html()

    def as_json(self) -> dict[str, Any]:
        return {"measure": self.measure, "rows": list(self.rows), "cols": list(self.cols),
                "row_axis": self.row_axis, "col_axis": self.col_axis, "title": self.title,
                "notes": list(self.notes), "method": self.method}


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


def cka_matrix(store: Any, layers: Sequence[str] | str | None = None, *, epoch: int | None = None,
               other: Any = None, other_layers: Sequence[str] | str | None = None,
               other_epoch: int | None = None, kernel: str = "linear", method: str = "auto",
               pool: str | None = None, memory_limit: int | str | None = None, rows: int | None = None,
               subsample: int = DEFAULT_SUBSAMPLE, threshold: float = 1.0, seed: int = 0,
               progress: ProgressFn | None = None, client: Any = None,
               debiased: bool = False) -> SimilarityMatrix:
    """CKA between every pair of layers of a store, or between the layers of two stores.

    Linear CKA streams the store in row blocks with bounded memory and is exact (see the
    module notes on very wide layers); RBF CKA uses a seeded subsample.

    Parameters
    ----------
    store : ActivationStore or path
    layers : str or sequence of str, optional
        Layer names or glob patterns (default: every layer), kept in model order.
    epoch : int, optional
        Checkpoint epoch (default: the final model).
    other : ActivationStore or path, optional
        A second store of the *same samples* (a different model, or a different run):
        rows are ``store``'s layers, columns ``other``'s.
    other_layers, other_epoch
        Layers and epoch of ``other`` (defaults: every layer, the final model).
    kernel : {"linear", "rbf"}
    method : {"auto", "feature", "gram"}
        How linear CKA is computed (see :func:`linear_cka`); ``"auto"`` picks the cheaper
        exact form.
    pool : {None, "mean", "max"}
        Flatten conv maps (None) or pool them over space.
    memory_limit : int or str, optional
        Bytes (default: a quarter of the free memory); decides the rows per block.
    rows : int, optional
        Rows per block, overriding ``memory_limit``'s choice.
    subsample, threshold, seed
        For RBF CKA and for the Gram-form fallback of very wide layers.
    debiased : bool
        Debiased CKA (Kornblith et al. 2019) beside the default biased one; see
        :func:`linear_cka`.
    progress : callable(done, total), optional
    client : dask.distributed.Client, optional
        Stream the linear CKA passes on a dask cluster (the store on shared storage): each
        worker accumulates the cross-products of a shard of chunks; the d×d partials are
        summed on the cluster. ``method="auto"`` then keeps the feature form.

    Returns
    -------
    SimilarityMatrix

    Raises
    ------
    LayerError
        For a layer that is not in the store.
    AnalysisError
        When ``other`` holds different samples (its ``index`` column differs).

    Example
    -------
    >>> m = cka_matrix(store)                       # doctest: +SKIP
    >>> m["fc1", "relu1"]                          # doctest: +SKIP
    0.93
    """
    store, row_sources, col_sources, col_axis = _layer_sources(store, layers, epoch, other, other_layers,
                                                               other_epoch, pool)
    name = ("debiased " if debiased else "") + ("linear" if kernel == "linear" else "RBF")
    title = (f"{name} CKA between layers" if other is None
             else f"{name} CKA: {_store_name(store)} vs {col_axis}")
    values, used, notes = _cka(row_sources, col_sources, kernel=kernel, method=method,
                               memory_limit=memory_limit, rows=rows, client=client,
                         subsample=subsample, threshold=threshold, seed=seed, progress=progress,
                         debiased=debiased)
    return SimilarityMatrix(values, [s.layer for s in row_sources], [s.layer for s in col_sources],
                            ("debiased_" if debiased else "") + f"{kernel}_cka",
                            "layer" if other is None else _store_name(store), col_axis, title, notes, used)


def epoch_cka_matrix(store: Any, layer: str, epochs: Sequence[int] | None = None, *,
                     kernel: str = "linear", method: str = "auto", pool: str | None = None,
                     memory_limit: int | str | None = None, rows: int | None = None,
                     subsample: int = DEFAULT_SUBSAMPLE, threshold: float = 1.0, seed: int = 0,
                     progress: ProgressFn | None = None, client: Any = None) -> SimilarityMatrix:
    """CKA of one layer between every pair of training epochs (how the layer changed).

    Parameters
    ----------
    store : ActivationStore or path
        A per-epoch capture (``capture(..., checkpoints=RUN_DIR)``).
    layer : str
    epochs : sequence of int, optional
        Default: every epoch captured.
    kernel, method, pool, memory_limit, rows, subsample, threshold, seed, progress, client
        As in :func:`cka_matrix`.

    Returns
    -------
    SimilarityMatrix
        Rows and columns ``"epoch 0"``, ``"epoch 1"``, ...

    Raises
    ------
    StoreError
        When the store has no per-epoch activations, or an epoch is not in it.

    Example
    -------
    >>> m = epoch_cka_matrix(store, "relu1")           # doctest: +SKIP
    >>> m.values[0, -1]   # untrained vs trained        # doctest: +SKIP
    0.41
    """
    store = _as_store(store)
    pool = _check_pool(pool)
    chosen_layers = _resolve_layers(store, [layer]) if isinstance(layer, str) else []
    if len(chosen_layers) != 1:
        raise AnalysisError(f"epoch_cka_matrix compares one layer across epochs; {layer!r} names"
                            f" {len(chosen_layers)} layers. Pass one layer name, e.g. {store.layers[0]!r}.")
    layer = chosen_layers[0]
    available = store.epochs
    if not available:
        raise StoreError(f"The store {store.path} has no per-epoch activations; capture with"
                         " checkpoints=RUN_DIR (`neuralatlas capture --per-epoch`) to compare epochs.")
    chosen = list(available) if epochs is None else [int(e) for e in epochs]
    missing = [e for e in chosen if e not in available]
    if missing:
        raise StoreError(f"Epoch(s) {missing} are not in the store {store.path}; epochs captured:"
                         f" {', '.join(map(str, available))}.")
    sources = [_Source(label=f"{layer}@{e}", n=store.n_samples, unit_shape=tuple(store.unit_shape(layer)),
                       pool=pool, store=store, layer=layer, epoch=e, chunk_rows=store.chunk_rows)
               for e in chosen]
    values, used, notes = _cka(sources, sources, kernel=kernel, method=method,
                               memory_limit=memory_limit, rows=rows, client=client,
                         subsample=subsample, threshold=threshold, seed=seed, progress=progress)
    labels = [f"epoch {e}" for e in chosen]
    return SimilarityMatrix(values, labels, labels, f"{kernel}_cka", "epoch", "epoch",
                            f"{layer}: {'linear' if kernel == 'linear' else 'RBF'} CKA between epochs", notes, used)


# ============================================================================ RSA
def rdm(x: Any, metric: str = "correlation") -> np.ndarray:
    """The representational dissimilarity matrix of rows ``x``, condensed (upper triangle).

    Parameters
    ----------
    x : array-like ``[n_samples, *unit_shape]`` (flattened per sample)
    metric : {"correlation", "euclidean", "sqeuclidean", "cosine"}
        ``correlation`` is ``1 − Pearson r`` between two samples' activation vectors.
        Pairs involving a constant (e.g. all-zero) sample, where correlation and cosine are
        undefined, get the distance 1 (uncorrelated).

    Returns
    -------
    ndarray ``[n·(n−1)/2]`` in ``scipy.spatial.distance.pdist`` order;
    ``scipy.spatial.distance.squareform`` makes it square.

    Example
    -------
    >>> rdm(np.eye(3)).round(3)
    array([1.5, 1.5, 1.5])
    """
    from scipy.spatial.distance import pdist

    if metric not in RSA_METRICS:
        raise AnalysisError(f"metric={metric!r} is not known; choose one of {', '.join(RSA_METRICS)}.")
    arr = np.asarray(x, np.float64)
    arr = arr.reshape(len(arr), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = pdist(arr, metric=metric)
    return np.where(np.isfinite(d), d, 1.0)


def _ranked(d: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(d)


def _spearman_matrix(rows: Sequence[np.ndarray], cols: Sequence[np.ndarray]) -> np.ndarray:
    """Spearman correlation = Pearson correlation of ranks, for every (row, col) pair."""
    def standardised(r: np.ndarray) -> np.ndarray:
        r = r - r.mean()
        norm = np.linalg.norm(r)
        return r / norm if norm > 0 else np.full_like(r, np.nan)

    a = np.stack([standardised(r) for r in rows])
    b = np.stack([standardised(r) for r in cols])
    return np.clip(a @ b.T, -1.0, 1.0)


def rsa(x: Any, y: Any, *, metric: str = "correlation", subsample: int = DEFAULT_SUBSAMPLE,
        seed: int = 0, pool: str | None = None) -> float:
    """Representational similarity: Spearman correlation between the two RDMs' upper triangles.

    Parameters
    ----------
    x, y : array-like ``[n_samples, *unit_shape]``
    metric : str
        Dissimilarity of :func:`rdm` (default ``"correlation"``).
    subsample : int
        Samples used (an RDM has n·(n−1)/2 entries); all when n ≤ subsample.
    seed : int
    pool : {None, "mean", "max"}

    Returns
    -------
    float in [−1, 1]; NaN when an RDM is constant.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(50, 6))
    >>> round(rsa(x, 2 * x + 1), 6)
    1.0
    """
    pool = _check_pool(pool)
    sx, sy = _array_source(x, "x", pool), _array_source(y, "y", pool)
    values, _ = _rsa([sx], [sy], metric=metric, subsample=subsample, seed=seed, memory_limit=None)
    return float(values[0, 0])


def _rsa(row_sources: Sequence[_Source], col_sources: Sequence[_Source], *, metric: str, subsample: int,
         seed: int, memory_limit: int | str | None,
         progress: ProgressFn | None = None) -> tuple[np.ndarray, list[str]]:
    if metric not in RSA_METRICS:
        raise AnalysisError(f"metric={metric!r} is not known; choose one of {', '.join(RSA_METRICS)}.")
    budget = parse_memory_limit(memory_limit)
    unique: dict[tuple, int] = {}
    sources: list[_Source] = []
    for s in [*row_sources, *col_sources]:
        if s.key not in unique:
            unique[s.key] = len(sources)
            sources.append(s)
    n = _check_n(sources)
    # one condensed RDM (m²/2 float64) is kept per layer, plus one gathered block
    m = _subsample_size(n, subsample, [s.width for s in sources], len(sources), budget, per_value=4)
    index = _subsample_index(n, m, seed)
    notes = []
    if m < n:
        notes.append(f"RSA on a seeded subsample of {m} of {n} samples (seed {seed}), {metric} distance.")
    ranked = []
    for k, s in enumerate(sources):
        step = _block_rows(s.n, s.width * 4, budget // 4, s.chunk_rows, None)
        ranked.append(_ranked(rdm(s.take(index, step), metric)))
        if progress is not None:
            progress(k + 1, len(sources))
    values = _spearman_matrix([ranked[unique[s.key]] for s in row_sources],
                              [ranked[unique[s.key]] for s in col_sources])
    return values, notes


def rsa_matrix(store: Any, layers: Sequence[str] | str | None = None, *, epoch: int | None = None,
               other: Any = None, other_layers: Sequence[str] | str | None = None,
               other_epoch: int | None = None, metric: str = "correlation",
               subsample: int = DEFAULT_SUBSAMPLE, seed: int = 0, pool: str | None = None,
               memory_limit: int | str | None = None,
               progress: ProgressFn | None = None) -> SimilarityMatrix:
    """RSA between every pair of layers of a store (or of two stores of the same samples).

    Parameters are those of :func:`cka_matrix` and :func:`rsa`.

    Returns
    -------
    SimilarityMatrix
        Spearman correlations of the layers' RDMs (``measure="rsa"``).

    Example
    -------
    >>> m = rsa_matrix(store, ["fc1", "fc2"])          # doctest: +SKIP
    """
    store, row_sources, col_sources, col_axis = _layer_sources(store, layers, epoch, other, other_layers,
                                                               other_epoch, pool)
    title = (f"RSA between layers ({metric} RDMs, Spearman)" if other is None
             else f"RSA: {_store_name(store)} vs {col_axis}")
    values, notes = _rsa(row_sources, col_sources, metric=metric, subsample=subsample, seed=seed,
                         memory_limit=memory_limit, progress=progress)
    return SimilarityMatrix(values, [s.layer for s in row_sources], [s.layer for s in col_sources], "rsa",
                            "layer" if other is None else _store_name(store), col_axis, title, notes,
                            "rdm" if len(notes) == 0 else "rdm-subsample")


# ============================================================================ probes
@dataclass
class ProbeResult:
    """Cross-validated linear-probe accuracy per layer.

    Attributes
    ----------
    layers : list of str
        In model order (depth).
    accuracy, std : ndarray
        Mean and standard deviation over the folds.
    n_features : list of int
        Width of each layer (after pooling).
    n_components : list of int or None
        PCA components the probe saw (None: no reduction).
    chance : float
        Accuracy of always guessing the most frequent class.
    cv, n_samples, seed : int
    """

    layers: list[str]
    accuracy: np.ndarray
    std: np.ndarray
    n_features: list[int]
    n_components: list[int | None]
    chance: float
    cv: int
    n_samples: int
    seed: int = 0
    name: str = ""

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"layer": self.layers, "accuracy": self.accuracy, "std": self.std,
                             "n_features": self.n_features, "n_components": self.n_components})

    def __getitem__(self, layer: str) -> float:
        if layer not in self.layers:
            raise LayerError(f"No probe of {layer!r}.{did_you_mean(layer, self.layers)}"
                             f" Layers probed: {', '.join(self.layers)}.")
        return float(self.accuracy[self.layers.index(layer)])

    def as_json(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "accuracy": [float(a) for a in self.accuracy],
                "std": [float(s) for s in self.std], "n_features": [int(k) for k in self.n_features],
                "n_components": [None if c is None else int(c) for c in self.n_components],
                "chance": float(self.chance), "cv": int(self.cv), "n_samples": int(self.n_samples),
                "seed": int(self.seed), "name": self.name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeResult:
        return cls(list(data["layers"]), np.asarray(data["accuracy"], float), np.asarray(data["std"], float),
                   list(data["n_features"]), list(data["n_components"]), float(data["chance"]),
                   int(data["cv"]), int(data["n_samples"]), int(data.get("seed", 0)), data.get("name", ""))

    def _repr_html_(self) -> str:
        return "<b>linear probes</b>" + self.to_frame().round(3).to_html(index=False)


def linear_probes(store: Any, layers: Sequence[str] | str | None = None, *, epoch: int | None = None,
                  labels: Sequence[int] | np.ndarray | None = None, cv: int = 5, seed: int = 0,
                  max_features: int = 128, max_samples: int = 10000, C: float = 1.0,
                  pool: str | None = None, memory_limit: int | str | None = None,
                  progress: ProgressFn | None = None) -> ProbeResult:
    """Cross-validated logistic-regression accuracy of each layer's activations.

    Each probe standardises the features, reduces layers wider than ``max_features`` with
    PCA (fitted on the training folds only), and fits a multinomial logistic regression;
    the folds are stratified and seeded. On token rows (``capture(..., rows="tokens")``) the
    folds keep each sentence whole (grouped by the ``sample`` column), so a probe is never
    tested on tokens of a sentence it was trained on. A class with fewer than ``cv`` samples
    is left out, with a warning, when at least two classes remain (e.g.
    ``labels=store.samples["position"]``: the last positions of the longest sentences).

    Parameters
    ----------
    store : ActivationStore or path
    layers : str or sequence of str, optional
        Default: every layer.
    epoch : int, optional
        Checkpoint epoch (default: the final model).
    labels : array-like, optional
        Class per sample (default: the store's ``label`` column).
    cv : int
        Folds (a class needs at least ``cv`` samples, else it is left out; see above).
    seed : int
        Seeds the folds, the sample subset and the PCA; the same seed gives the same result.
    max_features : int
        Layers wider than this are PCA-reduced to it first.
    max_samples : int
        At most this many samples (a seeded, stratification-free random subset).
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    pool, memory_limit, progress
        As in :func:`cka_matrix`.

    Returns
    -------
    ProbeResult

    Raises
    ------
    AnalysisError
        When the store has no labels, or a class has fewer than ``cv`` samples.

    Example
    -------
    >>> probes = linear_probes(store)                 # doctest: +SKIP
    >>> probes["relu2"] > probes["flatten"]           # doctest: +SKIP
    True
    """
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    store = _as_store(store)
    pool = _check_pool(pool)
    budget = parse_memory_limit(memory_limit)
    sources = _store_sources(store, layers, epoch, pool)
    y_all = np.asarray(store.samples["label"] if labels is None else labels)
    if y_all.shape != (store.n_samples,):
        raise AnalysisError(f"labels have shape {y_all.shape}; the store has {store.n_samples} samples.")
    if labels is None and y_all.dtype.kind == "f" and not np.array_equal(y_all, np.round(y_all)):
        raise AnalysisError(f"The store {store.path} has float labels (regression targets); a linear probe"
                            " classifies. Pass labels= classes (e.g. binned targets, or the token"
                            " rows' position column).")
    if labels is None and np.all(y_all < 0):
        raise AnalysisError(f"The store {store.path} has no labels (all -1); pass labels=... or capture"
                            " a labelled data set to run linear probes.")
    if int(cv) < 2:
        raise AnalysisError(f"cv={cv} must be at least 2 folds.")
    n = store.n_samples
    m = min(n, int(max_samples))
    widest = max(s.width for s in sources)
    # one layer's subset is in memory at a time (float32 plus the scaler's float64 copy)
    fit = max(2, budget // max(1, widest * 20))
    if fit < m:
        warnings.warn(f"linear probes use {fit} of {m} samples so that the widest layer ({widest}"
                      f" features) fits memory_limit={format_bytes(budget)}; pass pool='mean' or raise"
                      " memory_limit to use more.", SimilarityWarning, stacklevel=2)
        m = fit
    index = _subsample_index(n, m, seed)
    y = y_all[index]
    keep = y >= 0
    classes, counts = np.unique(y[keep], return_counts=True)
    if len(classes) < 2:
        raise AnalysisError(f"Linear probes need at least 2 classes; the samples have {len(classes)}.")
    rare = classes[counts < cv]
    if len(rare) and len(classes) - len(rare) >= 2:
        # a class in fewer rows than folds cannot be stratified (the last token positions of
        # the longest sentences, a rare token): probe the others, and say which were left out
        keep &= ~np.isin(y, rare)
        warnings.warn(f"linear probes leave out {len(rare)} of {len(classes)} classes with fewer than cv={cv}"
                      f" samples ({', '.join(map(str, rare[:8]))}{' ...' if len(rare) > 8 else ''};"
                      f" {int(np.isin(y, rare).sum())} samples); the accuracy is over the other classes."
                      " Merge rare classes (e.g. np.minimum(position, 15)) to keep them.",
                      SimilarityWarning, stacklevel=2)
        classes, counts = np.unique(y[keep], return_counts=True)
    elif len(rare):
        worst = classes[int(np.argmin(counts))]
        raise AnalysisError(f"Class {worst} has only {counts.min()} samples, fewer than cv={cv} folds;"
                            f" lower cv (e.g. cv={max(2, int(counts.min()))}) or use more samples.")
    # token rows (one row per token, a "sample" column naming the sentence): the tokens of one
    # sentence share its context, so folds keep each sentence whole; a sentence in both the
    # training and the test folds would let a probe recognise the sentence, not the class
    table_columns = store.samples.columns
    sentence = (np.asarray(store.samples["sample"])[index]
                if {"sample", "position"} <= set(table_columns) else None)
    if sentence is not None:
        from sklearn.model_selection import StratifiedGroupKFold

        folds: Any = StratifiedGroupKFold(n_splits=int(cv), shuffle=True, random_state=seed)
    else:
        folds = StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=seed)
    acc, std, n_comp = [], [], []
    for k, s in enumerate(sources):
        step = _block_rows(n, s.width * 4, budget // 4, s.chunk_rows, None)
        x = s.take(index, step)[keep]
        steps: list[Any] = [StandardScaler()]
        comps = None
        if s.width > max_features:
            comps = int(min(max_features, len(x) - len(x) // cv - 1))
            steps.append(PCA(n_components=comps, svd_solver="randomized", random_state=seed))
        steps.append(LogisticRegression(C=C, max_iter=2000))
        # small probes are many tiny BLAS calls, where a threaded BLAS spends its time waking
        # threads (10-100x slower on a loaded machine); large ones keep every thread
        limit = 1 if x.size < 5_000_000 else None
        with warnings.catch_warnings(), threadpool_limits(limits=limit, user_api="blas"):
            # a probe that has not fully converged after 2000 iterations is still a fair read-out
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(make_pipeline(*steps), x, y[keep], cv=folds, n_jobs=None,
                                     groups=None if sentence is None else sentence[keep])
        acc.append(scores.mean())
        std.append(scores.std())
        n_comp.append(comps)
        if progress is not None:
            progress(k + 1, len(sources))
    chance = float(counts.max() / counts.sum())
    return ProbeResult([s.layer for s in sources], np.asarray(acc), np.asarray(std),
                       [s.width for s in sources], n_comp, chance, int(cv), int(keep.sum()), int(seed),
                       _store_name(store))


# ============================================================================ the whole analysis
@dataclass
class SimilarityResult:
    """Everything :func:`similarity` computed for a run: named matrices and probes.

    Attributes
    ----------
    matrices : dict of str to SimilarityMatrix
        ``"linear_cka"``, ``"rbf_cka"``, ``"rsa"`` (layer × layer), ``"epoch_cka/<layer>"``
        (epoch × epoch), ``"linear_cka_vs_other"`` and ``"rsa_vs_other"`` (model vs model).
    probes : ProbeResult or None
    other_probes : ProbeResult or None
        Probes of the other model, when one was compared.
    info : dict
        Store paths, sample count, settings.
    """

    matrices: dict[str, SimilarityMatrix] = field(default_factory=dict)
    probes: ProbeResult | None = None
    other_probes: ProbeResult | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def epoch_matrices(self) -> dict[str, SimilarityMatrix]:
        """The epoch×epoch matrices by layer name."""
        return {k.split("/", 1)[1]: m for k, m in self.matrices.items() if k.startswith("epoch_cka/")}

    def summary(self) -> dict[str, Any]:
        """Headline numbers (JSON-ready): adjacent-layer CKA, epoch change, probes, best matches."""
        out: dict[str, Any] = {**self.info}
        lin = self.matrices.get("linear_cka")
        if lin is not None:
            out["adjacent_layer_cka"] = {f"{a} → {b}": _num(lin.values[i, i + 1])
                                         for i, (a, b) in enumerate(zip(lin.rows, lin.rows[1:]))}
        for key in ("rbf_cka", "rsa"):
            mat = self.matrices.get(key)
            if mat is not None and len(mat.rows) > 1:
                off = mat.values[~np.eye(len(mat.rows), dtype=bool)]
                out[f"{key}_mean_between_layers"] = _num(np.nanmean(off)) if np.isfinite(off).any() else None
        epochs = self.epoch_matrices
        if epochs:
            out["cka_first_vs_last_epoch"] = {layer: _num(m.values[0, -1]) for layer, m in epochs.items()}
        for key in ("linear_cka_vs_other", "rsa_vs_other"):
            cross = self.matrices.get(key)
            if cross is not None:
                best = {}
                for i, layer in enumerate(cross.rows):
                    row = cross.values[i]
                    if np.isfinite(row).any():
                        j = int(np.nanargmax(row))
                        best[layer] = {"layer": cross.cols[j], "value": _num(row[j])}
                out[f"{key}_best_match"] = best
        for key, probes in (("probe_accuracy", self.probes), ("other_probe_accuracy", self.other_probes)):
            if probes is not None:
                out[key] = {layer: _num(a) for layer, a in zip(probes.layers, probes.accuracy)}
                out[key.replace("accuracy", "chance")] = _num(probes.chance)
        notes = sorted({note for m in self.matrices.values() for note in m.notes})
        if notes:
            out["notes"] = notes
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``matrices.npz``, ``matrices.json``, ``probes.json`` and ``summary.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"m{i}": m.values for i, m in enumerate(self.matrices.values())}
        meta = {key: {**m.as_json(), "array": f"m{i}"} for i, (key, m) in enumerate(self.matrices.items())}
        np.savez(directory / "matrices.npz", **arrays)
        (directory / "matrices.json").write_text(json.dumps(meta, indent=2))
        probes = {k: p.as_json() for k, p in (("probes", self.probes), ("other_probes", self.other_probes))
                  if p is not None}
        (directory / "probes.json").write_text(json.dumps(probes, indent=2))
        (directory / "summary.json").write_text(json.dumps(self.summary(), indent=2, ensure_ascii=False))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SimilarityResult:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        if not (directory / "matrices.json").exists():
            raise AnalysisError(f"No similarity results in {directory} (no matrices.json); run"
                                " `neuralatlas similarity RUN_DIR` or similarity(...).save(dir) first.")
        meta = json.loads((directory / "matrices.json").read_text())
        with np.load(directory / "matrices.npz") as arrays:
            matrices = {key: SimilarityMatrix(arrays[m["array"]], list(m["rows"]), list(m["cols"]), m["measure"],
                                              m["row_axis"], m["col_axis"], m["title"], list(m["notes"]),
                                              m.get("method", ""))
                        for key, m in meta.items()}
        probes = json.loads((directory / "probes.json").read_text()) if (directory / "probes.json").exists() else {}
        summary = json.loads((directory / "summary.json").read_text()) if (directory / "summary.json").exists() else {}
        info = {k: summary[k] for k in ("store", "other", "n_samples", "layers", "settings") if k in summary}
        return cls(matrices,
                   ProbeResult.from_json(probes["probes"]) if "probes" in probes else None,
                   ProbeResult.from_json(probes["other_probes"]) if "other_probes" in probes else None,
                   info)

    def _repr_html_(self) -> str:
        parts = [f"<div><b>Similarity</b> ({self.info.get('n_samples', '?')} samples):"
                 f" {', '.join(self.matrices)}</div>"]
        if "linear_cka" in self.matrices:
            parts.append(self.matrices["linear_cka"]._repr_html_())
        if self.probes is not None:
            parts.append(self.probes._repr_html_())
        return "".join(parts)


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


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


def save_figures(result: SimilarityResult, directory: str | Path,
                 formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Draw every figure of ``result`` (see :mod:`neuralatlas.plots.similarity`) into ``directory``."""
    import matplotlib.pyplot as plt

    from neuralatlas.plots.similarity import similarity_figures
    from neuralatlas.plots.style import save_figure

    written: list[Path] = []
    for name, fig in similarity_figures(result).items():
        written += save_figure(fig, Path(directory) / name, formats=formats)
        plt.close(fig)
    return written


_STEP_PARAMS = {"layers", "other", "other_layers", "epoch", "epochs", "rbf", "rsa", "probes", "pool",
                "subsample", "metric", "cv", "max_features", "seed", "memory_limit"}


def run_similarity(ctx: Any, params: Mapping[str, Any], reporter: Any = None) -> dict[str, Any]:
    """Pipeline step: the similarity analysis of one model's run, saved into its run folder.

    Writes ``results/similarity/`` and ``figures/similarity/``; returns the summary.
    ``params`` are keyword arguments of :func:`similarity`.
    """
    unknown = sorted(set(params) - _STEP_PARAMS)
    if unknown:
        raise AnalysisError(f"Unknown similarity parameter(s) {unknown};"
                            f"{did_you_mean(unknown[0], _STEP_PARAMS)} valid: {', '.join(sorted(_STEP_PARAMS))}.")
    progress = getattr(reporter, "progress", None)
    params = {"client": getattr(ctx, "client", None), **dict(params)}
    result = similarity(ctx.store, progress=progress, **params)
    result.save(ctx.results_dir("similarity"))
    save_figures(result, ctx.figures_dir("similarity"))
    return result.summary()
