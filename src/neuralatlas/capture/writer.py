"""The capture's chunk writer: disk writes overlapped with the next chunk's forward passes.

The capture loop fills one set of chunk buffers (every array's rows of one sample chunk)
while a background thread (where there is more than one core: :func:`background_writes`)
writes the previous set: double buffering, so memory stays two chunk sets whatever the data
set's size, and the buffers are allocated once and reused. The thread also writes each
batch's rows as soon as the batch is done (:meth:`ChunkWriter.rows`, a
:class:`~neuralatlas.store.chunkio.ChunkStream` per chunk file), so when the last forward pass
ends only its own rows are left to write. Each chunk's arrays are written as chunk files
directly where :class:`~neuralatlas.store.chunkio.ChunkFile` reproduces zarr's bytes, through
zarr otherwise, and only then is its done flag set: a chunk never counts as written before
all of its bytes are on disk (the capture's thread sets it, in :meth:`ChunkWriter.commit`,
when the writer reports the chunk written), so a capture killed at any point (``kill -9``
included) resumes correctly.

An error in the writer thread stops it (later chunks are not written, none of them marked
done) and is raised in the capture's thread at its next call (:meth:`ChunkWriter.acquire`,
:meth:`~ChunkWriter.submit` or :meth:`~ChunkWriter.close`): an ``OSError`` (disk full,
read-only) as itself, for the capture's write guard to name, anything else as a
:class:`~neuralatlas.errors.StoreError` chained to it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Collection, Hashable, Mapping
from typing import Any, Self

import numpy as np

from neuralatlas.errors import StoreError
from neuralatlas.store.chunkio import ChunkFile, ChunkStream, DoneFlags

__all__ = ["ChunkWriter", "background_writes", "hand_over_rows"]

_STOP = object()


def background_writes() -> bool:
    """Whether a capture writes in a background thread: wherever there is more than one core.

    ``NEURALATLAS_CAPTURE_WRITER=thread`` or ``=sync`` decides; otherwise a thread is used when
    the machine has more than one core, however busy. Measured on 2 cores shared with other
    jobs (``benchmarks/capture.py``: digits CNN, every layer, 20,000 samples, interleaved
    rounds), the threaded capture against the synchronous one: 0.59x the time at load 4.1,
    0.69x at load 7.8 (median 1.04x), 0.57x with gradients at load 8.8 (median 0.57x); at load
    6.3-6.8 two runs of the forward capture gave the synchronous one the better minimum
    (the thread's system calls release the GIL, and taking it back waits for the capture
    thread to let go) with medians even or the thread ahead, and at load 5.8 the thread
    the better minimum (0.82x) and the worse median (1.2x). An earlier writer that wrote
    whole chunks only was 1.4x slower threaded at load 12; this one streams each batch's rows.
    """
    choice = os.environ.get("NEURALATLAS_CAPTURE_WRITER", "").strip().lower()
    if choice in ("thread", "threaded", "background"):
        return True
    if choice in ("sync", "synchronous", "inline"):
        return False
    return (os.cpu_count() or 1) > 1


def hand_over_rows() -> bool:
    """Whether a capture hands each batch's rows to the writer uncopied (the default).

    The rows are written from the layers' output tensors themselves (views, on the CPU in
    float32) rather than copied into the chunk buffers first; a layer whose output a later
    in-place op changes is found by its version counter and copied in the hook instead.
    ``NEURALATLAS_CAPTURE_COPY=1`` copies every layer's rows, as before 0.2 (the same bytes).
    """
    return os.environ.get("NEURALATLAS_CAPTURE_COPY", "").strip().lower() not in ("1", "true", "yes")


class ChunkWriter:
    """Write chunk-row blocks of several zarr arrays, then each chunk's done flag.

    Parameters
    ----------
    arrays : {key: zarr.Array}
        The arrays one sample chunk spans (activations and gradients of every layer,
        predictions, labels), all with ``chunk_rows`` rows per chunk (any that are not are
        written through zarr).
    done : zarr.Array
        One bool per chunk, set after the chunk's arrays are written.
    chunk_rows : int
        Rows per chunk.
    depth : int
        Buffer sets: 2 lets one be filled while the other is written; 1 (or ``threaded=False``)
        writes synchronously in the caller's thread.
    threaded : bool, optional
        Write in a background thread or in the caller's thread (same bytes); default: see
        :func:`background_writes`.
    direct : bool
        Write chunk files directly where possible (default) or always through zarr.
    finish : callable(buffers, rows), optional
        Completes a submitted chunk's buffers before they are written, in the writer's
        thread (the capture's rows-with-NaN/inf pass: off the capture's thread when the
        writer has a core of its own). What it raises fails the chunk as a write would.
    computed : keys, optional
        The arrays ``finish`` fills: never streamed by :meth:`rows`.
    stream : bool
        With a writer thread, write the rows :meth:`rows` announces while the chunk's later
        rows are computed (default), so that only the last batch's write is left when the
        capture's forward passes end, not the whole last chunk's.
    finish_rows : callable(buffers, values, start, stop), optional
        With rows handed over as ``values`` (see :meth:`rows`), completes the ``computed``
        arrays' rows ``start..stop`` from them, in the writer's thread; ``finish`` then does
        not run for a chunk whose rows all came so.

    Examples
    --------
    >>> with ChunkWriter({"a": arr}, done, chunk_rows=256) as writer:   # doctest: +SKIP
    ...     buffers = writer.acquire()
    ...     buffers["a"][:100] = values
    ...     writer.submit(0, buffers, 100)
    ...     writer.commit()             # flags the chunks written so far
    """

    def __init__(self, arrays: Mapping[Hashable, Any], done: Any, chunk_rows: int, *, depth: int = 2,
                 threaded: bool | None = None, direct: bool = True,
                 finish: Callable[[dict[Hashable, np.ndarray], int], None] | None = None,
                 computed: Collection[Hashable] = (), stream: bool = True,
                 finish_rows: Callable[[dict[Hashable, np.ndarray], Mapping[Hashable, np.ndarray], int, int],
                                       None] | None = None):
        if threaded is None:
            threaded = background_writes()
        self.arrays = dict(arrays)
        self.finish = finish
        self.finish_rows = finish_rows
        self.computed = set(computed)
        # rows per chunk handed over as values (and completed by finish_rows): such a chunk's
        # buffers never hold those rows, so finish must not run over them at submit
        self._handed: dict[int, int] = {}
        self._flags = DoneFlags(done, direct)  # set by the caller's thread only (commit), never by the writer
        self.chunk_rows = int(chunk_rows)
        self.files = {key: (ChunkFile.for_array(arr) if direct else None) for key, arr in self.arrays.items()}
        for key, f in self.files.items():
            if f is not None and f.chunk_rows != self.chunk_rows:
                self.files[key] = None  # chunked differently from the capture (written via zarr)
        self.threaded = threaded and depth >= 2
        self.depth = max(1, int(depth)) if self.threaded else 1
        self._free: queue.Queue[dict[Hashable, np.ndarray]] = queue.Queue()
        for _ in range(self.depth):
            self._free.put({key: np.empty((self.chunk_rows, *arr.shape[1:]), arr.dtype)
                            for key, arr in self.arrays.items()})
        # rows handed over as values and not yet written: at most one buffer set's bytes, so
        # a writer that falls behind makes the capture wait instead of holding on to the
        # layers' outputs of many batches (peak memory as with the chunk buffers alone)
        self.handed_limit = max(1, sum(self.chunk_rows * int(np.prod(arr.shape[1:], dtype=np.int64))
                                       * np.dtype(arr.dtype).itemsize for arr in self.arrays.values()))
        self.stream = bool(stream) and self.threaded
        # unbounded: the buffer sets bound what is in flight (a set comes back only once written)
        self._work: queue.Queue[Any] = queue.Queue()
        # the writer thread's own: chunk files being written row by row, and the (chunk, key)
        # pairs whose rows came out of order (written whole at submit instead)
        self._streams: dict[tuple[int, Hashable], ChunkStream] = {}
        self._whole: set[tuple[int, Hashable]] = set()
        self._error: BaseException | None = None
        self._error_chunk: int | None = None
        self.written_rows = 0
        self.written_chunks: list[int] = []
        self._unflagged: list[tuple[int, int]] = []
        self._cancel = False
        self._lock = threading.Lock()
        self._handed_bytes = 0
        self._handed_cv = threading.Condition()
        self._thread: threading.Thread | None = None
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name="neuralatlas-chunk-writer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ the capture's side
    def acquire(self) -> dict[Hashable, np.ndarray]:
        """A free set of chunk buffers ``{key: [chunk_rows, *unit_shape]}`` to fill.

        When both sets are in flight, it waits for the writer to finish one.
        """
        while True:
            self._raise_if_failed()
            try:
                return self._free.get(timeout=0.05)
            except queue.Empty:
                continue

    def rows(self, chunk: int, buffers: dict[Hashable, np.ndarray], start: int, stop: int,
             values: Mapping[Hashable, np.ndarray] | None = None,
             versions: Collection[tuple[Any, int]] = ()) -> None:
        """Announce that rows ``start..stop`` (within the chunk) of every buffer are final.

        With a writer thread (and ``stream``) it writes them now; otherwise nothing happens
        until :meth:`submit`.

        ``values`` hands the rows over instead of copying them into ``buffers`` first:
        ``{key: rows}``, C-contiguous ``[stop - start, *unit_shape]`` arrays (views of the
        layers' output tensors), written from where they are (in the writer's thread, or
        here without one), or copied into the buffer where a chunk cannot be streamed. The
        caller must not change them afterwards; ``versions``, ``(tensor, version)`` pairs of
        the tensors they view, are checked after the write, and a tensor changed in place
        meanwhile fails the chunk instead of leaving other values on disk.
        """
        if stop <= start:
            return
        if values is not None:
            self._raise_if_failed()
            item = ("rows", int(chunk), buffers, int(start), int(stop), values, tuple(versions), False)
            if self.threaded:
                size = sum(int(v.nbytes) for v in values.values())
                with self._handed_cv:
                    behind = self._handed_bytes >= size  # a batch's rows or more still unwritten
                    while self._handed_bytes > 0 and self._handed_bytes + size > self.handed_limit:
                        self._handed_cv.wait(0.05)
                        self._raise_if_failed()
                    self._handed_bytes += size
                if behind and self.finish_rows is not None:
                    # The writer is the slower side: this thread would only wait for it, so it
                    # completes the computed rows (the NaN/inf pass) itself, before handing over.
                    self.finish_rows(buffers, values, int(start), int(stop))
                    item = (*item[:-1], True)
                self._work.put(item)
                return
            try:
                self._write_rows(*item[1:])
            except BaseException as err:  # noqa: BLE001 - same error as the threaded path
                self._error, self._error_chunk = err, chunk
            self._raise_if_failed()
            return
        if self.stream:
            self._raise_if_failed()
            self._work.put(("rows", int(chunk), buffers, int(start), int(stop), None, (), False))

    def submit(self, chunk: int, buffers: dict[Hashable, np.ndarray], rows: int) -> None:
        """Queue chunk ``chunk``: the first ``rows`` rows of each buffer are its data."""
        item = (int(chunk), buffers, int(rows))
        if not self.threaded:
            try:
                self._write(*item)
            except BaseException as err:  # noqa: BLE001 - same error as the threaded path
                self._error, self._error_chunk = err, chunk
            self._free.put(buffers)
            self._raise_if_failed()
            return
        self._raise_if_failed()
        self._work.put(("chunk", *item))

    def close(self) -> list[int]:
        """Wait until every queued chunk is written and flag them (see :meth:`commit`); their rows.

        Raises the writer's error if it failed (the chunks written before it stay flagged).
        """
        self._join()
        rows = self.commit()
        self._raise_if_failed()
        return rows

    def cancel(self) -> None:
        """Stop without writing what is queued and without setting more done flags."""
        self._cancel = True
        self._join()
        with self._lock:
            self._unflagged = []

    def _join(self) -> None:
        if self._thread is not None:
            self._work.put(_STOP)
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self._error is None:
            # the capture failed or was interrupted: stop now; chunks written but not flagged
            # are simply rewritten by the resume
            self.cancel()
            return
        if exc is not None:  # the writer failed: keep (flag) the chunks it wrote before that
            self._join()
            self.commit()
            return
        self.close()

    # ------------------------------------------------------------------ the writer's side
    def _raise_if_failed(self) -> None:
        if isinstance(self._error, OSError):
            # the disk's own error (full, read-only, permissions), as the synchronous path
            # raises it, for the capture's write guard to name; the chunk as a note
            if not getattr(self._error, "_neuralatlas_noted", False):
                self._error.add_note(f"(while writing chunk {self._error_chunk} of the store)")
                self._error._neuralatlas_noted = True  # type: ignore[attr-defined]
            raise self._error
        if self._error is not None:
            raise StoreError(
                f"Writing chunk {self._error_chunk} of the store failed: {type(self._error).__name__}:"
                f" {self._error}. Chunks written before it are kept (marked done); fix the cause"
                " (disk space, permissions) and run the same capture again to resume."
            ) from self._error

    def _run(self) -> None:
        try:
            while True:
                item = self._work.get()
                if item is _STOP:
                    return
                kind, chunk, buffers = item[:3]
                if self._error is None and not self._cancel:
                    try:
                        if kind == "rows":
                            try:
                                self._write_rows(chunk, buffers, *item[3:])
                            finally:
                                self._release_handed(item[5])
                        else:
                            self._write(chunk, buffers, item[3])
                    except BaseException as err:  # noqa: BLE001 - surfaced in the capture's thread
                        self._error, self._error_chunk = err, chunk
                elif kind == "rows":
                    self._release_handed(item[5])
                # failed or cancelled: drained without writing; a chunk's buffers go back
                # once (with its final item), never with its rows
                if kind == "chunk":
                    self._free.put(buffers)
        finally:
            for s in self._streams.values():  # torn files of chunks never flagged written
                s.abort()
            self._streams.clear()

    def _write_rows(self, chunk: int, buffers: dict[Hashable, np.ndarray], start: int, stop: int,
                    values: Mapping[Hashable, np.ndarray] | None = None,
                    versions: Collection[tuple[Any, int]] = (), finished: bool = False) -> None:
        given = values or {}
        for key, f in self.files.items():
            if key in self.computed:
                continue
            rows = given.get(key)
            streamable = f is not None and (chunk, key) not in self._whole and (self.stream or values is not None)
            s = self._streams.get((chunk, key)) if streamable else None
            if streamable and s is None and start == 0:
                s = self._streams[chunk, key] = f.stream(chunk)  # type: ignore[union-attr]
            if s is None or s.rows != start:  # not in row order: this one is written whole at submit
                if s is not None:
                    s.abort()
                    del self._streams[chunk, key]
                    if values is not None:  # its earlier rows were written from values, not kept
                        raise StoreError(f"chunk {chunk} of {key!r}: rows {start}..{stop} came after"
                                         f" rows ..{s.rows}; rows handed over as values must come in order.")
                if f is not None:
                    self._whole.add((chunk, key))
                if rows is not None:  # the block written at submit needs them
                    buffers[key][start:stop] = rows
                continue
            s.write(buffers[key][start:stop] if rows is None else rows)
        if values is not None:
            if self.finish_rows is not None and not finished:  # finished: done by the caller's thread
                self.finish_rows(buffers, values, start, stop)
            self._handed[chunk] = self._handed.get(chunk, 0) + (stop - start)
            changed = [t for t, v in versions if t._version != v]
            if changed:
                raise StoreError(
                    f"chunk {chunk}: {len(changed)} layer output(s) were changed in place after their"
                    " forward pass, while their rows were being written (a model that keeps and"
                    " updates its output tensors across batches). Capture again with"
                    " NEURALATLAS_CAPTURE_COPY=1 (every layer's rows copied in its hook); the"
                    " chunks flagged so far are kept."
                )

    def _write(self, chunk: int, buffers: dict[Hashable, np.ndarray], rows: int) -> None:
        start = chunk * self.chunk_rows
        handed = self._handed.pop(chunk, 0)
        if handed and handed != rows:
            raise StoreError(f"chunk {chunk}: {handed} of its {rows} rows were handed over as values and"
                             " the rest in its buffers; a chunk's rows must all come one way.")
        if self.finish is not None and not handed:
            self.finish(buffers, rows)
        for key, arr in self.arrays.items():
            f, block = self.files[key], buffers[key]
            if f is not None:
                streamed = self._streams.pop((chunk, key), None)
                self._whole.discard((chunk, key))
                if rows != f.rows(chunk):
                    if streamed is not None:
                        streamed.abort()
                    raise StoreError(f"chunk {chunk} of {key!r} got {rows} rows; it holds {f.rows(chunk)}.")
                if streamed is not None:
                    streamed.close(f.pad(chunk, block))  # the rows after those already written
                else:
                    f.write(chunk, f.pad(chunk, block))
            else:
                arr[start:start + rows] = block[:rows]
        with self._lock:
            self._unflagged.append((chunk, rows))

    def _release_handed(self, values: Mapping[Hashable, np.ndarray] | None) -> None:
        if values is None:
            return
        with self._handed_cv:
            self._handed_bytes -= sum(int(v.nbytes) for v in values.values())
            self._handed_cv.notify_all()

    def commit(self) -> list[int]:
        """Set the done flag of every chunk written since the last call; their rows, in order.

        Called from the capture's thread (and by :meth:`close`): a flag is set only after all
        of its chunk's arrays were written, and a capture stopped by an error (its own or the
        writer's) sets no more flags, so whatever is flagged is complete on disk.
        """
        with self._lock:
            items, self._unflagged = self._unflagged, []
        for chunk, _ in items:
            self._flags.set(chunk)
            self.written_rows += _
            self.written_chunks.append(chunk)
        return [rows for _, rows in items]
