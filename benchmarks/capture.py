"""Capture and store speed, side by side in one run, interleaved, one thread on every side.

    .venv/bin/python benchmarks/capture.py [--quick] [--n 20000] [--repeat 5] [--device cpu] [--scale]
    .venv/bin/python benchmarks/capture.py --only-scale      # only the cost curve (5.)
    .venv/bin/python benchmarks/capture.py --only-io         # only the store I/O (4.)
    .venv/bin/python benchmarks/capture.py --chunks 4,8,16,32  # also the chunk-size sweep (6.)

Prints, for every layer of the digits CNN (inputs upsampled to ``--n`` samples):
  1. capture through the public API (``neuralatlas.capture`` into a fresh store folder, the
     checksum codec on) vs a bare forward pass (goal <= 1.3x), and the peers: captum
     ``LayerActivation`` over all layers into RAM (documented default use: one call per batch),
     plain forward hooks into preallocated numpy (the tuned in-RAM way), the same followed by
     ``np.save`` per layer (a to-disk peer), TorchLens ``extract_dataset`` to disk; beside the
     default capture, the same with the writer thread and with synchronous writes forced
     (what the default policy chooses between) and with its chunk writes skipped (the
     compute side alone: hooks, copies, set-up; a diagnostic floor);
  2. the same with gradients vs a bare forward+backward (goal <= 1.5x) and hooks that keep
     activations and their gradients in preallocated RAM;
  3. peak RSS less the RSS after imports, data and model (each capture in a fresh process),
     at n/10 and n samples (goal: flat), and of the in-RAM peers at n;
  4. store write and read of 256 MiB vs ``np.save`` / ``np.fromfile`` of the same bytes
     (goals >= 0.8x), the store API (direct chunk files) beside zarr's own ``__setitem__`` /
     ``__getitem__`` on the same arrays, the cost of the crc32c checksum codec, and the store's
     checksums computed beside the I/O (a helper thread) against inline; every
     writing side writes new files (old ones removed untimed, as for the captures); in
     three times ``--repeat`` rounds (at least 15: each side takes ~50 ms);
  5. with ``--scale``: the cost curve, capture at 2,000 / 20,000 / 200,000 samples (2.8 GB of
     store at the largest, in the temporary folder, removed after), time per sample, the
     ratio to a bare forward timed in the same process, and peak RSS growth.
  6. with ``--chunks 4,8,16,32``: capture and read-back (every layer through
     ``store.iter_chunks``, one layer through ``store.read``) at those chunk sizes.
Every figure is the min and the median of ``--repeat`` interleaved rounds, with the 1-minute
load average beside it: on a shared machine the ratios of minima are the figures to trust.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import host_returns_free_memory, interleaved, pin_threads, ratio_line

THREADS = pin_threads(1)


def _data(n: int):
    from neuralatlas.data import ArrayDataset, digits

    train, _ = digits()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(train), n)
    inputs = np.clip(train.inputs[pick] + rng.normal(0, 0.02, (n, 1, 8, 8)), 0, 1).astype(np.float32)
    return ArrayDataset(inputs, train.labels[pick], train.classes, name=f"digits-x{n}")


def _fresh(tmp: Path, name: str) -> Path:
    path = tmp / name
    shutil.rmtree(path, ignore_errors=True)  # untimed: each timed capture writes a new folder
    return path


def speed(n: int, batch: int, repeat: int, tmp: Path, device: str, torchlens: bool,
          chunk_mib: list[int] | None = None) -> dict:
    import torch

    import neuralatlas as na
    from neuralatlas.capture import resolve_layers
    from neuralatlas.zoo import build

    torch.manual_seed(0)
    data = _data(n)
    dev = torch.device(device)
    model = build("cnn", seed=0).eval().to(dev)
    layers = resolve_layers(model, None)
    modules = dict(model.named_modules())
    x = torch.from_numpy(data.inputs).to(dev)
    y = torch.from_numpy(data.labels).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    shapes: dict[str, tuple[int, ...]] = {}
    hs = [modules[k].register_forward_hook(lambda m, i, o, k=k: shapes.__setitem__(k, tuple(o.shape[1:])))
          for k in layers]
    with torch.no_grad():
        model(x[:2])
    for h in hs:
        h.remove()
    nbytes = sum(int(np.prod(s)) * 4 * n for s in shapes.values())

    def bare():
        with torch.no_grad():
            for lo in range(0, n, batch):
                model(x[lo:lo + batch]).argmax(1).cpu()
        sync()

    def bare_fwd_bwd():
        for lo in range(0, n, batch):
            xb = x[lo:lo + batch].detach().requires_grad_(True)
            out = model(xb)
            torch.autograd.grad(out.gather(1, y[lo:lo + batch, None]).sum(), xb)
        sync()

    def hooks_ram(grads: bool = False):
        kept = {k: np.empty((n, *s), np.float32) for k, s in shapes.items()}
        gkept = {k: np.empty((n, *s), np.float32) for k, s in shapes.items()} if grads else {}
        where = [0, 0]
        outs: dict[str, torch.Tensor] = {}

        def hook(m, i, o, k):
            outs[k] = o
            kept[k][where[0]:where[1]] = o.detach().cpu().numpy()

        handles = [modules[k].register_forward_hook(lambda m, i, o, k=k: hook(m, i, o, k)) for k in layers]
        try:
            for lo in range(0, n, batch):
                where[:] = [lo, min(lo + batch, n)]
                with torch.set_grad_enabled(grads):
                    xb = x[lo:lo + batch].detach().requires_grad_(grads)
                    out = model(xb)
                    if grads:
                        gs = torch.autograd.grad(out.gather(1, y[lo:lo + batch, None]).sum(),
                                                 [outs[k] for k in layers])
                        for k, g in zip(layers, gs, strict=True):
                            gkept[k][lo:lo + batch] = g.cpu().numpy()
            sync()
            return kept
        finally:
            for h in handles:
                h.remove()

    def hooks_npsave():
        kept = hooks_ram()
        folder = tmp / "npsave"
        folder.mkdir()
        for k, v in kept.items():
            np.save(folder / f"{k}.npy", v)

    piece = np.ones(2**22, np.float32)  # 16 MiB
    sources: dict[int, np.ndarray] = {}

    def bare_while_writing(compute=None, total=None, strict=False):
        """The machine's floor for writes overlapped with compute: the bare forward while a
        second thread writes as many bytes as the capture stores (os.write, 16 MiB new files,
        ~2 MiB a call) - no neuralatlas code on either side but, with ``strict``, the checksum.

        Not strict: one cache-hot 16 MiB piece written again and again, no checksum. Strict:
        what the capture's writer must do - CRC-32C and write bytes read from memory that is
        not in the cache (one source array as large as the store, made once); the cache-hot
        piece costs the forward less memory bandwidth than the capture's writes do.
        """
        import threading

        from neuralatlas.store.chunkio import crc32c_extend

        size = nbytes if total is None else total
        if strict and size not in sources:
            sources[size] = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8)
        source = memoryview(sources[size]) if strict else memoryview(piece).cast("B")

        def write():
            folder = tmp / "overlap"
            folder.mkdir(exist_ok=True)
            for i, lo in enumerate(range(0, size, 16 << 20)):
                fd = os.open(folder / str(i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                crc = 0
                for off in range(lo, min(lo + (16 << 20), size), 2 << 20):
                    end = min(off + (2 << 20), size)
                    part = source[off:end] if strict else source[off - lo:end - lo]
                    if strict:
                        crc = crc32c_extend(crc, part)
                    os.write(fd, part)
                if strict:
                    os.write(fd, crc.to_bytes(4, "little"))
                os.close(fd)

        thread = threading.Thread(target=write)
        thread.start()
        (compute or bare)()
        thread.join()

    def captum_ram():
        from captum.attr import LayerActivation

        la = LayerActivation(model, [modules[k] for k in layers])
        kept: list[list[torch.Tensor]] = [[] for _ in layers]
        for lo in range(0, n, batch):
            for store, t in zip(kept, la.attribute(x[lo:lo + batch]), strict=True):
                store.append(t.detach().cpu())
        return [torch.cat(v).numpy() for v in kept]

    def ours(grads: bool = False, writer: str | None = None, chunk_rows: int | None = None):
        # writer: None = the default policy (neuralatlas.capture.writer.background_writes)
        old = os.environ.get("NEURALATLAS_CAPTURE_WRITER")
        if writer is not None:
            os.environ["NEURALATLAS_CAPTURE_WRITER"] = writer
        try:
            na.capture(model, data, layers=layers, out=tmp / "ours.zarr", batch_size=batch,
                       gradients=grads, device=dev, chunk_rows=chunk_rows)
        finally:
            if writer is not None:
                if old is None:
                    os.environ.pop("NEURALATLAS_CAPTURE_WRITER", None)
                else:
                    os.environ["NEURALATLAS_CAPTURE_WRITER"] = old

    def ours_no_writes(grads: bool = False):
        """The capture with its chunk-file writes skipped: hooks, copies, set-up; what is left
        when the disk costs nothing (a diagnostic floor, not a store)."""
        from neuralatlas.store.chunkio import ChunkFile, ChunkStream

        saved = ChunkFile.write, ChunkStream.write, ChunkStream.close
        ChunkFile.write = lambda self, index, block, **options: None
        ChunkStream.write = lambda self, rows: setattr(self, "rows", self.rows + len(rows))
        ChunkStream.close = lambda self, block: self.abort()
        try:
            ours(grads, writer="sync")
        finally:
            ChunkFile.write, ChunkStream.write, ChunkStream.close = saved

    # every side that writes starts from no files, the old ones removed untimed (removing a
    # store's 300 MB is not part of a capture; on this disk, mounted with `discard`, it took
    # up to 1 s and was inside the timed capture until now)
    mine = ("neuralatlas capture -> store", "... writer thread (forced)", "... synchronous writes (forced)",
            "... chunk writes skipped (floor)", "neuralatlas capture with gradients",
            "... with gradients, writer thread (forced)", "... with gradients, synchronous (forced)",
            "... with gradients, chunk writes skipped (floor)")
    fresh = {name: (lambda: _fresh(tmp, "ours.zarr")) for name in mine}
    fresh.update({"hooks -> RAM -> np.save per layer": lambda: _fresh(tmp, "npsave"),
                  "bare forward while a thread writes the bytes": lambda: _fresh(tmp, "overlap"),
                  "bare fwd+bwd while a thread writes the bytes": lambda: _fresh(tmp, "overlap"),
                  "bare forward while a thread checksums + writes them from memory": lambda: _fresh(tmp, "overlap"),
                  "bare fwd+bwd while a thread checksums + writes them from memory": lambda: _fresh(tmp, "overlap"),
                  "TorchLens extract_dataset -> disk": lambda: _fresh(tmp, "tl")})

    # the order is shuffled each round (timing.round_order): a side right after 284 MiB of new
    # files measured up to 2x slower, and a rotation kept the same side there every round
    sides = {"bare forward": bare, "neuralatlas capture -> store": ours,
             "... writer thread (forced)": lambda: ours(writer="thread"),
             "... synchronous writes (forced)": lambda: ours(writer="sync"),
             "... chunk writes skipped (floor)": ours_no_writes,
             "captum LayerActivation -> RAM": captum_ram, "hooks -> preallocated RAM": hooks_ram,
             "hooks -> RAM -> np.save per layer": hooks_npsave}
    if torchlens:
        sides["TorchLens extract_dataset -> disk"] = lambda: _torchlens(model, x, layers, batch, tmp)
    sides["bare forward while a thread writes the bytes"] = bare_while_writing
    sides["bare forward while a thread checksums + writes them from memory"] = lambda: bare_while_writing(strict=True)
    for name, fn in sides.items():  # warm up every side (threads, allocator, imports, zarr)
        try:
            fresh.get(name, lambda: None)()
            fn()
        except Exception as err:  # noqa: BLE001 - a peer that breaks here is reported, not fatal
            print(f"   (a side failed in warm-up and is left out: {type(err).__name__}: {err})")
            sides = {k: f for k, f in sides.items() if f is not fn}
    fwd = interleaved(sides, repeat, setup=fresh, memory=nbytes + (64 << 20))
    grad_sides = {"bare forward+backward": bare_fwd_bwd, "neuralatlas capture with gradients": lambda: ours(True),
                  "... with gradients, writer thread (forced)": lambda: ours(True, writer="thread"),
                  "... with gradients, synchronous (forced)": lambda: ours(True, writer="sync"),
                  "... with gradients, chunk writes skipped (floor)": lambda: ours_no_writes(True),
                  "hooks fwd+grad -> preallocated RAM": lambda: hooks_ram(True),
                  "bare fwd+bwd while a thread writes the bytes": lambda: bare_while_writing(bare_fwd_bwd, 2 * nbytes),
                  "bare fwd+bwd while a thread checksums + writes them from memory":
                      lambda: bare_while_writing(bare_fwd_bwd, 2 * nbytes, strict=True)}
    for name, fn in grad_sides.items():
        fresh.get(name, lambda: None)()
        fn()
    bwd = interleaved(grad_sides, repeat, setup=fresh, memory=2 * nbytes + (64 << 20))
    result = {"fwd": fwd, "bwd": bwd, "bytes": nbytes}
    if chunk_mib:
        result["chunks"] = chunk_sweep(chunk_mib, shapes, batch, repeat, tmp, ours, bare)
    return result


def full_collection_cost(repeat: int) -> tuple[float, float, int]:
    """The time of ``gc.collect()`` over every object of this process, and with them frozen.

    ``neuralatlas.capture`` freezes the objects that exist before it (``gc.freeze``) for its
    duration; this is what a full collection triggered inside a capture costs either way.
    """
    import gc
    import time

    def one() -> float:
        t = time.perf_counter()
        gc.collect()
        return time.perf_counter() - t

    full = min(one() for _ in range(repeat))
    gc.freeze()
    try:
        frozen = min(one() for _ in range(repeat))
    finally:
        gc.unfreeze()
    return full, frozen, len(gc.get_objects())


def chunk_sweep(sizes_mib: list[int], shapes: dict, batch: int, repeat: int, tmp: Path, ours, bare) -> dict:
    """Capture (default writer) and read back at several chunk sizes (MiB of the widest layer's
    rows, a multiple of the batch), interleaved with a bare forward; the reads are every
    layer through ``store.iter_chunks`` (the streamed analyses' access) and one layer's
    ``store.read``."""
    import neuralatlas as na

    widest = max(int(np.prod(s)) * 4 for s in shapes.values())
    rows = {mib: max(batch, (mib * 2**20 // widest) // batch * batch) for mib in sizes_mib}
    capture_sides = {"bare forward": bare}
    capture_sides.update({f"capture, {mib} MiB chunks ({r} rows)": (lambda r=r: ours(chunk_rows=r))
                          for mib, r in rows.items()})
    cap = interleaved(capture_sides, repeat, setup=lambda: _fresh(tmp, "ours.zarr"))
    stores = {}
    for mib, r in rows.items():  # one store per size, kept for the reads
        _fresh(tmp, f"chunks{mib}.zarr")
        ours(chunk_rows=r)
        os.rename(tmp / "ours.zarr", tmp / f"chunks{mib}.zarr")
        stores[mib] = na.ActivationStore.open(tmp / f"chunks{mib}.zarr")

    def read_all(store):
        return sum(int(b.size) for layer in store.layers for _, b in store.iter_chunks(layer))

    read_sides = {f"iter_chunks every layer, {mib} MiB chunks": (lambda s=s: read_all(s)) for mib, s in stores.items()}
    read_sides.update({f"store.read widest layer, {mib} MiB chunks": (lambda s=s: s.read(s.layers[0]))
                       for mib, s in stores.items()})
    read = interleaved(read_sides, repeat)
    return {"capture": cap, "read": read, "rows": rows}


def _torchlens(model, x, layers, batch, tmp):
    import torchlens

    # module selectors: TorchLens's own names are op labels; its default checksums ("fast") on
    return torchlens.extract_dataset(model, x, {k: torchlens.module(k) for k in layers}, batch_size=batch,
                                     output_dir=tmp / "tl", progress=False)


def peak_memory(n: int, batch: int, tmp: Path, side: str, gradients: bool = False) -> int:
    """Peak RSS growth (bytes) of a fresh process doing ``side`` on n samples, over its RSS
    after imports, data and model (all measured in that process)."""
    return run_fresh(n, batch, tmp, side, gradients)[0]


def run_fresh(n: int, batch: int, tmp: Path, side: str, gradients: bool = False,
              floor: bool = False) -> tuple[int, float, float, float]:
    """In a fresh process: peak RSS growth (bytes) of ``side`` on n samples, its seconds, the
    seconds of a bare forward over the same samples timed just before it, and (``floor``) of
    writing as many bytes as the capture's store holds to one new file in 16 MiB writes (the
    disk's own speed at that size; dirty pages flushed, untimed, before it and the capture)."""
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np, torch
torch.set_num_threads(1)
from capture import _data
import neuralatlas as na
from neuralatlas.capture import resolve_layers
from neuralatlas.zoo import build
import captum.attr
model = build("cnn", seed=0).eval()
data = _data({n})
layers = resolve_layers(model, None)
x = torch.from_numpy(data.inputs)
import time
with torch.no_grad():
    model(x[:{batch}])
    t0 = time.perf_counter()
    for lo in range(0, {n}, {batch}):
        model(x[lo:lo + {batch}]).argmax(1)
    bare = time.perf_counter() - t0
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
side = {side!r}
disk = 0.0
if {floor!r}:
    piece = np.ones(2**22, np.float32)
    nbytes = sum(int(np.prod(s)) for s in na.capture(model, data.subset(slice(0, 2)), layers=layers,
                 out={str(tmp / 'shape.zarr')!r}, overwrite=True).attrs["unit_shapes"].values()) * 4 * {n}
    os.sync()
    t0 = time.perf_counter()
    with open({str(tmp / 'floor.bin')!r}, "wb") as f:
        for _ in range(-(-nbytes // piece.nbytes)):
            f.write(piece)
    disk = time.perf_counter() - t0
    os.remove({str(tmp / 'floor.bin')!r})
if side == "ours":  # a warm process (imports, zarr, first-capture costs), as for the other sizes
    na.capture(model, data.subset(slice(0, {batch})), out={str(tmp / 'warm.zarr')!r}, overwrite=True)
os.sync()
import gc; gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the RSS now
base = status("VmRSS")
t0 = time.perf_counter()
if side == "ours":
    na.capture(model, data, out={str(tmp / f'mem{n}.zarr')!r}, batch_size={batch}, overwrite=True,
               gradients={gradients})
elif side == "captum":
    la = captum.attr.LayerActivation(model, [dict(model.named_modules())[k] for k in layers])
    kept = [[] for _ in layers]
    for lo in range(0, {n}, {batch}):
        for s, t in zip(kept, la.attribute(x[lo:lo + {batch}])):
            s.append(t.detach())
    out = [torch.cat(v).numpy() for v in kept]
took = time.perf_counter() - t0
print(status("VmHWM") - base, took, bare, disk)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    rss, took, bare, disk = result.stdout.split()[-4:]
    for name in (f"mem{n}.zarr", "warm.zarr", "shape.zarr"):
        shutil.rmtree(tmp / name, ignore_errors=True)
    return int(rss), float(took), float(bare), float(disk)


def scale(sizes: list[int], batch: int, tmp: Path) -> list[tuple[int, int, float, float, float]]:
    """The cost curve: capture of every layer at each size, each in a fresh (warmed) process,
    one round each (at 200,000 samples the store is 2.8 GB), with a bare forward and a plain
    write of the same bytes (the disk floor) timed in the same process."""
    rows = []
    for n in sizes:
        rss, took, bare, disk = run_fresh(n, batch, tmp, "ours", floor=True)
        rows.append((n, rss, took, bare, disk))
        print(f"   {n:>9,} samples  capture {took:8.2f} s  {took / n * 1e6:7.1f} us/sample"
              f"  bare forward {bare:7.2f} s ({took / bare:4.2f}x)  write of the same bytes {disk:7.2f} s"
              f"  (bare + write {took / (bare + disk):4.2f}x)  peak RSS growth {rss / 2**20:6.0f} MiB"
              f"  [load {os.getloadavg()[0]:.1f}]", flush=True)
    return rows


def store_io(mb: int, repeat: int, tmp: Path) -> dict:
    """Write and read ``mb`` MiB of one float32 layer: the store API vs np.save / np.fromfile."""
    from unittest import mock

    import zarr

    import neuralatlas as na
    from neuralatlas.capture.writer import ChunkWriter
    from neuralatlas.store.core import ARRAY_CONFIG, chunk_rows_for

    units = 4096
    rows = mb * 2**20 // (units * 4)
    block = np.maximum(np.random.default_rng(0).normal(size=(rows, units)), 0).astype(np.float32)
    chunk = chunk_rows_for(units * 4, 1, rows)
    store = na.ActivationStore.from_arrays(tmp / "io.zarr", {"layer": block}, chunk_rows=chunk)
    arr = store.activations_array("acts", "layer", None)
    done = store.done_flags(None)
    group = zarr.open_group(str(tmp / "plain.zarr"), mode="w")
    plain = {crc: group.create_array(f"crc{int(crc)}", shape=block.shape, chunks=(chunk, units), dtype="float32",
                                     compressors=[zarr.codecs.Crc32cCodec()] if crc else None,
                                     fill_value=0, config=ARRAY_CONFIG) for crc in (False, True)}

    def npsave():
        np.save(tmp / "plain.npy", block)

    def store_write():  # the capture's writer: each batch's rows handed over uncopied (as the
        # capture hands over views of the layers' outputs) for the writer thread to stream, then
        # the chunk submitted
        step = max(1, chunk // 8)
        with ChunkWriter({"a": arr}, done, chunk) as w:
            for c, lo in enumerate(range(0, rows, chunk)):
                bufs = w.acquire()
                m = min(chunk, rows - lo)
                for a in range(0, m, step):
                    b = min(a + step, m)
                    w.rows(c, bufs, a, b, values={"a": block[lo + a:lo + b]})
                w.submit(c, bufs, m)
                w.commit()

    direct = store.create_layer_array("grads", "layer", None)  # a second array of the same shape

    def store_direct():  # the store's write of a caller's array: whole chunks from its memory, crc32c on
        store._write_whole("grads", "layer", block, None)

    inline = store.create_layer_array("grads", "layer", 1)  # a third array of the same shape (an epoch's)

    def checksum_inline(run):  # the same call with each chunk's CRC computed before its write, not beside it
        def timed_inline():
            with mock.patch.dict(os.environ, {"NEURALATLAS_OVERLAP_CHECKSUM": "0"}):
                return run()
        return timed_inline

    def from_arrays():
        na.ActivationStore.from_arrays(tmp / "fa.zarr", {"layer": block}, chunk_rows=chunk)

    def zarr_write(crc: bool):
        def run():
            a = plain[crc]
            for lo in range(0, rows, chunk):
                a[lo:lo + chunk] = block[lo:lo + chunk]
        return run

    def gone(path: Path):
        def remove():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return remove

    def chunks_gone(folder: Path):  # an array's chunk files (c.<i>.0 beside its zarr.json), not the array
        def remove():
            for f in folder.glob("c.*"):
                f.unlink()
        return remove

    # every side writes new files (the old ones removed untimed): rewriting a file's existing
    # pages in the page cache costs a fraction of writing a new one, so sides that overwrote
    # would not compare with sides that create
    fresh = {"np.save": gone(tmp / "plain.npy"),
             "store write (capture writer)": chunks_gone(tmp / "io.zarr" / arr.path),
             "store write (caller's array, direct)": chunks_gone(tmp / "io.zarr" / direct.path),
             "... checksum inline, not beside the write": chunks_gone(tmp / "io.zarr" / inline.path),
             "ActivationStore.from_arrays": gone(tmp / "fa.zarr"),
             "zarr __setitem__, crc32c": chunks_gone(tmp / "plain.zarr" / "crc1"),
             "zarr __setitem__, no checksum": chunks_gone(tmp / "plain.zarr" / "crc0")}
    block.tofile(tmp / "plain.bin")
    out = np.empty_like(block)
    def crc_only():  # the checksum the store keeps, of the same bytes, chunk by chunk (no I/O)
        from neuralatlas.store.chunkio import _crc32c

        for lo in range(0, rows, chunk):
            _crc32c(block[lo:lo + chunk].data.cast("B"))

    write = interleaved({"np.save": npsave, "crc32c of the same bytes (no I/O)": crc_only,
                         "store write (capture writer)": store_write,
                         "store write (caller's array, direct)": store_direct,
                         "... checksum inline, not beside the write":
                             checksum_inline(lambda: store._write_whole("grads", "layer", block, 1)),
                         "ActivationStore.from_arrays": from_arrays,
                         "zarr __setitem__, crc32c": zarr_write(True),
                         "zarr __setitem__, no checksum": zarr_write(False)}, repeat, setup=fresh,
                        memory=block.nbytes + (64 << 20))
    for crc in (False, True):
        zarr_write(crc)()
    def readinto():  # the raw read into memory that already exists (as store.read(out=) reads)
        with open(tmp / "plain.bin", "rb", buffering=0) as f:
            f.readinto(out.data.cast("B"))

    read = interleaved({"np.fromfile": lambda: np.fromfile(tmp / "plain.bin", np.float32),
                        "readinto a buffer (raw)": readinto,
                        "store.read (new array)": lambda: store.read("layer"),
                        "... checksum inline, not beside the next read": checksum_inline(lambda: store.read("layer")),
                        "store.read (into a buffer)": lambda: store.read("layer", out=out),
                        "store.iter_chunks": lambda: [b for _, b in store.iter_chunks("layer")],
                        "np.asarray(zarr array), crc32c": lambda: np.asarray(arr[:]),
                        "np.asarray(zarr array), no checksum": lambda: np.asarray(plain[False][:])}, repeat,
                       memory=block.nbytes + (64 << 20))
    return {"bytes": block.nbytes, "chunk_rows": chunk, "write": write, "read": read}


def report_store_io(io: dict) -> None:
    """Print section 4 and its headline ratios."""
    print(f"\n4. store I/O, {io['bytes'] / 2**20:.0f} MiB float32 [{io['bytes'] // 16384} x 4096],"
          f" chunks of {io['chunk_rows']} rows, page cache warm:")
    for kind, floor in (("write", "np.save"), ("read", "np.fromfile")):
        for name, t in io[kind].items():
            print(f"   {name:<38s} {t}  {io['bytes'] / t.min / 1e9:5.2f} GB/s"
                  f"  ({io[kind][floor].min / t.min:.2f}x {floor})")
    w, r = io["write"], io["read"]
    direct = w["store write (caller's array, direct)"]
    print(
        f"-> store write / np.save: {w['np.save'].min / direct.min:.2f}x"
        f" throughput from the caller's array, {w['np.save'].min / w['store write (capture writer)'].min:.2f}x"
        " through the capture's writer (rows handed over batch by batch)"
        f" (goal >= 0.8x)  [load {w['np.save'].load:.1f}]"
    )
    crc = w["crc32c of the same bytes (no I/O)"].min
    print(f"-> floor with the checksum kept: np.save / (np.save + crc32c of the same bytes) ="
          f" {w['np.save'].min / (w['np.save'].min + crc):.2f}x write,"
          f" np.fromfile / (np.fromfile + crc32c) = {r['np.fromfile'].min / (r['np.fromfile'].min + crc):.2f}x"
          f" read  [load {w['np.save'].load:.1f}]")
    print(f"-> store read / np.fromfile: {r['np.fromfile'].min / r['store.read (new array)'].min:.2f}x throughput"
          f" (goal >= 0.8x); into a buffer / readinto the same buffer:"
          f" {r['readinto a buffer (raw)'].min / r['store.read (into a buffer)'].min:.2f}x"
          f"  [load {r['np.fromfile'].load:.1f}]")
    print(f"-> checksums beside the I/O (a helper thread) / inline: write"
          f" {w['... checksum inline, not beside the write'].min / direct.min:.2f}x,"
          f" read {r['... checksum inline, not beside the next read'].min / r['store.read (new array)'].min:.2f}x"
          " the throughput (neuralatlas.store.chunkio.overlapped_checksums)")
    print(
        f"-> crc32c codec cost through zarr: write {w['zarr __setitem__, crc32c'].min / w['zarr __setitem__, no checksum'].min:.2f}x,"  # noqa: E501  (one expression)
        f" read {r['np.asarray(zarr array), crc32c'].min / r['np.asarray(zarr array), no checksum'].min:.2f}x"
        " the time without it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--scale", action="store_true",
                        help="also the cost curve at 2,000 / 20,000 / 200,000 samples (needs ~3 GB of disk in"
                             " the temporary folder; not with --quick)")
    parser.add_argument("--only-scale", action="store_true", help="only the cost curve")
    parser.add_argument("--only-io", action="store_true", help="only the store I/O (section 4)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--chunks", default="", help="also sweep chunk sizes, MiB of the widest layer's rows"
                        " (e.g. 4,8,16,32): capture time and read-back time at each")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.n
    repeat = 2 if args.quick else args.repeat
    # the store I/O sides take ~50 ms each: three times the rounds (at least 15) cost ~1 min and
    # steady minima that 5-7 rounds on this VM do not give (0.77x in 7 rounds, 0.85x in 21, same code)
    io_rounds = max(3 * args.repeat, 15)
    tmp = Path(tempfile.mkdtemp(prefix="na-bench-"))
    print(f"threads: 1 on every side (torch.set_num_threads(1), OMP/MKL/OpenBLAS=1); device {args.device};"
          f" load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("memory: before each timed call the pages it may need are touched and freed, untimed"
          " (timing.fresh_pages), so every side starts alike"
          + ("; this machine returns free memory to its host, where a first touch costs a host page fault"
             if host_returns_free_memory() else ""))
    try:
        if args.only_scale or (args.scale and not args.quick):
            print("\n5. scale: the same capture (every layer, CPU), each size in a fresh process, one round:")
            rows = scale([2_000, 20_000, 200_000], args.batch, tmp)
            # RSS compared from 20,000 on: at 2,000 the chunk buffers are smaller (a chunk holds n rows)
            (n0, rss0, t0, _, _), (n1, rss1, t1, b1, d1) = rows[1], rows[-1]
            print(f"-> capture time per sample {n1:,} vs {n0:,} samples: {t1 / n1 / (t0 / n0):.2f}x;"
                  f" at {n1:,}: {t1 / b1:.2f}x a bare forward, {t1 / (b1 + d1):.2f}x bare forward + a plain"
                  f" write of the same bytes; peak RSS growth {n1:,} vs {n0:,}: {rss1 / max(rss0, 1):.2f}x"
                  f"  [load {os.getloadavg()[0]:.1f}]")
            if args.only_scale:
                return
        if args.only_io:
            report_store_io(store_io(64 if args.quick else 256, 3 if args.quick else io_rounds, tmp))
            return
        from neuralatlas.capture.writer import background_writes

        chosen = "a writer thread" if background_writes() else "synchronous"
        print(f"the capture's default writer here and now: {chosen} (neuralatlas.capture.writer.background_writes)")
        sweep = [int(v) for v in args.chunks.split(",") if v.strip()]
        s = speed(n, args.batch, repeat, tmp, args.device, torchlens=not args.quick, chunk_mib=sweep)
        print(f"\n1. capture, every layer of the digits CNN, {n:,} samples, batch {args.batch},"
              f" {s['bytes'] / 2**20:.0f} MiB of activations:")
        for name, t in s["fwd"].items():
            print(f"   {name:<38s} {t}  ({t.min / s['fwd']['bare forward'].min:.2f}x bare)")
        f = s["fwd"]
        print(ratio_line("capture / bare forward", f["neuralatlas capture -> store"], f["bare forward"], "<= 1.3x"))
        print(ratio_line("bare forward while a thread writes the same bytes / bare forward (the machine's floor"
                         " for overlapped writes)", f["bare forward while a thread writes the bytes"],
                         f["bare forward"]))
        print(ratio_line("capture / that floor", f["neuralatlas capture -> store"],
                         f["bare forward while a thread writes the bytes"]))
        strict = f["bare forward while a thread checksums + writes them from memory"]
        print(ratio_line("bare forward while a thread checksums + writes the bytes from memory / bare forward"
                         " (the stricter floor: what the capture's writer must do)", strict, f["bare forward"]))
        print(ratio_line("capture / the stricter floor", f["neuralatlas capture -> store"], strict))
        if "captum LayerActivation -> RAM" in f:
            print(ratio_line("capture / captum LayerActivation (RAM)", f["neuralatlas capture -> store"],
                             f["captum LayerActivation -> RAM"]))
        print("\n2. with gradients:")
        b = s["bwd"]
        for name, t in b.items():
            print(f"   {name:<38s} {t}  ({t.min / b['bare forward+backward'].min:.2f}x bare fwd+bwd)")
        print(ratio_line("capture with gradients / bare fwd+bwd", b["neuralatlas capture with gradients"],
                         b["bare forward+backward"], "<= 1.5x"))
        print(ratio_line("bare fwd+bwd while a thread writes activations + gradients / bare fwd+bwd (floor)",
                         b["bare fwd+bwd while a thread writes the bytes"], b["bare forward+backward"]))
        print(ratio_line("bare fwd+bwd while a thread checksums + writes them from memory / bare fwd+bwd"
                         " (the stricter floor)", b["bare fwd+bwd while a thread checksums + writes them from memory"],
                         b["bare forward+backward"]))
        print(ratio_line("capture, chunk writes skipped / bare forward (floor)", f["... chunk writes skipped (floor)"],
                         f["bare forward"]))
        print(ratio_line("capture writer thread / synchronous writes", f["... writer thread (forced)"],
                         f["... synchronous writes (forced)"]))
        full, frozen, objects = full_collection_cost(repeat)
        print(f"\n1c. one full garbage collection in this process ({objects:,} objects): {full * 1e3:.1f} ms;"
              f" with the objects from before a capture frozen, as neuralatlas.capture keeps them during"
              f" one: {frozen * 1e3:.2f} ms (min of {repeat}; a collection the capture's allocations"
              f" trigger costs that inside it)  [load {os.getloadavg()[0]:.1f}]")
        if "chunks" in s:
            cs = s["chunks"]
            print("\n1b. chunk sizes (default writer), capture and read-back:")
            for name, t in cs["capture"].items():
                print(f"   {name:<44s} {t}  ({t.min / cs['capture']['bare forward'].min:.2f}x bare)")
            for name, t in cs["read"].items():
                print(f"   {name:<44s} {t}")
        small, large = max(n // 4, args.batch), n  # n/4: both sizes span several chunks
        mem = {"ours": [peak_memory(small, args.batch, tmp, "ours"), peak_memory(large, args.batch, tmp, "ours")],
               "ours_grads": 0 if args.quick else peak_memory(large, args.batch, tmp, "ours", gradients=True),
               "captum": 0 if args.quick else peak_memory(large, args.batch, tmp, "captum")}
        print("\n3. peak RSS growth over the process after imports + data + model + a one-batch warm-up capture"
              " (fresh process each):")
        print(f"   neuralatlas capture {small:>7,} samples  {mem['ours'][0] / 2**20:7.0f} MiB")
        print(f"   neuralatlas capture {large:>7,} samples  {mem['ours'][1] / 2**20:7.0f} MiB"
              f"  ({mem['ours'][1] / max(mem['ours'][0], 1):.2f}x; goal flat)")
        print(f"   ... with gradients  {large:>7,} samples  {mem['ours_grads'] / 2**20:7.0f} MiB")
        print(f"   captum -> RAM       {large:>7,} samples  {mem['captum'] / 2**20:7.0f} MiB"
              f"  (the activations themselves: {s['bytes'] / 2**20:.0f} MiB)")
        print(
            f"-> capture peak RSS growth {large:,} vs {small:,} samples: {mem['ours'][1] / max(mem['ours'][0], 1):.2f}x"
        )
        io = store_io(64 if args.quick else 256, 3 if args.quick else io_rounds, tmp)
        report_store_io(io)
        w, r = io["write"], io["read"]
        if args.json:
            def plain(d):
                return {k: (vars(v) | {"value": None} if hasattr(v, "times") else v) for k, v in d.items()}
            args.json.write_text(json.dumps({"fwd": plain(s["fwd"]), "bwd": plain(s["bwd"]), "memory": mem,
                                             "write": plain(w), "read": plain(r)}, indent=2, default=str))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
