"""Direct chunk files: the same bytes zarr writes, read back by plain zarr, checksums checked."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
import zarr.codecs

from neuralatlas.errors import StoreError
from neuralatlas.store.chunkio import ChunkChecksumError, ChunkFile


def _pair(tmp_path, shape, chunk, dtype, crc=True, fill=0):
    made = []
    for name in ("zarr", "direct"):
        g = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w")
        made.append(g.create_array("acts/x", shape=shape, chunks=(chunk, *shape[1:]), dtype=dtype,
                                   compressors=[zarr.codecs.Crc32cCodec()] if crc else None,
                                   fill_value=fill, config={"write_empty_chunks": True}))
    return made


@pytest.mark.parametrize("dtype,crc", [("float32", True), ("float32", False), ("int64", True), ("bool", True)])
def test_direct_chunks_are_byte_identical_to_zarr(tmp_path, dtype, crc):
    shape, chunk = (23, 3, 4), 5  # a short last chunk (3 rows), padded with the fill value
    via_zarr, direct = _pair(tmp_path, shape, chunk, dtype, crc, fill=0)
    rng = np.random.default_rng(0)
    values = (rng.normal(size=shape) * 100).astype(dtype)
    via_zarr[:] = values
    f = ChunkFile.for_array(direct)
    assert f is not None and f.checksum == crc
    block = np.empty(f.chunk_shape, f.dtype)
    block[...] = 7  # garbage beyond the end: pad() must clear it as zarr pads
    for c in range(f.n_chunks):
        m = f.rows(c)
        block[:m] = values[c * chunk:c * chunk + m]
        f.write(c, f.pad(c, block))
    zpath, dpath = tmp_path / "zarr.zarr" / "acts" / "x", tmp_path / "direct.zarr" / "acts" / "x"
    zfiles = sorted(p.relative_to(zpath) for p in zpath.rglob("*") if p.is_file())
    dfiles = sorted(p.relative_to(dpath) for p in dpath.rglob("*") if p.is_file())
    assert zfiles == dfiles and len(zfiles) == f.n_chunks + 1  # chunks + zarr.json, no .partial left
    for rel in zfiles:
        assert (zpath / rel).read_bytes() == (dpath / rel).read_bytes(), rel
    reread = zarr.open_array(str(tmp_path / "direct.zarr"), path="acts/x", mode="r")
    np.testing.assert_array_equal(reread[:], values)


def test_read_rows_matches_zarr_for_any_slice(tmp_path):
    via_zarr, _ = _pair(tmp_path, (50, 6), 8, "float32")
    values = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    via_zarr[:] = values
    f = ChunkFile.for_array(via_zarr)
    for a, b in [(0, 50), (0, 8), (3, 4), (7, 9), (8, 48), (45, 50), (10, 10), (49, 60)]:
        np.testing.assert_array_equal(f.read_rows(a, b), values[a:b])
    out = np.zeros((16, 6), np.float32)
    assert f.read_rows(16, 32, out) is out
    np.testing.assert_array_equal(out, values[16:32])


def test_unwritten_chunk_reads_as_fill_value(tmp_path):
    via_zarr, _ = _pair(tmp_path, (10, 2), 5, "float32", fill=0)
    via_zarr[0:5] = 1.0
    f = ChunkFile.for_array(via_zarr)
    np.testing.assert_array_equal(f.read_rows(0, 10), via_zarr[:])


def test_damaged_chunk_fails_its_checksum(tmp_path):
    via_zarr, _ = _pair(tmp_path, (10, 4), 5, "float32")
    via_zarr[:] = np.arange(40, dtype=np.float32).reshape(10, 4)
    f = ChunkFile.for_array(via_zarr)
    path = f.path(1)
    raw = bytearray(path.read_bytes())
    raw[3] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ChunkChecksumError, match="CRC-32C"):
        f.read_rows(0, 10)
    path.write_bytes(bytes(raw[:-9]))
    with pytest.raises(StoreError, match="truncated"):
        f.read_rows(5, 10)


def test_arrays_it_cannot_reproduce_are_left_to_zarr(tmp_path):
    g = zarr.open_group(str(tmp_path / "o.zarr"), mode="w")
    compressed = g.create_array("c", shape=(10, 4), chunks=(5, 4), dtype="float32",
                                compressors=[zarr.codecs.BloscCodec(cname="lz4")])
    two_axes = g.create_array("t", shape=(10, 4), chunks=(5, 2), dtype="float32", compressors=None)
    big_endian = g.create_array("b", shape=(10, 4), chunks=(5, 4), dtype=">f4",
                                serializer=zarr.codecs.BytesCodec(endian="big"), compressors=None)
    assert ChunkFile.for_array(compressed) is None
    assert ChunkFile.for_array(two_axes) is None
    assert ChunkFile.for_array(big_endian) is None


def test_store_read_equals_zarr_read(tmp_path):
    import neuralatlas as na

    rng = np.random.default_rng(2)
    acts = {"a": rng.normal(size=(37, 3, 2)).astype(np.float32), "b": rng.normal(size=(37, 5)).astype(np.float32)}
    store = na.ActivationStore.from_arrays(tmp_path / "s.zarr", acts, labels=rng.integers(0, 3, 37),
                                           chunk_rows=8)
    for layer, values in acts.items():
        np.testing.assert_array_equal(store.read(layer), np.asarray(store.activations(layer)))
        np.testing.assert_array_equal(store.read(layer, slice(5, 21)), values[5:21])
        blocks = [block for _, block in store.iter_chunks(layer)]
        np.testing.assert_array_equal(np.concatenate(blocks), values)


def test_store_read_of_strided_rows_is_those_rows_and_a_wrong_out_is_named(tmp_path):
    """A step is honoured (it once returned every row between), and out= is checked before reading."""
    import neuralatlas as na

    values = np.random.default_rng(5).normal(size=(37, 5)).astype(np.float32)
    store = na.ActivationStore.from_arrays(tmp_path / "s.zarr", {"b": values}, chunk_rows=8)
    for rows in (slice(0, 37, 2), slice(3, 30, 7), slice(None, None, 10)):
        np.testing.assert_array_equal(store.read("b", rows), values[rows])
    out = np.empty((19, 5), np.float32)
    assert store.read("b", slice(0, 37, 2), out=out) is out
    np.testing.assert_array_equal(out, values[::2])
    too_few_rows, wrong_dtype = np.empty((10, 5), np.float32), np.empty((37, 5), np.float64)
    for out in (too_few_rows, wrong_dtype, np.empty((5, 37), np.float32).T):  # the last strided
        with pytest.raises(StoreError, match=r"out= is a.*need a C-contiguous \(37, 5\) float32"):
            store.read("b", out=out)


def test_an_atomic_write_that_dies_midway_leaves_the_old_chunk(tmp_path, monkeypatch):
    """The done flags are written atomically: a process dying between opening the file and
    writing it (here: the write raises) leaves the previous flag readable, not an empty file."""
    import os

    flags = zarr.create_array(tmp_path / "done.zarr", shape=(4,), chunks=(1,), dtype=bool, fill_value=False,
                              compressors=[zarr.codecs.Crc32cCodec()], config={"write_empty_chunks": True})
    flags[:] = False
    f = ChunkFile.for_array(flags)
    f.write_atomic(2, np.ones(1, bool))
    assert flags[:].tolist() == [False, False, True, False]

    def dies(fd, parts):
        raise OSError("killed")

    monkeypatch.setattr(os, "writev", dies)
    with pytest.raises(OSError, match="killed"):
        f.write_atomic(1, np.ones(1, bool))
    with pytest.raises(OSError, match="killed"):
        f.write_atomic(2, np.zeros(1, bool))
    monkeypatch.undo()
    assert flags[:].tolist() == [False, False, True, False]  # both files as they were, readable
    with pytest.raises(OSError, match="killed"):  # the non-atomic data path is torn instead
        monkeypatch.setattr(os, "writev", dies)
        f.write(3, np.ones(1, bool))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="checksum"):  # what the kill -9 test once met on a flag
        flags[:]


@pytest.mark.parametrize("crc", [True, False])
@pytest.mark.parametrize("splits", [(0,), (0, 2, 5), (0, 1, 2, 3, 4), (0, 3)])
def test_a_chunk_streamed_row_by_row_is_the_file_write_makes(tmp_path, crc, splits):
    """Rows appended as they come, then the rest of the block and the checksum at close: the
    same bytes as one ChunkFile.write (so the same bytes zarr writes), the last chunk padded."""
    via_zarr, direct = _pair(tmp_path, (13, 2, 3), 5, "float32", crc)
    values = np.random.default_rng(2).normal(size=(13, 2, 3)).astype(np.float32)
    via_zarr[:] = values
    f = ChunkFile.for_array(direct)
    block = np.empty(f.chunk_shape, f.dtype)
    for c in range(f.n_chunks):
        m = f.rows(c)
        block[...] = 9.0  # garbage past the real rows of the last chunk: close() must not keep it
        block[:m] = values[c * 5:c * 5 + m]
        s = f.stream(c)
        cuts = [min(k, m) for k in splits] + [m]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):  # rows written so far, in order
            s.write(block[a:b])
        s.close(f.pad(c, block))
        assert f.path(c).read_bytes() == (tmp_path / "zarr.zarr" / "acts" / "x" / "c" / str(c) / "0" / "0").read_bytes()
    np.testing.assert_array_equal(f.read_rows(0, 13), values)


def test_an_aborted_stream_leaves_a_chunk_that_fails_its_check(tmp_path):
    _, direct = _pair(tmp_path, (10, 4), 5, "float32")
    f = ChunkFile.for_array(direct)
    s = f.stream(1)
    s.write(np.ones((2, 4), np.float32))
    s.abort()  # a writer stopped mid-chunk (its done flag is never set)
    with pytest.raises(ChunkChecksumError, match="truncated"):
        f.read_into(1, np.empty(f.chunk_shape, f.dtype))
    with pytest.raises(StoreError, match="C-contiguous"):
        f.stream(0).close(np.ones((3, 4), np.float32))  # a block of the wrong shape is refused


@pytest.mark.parametrize("preallocate", ["1", "0"])
def test_preallocated_chunk_files_are_zarrs_bytes_and_stay_short_until_written(tmp_path, monkeypatch, preallocate):
    """Chunk files get their blocks reserved before they are written (one extent per file, not
    page by page), keeping their size: the bytes are zarr's, and a stream stopped halfway
    leaves a file as short as what it wrote, as without preallocation."""
    import os

    from neuralatlas.store import chunkio

    monkeypatch.setenv("NEURALATLAS_PREALLOCATE", preallocate)
    chunkio._fallocate.cache_clear()  # the variable is read once per process
    request_cleanup = chunkio._fallocate.cache_clear
    shape, chunk = (40, 64, 32), 20  # 160 KiB chunks
    via_zarr, direct = _pair(tmp_path, shape, chunk, "float32")
    values = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    via_zarr[:] = values
    f = ChunkFile.for_array(direct)
    f.write(0, values[:20].copy())
    stream = f.stream(1)
    reserved = os.stat(f.path(1)).st_blocks * 512  # blocks reserved before a byte is written
    if preallocate == "1":
        assert reserved >= f.chunk_nbytes  # ext4 and tmpfs preallocate (the test machines' disks)
    else:
        assert reserved == 0
    assert os.stat(f.path(1)).st_size == 0
    stream.write(values[20:30])
    stream.abort()  # killed halfway: the file holds what was written, no more
    assert os.stat(f.path(1)).st_size == 10 * 64 * 32 * 4
    stream = f.stream(1)
    stream.write(values[20:30])
    stream.close(values[20:40].copy())
    for c in range(2):
        assert f.path(c).read_bytes() == (tmp_path / "zarr.zarr" / "acts" / "x" / "c" / str(c) / "0" / "0").read_bytes()
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "direct.zarr"), path="acts/x")[:], values)
    assert (chunkio._fallocate() is None) == (preallocate == "0")
    request_cleanup()  # the next test reads the variable afresh


_CRC_IMPLEMENTATIONS = {  # environment that selects each of crc32c_extend's implementations
    "crc32c_rs": {},
    "google_crc32c via ctypes": {"NEURALATLAS_CRC32C_SIMD": "0"},
    "google_crc32c extension": {"NEURALATLAS_CRC32C_SIMD": "0", "NEURALATLAS_CRC_CTYPES": "0"},
}


@pytest.fixture(params=sorted(_CRC_IMPLEMENTATIONS))
def crc_implementation(request, monkeypatch):
    """``crc32c_extend`` running on one of its implementations (the selectors' caches cleared)."""
    from neuralatlas.store import chunkio

    for key, value in _CRC_IMPLEMENTATIONS[request.param].items():
        monkeypatch.setenv(key, value)
    chunkio._crc32c_simd.cache_clear()
    chunkio._crc32c_library.cache_clear()
    if request.param == "crc32c_rs" and chunkio._crc32c_simd() is None:
        pytest.skip("crc32c-rs is not installed here (the store falls back to google_crc32c)")
    if request.param == "google_crc32c via ctypes" and chunkio._crc32c_library() is None:
        pytest.skip("google_crc32c's wheel has no bundled library here")
    yield request.param
    chunkio._crc32c_simd.cache_clear()
    chunkio._crc32c_library.cache_clear()


def test_every_crc_implementation_is_google_crc32c(crc_implementation):
    """Equal to google_crc32c (zarr's codec) at every length, offset and seed, extended piece by piece."""
    import google_crc32c

    from neuralatlas.store import chunkio

    assert (chunkio._crc32c_simd() is not None) == (crc_implementation == "crc32c_rs")
    data = np.random.default_rng(1).integers(0, 256, (1 << 20) + 37, dtype=np.uint8)
    for lo, hi in [(0, 0), (0, 1), (3, 100), (5, 4096 + 5), (1, 70_001), (0, data.size)]:
        for seed in (0, 1, 0xFFFFFFFF):
            assert chunkio.crc32c_extend(seed, data[lo:hi].data) == google_crc32c.extend(seed, data[lo:hi])
    whole = chunkio.crc32c_extend(0, data)
    crc = 0
    for lo in range(0, data.size, 65_537):  # uneven pieces, as a stream extends its running CRC
        crc = chunkio.crc32c_extend(crc, memoryview(data)[lo:lo + 65_537])
    assert crc == whole == google_crc32c.value(data.tobytes())


def test_chunks_checksummed_by_each_implementation_are_zarrs_bytes(tmp_path, crc_implementation):
    via_zarr, direct = _pair(tmp_path, (40, 64), 16, "float32")
    values = np.random.default_rng(2).normal(size=(40, 64)).astype(np.float32)
    via_zarr[:] = values
    f = ChunkFile.for_array(direct)
    block = np.empty(f.chunk_shape, f.dtype)
    for c in range(f.n_chunks):
        block[:f.rows(c)] = values[c * 16:c * 16 + f.rows(c)]
        f.write(c, f.pad(c, block))
    for c in range(f.n_chunks):
        assert f.path(c).read_bytes() == (tmp_path / "zarr.zarr" / "acts" / "x" / "c" / str(c) / "0").read_bytes()
    np.testing.assert_array_equal(f.read_rows(0, 40), values)


def test_flags_set_as_files_are_the_flags_zarr_writes(tmp_path):
    import neuralatlas as na
    from neuralatlas.store.core import CHUNK_KEY_ENCODING

    acts = np.random.default_rng(3).normal(size=(50, 6)).astype(np.float32)
    store = na.ActivationStore.from_arrays(tmp_path / "s.zarr", {"x": acts}, chunk_rows=8)
    done_dir = tmp_path / "s.zarr" / "done"
    flags = zarr.open_array(str(done_dir), mode="r")
    np.testing.assert_array_equal(flags[:], np.ones(7, bool))  # 50 rows in chunks of 8
    reference = zarr.create_array(str(tmp_path / "ref"), shape=(7,), chunks=(1,), dtype=bool, fill_value=False,
                                  compressors=[zarr.codecs.Crc32cCodec()], chunk_key_encoding=CHUNK_KEY_ENCODING)
    reference[:] = True
    for c in range(7):
        assert (done_dir / f"c.{c}").read_bytes() == (tmp_path / "ref" / f"c.{c}").read_bytes()
    for c in range(7):  # some flags unset, then set again by chunk: only those come back
        (done_dir / f"c.{c}").unlink()
    store.flag_done(None, [1, 4])
    np.testing.assert_array_equal(zarr.open_array(str(done_dir), mode="r")[:], np.isin(np.arange(7), [1, 4]))
    assert not list(done_dir.rglob("*.tmp-*"))  # each flag written through a temporary file, renamed


@pytest.fixture
def checksums_beside(monkeypatch):
    """Checksums on the helper thread for buffers of any size; the threads each one ran on, in order."""
    import threading

    from neuralatlas.store import chunkio

    monkeypatch.setenv("NEURALATLAS_OVERLAP_CHECKSUM", "1")
    monkeypatch.setattr(chunkio, "OVERLAP_MIN_BYTES", 0)
    if not chunkio.overlapped_checksums():
        pytest.skip("one usable CPU, or a CRC-32C that holds the GIL: checksums are computed inline here")
    threads: list[str] = []
    plain = chunkio._crc32c

    def recorded(data):
        threads.append(threading.current_thread().name)
        return plain(data)

    monkeypatch.setattr(chunkio, "_crc32c", recorded)
    return threads


def test_checksums_computed_beside_the_io_are_zarrs_bytes_and_are_checked(tmp_path, checksums_beside, monkeypatch):
    """Writes of a caller's array and multi-chunk reads checksum on a helper thread: same files, same checks."""
    from neuralatlas.store.core import _write_rows

    via_zarr, direct = _pair(tmp_path, (45, 64), 8, "float32")  # 6 chunks, the last short (5 rows)
    values = np.random.default_rng(3).normal(size=(45, 64)).astype(np.float32)
    via_zarr[:] = values
    _write_rows(direct, values)
    assert checksums_beside and all(t.startswith("neuralatlas-crc32c") for t in checksums_beside)
    f = ChunkFile.for_array(direct)
    for c in range(f.n_chunks):
        assert f.path(c).read_bytes() == (tmp_path / "zarr.zarr" / "acts" / "x" / "c" / str(c) / "0").read_bytes()

    checksums_beside.clear()
    np.testing.assert_array_equal(f.read_rows(0, 45), values)
    # each whole chunk beside the next one's read; the last (5, short, through the scratch
    # chunk) here, with nothing left to overlap
    def on_helper() -> list[bool]:  # (sorted: the helper may record after this thread)
        return sorted(t.startswith("neuralatlas-crc32c") for t in checksums_beside)

    assert on_helper() == [False] + [True] * 5
    checksums_beside.clear()
    np.testing.assert_array_equal(f.read_rows(0, 40), values[:40])  # five whole chunks: the last here
    assert on_helper() == [False] + [True] * 4
    out = np.zeros((32, 64), np.float32)
    assert f.read_rows(8, 40, out) is out
    np.testing.assert_array_equal(out, values[8:40])

    for damaged in (0, 2):  # the first chunk, and one in the middle: each checked after the next is read
        path = f.path(damaged)
        good = path.read_bytes()
        raw = bytearray(good)
        raw[100] ^= 0x01
        path.write_bytes(bytes(raw))
        with pytest.raises(ChunkChecksumError, match="CRC-32C") as raised:
            f.read_rows(0, 45)
        assert str(path) in str(raised.value)
        with pytest.raises(ChunkChecksumError, match="CRC-32C"):
            f.read_rows(0, 45, np.empty((45, 64), np.float32))
        path.write_bytes(good)

    monkeypatch.setenv("NEURALATLAS_OVERLAP_CHECKSUM", "0")  # switched off: inline, the same bytes
    checksums_beside.clear()
    (tmp_path / "direct.zarr" / "acts" / "x" / "c").rename(tmp_path / "before")
    _write_rows(direct, values)
    assert checksums_beside and not any(t.startswith("neuralatlas-crc32c") for t in checksums_beside)
    for c in range(f.n_chunks):
        assert f.path(c).read_bytes() == (tmp_path / "before" / str(c) / "0").read_bytes()


def test_an_io_error_returns_only_once_the_helper_is_done_with_the_callers_memory(tmp_path, checksums_beside,
                                                                                  monkeypatch):
    """A failed write or read waits for the checksum running on its buffer: the caller may reuse it at once."""
    import time

    from neuralatlas.store import chunkio
    from neuralatlas.store.core import _write_rows

    finished: list[float] = []
    plain = chunkio._crc32c

    def slow(data):
        time.sleep(0.2)
        value = plain(data)
        finished.append(time.perf_counter())
        return value

    via_zarr, direct = _pair(tmp_path, (16, 64), 8, "float32")
    values = np.ones((16, 64), np.float32)
    via_zarr[:] = values
    monkeypatch.setattr(chunkio, "_crc32c", slow)

    def full_disk(fd, parts):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(chunkio, "_write_all", full_disk)
        with pytest.raises(OSError, match="No space"):
            _write_rows(direct, values)
    failed = time.perf_counter()
    assert len(finished) == 1 and finished[0] <= failed

    f = ChunkFile.for_array(via_zarr)
    f.path(1).write_bytes(f.path(1).read_bytes()[:-9])  # chunk 1 truncated: its read fails while 0's CRC runs
    finished.clear()
    with pytest.raises(ChunkChecksumError, match="truncated"):
        f.read_rows(0, 16)
    failed = time.perf_counter()
    assert len(finished) == 1 and finished[0] <= failed


def test_a_forked_child_checksums_on_its_own_helper_thread(tmp_path, checksums_beside):
    """The parent's helper threads do not exist in a fork (dask and multiprocessing fork workers)."""
    import os
    import warnings

    via_zarr, _ = _pair(tmp_path, (32, 64), 8, "float32")
    values = np.random.default_rng(4).normal(size=(32, 64)).astype(np.float32)
    via_zarr[:] = values
    f = ChunkFile.for_array(via_zarr)
    np.testing.assert_array_equal(f.read_rows(0, 32), values)  # the parent's helper started
    assert any(t.startswith("neuralatlas-crc32c") for t in checksums_beside)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded, use of fork()": what we test
        pid = os.fork()
    if pid == 0:  # the child: read with checksums beside; 0 when the values come back checked
        code = 1
        try:
            checksums_beside.clear()
            ok = np.array_equal(f.read_rows(0, 32), values)
            code = 0 if ok and any(t.startswith("neuralatlas-crc32c") for t in checksums_beside) else 3
        finally:
            os._exit(code)
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung: it waited on a helper thread of its parent")
    assert os.waitstatus_to_exitcode(status) == 0
