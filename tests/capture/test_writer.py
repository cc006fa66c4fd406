"""The background chunk writer: same store as the synchronous zarr path, errors surface,
done flags only after writes (a process killed mid-write resumes to the right store)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.capture import loop
from neuralatlas.capture.writer import ChunkWriter
from neuralatlas.errors import StoreError
from neuralatlas.store.chunkio import ChunkFile
from neuralatlas.zoo import build

CHUNKED = ("acts", "grads", "prediction", "samples/label", "done")


@pytest.fixture(params=["thread", "sync"])
def writer_mode(request, monkeypatch):
    monkeypatch.setenv("NEURALATLAS_CAPTURE_WRITER", request.param)
    return request.param


def test_background_writes_follows_the_environment(monkeypatch):
    from neuralatlas.capture.writer import background_writes

    monkeypatch.setenv("NEURALATLAS_CAPTURE_WRITER", "thread")
    assert background_writes() is True
    monkeypatch.setenv("NEURALATLAS_CAPTURE_WRITER", "sync")
    assert background_writes() is False
    monkeypatch.delenv("NEURALATLAS_CAPTURE_WRITER")  # the default: a thread wherever there is a second core
    for cores, threaded in ((1, False), (2, True), (None, False)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert background_writes() is threaded


@pytest.fixture()
def small(digits_data):
    _, test = digits_data
    return test.subset(slice(0, 130))  # 130 rows in chunks of 40: a short last chunk


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for part in CHUNKED
            for p in sorted((root / part).rglob("*")) if p.is_file() and "zarr.json" not in p.name}


def test_threaded_direct_writer_gives_the_bytes_of_synchronous_zarr_writes(small, tmp_path, monkeypatch):
    model = build("cnn", seed=3).eval()
    kwargs = {"batch_size": 20, "chunk_rows": 40, "gradients": True}
    monkeypatch.setenv("NEURALATLAS_CAPTURE_WRITER", "thread")
    fast = na.capture(model, small, out=tmp_path / "fast.zarr", **kwargs)
    monkeypatch.setattr(loop, "ChunkWriter", functools.partial(ChunkWriter, threaded=False, direct=False))
    slow = na.capture(model, small, out=tmp_path / "slow.zarr", **kwargs)
    a, b = _files(tmp_path / "fast.zarr"), _files(tmp_path / "slow.zarr")
    assert len(a) > 20 and a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    for layer in fast.layers:  # and plain zarr reads them
        np.testing.assert_array_equal(np.asarray(fast.activations(layer)), np.asarray(slow.activations(layer)))
        np.testing.assert_array_equal(fast.read(layer, kind="grads"), np.asarray(slow.gradients(layer)))


def test_a_write_error_surfaces_and_nothing_unwritten_is_marked_done(small, tmp_path, monkeypatch, writer_mode):
    model = build("mlp", seed=0).eval()
    real = ChunkFile.write

    def failing(self, index, block, **options):
        # the third chunk of the layer arrays (the sample table is written as chunk files too)
        if index == 2 and self.root.parent.name == "acts":
            raise OSError(28, "No space left on device")
        return real(self, index, block, **options)

    real_stream = ChunkFile.stream

    def failing_stream(self, index):  # the writer thread streams rows into the chunk file
        if index == 2 and self.root.parent.name == "acts":
            raise OSError(28, "No space left on device")
        return real_stream(self, index)

    monkeypatch.setattr(ChunkFile, "write", failing)
    monkeypatch.setattr(ChunkFile, "stream", failing_stream)
    with pytest.raises(StoreError, match="(?i)disk|space") as info:  # the write guard names it
        na.capture(model, small, out=tmp_path / "e.zarr", batch_size=20, chunk_rows=40)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == 28
    done = na.ActivationStore.open(tmp_path / "e.zarr").done_flags(None)[:]
    assert done.tolist() == [True, True, False, False]
    monkeypatch.setattr(ChunkFile, "write", real)
    monkeypatch.setattr(ChunkFile, "stream", real_stream)
    resumed = na.capture(model, small, out=tmp_path / "e.zarr", batch_size=20, chunk_rows=40)
    ref = na.capture(model, small, out=tmp_path / "ref.zarr", batch_size=20, chunk_rows=40)
    for layer in ref.layers:
        np.testing.assert_array_equal(resumed.read(layer), ref.read(layer))


def test_writer_error_reaches_the_producer_while_it_waits(tmp_path):
    """A disk error in the thread is raised in the caller as itself (the capture's write guard
    names disk-full and read-only errors), with the chunk noted; nothing after it is flagged."""
    import zarr

    g = zarr.open_group(str(tmp_path / "w.zarr"), mode="w")
    done = g.create_array("done", shape=(4,), chunks=(1,), dtype=bool, fill_value=False)

    class Failing:  # an array whose second chunk cannot be written
        shape, dtype, chunks = (40, 3), np.dtype("float32"), (10, 3)
        written: ClassVar[list[int]] = []

        def __setitem__(self, rows, value):
            if rows.start >= 10:
                raise PermissionError("read-only file system")
            self.written.append(rows.start)

    writer = ChunkWriter({"a": Failing()}, done, 10, threaded=True)
    with pytest.raises(PermissionError, match="read-only") as info, writer:
        for c in range(4):  # acquire or submit raises once the thread has failed
            bufs = writer.acquire()
            bufs["a"][:] = c
            writer.submit(c, bufs, 10)
            writer.commit()
    assert "while writing chunk 1" in " ".join(getattr(info.value, "__notes__", []))
    assert Failing.written == [0]
    assert done[:].tolist() == [True, False, False, False]


@pytest.mark.slow  # kills a writer subprocess mid-chunk
@pytest.mark.parametrize("mode", ["thread", "sync"])
def test_process_killed_in_the_middle_of_a_chunk_write_resumes_correctly(tmp_path, mode):
    """SIGKILL while a chunk file is half written: that chunk is not marked done, the resume
    rewrites it, and the finished store equals one captured in a single run."""
    out = tmp_path / "k.zarr"
    script = textwrap.dedent(f"""
        import os, sys, time, torch
        import neuralatlas as na
        from neuralatlas.data import digits
        from neuralatlas.store import chunkio
        from neuralatlas.zoo import build
        torch.set_num_threads(1)
        _, test = digits()
        if sys.argv[1] == "stall":
            real = chunkio.ChunkFile.write
            def stalling(self, index, block, **options):
                if index == 3 and self.root.name == "conv2":
                    tmp = self.path(index).with_name("stall.partial")
                    tmp.parent.mkdir(parents=True, exist_ok=True)
                    tmp.write_bytes(memoryview(block).cast("B")[: block.nbytes // 2])
                    print("stalled", flush=True)
                    time.sleep(600)
                return real(self, index, block, **options)
            chunkio.ChunkFile.write = stalling
            real_rows = chunkio.ChunkStream.write
            def stalling_rows(self, rows):  # the writer thread streams rows into the file
                if self.index == 3 and self.file.root.name == "conv2" and self.rows > 0:
                    real_rows(self, rows[: len(rows) // 2])  # the chunk file itself left torn
                    print("stalled", flush=True)
                    time.sleep(600)
                return real_rows(self, rows)
            chunkio.ChunkStream.write = stalling_rows
        na.capture(build("cnn", seed=5).eval(), test.subset(slice(0, 300)), out=r"{out}",
                   batch_size=30, chunk_rows=60, gradients=True)
        print("finished", flush=True)
    """)
    path = tmp_path / "job.py"
    path.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEURALATLAS_CAPTURE_WRITER": mode}
    proc = subprocess.Popen([sys.executable, str(path), "stall"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "stalled"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = na.ActivationStore.open(out).done_flags(None)[:]
    # chunk 3 was being written, chunk 4 queued behind it: neither may count as written; the
    # chunks before were written (whether the capture thread flagged them yet is timing)
    assert not done[3] and not done[4] and done[0]
    from neuralatlas.data import digits

    ref = na.capture(build("cnn", seed=5).eval(), digits()[1].subset(slice(0, 300)), out=tmp_path / "ref.zarr",
                     batch_size=30, chunk_rows=60, gradients=True)
    partial = na.ActivationStore.open(out)
    for layer in ref.layers:  # what is flagged done is exactly the reference's bytes
        for kind in ("acts", "grads"):
            f = ChunkFile.for_array(partial.activations_array(kind, layer, None))
            for c in np.flatnonzero(done):
                got = f.read_rows(60 * c, 60 * c + 60)
                np.testing.assert_array_equal(got, ref.read(layer, slice(60 * c, 60 * c + 60), kind=kind))
    subprocess.run([sys.executable, str(path), "resume"], check=True, capture_output=True, env=env)
    resumed = na.ActivationStore.open(out)
    for layer in ref.layers:
        np.testing.assert_array_equal(resumed.read(layer), ref.read(layer))
        np.testing.assert_array_equal(resumed.read(layer, kind="grads"), ref.read(layer, kind="grads"))
    assert resumed.samples.equals(ref.samples)


@pytest.mark.parametrize("stream", [True, False])
def test_rows_announced_out_of_order_are_written_whole(tmp_path, stream):
    """The writer thread streams rows announced in order; a chunk whose rows come otherwise
    (or not at all) is written whole at submit. Every way gives zarr's bytes."""
    import zarr

    values = np.random.default_rng(3).normal(size=(23, 4)).astype(np.float32)
    stores = {}
    for name in ("zarr", "writer"):
        g = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w")
        arr = g.create_array("acts/a", shape=values.shape, chunks=(10, 4), dtype="float32",
                             compressors=[zarr.codecs.Crc32cCodec()], fill_value=0,
                             config={"write_empty_chunks": True})
        done = g.create_array("done", shape=(3,), chunks=(1,), dtype=bool, fill_value=False,
                              compressors=[zarr.codecs.Crc32cCodec()], config={"write_empty_chunks": True})
        stores[name] = (arr, done)
    stores["zarr"][0][:] = values
    arr, done = stores["writer"]
    orders = {0: [(0, 4), (4, 10)], 1: [(4, 10), (0, 4)], 2: []}  # in order, out of order, none
    with ChunkWriter({"a": arr}, done, 10, threaded=True, stream=stream) as w:
        for c, spans in orders.items():
            bufs = w.acquire()
            m = min(10, 23 - 10 * c)
            bufs["a"][:m] = values[10 * c:10 * c + m]
            for a, b in spans:
                w.rows(c, bufs, a, min(b, m))
            w.submit(c, bufs, m)
    assert done[:].all()
    for c in range(3):
        rel = Path("acts", "a", "c", str(c), "0")
        assert (tmp_path / "writer.zarr" / rel).read_bytes() == (tmp_path / "zarr.zarr" / rel).read_bytes()


@pytest.mark.parametrize("gradients", [False, True])
def test_rows_handed_over_uncopied_give_the_bytes_of_rows_copied(small, tmp_path, monkeypatch, writer_mode,
                                                                 gradients):
    """Rows handed to the writer as views of the layers' outputs write the same files as rows
    copied into the chunk buffers; a captured convolution followed by ReLU(inplace=True) keeps
    its pre-ReLU values (the version check sees the change, the batch is rerun copying it)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(256, 10)).eval()
    kwargs = {"layers": ["0", "2", "3"], "batch_size": 20, "chunk_rows": 40, "gradients": gradients}
    handed = na.capture(model, small, out=tmp_path / "handed.zarr", **kwargs)
    monkeypatch.setenv("NEURALATLAS_CAPTURE_COPY", "1")
    na.capture(model, small, out=tmp_path / "copied.zarr", **kwargs)
    a, b = _files(tmp_path / "handed.zarr"), _files(tmp_path / "copied.zarr")
    assert len(a) > 10 and a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    conv = handed.read("0")
    assert (conv < 0).any(), "pre-ReLU values must survive the in-place ReLU"
    with torch.no_grad():
        expected = model[0](torch.from_numpy(small.inputs)).numpy()
    np.testing.assert_allclose(conv, expected, rtol=1e-5, atol=1e-6)


def test_a_tensor_changed_in_place_while_its_rows_are_written_fails_the_chunk(tmp_path, monkeypatch):
    """Rows handed over are written from the tensor itself: if something changes it in place
    before the writer is done, the chunk fails (never flagged done) instead of holding values
    from after the change."""
    import threading

    import torch
    import zarr

    from neuralatlas.store.chunkio import ChunkStream

    g = zarr.open_group(str(tmp_path / "w.zarr"), mode="w")
    arr = g.create_array("acts/a", shape=(20, 3), chunks=(10, 3), dtype="float32",
                         compressors=[zarr.codecs.Crc32cCodec()], fill_value=0)
    done = g.create_array("done", shape=(2,), chunks=(1,), dtype=bool, fill_value=False)
    started, release = threading.Event(), threading.Event()
    real_write = ChunkStream.write

    def stalling_write(self, rows):
        started.set()
        release.wait(10)
        return real_write(self, rows)

    monkeypatch.setattr(ChunkStream, "write", stalling_write)
    t = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    writer = ChunkWriter({"a": arr}, done, 10, threaded=True)
    with pytest.raises(StoreError, match="changed in place"), writer:
        bufs = writer.acquire()
        writer.rows(0, bufs, 0, 10, values={"a": t.numpy()}, versions=[(t, t._version)])
        assert started.wait(10)
        t.mul_(2)  # while the writer holds the rows
        release.set()
        writer.submit(0, bufs, 10)
        writer.close()
    assert not done[:].any()


def test_rows_handed_over_wait_while_a_buffer_set_is_in_flight(tmp_path, monkeypatch):
    """The capture waits when the writer has a buffer set's bytes of handed-over rows still to
    write, so a slow disk bounds memory as the chunk buffers did (it does not hold on to the
    outputs of every batch)."""
    import threading
    import time

    import zarr

    from neuralatlas.store.chunkio import ChunkStream

    g = zarr.open_group(str(tmp_path / "w.zarr"), mode="w")
    arr = g.create_array("acts/a", shape=(40, 3), chunks=(20, 3), dtype="float32",
                         compressors=[zarr.codecs.Crc32cCodec()], fill_value=0)
    done = g.create_array("done", shape=(2,), chunks=(1,), dtype=bool, fill_value=False)
    release = threading.Event()
    real_write = ChunkStream.write
    monkeypatch.setattr(ChunkStream, "write", lambda self, rows: (release.wait(10), real_write(self, rows)))
    values = np.arange(60, dtype=np.float32).reshape(20, 3)
    with ChunkWriter({"a": arr}, done, 20, threaded=True) as writer:
        assert writer.handed_limit == 20 * 3 * 4  # one buffer set
        bufs = writer.acquire()
        writer.rows(0, bufs, 0, 20, values={"a": values})  # a whole buffer set's bytes in flight
        writer.submit(0, bufs, 20)
        later = writer.acquire()  # the second set: free
        second = threading.Thread(target=writer.rows, args=(1, later, 0, 5), kwargs={"values": {"a": values[:5] + 1}})
        second.start()
        time.sleep(0.3)
        assert second.is_alive(), "more than a buffer set would be in flight: the hand-over must wait"
        release.set()
        second.join(10)
        assert not second.is_alive()
        writer.rows(1, later, 5, 20, values={"a": values[5:] + 1})
        writer.submit(1, later, 20)
    np.testing.assert_array_equal(arr[:], np.concatenate([values, values + 1]))
    assert done[:].all()


def test_computed_rows_are_completed_by_the_capture_thread_when_the_writer_is_behind(tmp_path, monkeypatch):
    """The NaN/inf row pass of rows handed over runs in the writer thread, and in the capture's
    thread while the writer is a batch or more behind (it would only wait otherwise): the same
    flags either way, every batch's rows completed exactly once."""
    import threading

    import zarr

    from neuralatlas.capture.batch_ops import _nonfinite_rows
    from neuralatlas.store.chunkio import ChunkStream

    g = zarr.open_group(str(tmp_path / "w.zarr"), mode="w")
    arr = g.create_array("acts/a", shape=(40, 3), chunks=(20, 3), dtype="float32",
                         compressors=[zarr.codecs.Crc32cCodec()], fill_value=0)
    flags = g.create_array("nonfinite", shape=(40, 1), chunks=(20, 1), dtype=bool,
                           compressors=[zarr.codecs.Crc32cCodec()], fill_value=False)
    done = g.create_array("done", shape=(2,), chunks=(1,), dtype=bool, fill_value=False)
    release = threading.Event()
    real_write = ChunkStream.write
    monkeypatch.setattr(ChunkStream, "write", lambda self, rows: (release.wait(10), real_write(self, rows))[1])
    where: list[tuple[str, int]] = []

    def finish_rows(bufs, values, a, b):
        where.append((threading.current_thread().name, a))
        bufs["nonfinite"][a:b] = _nonfinite_rows({"a": values["a"]}, {}, ["a"], b - a)

    values = np.arange(120, dtype=np.float32).reshape(40, 3)
    values[[3, 17, 26]] = [np.nan, np.inf, -np.inf]
    writer = ChunkWriter({"a": arr, "nonfinite": flags}, done, 20, threaded=True, computed=("nonfinite",),
                         finish_rows=finish_rows, finish=lambda bufs, m: None)
    with writer:
        for c in range(2):
            bufs = writer.acquire()
            for lo in range(0, 20, 5):  # four batches per chunk, the first stalls the writer
                block = values[c * 20 + lo:c * 20 + lo + 5].copy()
                writer.rows(c, bufs, lo, lo + 5, values={"a": block})
                if c == 0 and lo == 5:
                    release.set()
            writer.submit(c, bufs, 20)
    assert done[:].all()
    np.testing.assert_array_equal(arr[:], values)
    np.testing.assert_array_equal(np.flatnonzero(flags[:, 0]), [3, 17, 26])
    assert sorted(a for _, a in where) == sorted([0, 5, 10, 15] * 2)  # each batch once
    threads = {name for name, _ in where}
    assert "MainThread" in threads and "neuralatlas-chunk-writer" in threads
