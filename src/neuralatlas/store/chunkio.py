"""Whole-chunk reads and writes that bypass zarr's per-call machinery, same bytes on disk.

Every layer array of a store is chunked along samples only, so chunk ``i`` of an array
``[n, *unit]`` is one contiguous run of rows of its C-order layout. Its file, under zarr 3's
codecs ``bytes`` (little-endian) and optionally ``crc32c``, is exactly those bytes followed by
the CRC-32C of them as a little-endian ``uint32``. :class:`ChunkFile` writes and reads such
files with one system call each way (``readinto`` straight into the caller's memory), where
``zarr.Array.__setitem__``/``__getitem__`` pay a round trip into zarr's event loop, the codec
pipeline's copies (the checksum codec appends by copying the chunk) and, for reads, an
intermediate buffer per chunk. Measured on the digits-CNN store (``benchmarks/capture.py``):
zarr's write of a 16 MiB chunk with the checksum costs several times the ``write`` of its
bytes, the direct path about 1.1x.

Only arrays this module can reproduce bit for bit qualify (:meth:`ChunkFile.for_array` says
``None`` otherwise, and callers fall back to zarr): zarr format 3 on a local folder, a regular
grid chunked along the first axis only, codecs exactly ``[bytes(little)]`` or
``[bytes(little), crc32c]``, a little-endian machine. The files stay plain zarr: ``zarr.open_array`` reads them (the
tests compare both paths byte for byte).

Where a caller waits for the I/O with a CPU idle (``store.read``, a store's write of a caller's
array), a chunk's CRC-32C is computed on a helper thread beside the I/O
(:func:`checksum_beside`): beside the chunk's own ``write``, the CRC appended after it, and
beside the next chunk's ``readinto``, checked before the read returns. The bytes on disk are
the same; ``NEURALATLAS_OVERLAP_CHECKSUM=0`` computes every checksum inline.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.errors import StoreCorruptError, StoreError

__all__ = ["ChunkChecksumError", "ChunkFile", "ChunkStream", "DoneFlags"]


class ChunkChecksumError(StoreCorruptError, ValueError):
    """A chunk's bytes do not match the CRC-32C stored with them, or its file has the wrong size (the file was damaged).

    A ``ValueError`` too, as zarr's codec raises, so the store's checked arrays translate it
    into a :class:`StoreCorruptError` naming layer and rows.
    """


def _crc32c(data: Any) -> int:
    """The CRC-32C of ``data`` (a buffer), as zarr's ``crc32c`` codec computes it."""
    return crc32c_extend(0, data)


@functools.lru_cache(maxsize=1)
def _crc32c_library() -> Callable[[int, int, int], int] | None:
    """``crc32c_extend(crc, address, length)`` of the C library inside ``google_crc32c``, via ctypes.

    The same function google_crc32c's extension calls, but a ctypes call releases the GIL
    while it runs; the extension holds it for anything but ``bytes`` of 1 MiB or more. A
    capture's writer thread checksums ~0.3 GB per 20,000 digits, and while it held the GIL
    the capture thread's Python (hooks, the batch loop) waited: a pure-Python loop ran at
    half speed beside it (measured here, 16 MiB blocks). ``None`` where the library is not
    where the wheel puts it (then the extension is used).
    """
    import ctypes
    import glob

    import google_crc32c  # zarr's crc32c codec uses the same library

    here = Path(google_crc32c.__file__).parent
    found = sorted(glob.glob(str(here.parent / "google_crc32c.libs" / "libcrc32c*.so*")))
    if not found or os.environ.get("NEURALATLAS_CRC_CTYPES", "1") == "0":
        return None
    try:
        fn = ctypes.CDLL(found[0]).crc32c_extend
    except (OSError, AttributeError):  # pragma: no cover - another wheel layout
        return None
    fn.restype, fn.argtypes = ctypes.c_uint32, [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
    probe = np.arange(64, dtype=np.uint8)
    if fn(0, probe.ctypes.data, probe.nbytes) != google_crc32c.value(probe.tobytes()):
        return None  # pragma: no cover - not the function it claims to be
    return fn


def _agrees_with_google(fn: Callable[[Any, int], int]) -> bool:
    """Whether ``fn(data, crc)`` is google_crc32c's CRC-32C on lengths around its SIMD block sizes, seeded and not."""
    import google_crc32c

    data = np.random.default_rng(0).integers(0, 256, 4099, dtype=np.uint8)
    for n in (0, 1, 7, 63, 64, 65, 255, 256, 257, 1024, 4099):
        for seed in (0, 0x9E3779B9):
            if fn(data[:n], seed) != google_crc32c.extend(seed, data[:n]):
                return False
    return True


@functools.lru_cache(maxsize=1)
def _crc32c_simd() -> Callable[[Any, int], int] | None:
    """``crc32c_rs.crc32c(data, crc)``: CRC-32C by carry-less multiplication (AVX-512/PCLMUL), or ``None``.

    google_crc32c's library uses the SSE4.2 ``crc32`` instruction, ~13 GB/s on a 16 MiB
    chunk here; crc32c-rs picks a folding kernel for the CPU it runs on, ~30 GB/s on the
    same chunk (AMD EPYC, AVX-512 VPCLMULQDQ; ``benchmarks/capture.py``). The checksum was
    the largest cost of a store write above ``np.save``'s: 24 of the 68 ms of writing 256 MiB.
    It releases the GIL. Used only after it gives google_crc32c's value on a probe (a wrong
    checksum would make every chunk read fail its check), and not where
    ``NEURALATLAS_CRC32C_SIMD=0``.
    """
    if os.environ.get("NEURALATLAS_CRC32C_SIMD", "1") == "0":
        return None
    try:
        import crc32c_rs
    except ImportError:  # not installed, or no wheel for this platform
        return None
    fn: Callable[[Any, int], int] = crc32c_rs.crc32c
    try:
        return fn if _agrees_with_google(fn) else None
    except Exception:  # pragma: no cover - e.g. UnsupportedCPUFeatureError on an odd CPU
        return None


def crc32c_extend(crc: int, data: Any) -> int:
    """``crc`` extended by the bytes of ``data`` (any contiguous buffer), releasing the GIL where it can.

    Equal to ``google_crc32c.extend`` (tested for each implementation): crc32c-rs where it
    is installed (:func:`_crc32c_simd`), else google_crc32c's library through ctypes
    (:func:`_crc32c_library`), else its extension.
    """
    array = np.frombuffer(data, np.uint8)  # (google_crc32c refuses memoryviews)
    simd = _crc32c_simd()
    if simd is not None:
        return int(simd(array, crc))
    fn = _crc32c_library()
    if fn is None or not array.size:
        import google_crc32c

        return int(google_crc32c.extend(crc, array))
    return int(fn(crc, array.ctypes.data, array.size))


OVERLAP_MIN_BYTES = 1 << 20
"""Smallest buffer whose checksum :func:`checksum_beside` hands to a helper thread: below it the
hand-over (~20-50 us) costs more than the checksum it would hide (~35 us per MiB)."""

_helpers: Any = None  # the ThreadPoolExecutor of checksum_beside, made on first use
_helpers_lock = threading.Lock()


def _forget_helpers() -> None:  # in a forked child: the parent's threads do not exist there
    global _helpers
    _helpers = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def overlapped_checksums() -> bool:
    """Whether :func:`checksum_beside` computes checksums on a helper thread.

    True where this process may run on two or more CPUs and the CRC-32C implementation
    releases the GIL (crc32c-rs or google_crc32c's library through ctypes), unless
    ``NEURALATLAS_OVERLAP_CHECKSUM=0``. Writing 256 MiB as 16 MiB chunk files here, the
    checksum computed beside each file's ``write`` rather than before it took the store's
    write from 0.70-0.73x to 0.83-0.88x ``np.save``'s throughput (two runs, minimum of 21
    interleaved rounds; ``benchmarks/capture.py --only-io``). Asked afresh each time (an
    environment variable and the CPU affinity: microseconds, per chunk).
    """
    if os.environ.get("NEURALATLAS_OVERLAP_CHECKSUM", "1").strip().lower() in ("0", "false", "no", "off", "inline"):
        return False
    releases_gil = _crc32c_simd() is not None or _crc32c_library() is not None
    return releases_gil and _usable_cpus() > 1


def checksum_beside(data: Any) -> Callable[[], int]:
    """Start the CRC-32C of ``data`` and return a function that gives it, waiting if need be.

    The checksum runs on a helper thread (:func:`overlapped_checksums`) while the caller
    does the I/O of the same or other bytes, or right here for small buffers and where
    there is no second CPU. ``data`` must stay unchanged until the function is called.
    Helper threads: one per usable CPU but one, so callers writing from several threads
    (dask workers) do not queue behind one.
    """
    global _helpers
    if memoryview(data).nbytes < OVERLAP_MIN_BYTES or not overlapped_checksums():
        value = _crc32c(data)
        return lambda: value
    with _helpers_lock:
        if _helpers is None:
            from concurrent.futures import ThreadPoolExecutor

            _helpers = ThreadPoolExecutor(max(1, _usable_cpus() - 1), thread_name_prefix="neuralatlas-crc32c")
        future = _helpers.submit(_crc32c, data)
    return future.result


_FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h: allocate blocks, leave the file's size as it is


@functools.lru_cache(maxsize=1)
def _fallocate() -> Callable[..., int] | None:
    """The C library's ``fallocate(fd, mode, offset, len)`` via ctypes (Linux), or ``None``.

    Not ``os.posix_fallocate``: where a file system cannot preallocate, glibc emulates that
    by writing zeros, which would write every chunk twice.
    """
    if not sys.platform.startswith("linux") or os.environ.get("NEURALATLAS_PREALLOCATE", "1") == "0":
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except AttributeError:  # pragma: no cover - a libc without it
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return fn


def _preallocate(fd: int, nbytes: int) -> None:
    """Reserve the blocks of a chunk file about to be written (``nbytes``), keeping its size.

    Writing 16 MiB chunk files into preallocated blocks measured 1.47x faster here (ext4:
    256 MiB as 16 new files in 0.045 s against 0.067 s, ``np.save`` of the same bytes to one
    file 0.044 s; ``benchmarks/capture.py``): the file system allocates each file's extent
    once instead of page by page. The size is kept (``FALLOC_FL_KEEP_SIZE``), so a file
    whose writer was killed stays short, as before. A full disk is raised here, before any
    byte is written; a file system that cannot preallocate is simply written.
    """
    fn = _fallocate()
    if fn is None or nbytes <= 0:
        return
    if fn(fd, _FALLOC_FL_KEEP_SIZE, 0, nbytes) != 0:
        import ctypes
        import errno

        err = ctypes.get_errno()
        if err in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err, os.strerror(err))
        # EOPNOTSUPP, ENOSYS, EINVAL (tmpfs of old kernels, FUSE, NFS): write without


def _write_all(fd: int, parts: list[Any]) -> None:
    """``writev`` of ``parts``, finishing a short write (signals, quotas) with plain writes."""
    written = os.writev(fd, parts)
    total = sum(len(memoryview(p)) for p in parts)
    if written < total:
        rest = memoryview(b"".join(bytes(memoryview(p)) for p in parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest):]


class ChunkStream:
    """One chunk file written in row order while the rest of its rows are still being computed.

    :meth:`write` appends rows (and extends the running CRC-32C); :meth:`close` writes the
    remaining rows of the full chunk block (the last chunk's padding included) and the
    checksum: the file is then byte for byte what :meth:`ChunkFile.write` writes. A stream
    closed early (:meth:`abort`, a killed process) leaves a torn file, which is why a chunk
    counts as written only once its done flag is set after :meth:`close`.
    """

    def __init__(self, file: ChunkFile, index: int, fd: int):
        self.file, self.index, self.fd = file, index, fd
        self.rows = 0  # rows written so far, from the chunk's first
        self._crc = 0

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (C-contiguous, the rows right after those written so far)."""
        if not len(rows):
            return
        view = rows.data.cast("B")
        if self.file.checksum:
            self._crc = crc32c_extend(self._crc, view)
        _write_all(self.fd, [view])
        self.rows += len(rows)

    def close(self, block: np.ndarray) -> None:
        """Finish the file from ``block``, the full chunk (rows written so far are not rewritten)."""
        f = self.file
        if block.shape != f.chunk_shape or block.dtype != f.dtype or not block.flags.c_contiguous:
            self.abort()
            raise StoreError(f"chunk block has shape {block.shape} {block.dtype}; expected a C-contiguous"
                             f" {f.chunk_shape} {f.dtype}.")
        try:
            parts: list[Any] = []
            if self.rows < f.chunk_rows:
                view = block[self.rows:].data.cast("B")
                parts.append(view)
                if f.checksum:
                    self._crc = crc32c_extend(self._crc, view)
            if f.checksum:
                parts.append(self._crc.to_bytes(4, "little"))
            if parts:
                _write_all(self.fd, parts)
        finally:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        """Stop writing (the file stays torn; its chunk is not flagged written)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ChunkFile:
    """Direct access to the chunk files of one zarr array chunked along its first axis.

    Parameters
    ----------
    root : Path
        The array's folder (``<store>/<array path>``).
    shape, chunk_rows, dtype, fill_value, checksum, key
        What the array's metadata says; use :meth:`for_array` rather than building one by hand.

    Attributes
    ----------
    all_written : bool
        Every chunk is known to be written (a finished capture's arrays): a missing chunk file
        then raises ``FileNotFoundError`` naming it. False (the default) reads it as zarr
        does, as the fill value of a chunk never written.
    """

    def __init__(self, root: Path, shape: tuple[int, ...], chunk_rows: int, dtype: np.dtype,
                 fill_value: Any, checksum: bool, key: Any):
        self.root, self.shape, self.chunk_rows = root, tuple(shape), int(chunk_rows)
        self.dtype, self.fill_value, self.checksum = np.dtype(dtype), fill_value, checksum
        self._key = key
        self._made: set[Path] = set()
        self.all_written = False
        self.n_chunks = -(-self.shape[0] // self.chunk_rows) if self.shape[0] else 0
        self.chunk_shape = (self.chunk_rows, *self.shape[1:])
        self.chunk_nbytes = int(np.prod(self.chunk_shape, dtype=np.int64)) * self.dtype.itemsize

    @classmethod
    def for_array(cls, array: Any) -> ChunkFile | None:
        """A :class:`ChunkFile` for ``array`` (a ``zarr.Array``), or ``None`` where it cannot match zarr.

        ``None`` means the direct path could not reproduce zarr's bytes exactly; then read and write through zarr.
        """
        try:
            from zarr.codecs import BytesCodec, Crc32cCodec
            from zarr.core.chunk_grids import RegularChunkGrid
            from zarr.storage import LocalStore
        except ImportError:  # pragma: no cover - another zarr major version
            return None
        if sys.byteorder != "little" or os.environ.get("NEURALATLAS_DIRECT_CHUNKS", "1") == "0":
            return None
        meta = getattr(array, "metadata", None)
        if meta is None or getattr(meta, "zarr_format", None) != 3:
            return None
        if not isinstance(array.store, LocalStore) or not isinstance(meta.chunk_grid, RegularChunkGrid):
            return None
        shape, chunks = tuple(array.shape), tuple(array.chunks)
        if not shape or chunks[1:] != shape[1:]:
            return None  # chunked along more than the sample axis: chunks are not contiguous runs
        codecs = tuple(meta.codecs)
        if not codecs or not isinstance(codecs[0], BytesCodec):
            return None
        dtype = np.dtype(array.dtype)
        if dtype.kind not in "biuf" or dtype.hasobject:
            return None
        if dtype.itemsize > 1 and getattr(codecs[0].endian, "value", codecs[0].endian) != "little":
            return None
        rest = codecs[1:]
        if rest and not (len(rest) == 1 and isinstance(rest[0], Crc32cCodec)):
            return None  # compressed, or codecs this module does not reproduce
        if getattr(array, "order", "C") != "C":
            return None
        root = Path(array.store.root) / array.path if array.path else Path(array.store.root)
        return cls(root, shape, chunks[0], dtype, array.fill_value, bool(rest), meta.encode_chunk_key)

    # ------------------------------------------------------------------ paths
    def path(self, index: int) -> Path:
        """File of chunk ``index``."""
        return self.root / self._key((int(index),) + (0,) * (len(self.shape) - 1))

    def rows(self, index: int) -> int:
        """Rows of real data in chunk ``index`` (the last chunk may be short)."""
        return min(self.chunk_rows, self.shape[0] - index * self.chunk_rows)

    # ------------------------------------------------------------------ writing
    def write(self, index: int, block: np.ndarray, *, overlap: bool = False) -> None:
        """Write chunk ``index`` from ``block``: a C-contiguous array of the full chunk shape.

        Rows past the end of the array (in the last chunk) must hold the fill value, as zarr
        pads them; :meth:`pad` does that in place. ``overlap``: compute the checksum on a
        helper thread while this one writes (:func:`checksum_beside`), for a caller that
        would otherwise wait with a CPU idle; not for a capture's writer thread, whose
        second CPU runs the model.
        """
        self._write(index, block, atomic=False, overlap=overlap)

    def write_atomic(self, index: int, block: np.ndarray) -> None:
        """:meth:`write` through a temporary file renamed over the chunk.

        A reader (or a process killed mid-write) sees the old file or the new one, never a
        torn one: for the done flags, the commit record the data chunks rely on.
        """
        self._write(index, block, atomic=True)

    def _write(self, index: int, block: np.ndarray, *, atomic: bool, overlap: bool = False) -> None:
        if not 0 <= index < self.n_chunks:
            raise StoreError(f"chunk {index} is out of range: the array has {self.n_chunks} chunks.")
        if block.shape != self.chunk_shape or block.dtype != self.dtype or not block.flags.c_contiguous:
            raise StoreError(f"chunk block has shape {block.shape} {block.dtype}; expected a C-contiguous"
                             f" {self.chunk_shape} {self.dtype}.")
        view = block.data.cast("B")  # ndarray.data: the same buffer, typed as a memoryview
        target = self.path(index)
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        # In place, not through a temporary file renamed over the chunk as zarr's LocalStore does:
        # replacing an existing 16 MiB file measured ~1.4x the in-place write here (the old
        # file's pages are freed on the writer's clock), and nothing gains from atomicity: a
        # chunk is read only after its done flag is set, which happens after this write, and
        # a torn file left by a killed writer belongs to a chunk not flagged done (rewritten on
        # resume) and fails its checksum if read.
        final = target
        if atomic:
            target = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        fd = self._create(target)
        try:
            if not self.checksum:
                _write_all(fd, [view])
            elif overlap:
                # the checksum on a second CPU while this one writes the same bytes
                checksum = checksum_beside(view)
                try:
                    _write_all(fd, [view])
                finally:
                    crc = checksum()  # also on an error: the helper is done with the caller's memory
                _write_all(fd, [crc.to_bytes(4, "little")])
            else:
                # one system call for data and checksum: each call releases and retakes the GIL,
                # and retaking it waits for the capture thread (costly when cores are busy)
                _write_all(fd, [view, _crc32c(view).to_bytes(4, "little")])
        finally:
            os.close(fd)
        if atomic:
            os.replace(target, final)

    def stream(self, index: int) -> ChunkStream:
        """Start writing chunk ``index`` in row order (:class:`ChunkStream`), in place."""
        if not 0 <= index < self.n_chunks:
            raise StoreError(f"chunk {index} is out of range: the array has {self.n_chunks} chunks.")
        target = self.path(index)
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        return ChunkStream(self, index, self._create(target))

    def _create(self, target: Path) -> int:
        """``target`` opened empty for writing, a whole chunk file's blocks reserved (:func:`_preallocate`)."""
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _preallocate(fd, self.chunk_nbytes + (4 if self.checksum else 0))
        except OSError:
            os.close(fd)
            raise
        return fd

    def pad(self, index: int, block: np.ndarray) -> np.ndarray:
        """Set the rows of ``block`` past the array's end to the fill value (the last chunk)."""
        m = self.rows(index)
        if m < self.chunk_rows:
            block[m:] = self.fill_value
        return block

    # ------------------------------------------------------------------ reading
    def read_into(self, index: int, out: np.ndarray) -> np.ndarray:
        """Read chunk ``index`` into ``out`` (C-contiguous, the full chunk shape); checks the CRC.

        A chunk never written reads as the fill value, as zarr reads it.

        Raises
        ------
        ChunkChecksumError
            The stored CRC-32C does not match the bytes (a damaged file).
        StoreError
            The file has the wrong size for this array.
        """
        stored = self._read_unchecked(index, out)
        if stored is not None:
            self._check(index, _crc32c(out.data.cast("B")), stored)
        return out

    def _read_unchecked(self, index: int, out: np.ndarray) -> int | None:
        """Chunk ``index``'s bytes into ``out``; the CRC-32C stored after them, for the caller to check.

        ``None`` where there is nothing to check: an array without checksums, or a chunk
        never written (``out`` then holds the fill value). A file of the wrong size raises.
        """
        view = out.data.cast("B")
        path = self.path(index)
        if not self.all_written and not path.exists():
            out[...] = self.fill_value
            return None
        with open(path, "rb", buffering=0) as f:
            got = f.readinto(view)
            while got < len(view):  # short reads: keep reading until the file ends
                more = f.readinto(view[got:])
                if not more:
                    break
                got += more
            tail = f.read(5 if self.checksum else 1)
        expected_tail = 4 if self.checksum else 0
        if got != len(view) or len(tail) != expected_tail:
            raise ChunkChecksumError(
                f"chunk file {path} has {got + len(tail)} bytes; an array of chunk shape"
                f" {self.chunk_shape} {self.dtype} needs {self.chunk_nbytes + expected_tail}."
                " The file was truncated or replaced; recapture the chunk (run the capture again"
                " after removing it)."
            )
        return int.from_bytes(tail, "little") if self.checksum else None

    def _check(self, index: int, computed: int, stored: int) -> None:
        if computed != stored:
            raise ChunkChecksumError(
                f"chunk file {self.path(index)} fails its CRC-32C check: its bytes changed after they"
                " were written (disk or copy damage). Recapture the chunk: remove the file and run the"
                " same capture again."
            )

    def read_rows(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` as one array, read chunk by chunk.

        Whole chunks are read straight into ``out``, partial ones through a scratch chunk.
        A whole chunk's checksum is computed on a helper thread while the next chunk is
        read (:func:`checksum_beside`), and checked before this returns: a damaged chunk
        raises, however far the reading got.
        """
        start, stop = max(0, int(start)), min(int(stop), self.shape[0])
        if out is None:
            out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
        scratch: np.ndarray | None = None
        R = self.chunk_rows
        pending: tuple[int, Callable[[], int], int] | None = None  # (chunk, its checksum, the stored one)
        last = -(-stop // R) - 1 if stop > start else start // R - 1
        try:
            for c in range(start // R, last + 1):
                lo, hi = c * R, c * R + R
                a, b = max(lo, start), min(hi, stop)
                if a == lo and hi <= stop:
                    target = out[a - start:b - start]
                    stored = self._read_unchecked(c, target)
                    if pending is not None:
                        self._check(pending[0], pending[1](), pending[2])
                        pending = None
                    if stored is not None and c < last:  # beside the next chunk's read
                        pending = (c, checksum_beside(target.data.cast("B")), stored)
                    elif stored is not None:  # the last: nothing to overlap with
                        self._check(c, _crc32c(target.data.cast("B")), stored)
                else:
                    if scratch is None:
                        scratch = np.empty(self.chunk_shape, self.dtype)
                    self.read_into(c, scratch)
                    out[a - start:b - start] = scratch[a - lo:b - lo]
            if pending is not None:
                chunk, checksum, stored = pending
                pending = None
                self._check(chunk, checksum(), stored)
        finally:
            if pending is not None:  # an error while a checksum ran: let it finish with out's memory
                pending[1]()
        return out

    def read_pieces(self, start: int, stop: int, buffers: list[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """Rows ``[start, stop)`` as consecutive pieces ``(first_row, rows)``.

        Each piece is read into the next of ``buffers`` in turn (C-contiguous,
        ``[piece_rows, *row_shape]``, this dtype).

        For streamed reductions: a piece of ~1 MiB is reduced while it is still in the CPU
        cache its read left it in, where a whole chunk (16 MiB) comes back from memory (NAPs
        measured ~1.6x faster so). The yielded array is a view of a buffer that is filled
        again ``len(buffers)`` pieces later: the caller is done with it by then (one buffer
        for a plain loop, two with one piece read ahead in a thread).

        Every chunk touched is read whole (for its CRC-32C); the CRC is checked when the
        chunk's last byte is read, before its last piece is yielded. A damaged chunk raises
        :class:`ChunkChecksumError` after its earlier pieces were seen, so a caller must
        treat an exception as "no result" (a reduction does: it raises out of it).

        Raises
        ------
        ChunkChecksumError
            A chunk whose CRC-32C does not match, or whose file has the wrong size.
        """
        start, stop = max(0, int(start)), min(int(stop), self.shape[0])
        if stop <= start:
            return
        piece = int(buffers[0].shape[0])
        row_bytes = self.chunk_nbytes // self.chunk_rows
        views = [b.data.cast("B") for b in buffers]
        k = 0
        R = self.chunk_rows
        for c in range(start // R, -(-stop // R)):
            lo = c * R
            path = self.path(c)
            if not self.all_written and not path.exists():  # never written: the fill value, as zarr reads it
                for a in range(max(lo, start), min(lo + R, stop), piece):
                    buf = buffers[k % len(buffers)]
                    k += 1
                    m = min(piece, min(lo + R, stop) - a)
                    buf[:m] = self.fill_value
                    yield a, buf[:m]
                continue
            with open(path, "rb", buffering=0) as f:
                expected = self.chunk_nbytes + (4 if self.checksum else 0)
                size = os.fstat(f.fileno()).st_size
                if size != expected:
                    raise ChunkChecksumError(
                        f"chunk file {path} has {size} bytes; an array of chunk shape {self.chunk_shape}"
                        f" {self.dtype} needs {expected}. The file was truncated or replaced; recapture"
                        " the chunk (run the capture again after removing it).")
                crc = 0
                for a in range(lo, lo + R, piece):
                    m = min(piece, lo + R - a)
                    i = k % len(buffers)
                    view = views[i][:m * row_bytes]
                    got = 0
                    while got < len(view):  # short reads: keep reading
                        more = f.readinto(view[got:])
                        if not more:
                            break
                        got += more
                    if got != len(view):
                        raise ChunkChecksumError(f"chunk file {path} ended early ({a - lo} rows in);"
                                                 " it was truncated while being read. Read it again.")
                    if self.checksum:
                        crc = crc32c_extend(crc, view)
                    if a + m >= lo + R and self.checksum:  # the chunk's last piece
                        self._check(c, crc, int.from_bytes(f.read(5), "little"))
                    first, end = max(a, start), min(a + m, stop)
                    if end > first:  # rows outside [start, stop) are read for the CRC only
                        k += 1
                        yield first, buffers[i][first - a:end - a]


class DoneFlags:
    """Sets the done flags of one flags array: one bool per sample chunk, each flag its own chunk.

    A flag is written as its chunk file directly, atomically (:meth:`ChunkFile.write_atomic`:
    the bytes zarr writes, with no round trip into zarr's event loop per flag), where the
    array qualifies; through zarr otherwise, or where ``direct`` is false.
    """

    def __init__(self, done: Any, direct: bool = True):
        self.array = done
        file = ChunkFile.for_array(done) if direct else None
        self._file = file if file is not None and file.chunk_shape == (1,) else None
        self._true = np.ones(1, bool)

    def set(self, chunk: int) -> None:
        """Mark ``chunk`` written; call it only once every array of that chunk is on disk."""
        if self._file is not None:
            # atomic: a flag file killed half-written (opened, truncated, not yet written)
            # made the store's done flags unreadable (found by the kill -9 test)
            self._file.write_atomic(int(chunk), self._true)
        else:
            self.array[int(chunk)] = True
