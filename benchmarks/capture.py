"""Capture speed and memory, side by side in one run.

    .venv/bin/python benchmarks/capture.py [--quick] [--n 20000]

Prints, for every layer of the digits CNN:
  1. capture streamed to disk vs a bare forward pass           (goal <= 1.5x)
     and plain hooks that keep everything in RAM (the usual notebook way), for reference;
  2. peak memory of a capture of n/10 vs n samples, each in a fresh process (goal: within 10%);
  3. store write throughput vs np.save of the same bytes        (goal >= 0.7x).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import best


def _data(n: int):
    from neuralatlas.data import ArrayDataset, digits

    train, test = digits()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(train), n)
    inputs = np.clip(train.inputs[pick] + rng.normal(0, 0.02, (n, 1, 8, 8)), 0, 1).astype(np.float32)
    return ArrayDataset(inputs, train.labels[pick], train.classes, name=f"digits-x{n}")


def speed(n: int, batch: int, repeat: int, tmp: Path) -> dict:
    import torch

    import neuralatlas as na
    from neuralatlas.capture import resolve_layers
    from neuralatlas.zoo import build

    torch.manual_seed(0)
    data = _data(n)
    model = build("cnn", seed=0).eval()
    layers = resolve_layers(model, None)
    x = torch.from_numpy(data.inputs)

    def bare():
        with torch.no_grad():
            for lo in range(0, n, batch):
                model(x[lo:lo + batch]).argmax(1)

    def hooks_in_ram():
        kept = {name: [] for name in layers}
        modules = dict(model.named_modules())
        handles = [modules[name].register_forward_hook(
            lambda m, i, o, name=name: kept[name].append(o.detach().clone())) for name in layers]
        try:
            with torch.no_grad():
                for lo in range(0, n, batch):
                    model(x[lo:lo + batch])
            return {k: torch.cat(v).numpy() for k, v in kept.items()}
        finally:
            for h in handles:
                h.remove()

    def ours():
        na.capture(model, data, layers=layers, out=tmp / "bench.zarr", batch_size=batch, overwrite=True)

    bare(), ours()  # warm up: threads, allocator, zarr
    t_bare = best(bare, repeat)
    t_ram = best(hooks_in_ram, repeat)
    t_ours = best(ours, repeat)
    store = na.ActivationStore.open(tmp / "bench.zarr")
    stored = sum(int(np.prod(store.unit_shape(name))) * 4 * n for name in layers)
    return {"bare_s": t_bare, "ram_hooks_s": t_ram, "capture_s": t_ours, "bytes": stored}


def peak_memory(n: int, batch: int, tmp: Path) -> int:
    """Peak RSS (bytes) of a fresh process that captures n samples."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from capture import _data
import neuralatlas as na
from neuralatlas.zoo import build
model = build("cnn", seed=0).eval()
data = _data({n})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
na.capture(model, data, out={str(tmp / f'mem{n}.zarr')!r}, batch_size={batch}, overwrite=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, base * 1024, data.inputs.nbytes)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, base, inputs = map(int, result.stdout.split())
    return peak - inputs  # the inputs themselves grow with n; the capture must not


def write_throughput(mb: int, tmp: Path) -> dict:
    from neuralatlas.store.core import ARRAY_CONFIG
    import zarr

    rows = mb * 2**20 // (4096 * 4)
    block = np.maximum(np.random.default_rng(0).normal(size=(rows, 4096)), 0).astype(np.float32)
    chunk = 1024

    def npsave():
        np.save(tmp / "plain.npy", block)

    def zarr_write():
        group = zarr.open_group(str(tmp / "tp.zarr"), mode="w")
        arr = group.create_array("a", shape=block.shape, chunks=(chunk, 4096), dtype="float32",
                                 compressors=None, config=ARRAY_CONFIG)
        for lo in range(0, rows, chunk):
            arr[lo:lo + chunk] = block[lo:lo + chunk]

    def zarr_default():
        group = zarr.open_group(str(tmp / "td.zarr"), mode="w")
        arr = group.create_array("a", shape=block.shape, chunks=(chunk, 4096), dtype="float32")
        for lo in range(0, rows, chunk):
            arr[lo:lo + chunk] = block[lo:lo + chunk]

    npsave(), zarr_write()
    return {"bytes": block.nbytes, "npsave_s": best(npsave, 3), "store_s": best(zarr_write, 3),
            "zarr_default_s": best(zarr_default, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.n
    tmp = Path(tempfile.mkdtemp(prefix="na-bench-"))
    try:
        s = speed(n, args.batch, 1 if args.quick else 3, tmp)
        print(f"capture, every layer of the digits CNN, {n} samples, batch {args.batch}:")
        print(f"  bare forward            {s['bare_s']:.3f} s")
        print(f"  hooks into RAM          {s['ram_hooks_s']:.3f} s  ({s['ram_hooks_s'] / s['bare_s']:.2f}x bare)")
        print(f"  neuralatlas -> zarr     {s['capture_s']:.3f} s  ({s['capture_s'] / s['bare_s']:.2f}x bare;"
              f" goal <= 1.5x)  {s['bytes'] / 2**20:.0f} MiB written")
        small, large = n // 10, n
        m_small, m_large = peak_memory(small, args.batch, tmp), peak_memory(large, args.batch, tmp)
        print("peak memory (RSS less the input array), fresh process each:")
        print(f"  {small:>6} samples  {m_small / 2**20:7.0f} MiB")
        print(f"  {large:>6} samples  {m_large / 2**20:7.0f} MiB  ({m_large / m_small:.2f}x; goal within 10%)")
        w = write_throughput(64 if args.quick else 512, tmp)
        gbps = lambda t: w["bytes"] / t / 1e9  # noqa: E731
        print(f"store write, {w['bytes'] / 2**20:.0f} MiB float32 in 1024-row chunks:")
        print(f"  np.save                 {gbps(w['npsave_s']):.2f} GB/s")
        print(f"  neuralatlas store       {gbps(w['store_s']):.2f} GB/s  ({w['npsave_s'] / w['store_s']:.2f}x np.save; goal >= 0.7x)")
        print(f"  zarr defaults (zstd)    {gbps(w['zarr_default_s']):.2f} GB/s  ({w['npsave_s'] / w['zarr_default_s']:.2f}x np.save)")
        if args.json:
            args.json.write_text(json.dumps({"speed": s, "memory": [m_small, m_large], "write": w}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
