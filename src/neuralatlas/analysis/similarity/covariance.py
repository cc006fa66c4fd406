"""Streamed centred cross-products: the exact feature-space form of linear CKA, and layer covariances."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuralatlas.analysis.similarity.sources import (
    MiB,
    ProgressFn,
    _block_rows,
    _check_pool,
    _Source,
    _store_sources,
)
from neuralatlas.analysis.streaming import (
    BlockReduction,
    block_rows,
    format_bytes,
    parse_memory_limit,
    reduce_blocks,
)
from neuralatlas.errors import AnalysisError


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
        for side, off, shift, buf in zip(self.sides, self.offsets, self.shifts, self._buffers, strict=True):
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
        for z, total in zip(zs, sums, strict=True):
            total += z.sum(axis=0)
        if len(zs) == 2:
            blas.dgemm(1.0, zs[0].T, zs[1].T, beta=1.0, c=prod, trans_b=1, overwrite_c=1)
        else:
            blas.dsyrk(1.0, zs[0].T, beta=1.0, c=prod, trans=0, lower=0, overwrite_c=1)
        return prod, sums

    def merge(self, a: Any, b: Any) -> Any:
        a[0][...] += b[0]
        for x, y in zip(a[1], b[1], strict=True):
            x += y
        return a

    def centred(self, partial: Any) -> np.ndarray:
        """``C = Σ(z−s)ᵀ(z−s) − n·m mᵀ`` (m: the mean deviation from the shift).

        Upper triangle only for a diagonal pass.
        """
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

        def advance(done: int, total: int, seen: list[int] = seen) -> None:
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
