"""Out-of-core and distributed reductions over a store's row blocks: the one mechanism.

Every whole-store analysis (NAPs and contrastive NAPs, ANOVA discriminative scores, streamed
PCA, neuron correlation, linear CKA) is a *block reduction*: start an empty partial result,
add row blocks to it one at a time, and merge partial results. Written that way, the same
code runs

* **out of core** in one process: blocks of as many rows as ``memory_limit`` allows (a
  multiple of the store's chunk rows, so each chunk is read once), the next block read in a
  thread while the current one is reduced;
* **on a dask cluster** (``client=``): the blocks are split into a few shards per worker; each
  worker opens the store by path (shared storage: a network file system, or an object-store
  URL zarr understands), reduces its shard into a partial, and the partials are merged in a
  binary tree on the cluster. Only the small partials (never activations) cross the network.

``memory_limit`` is a number of bytes or a string (``"2GB"``, ``"512MiB"``); by default a
quarter of the memory free when the analysis starts (see :func:`default_memory_limit`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

import numpy as np

from neuralatlas.errors import AnalysisError

__all__ = ["BlockReduction", "block_rows", "check_client", "default_memory_limit", "flatten_samples",
           "format_bytes", "parse_memory_limit", "pooled_shape", "prefetch_reads", "prefetched", "reduce_blocks"]

MiB = 2**20
Progress = Callable[[int, int], None]

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": MiB, "mb": 10**6, "mib": MiB,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


# ============================================================================ memory
def default_memory_limit() -> int:
    """Bytes a streamed analysis may use: a quarter of the memory free now.

    Clamped to [64 MiB, 4 GiB]: enough for large row blocks, small enough to leave the
    machine to everything else that runs beside it.
    """
    import psutil

    available = int(psutil.virtual_memory().available)
    return int(min(max(available // 4, 64 * MiB), 4096 * MiB))


def parse_memory_limit(memory_limit: int | float | str | None) -> int:
    """``memory_limit`` in bytes: an int, a string like ``"2GB"`` / ``"512MiB"``, or None (default).

    Raises
    ------
    AnalysisError
        Not a size, or not positive.
    """
    if memory_limit is None:
        return default_memory_limit()
    if isinstance(memory_limit, str):
        match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", memory_limit)
        if not match or match.group(2).lower() not in _UNITS:
            raise AnalysisError(
                f"memory_limit={memory_limit!r} is not a size; give bytes (an int) or a string"
                " such as '2GB', '512MiB'.")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        value = float(memory_limit)
    if not value > 0:
        raise AnalysisError(f"memory_limit={memory_limit!r} must be a positive number of bytes.")
    return int(value)


def format_bytes(nbytes: float) -> str:
    """A byte count for messages: ``1.5 GiB``, ``12.0 MiB``, ``512 B``."""
    for unit, scale in (("GiB", 2**30), ("MiB", MiB), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def block_rows(n: int, bytes_per_row: int, budget: int, chunk_rows: int = 0, rows: int | None = None,
               *, fixed: int = 0, target_rows: int | None = None, what: str = "this analysis") -> int:
    """Rows per streamed block: as many as ``budget`` bytes allow, a multiple of the chunk rows.

    Parameters
    ----------
    n : int
        Rows in all.
    bytes_per_row : int
        Working memory one row of a block costs (the block as read, its copies, buffers).
    budget : int
        The memory limit in bytes.
    chunk_rows : int
        The store's rows per chunk (0 for arrays): blocks of whole chunks read each chunk once.
    rows : int, optional
        An explicit choice, which wins.
    fixed : int
        Bytes the analysis needs whatever the block size (accumulators).
    target_rows : int, optional
        Rows beyond which larger blocks stop paying (cache-sized blocks keep the reader and
        the reducer overlapping); rounded up to whole chunks. The budget still caps it.

    Raises
    ------
    AnalysisError
        When ``fixed`` and one row do not fit in ``budget``: names the need and the fix.
    """
    if rows is not None:
        if int(rows) < 1:
            raise AnalysisError(f"rows={rows} must be a positive number of samples per block.")
        return int(min(int(rows), n))
    free = budget - fixed
    if free < bytes_per_row:
        raise AnalysisError(
            f"memory_limit={format_bytes(budget)} is too small for {what}: it needs"
            f" {format_bytes(fixed + bytes_per_row)} at least ({format_bytes(fixed)} of accumulators and"
            f" {format_bytes(bytes_per_row)} per row). Raise memory_limit=, or pick fewer layers.")
    r = max(1, free // max(1, bytes_per_row))
    if target_rows is not None:
        whole = -(-int(target_rows) // chunk_rows) * chunk_rows if chunk_rows else int(target_rows)
        r = min(r, max(1, whole))
    if chunk_rows and r >= chunk_rows:
        r = (r // chunk_rows) * chunk_rows  # whole chunks: each is read (and decoded) once
    return int(max(1, min(r, n)))


# ============================================================================ samples as rows
def pooled_shape(unit_shape: Sequence[int], pool: str | None) -> tuple[int, ...]:
    """A layer's unit shape once its samples go through :func:`flatten_samples`.

    That is the channels ``(C,)`` for pooled channels-first maps, else the shape as it is (flattened later).
    """
    return (int(unit_shape[0]),) if pool is not None and len(unit_shape) >= 2 else tuple(unit_shape)


def flatten_samples(block: Any, pool: str | None = None) -> np.ndarray:
    """Rows of ``block`` ``[n, *unit_shape]`` as feature vectors ``[n, features]`` (dtype kept).

    ``pool`` ("mean" or "max") reduces channels-first maps ``[n, C, *spatial]`` over their
    spatial axes, one value per channel; dense layers are flattened whatever ``pool`` is.
    """
    block = np.asarray(block)
    if pool is None or block.ndim <= 2:
        return block.reshape(len(block), -1)
    spatial = block.reshape(len(block), block.shape[1], -1)
    if pool == "mean":
        return spatial.mean(axis=2)
    if pool == "max":
        return spatial.max(axis=2)
    raise AnalysisError(f"pool={pool!r} is not known; choose None (flatten), 'mean' or 'max'.")


# ============================================================================ streaming
def prefetch_reads() -> bool:
    """Whether a streamed reduction reads its next piece in a thread: when a core is free for it.

    ``NEURALATLAS_PREFETCH=thread`` or ``=sync`` decides; otherwise a thread is used when the
    machine has more than one core and its 1-minute load average leaves one idle (unlike the
    capture's writer thread, which measured faster threaded however busy the cores). On busy
    cores the reader thread only adds hand-offs: measured on 2 cores at load ~5, NAPs of
    312 MiB read in 1 MiB pieces took 1.3x as long (median) with the thread as without; with
    an idle core, read and reduction overlap.
    """
    choice = os.environ.get("NEURALATLAS_PREFETCH", "").strip().lower()
    if choice in ("thread", "threaded", "1", "on"):
        return True
    if choice in ("sync", "synchronous", "inline", "0", "off"):
        return False
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average on this platform
        load = 0.0
    return cores > 1 and load <= cores - 1


def prefetched(blocks: Iterator[Any]) -> Iterator[Any]:
    """Read the next block in a thread while the caller reduces the current one.

    At most two items are alive: the one the caller holds and the one being read. A caller
    is done with an item when it asks for the next (so two reused buffers suffice).
    """
    done = object()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, blocks, done)
        while True:
            item = pending.result()
            if item is done:
                return
            pending = pool.submit(next, blocks, done)
            yield item


class BlockReduction:
    """A reduction over the row blocks ``[0, n)`` that can run in one process or on dask.

    Subclasses hold what a worker needs to read the data (a store, which pickles as its path;
    arrays) and implement :meth:`start`, :meth:`read`, :meth:`add` and :meth:`merge`. They must
    be picklable, and :meth:`merge` associative: the partials of shards are merged in a tree.

    Attributes
    ----------
    n : int
        Rows.
    step : int
        Rows per block.
    """

    n: int
    step: int

    def start(self) -> Any:
        """A new, empty partial result."""
        raise NotImplementedError

    def read(self, rows: slice) -> Any:
        """The data of rows ``rows`` (I/O only: it runs in the prefetch thread)."""
        raise NotImplementedError

    def read_pieces(self, rows: slice, buffers: int = 1) -> Iterator[tuple[slice, Any]]:
        """The data of rows ``rows`` as ``(row_slice, data)`` pieces, added one by one.

        Default: one piece, :meth:`read` of the whole block. A reduction may yield smaller,
        cache-sized pieces read into ``buffers`` reused buffers (see
        :func:`neuralatlas.store.core.read_pieces`); each is added before the piece
        ``buffers`` later is read.
        """
        yield rows, self.read(rows)

    def add(self, partial: Any, rows: slice, block: Any) -> Any:
        """``partial`` with the block added (may update it in place and return it)."""
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        """The partial of the union of two disjoint sets of rows."""
        raise NotImplementedError

    def slices(self) -> list[slice]:
        """The row blocks of the reduction, ``step`` rows each (the last may be shorter)."""
        return [slice(s, min(s + self.step, self.n)) for s in range(0, self.n, self.step)]


_MALLOC_TUNED = False


def _keep_block_allocations() -> None:
    """On a dask worker, let glibc reuse freed block-sized buffers instead of unmapping them.

    dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: every 16 MiB block read is then a fresh mmap whose
    pages fault in one by one, and reading a block took 5x as long as in a plain process
    (measured: 16 ms vs 3 ms). Raising both thresholds to glibc's own dynamic ceilings
    (64 MiB, 128 MiB) restores plain-process speed; a worker keeps at most ~128 MiB more.
    Best effort: nothing happens off glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * MiB)    # M_MMAP_THRESHOLD: blocks up to 64 MiB from the heap
        libc.mallopt(-1, 128 * MiB)   # M_TRIM_THRESHOLD: keep up to 128 MiB free for reuse
    except (OSError, AttributeError):
        pass


def _reduce_shard(reduction: BlockReduction, slices: Sequence[slice]) -> Any:
    _keep_block_allocations()
    partial = reduction.start()
    for sl in slices:
        for piece, block in reduction.read_pieces(sl):
            partial = reduction.add(partial, piece, block)
    return partial


def _merge(reduction: BlockReduction, a: Any, b: Any) -> Any:
    return reduction.merge(a, b)


def check_client(client: Any) -> Any:
    """``client`` if it is a dask.distributed Client (or None); else a clear error."""
    if client is None:
        return None
    if not all(hasattr(client, name) for name in ("submit", "scatter", "scheduler_info")):
        raise AnalysisError(
            f"client= must be a dask.distributed.Client; got {type(client).__name__}. Start one with"
            " `from dask.distributed import Client; client = Client('tcp://scheduler:8786')` (or"
            " Client() for a local cluster); install it with pip install 'neuralatlas[distributed]'.")
    return client


def reduce_blocks(reduction: BlockReduction, *, client: Any = None, progress: Progress | None = None,
                  done: int = 0, total: int | None = None) -> Any:
    """Run ``reduction`` over all its blocks and return the merged partial.

    Parameters
    ----------
    reduction : BlockReduction
    client : dask.distributed.Client, optional
        Run on this cluster: a few shards of consecutive blocks per worker, each reduced where
        it runs, the partials merged in a tree on the cluster. Workers open the store by its
        path, so it must be on storage they all reach.
    progress : callable(done, total), optional
        Called as blocks (locally) or shards (on a cluster) finish, in blocks.
    done, total : int
        Offset and total of the progress count, when several reductions share one bar.
    """
    slices = reduction.slices()
    total = len(slices) if total is None else total
    if not slices:
        return reduction.start()
    client = check_client(client)
    if client is None:
        partial = reduction.start()
        thread = prefetch_reads()
        # (block number, piece rows, data); progress is counted in blocks, at a block's last piece
        pieces = chain.from_iterable(
            ((k, piece, data) for piece, data in reduction.read_pieces(sl, 2 if thread else 1))
            for k, sl in enumerate(slices))
        for k, piece, data in (prefetched(pieces) if thread else pieces):
            partial = reduction.add(partial, piece, data)
            if progress is not None and piece.stop == slices[k].stop:
                progress(done + k + 1, total)
        return partial
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    n_shards = max(1, min(len(slices), 4 * n_workers))  # a few shards per worker balance the load
    shards = [list(part) for part in _split(slices, n_shards) if part]
    [remote] = client.scatter([reduction], broadcast=True)
    futures = [client.submit(_reduce_shard, remote, shard, pure=False) for shard in shards]
    sizes = {f.key: len(shard) for f, shard in zip(futures, shards, strict=True)}
    finished = done
    level = []
    for future in as_completed(futures):
        finished += sizes[future.key]
        if progress is not None:
            progress(finished, total)
        level.append(future)
        # merge pairs as they finish: a tree whose depth is log2(shards)
        while len(level) >= 2:
            a, b = level.pop(), level.pop()
            level.insert(0, client.submit(_merge, remote, a, b, pure=False))
    while len(level) > 1:
        a, b = level.pop(), level.pop()
        level.insert(0, client.submit(_merge, remote, a, b, pure=False))
    return level[0].result()


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    bounds = np.linspace(0, len(items), parts + 1).round().astype(int)
    return [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
