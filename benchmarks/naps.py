"""NAPs and topomap layouts: speed, side by side in one run.

    .venv/bin/python benchmarks/naps.py [--quick]

Prints:
  1. NAPs (means, per-group std, unit statistics) over a store of 20,000 samples x 4,096 units
     (a conv layer 64 x 8 x 8) vs one raw np.fromfile of the same bytes (goal <= 1.3x) and vs
     the same read into a reused buffer (no page faults: the stricter floor), at 1 thread and
     at 2 (a reader thread), and with the whole-chunk read NAPs used before 1 MiB pieces,
     vs iNNtrospect's way: one .npy file per batch, np.load + mean per file, weighted by size;
     and the same with gradient alignment (iNNtrospect: a Python loop per sample);
  2. the grouped-reduction kernel alone on one in-memory chunk: the fused numba kernel (ours),
     the sparse one-hot product (ours when numba is missing), dense one-hot matmul, sorted
     np.add.reduceat, and np.add.at;
  3. topomap layouts of 512 and 4,096 units: seconds per method (including the quality
     scores), and the spreading step vs an all-pairs force spread like iNNtrospect's (O(n²)
     per iteration; timed on a few iterations and scaled to its 100).
Section 1: min and median of interleaved rounds, one thread everywhere, the load average beside
each figure; the floor is np.fromfile of the same bytes as one flat file. Warm page cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import best, interleaved, pin_threads, ratio_line

THREADS = pin_threads(1)


# ---------------------------------------------------------------------------- 1. NAPs
def _innspect_align(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """iNNtrospect's alignment as its code runs it: a Python loop over samples, np.pad + crop.

    Channels-last ``[n, H, W, C]``; only the spatial axes are shifted.
    """
    out = np.zeros_like(acts)
    for i in range(len(acts)):
        saliency = np.abs(grads[i]).mean(-1)
        if saliency.min() == saliency.max():
            out[i] = acts[i]
            continue
        shift = np.array(np.unravel_index(saliency.argmax(), saliency.shape)) - np.array(saliency.shape) // 2
        padded = np.pad(acts[i], [(max(-p, 0), max(p, 0)) for p in shift] + [(0, 0)])
        out[i] = padded[tuple(slice(max(p, 0), d - max(-p, 0)) for p, d in zip(shift, padded.shape[:2], strict=True))]
    return out


def naps_speed(n: int, shape: tuple[int, int, int], groups: int, batch: int, repeat: int, tmp: Path) -> None:
    from neuralatlas.analysis.naps import naps
    from neuralatlas.store import ActivationStore

    rng = np.random.default_rng(0)
    units = int(np.prod(shape))
    labels = rng.integers(0, groups, n)
    acts = np.maximum(rng.normal(size=(n, *shape)).astype(np.float32), 0)
    grads = rng.normal(size=(n, *shape)).astype(np.float32)
    store = ActivationStore.from_arrays(tmp / "acts.zarr", {"conv": acts}, labels=labels, gradients={"conv": grads})
    # iNNtrospect's layout: channels-last .npy batches, each of one group (the corpus names a
    # group per file), activations and gradients in separate folders.
    order = np.argsort(labels, kind="stable")
    files: dict[int, list[tuple[Path, Path]]] = {g: [] for g in range(groups)}
    for kind in ("acts", "grads"):
        (tmp / kind).mkdir()
    for g in range(groups):
        rows = order[labels[order] == g]
        for i, start in enumerate(range(0, len(rows), batch)):
            pick = rows[start:start + batch]
            pair = (tmp / "acts" / f"g{g}_{i:04d}.npy", tmp / "grads" / f"g{g}_{i:04d}.npy")
            np.save(pair[0], np.moveaxis(acts[pick], 1, -1))
            np.save(pair[1], np.moveaxis(grads[pick], 1, -1))
            files[g].append(pair)
    acts.tofile(tmp / "acts.bin")
    del acts, grads
    mb = n * units * 4 / 2**20
    print(f"\n1. NAPs of {n:,} samples x {units:,} units (conv {shape}, {mb:,.0f} MiB float32), {groups} groups;"
          f" store chunks of {store.chunk_rows} rows")

    def read():
        for _ in store.iter_chunks("conv"):
            pass

    def innspect(align: bool = False) -> np.ndarray:
        out = []
        for g in range(groups):
            means, sizes = [], []
            for a_path, g_path in files[g]:
                b = np.load(a_path)
                if align:
                    b = _innspect_align(b, np.load(g_path))
                means.append(b.mean(0))
                sizes.append(len(b))
            w = np.asarray(sizes) / sum(sizes)
            out.append(sum(m * wi for m, wi in zip(means, w, strict=True)))
        return np.moveaxis(np.stack(out), -1, 1)

    def raw():  # the floor: the same bytes as one flat file, one np.fromfile
        return np.fromfile(tmp / "acts.bin", np.float32)

    scratch = np.empty(n * units, np.float32)

    def raw_into():  # a stricter floor: the same read into memory already mapped (no page faults)
        with open(tmp / "acts.bin", "rb", buffering=0) as f:
            f.readinto(memoryview(scratch).cast("B"))

    def threads(mode, fn, piece_bytes=None):  # 1 thread (sync) or 2 (a reader thread reads the next piece)
        from neuralatlas.store import core

        def run():
            os.environ["NEURALATLAS_PREFETCH"] = mode
            saved = core.PIECE_BYTES
            core.PIECE_BYTES = piece_bytes or saved
            try:
                return fn()
            finally:
                core.PIECE_BYTES = saved
        return run

    raw(), raw_into(), read(), innspect()                     # warm the page cache
    full = "naps(): means + std + unit statistics"
    means = "naps(std=False, statistics=False): means only"
    sides = {"floor: np.fromfile of the same bytes": raw,
             "floor': readinto a reused buffer (no page faults)": raw_into,
             "store.iter_chunks, sequential read": read,
             f"{full}, 1 thread": threads("sync", lambda: naps(store)),
             f"{full}, 2 threads": threads("thread", lambda: naps(store)),
             f"{full}, whole 16 MiB chunks, 2 threads (the read before pieces)":
             threads("thread", lambda: naps(store), piece_bytes=16 * 2**20),
             f"{means}, 1 thread": threads("sync", lambda: naps(store, std=False, statistics=False)),
             f"{means}, 2 threads": threads("thread", lambda: naps(store, std=False, statistics=False)),
             f"iNNtrospect way: np.load + mean per {batch}-sample .npy batch (means only)": innspect}
    t = interleaved(sides, repeat)
    os.environ.pop("NEURALATLAS_PREFETCH", None)
    aligned = interleaved({"naps(align='gradient'): reads grads too, aligns, + std + statistics":
                           lambda: naps(store, align="gradient"),
                           "iNNtrospect way, aligned: per-sample pad + crop loop, then means":
                           lambda: innspect(align=True)}, 1 if repeat < 3 else 2)
    diff = float(np.abs(naps(store).values("conv") - innspect()).max())
    diff_aligned = float(np.abs(naps(store, align="gradient").values("conv") - innspect(align=True)).max())
    floor, strict = t["floor: np.fromfile of the same bytes"], t["floor': readinto a reused buffer (no page faults)"]
    for name, tm in [*t.items(), *aligned.items()]:
        print(f"   {name:<72s} {tm}  {n * units * 4 / tm.min / 2**30:6.2f} GiB/s  {tm.min / floor.min:5.2f}x floor")
    inn = t[f"iNNtrospect way: np.load + mean per {batch}-sample .npy batch (means only)"]
    print("   (threads: the floors 1; naps() '1 thread' reads and reduces in one thread, '2 threads' reads the"
          " next 1 MiB piece in a second; by default the second is used only when a core is idle)")
    for k in ("1 thread", "2 threads"):
        print(ratio_line(f"full NAPs, {k} / one raw read (np.fromfile)", t[f"{full}, {k}"], floor, "<= 1.3x"))
        print(ratio_line(f"full NAPs, {k} / readinto a reused buffer", t[f"{full}, {k}"], strict, "<= 1.3x"))
        print(ratio_line(f"means-only NAPs, {k} / one raw read (np.fromfile)", t[f"{means}, {k}"], floor, "<= 1.3x"))
    print(ratio_line("full NAPs, 1 thread, 1 MiB pieces / whole chunks read ahead (the previous read)",
                     t[f"{full}, 1 thread"], t[f"{full}, whole 16 MiB chunks, 2 threads (the read before pieces)"],
                     "< 1x"))
    print(ratio_line("means-only NAPs (1 thread) / iNNtrospect-style loop (means only)", t[f"{means}, 1 thread"],
                     inn, "< 1x; above 1 means the plain loop beats us"))
    print(f"   max |difference| vs the iNNtrospect way {diff:.1e} (aligned {diff_aligned:.1e});"
          f" aligned: iNNtrospect {list(aligned.values())[1].min / list(aligned.values())[0].min:.1f}x our time")


# ---------------------------------------------------------------------------- 2. kernels
def kernels(rows: int, units: int, groups: int, repeat: int) -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    x = rng.random((rows, units), dtype=np.float32)
    codes = rng.integers(0, groups, rows)
    print(f"\n2. grouped sum of one chunk [{rows} x {units}] float32 into {groups} groups")

    def sparse_onehot():
        onehot = sp.csr_matrix((np.ones(rows, np.float32), (codes, np.arange(rows))), shape=(groups, rows))
        return onehot @ x

    def dense_onehot():
        onehot = np.zeros((groups, rows), np.float32)
        onehot[codes, np.arange(rows)] = 1
        return onehot @ x

    def reduceat():
        o = np.argsort(codes, kind="stable")
        c = codes[o]
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        out = np.zeros((groups, units), np.float32)
        out[c[starts]] = np.add.reduceat(x[o], starts, axis=0)
        return out

    def add_at():
        out = np.zeros((groups, units), np.float32)
        np.add.at(out, codes, x)
        return out

    def fused():
        from neuralatlas.analysis import _kernels

        s1, none = np.zeros((groups, units)), np.zeros(0)
        _kernels.grouped_moments(x, x, codes, np.zeros(units), s1, s1, none.astype(np.float32),
                                 none.astype(np.float32), none.astype(np.int64), none, np.float32(0), False,
                                 False, False)
        return s1

    ref = np.stack([x[codes == g].sum(0) for g in range(groups)])
    fused()                                                   # load the compiled kernel
    t_ours = best(fused, repeat)
    for name, fn in (("fused numba kernel (ours)", fused),
                     ("sparse one-hot product (ours without numba)", sparse_onehot),
                     ("dense one-hot matmul (BLAS)", dense_onehot),
                     ("sort + np.add.reduceat", reduceat), ("np.add.at", add_at)):
        t = best(fn, repeat)
        err = float(np.abs(fn() - ref).max())
        print(f"   {name:<44s} {t * 1e3:8.2f} ms  {t / t_ours:6.1f}x ours   max |err| {err:.1e}")


# ---------------------------------------------------------------------------- 3. layouts
def _profiles(n: int, features: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, features)) * 2
    return centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, features))


def force_spread(pos: np.ndarray, steps: int) -> np.ndarray:
    """An all-pairs attraction/repulsion spread as the paper describes (O(n²) per step)."""
    p = pos.copy()
    for i in np.linspace(-3, 6, steps):
        diff = p[None, :, :] - p[:, None, :]
        dist = np.maximum(np.linalg.norm(diff, axis=-1), 0.01)
        force = 1.5 / (dist + 1) ** 3 - 15 * np.exp(-dist / 2)
        force = force * (np.tanh(i) + 1) / 4
        p = p + (diff * force[..., None]).mean(1)
    return p


def layouts(sizes: list[int], features: int, methods: list[str]) -> dict:
    from neuralatlas.analysis.topomap import TopomapLayout, spread_disc

    print(f"\n3. topomap layouts (profiles: {features} features, 8 planted clusters); seconds per fit,"
          " quality included")
    t = time.perf_counter()
    for n in sorted({64, *(s for s in sizes if s >= 4096)}):   # from 4,096 points UMAP uses NN-descent
        TopomapLayout(method="umap", seed=0).fit(_profiles(n, features, 8, seed=1))
    print(f"   (UMAP compiles its numba code on first use: warm-up {time.perf_counter() - t:.1f} s, not counted)")
    header = (f"   {'units':>6s} {'method':<6s} {'seconds':>8s}  {'Spearman':>8s} {'(random)':>8s}"
              f"  {'kNN':>5s} {'(random)':>8s}")
    print(header)
    results = {}
    for n in sizes:
        X = _profiles(n, features, 8)
        for method in methods:
            t = time.perf_counter()
            layout = TopomapLayout(method=method, seed=0).fit(X)
            dt = time.perf_counter() - t
            q = layout.quality_
            results[(n, method)] = dt
            print(f"   {n:>6d} {method:<6s} {dt:8.2f}  {q['spearman']:8.2f} {q['random_spearman']:8.2f}"
                  f"  {q['knn']:5.2f} {q['random_knn']:8.2f}")
    print("   spreading step alone (the layout's 2-D points into an overlap-free disc):")
    for n in sizes:
        pts = np.random.default_rng(2).normal(size=(n, 2))
        t_ours = best(lambda pts=pts: spread_disc(pts), 3)
        steps = 100 if n <= 512 else 3
        t = time.perf_counter()
        force_spread(pts, steps)
        t_force = (time.perf_counter() - t) * 100 / steps
        note = "" if steps == 100 else f" (timed {steps} of 100 steps, scaled)"
        print(f"   {n:>6d} units: ours {t_ours:.3f} s, all-pairs force spread {t_force:.2f} s{note}:"
              f" {t_force / t_ours:.0f}x")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run of every part")
    args = parser.parse_args()
    if args.quick:
        n, shape, repeat, sizes = 2_000, (16, 8, 8), 2, [256]
    else:
        n, shape, repeat, sizes = 20_000, (64, 8, 8), 5, [512, 4_096]
    units = int(np.prod(shape))
    with tempfile.TemporaryDirectory() as tmp:
        naps_speed(n, shape, groups=10, batch=100, repeat=repeat, tmp=Path(tmp))
    kernels(1_024 if not args.quick else 256, units, 10, repeat=5)
    kernels(1_024 if not args.quick else 256, units, 1_000, repeat=3)
    # quick: no UMAP, whose numba code compiles afresh in every process (~13 s on a quiet core)
    layouts(sizes, features=160, methods=["tsne", "som", "grid"] if args.quick else ["umap", "tsne", "som", "grid"])


if __name__ == "__main__":
    main()
