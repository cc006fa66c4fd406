"""Beyond memory: NAPs over a store several times the memory budget, and streamed CKA.

    .venv/bin/python benchmarks/scale.py [--size-gb 6] [--budget 2GB] [--cluster] [--quick]

1. Writes a store of ``--size-gb`` of float32 activations (a conv layer 64x8x8 = 4,096 units,
   10 classes, 16 MiB chunks), chunk by chunk, never holding it in memory. Then, each in a
   fresh process so that its peak resident memory (ru_maxrss) is its own:
     - the floor: np.fromfile of every chunk file (the raw bytes, nothing decoded);
     - a sequential read through the store API (``store.iter_chunks``);
     - ``naps()`` (group means, per-group std, unit statistics) with
       ``memory_limit = budget - the process's resident memory after imports``;
     - with ``--cluster``: the same on a dask LocalCluster of 2 worker processes.
   Prints GB/s, the ratio to the floor (goal: NAPs <= 1.3x its time), and peak RSS against
   the budget (goal: within it). Runs are interleaved (a new order each round), min and
   median kept with the load average, so all see the same page-cache state and load; the store
   (6 GB) fits in this machine's page cache, so this measures the CPU side, not the disk.
2. Linear CKA of 20,000 samples (widths 512 and 256, a store of 500-row chunks): streamed
   from the store under the same budget vs the in-memory feature-space form on float64
   arrays already in RAM (goal <= 1.5x), from benchmarks/similarity.py.

The store is written under ``--dir`` (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import round_order

HERE = Path(__file__).resolve().parent
SHAPE = (64, 8, 8)
GROUPS = 10


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# ---------------------------------------------------------------------------- the store
def write_store(path: Path, size_gb: float, seed: int = 0) -> int:
    """A store of about ``size_gb`` GB, written chunk by chunk; returns the number of samples."""
    from neuralatlas.store import ActivationStore

    units = int(np.prod(SHAPE))
    chunk = 1024                                             # 16 MiB of float32 per chunk
    n = int(size_gb * 1e9 // (units * 4)) // chunk * chunk
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, GROUPS, n)
    store = ActivationStore.create(path, {"layers": ["conv"], "unit_shapes": {"conv": list(SHAPE)},
                                          "classes": [str(g) for g in range(GROUPS)], "n_samples": n,
                                          "chunk_rows": chunk, "epochs": [], "source": "benchmark"},
                                   overwrite=True)
    store.write_samples(index=np.arange(n), label=labels)
    store.plan_slots([None])
    arr = store.create_layer_array("acts", "conv", None)
    done = store.done_flags(None, create=True)
    # a few random chunks, varied per chunk by the class means: realistic values, cheap to make
    base = [np.maximum(rng.normal(size=(chunk, units)), 0).astype(np.float32) for _ in range(4)]
    class_shift = rng.normal(scale=0.5, size=(GROUPS, units)).astype(np.float32)
    t = time.perf_counter()
    for c, start in enumerate(range(0, n, chunk)):
        block = base[c % 4] + class_shift[labels[start:start + chunk]]
        arr[start:start + chunk] = block.reshape(chunk, *SHAPE)
        done[c] = True
        if c % 64 == 0:
            print(f"\r   writing: {start * units * 4 / 1e9:5.1f} / {n * units * 4 / 1e9:.1f} GB", end="", flush=True)
    store.mark_complete(None)
    print(f"\r   wrote {n:,} samples x {units:,} units = {n * units * 4 / 1e9:.2f} GB"
          f" in {time.perf_counter() - t:.0f} s ({store.chunk_rows} rows = 16 MiB per chunk)")
    return n


# ---------------------------------------------------------------------------- measured in a subprocess
def _load_kernel() -> None:
    """Load the compiled NAP kernel (numba's on-disk cache, ~0.15 s once per process): not counted."""
    from neuralatlas.analysis.naps import _Accumulator

    _Accumulator(1, 4, True, True, False, 0.0).add(np.ones((2, 4), np.float32), np.zeros(2, np.int64))


def worker(task: str, store_path: str, budget: int) -> dict:
    """Run one measurement in this (fresh) process; returns seconds and memory."""
    from neuralatlas.analysis.naps import naps
    from neuralatlas.store import ActivationStore

    store = ActivationStore.open(store_path)
    _load_kernel()
    baseline = _current_rss()
    out: dict = {"baseline_rss": baseline}
    if task == "raw":  # the floor: every chunk file's bytes, one np.fromfile each, nothing else
        files = sorted((Path(store_path) / "acts" / "conv").glob("c.*"))  # chunk files c.<i>.0.0.0
        t = time.perf_counter()
        for f in files:
            np.fromfile(f, np.uint8)
        out["seconds"] = time.perf_counter() - t
    elif task == "read":
        t = time.perf_counter()
        for _ in store.iter_chunks("conv"):
            pass
        out["seconds"] = time.perf_counter() - t
    elif task in ("naps", "naps-cluster"):
        limit = budget - baseline - 64 * 2**20                # what is left of the budget, less a margin
        out["memory_limit"] = limit
        client = cluster = None
        if task == "naps-cluster":
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=40)
            client = Client(cluster)
            client.run(_load_kernel)
        t = time.perf_counter()
        result = naps(store, memory_limit=limit, client=client)
        out["seconds"] = time.perf_counter() - t
        out["check"] = float(result.values("conv").sum())
        if client is not None:
            out["worker_rss"] = max(client.run(_current_rss).values())
            client.close()
            cluster.close()
    out["peak_rss"] = int(_rss_mib() * 2**20)
    return out


def measure(task: str, store: Path, budget: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", task, "--store", str(store), "--budget-bytes",
                           str(budget)], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def naps_at_scale(size_gb: float, budget: int, cluster: bool, repeat: int, where: Path) -> None:
    from neuralatlas.analysis.streaming import format_bytes

    print(f"\n1. NAPs over a store of {size_gb:g} GB under a memory budget of {format_bytes(budget)}")
    path = where / "scale.zarr"
    n = write_store(path, size_gb)
    nbytes = n * int(np.prod(SHAPE)) * 4
    tasks = ["raw", "read", "naps"] + (["naps-cluster"] if cluster else [])
    best: dict[str, dict] = {}
    times: dict[str, list[float]] = {t: [] for t in tasks}
    measure("raw", path, budget)                               # warm the page cache
    for r_i in range(repeat):
        for task in round_order(tasks, r_i):  # interleaved, a new order each round
            r = measure(task, path, budget)
            r["load"] = os.getloadavg()[0]
            times[task].append(r["seconds"])
            if task not in best or r["seconds"] < best[task]["seconds"]:
                best[task] = r
    read = best["raw"]["seconds"]
    print(f"   store / budget = {nbytes / budget:.1f}x")
    names = {"raw": "floor: np.fromfile of every chunk file",
             "read": "store.iter_chunks, sequential",
             "naps": "naps(): means + std + unit statistics",
             "naps-cluster": "naps(client=LocalCluster of 2 workers)"}
    for task in tasks:
        r = best[task]
        within = "within" if r["peak_rss"] <= budget else "OVER"
        extra = f", largest worker {format_bytes(r['worker_rss'])}" if "worker_rss" in r else ""
        print(f"   {names[task]:<44s} min {r['seconds']:6.2f} s  median {float(np.median(times[task])):6.2f} s"
              f" (load {r['load']:.1f})  {nbytes / r['seconds'] / 1e9:5.2f} GB/s"
              f"  {read / r['seconds']:4.2f}x floor   peak RSS {format_bytes(r['peak_rss'])} ({within} budget;"
              f" {format_bytes(r['baseline_rss'])} after imports{extra})")
    ratio = read / best["naps"]["seconds"]
    print(f"-> NAPs throughput = {ratio:.2f}x one raw read of the chunk files (goal >= 0.77x, i.e. <= 1.3x the"
          f" time: {'met' if ratio >= 1 / 1.3 else 'missed'}); store read {read / best['read']['seconds']:.2f}x;"
          f" peak RSS {best['naps']['peak_rss'] / budget:.0%} of the budget"
          f" ({'met' if best['naps']['peak_rss'] <= budget else 'missed'})")
    if "naps-cluster" in best:
        one, two = best["naps"]["seconds"], best["naps-cluster"]["seconds"]
        workers = 2
        print(f"-> NAPs on a LocalCluster of {workers} single-threaded workers: {one / two:.2f}x the speed of one"
              f" process; throughput per worker {nbytes / two / workers / 1e9:.2f} GB/s vs one process"
              f" {nbytes / one / 1e9:.2f} GB/s ({one / two / workers:.2f}x per worker; 1.0 = linear scaling)"
              f"  [load {max(best['naps']['load'], best['naps-cluster']['load']):.1f} on {os.cpu_count()} cores]")
    shutil.rmtree(path, ignore_errors=True)


def cka_at_scale(n: int, budget: int, repeat: int, where: Path) -> None:
    sys.path.insert(0, str(HERE))
    from similarity import in_memory_feature_cka, make_data
    from timing import race

    from neuralatlas.analysis.similarity import linear_cka
    from neuralatlas.analysis.streaming import format_bytes
    from neuralatlas.store import ActivationStore

    print(f"\n2. linear CKA of {n:,} samples (widths 512 and 256): streamed vs in memory")
    x, y = make_data(n, 512, 256)
    store = ActivationStore.from_arrays(where / "cka.zarr", {"x": x, "y": y}, chunk_rows=500, overwrite=True)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    limit = min(budget, 512 * 2**20)
    runs = race({"in memory (float64 arrays in RAM)": lambda: in_memory_feature_cka(x64, y64),
                  f"streamed from the store (memory_limit {format_bytes(limit)})":
                      lambda: linear_cka(store.activations("x"), store.activations("y"), memory_limit=limit)},
                 repeat)
    base = runs["in memory (float64 arrays in RAM)"][0]
    for name, (t, value) in runs.items():
        print(f"   {name:<52s} {t:6.3f} s  {t / base:4.2f}x in memory   CKA {value:.10f}")
    streamed = [t for name, (t, _) in runs.items() if name.startswith("streamed")][0]
    print(f"   -> streamed / in memory = {streamed / base:.2f}x (goal <= 1.5x:"
          f" {'met' if streamed / base <= 1.5 else 'missed'})")


def main() -> None:
    from neuralatlas.analysis.streaming import parse_memory_limit

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=6.0)
    parser.add_argument("--budget", default="2GB")
    parser.add_argument("--cluster", action="store_true", help="also NAPs on a LocalCluster of 2 workers")
    parser.add_argument(
        "--quick", action="store_true", help="0.2 GB under 200 MB, CKA of 5,000, one round: a smoke run"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the stores")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--budget-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.store, args.budget_bytes)))
        return
    size, budget, cka_n, repeat = args.size_gb, parse_memory_limit(args.budget), 20_000, args.repeat
    if args.quick:
        size, budget, cka_n, repeat = 0.2, parse_memory_limit("200MB") + 300 * 2**20, 5_000, 1
    where = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        naps_at_scale(size, budget, args.cluster, repeat, where)
        cka_at_scale(cka_n, budget, 1 if args.quick else 5, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread on every side, workers included
    main()
