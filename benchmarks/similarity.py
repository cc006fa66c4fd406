"""Linear CKA: streamed from a chunked store vs in memory vs the n×n Gram form, side by side.

    .venv/bin/python benchmarks/similarity.py [--quick] [--n 20000] [--gram-n 5000]

Data: ``x`` = ReLU(Gaussian) of width 512 and ``y`` = ReLU(x·W + noise) of width 256, n samples,
in a store of 500 rows per chunk. Prints:

  1. streamed feature-space CKA (store read chunk by chunk, float64 accumulators) under a
     few memory limits vs the in-memory feature-space form on float64 arrays already in RAM
     (goal <= 1.5x), with the peak memory each allocates (tracemalloc);
  2. at a smaller n (default 5,000), the n×n Gram form (centred HSIC; centred by row and
     column means, and as often written with the centring matrix H, O(n³)) vs the streamed
     feature-space form: time ratio and the memory each needs;
  3. that every form gives the same value.
"""

from __future__ import annotations

import argparse
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
from timing import race


def _peak(fn) -> float:
    """Peak bytes allocated while ``fn`` runs (numpy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def in_memory_feature_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The usual in-memory feature-space form: centre in float64, three products."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x -= x.mean(axis=0)
    y -= y.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The n×n Gram form: centred HSIC of the linear kernels (centring by row/column means)."""
    def centred(a):
        a = a.astype(np.float64)
        k = a @ a.T
        k -= k.mean(axis=0, keepdims=True)
        k -= k.mean(axis=1, keepdims=True)
        return k

    k, l_ = centred(x), centred(y)
    return float(np.vdot(k, l_) / np.sqrt(np.vdot(k, k) * np.vdot(l_, l_)))


def textbook_gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The Gram form as often written: HSIC = tr(K H L H) with the n×n centring matrix H (O(n³))."""
    n = len(x)
    h = np.eye(n) - np.full((n, n), 1.0 / n)
    k = h @ (x.astype(np.float64) @ x.T.astype(np.float64)) @ h
    l_ = h @ (y.astype(np.float64) @ y.T.astype(np.float64)) @ h
    return float(np.vdot(k, l_) / np.sqrt(np.vdot(k, k) * np.vdot(l_, l_)))


def make_data(n: int, dx: int, dy: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((n, dx), dtype=np.float32), 0)
    w = rng.standard_normal((dx, dy), dtype=np.float32) / np.sqrt(dx)
    y = np.maximum(x @ w + 0.5 * rng.standard_normal((n, dy), dtype=np.float32), 0)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke version")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--gram-n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, gram_n, dx, dy = (args.n, args.gram_n, 512, 256) if not args.quick else (3000, 1000, 128, 64)
    repeat = args.repeat if not args.quick else 1

    from neuralatlas.analysis.similarity import cka_matrix
    from neuralatlas.store import ActivationStore

    x, y = make_data(n, dx, dy)
    with tempfile.TemporaryDirectory() as tmp:
        store = ActivationStore.from_arrays(Path(tmp) / "acts.zarr", {"x": x, "y": y}, chunk_rows=500)
        mb = (x.nbytes + y.nbytes) / 2**20
        print(f"linear CKA, n={n}: x {n}×{dx}, y {n}×{dy} (float32, {mb:.0f} MiB) in a store of"
              f" {store.chunk_rows} rows per chunk; best of {repeat}")

        def streamed(limit=None, store=store):
            return float(cka_matrix(store, memory_limit=limit, method="feature").values[0, 1])

        forms = {"in memory (float64 arrays, data in RAM)": lambda: in_memory_feature_cka(x, y),
                 "streamed, default memory_limit": lambda: streamed(None),
                 "streamed, memory_limit=64MiB": lambda: streamed("64MiB"),
                 "streamed, memory_limit=16MiB": lambda: streamed("16MiB")}
        timed = race(forms, repeat)
        t_mem = timed["in memory (float64 arrays, data in RAM)"][0]
        print("\n1. streamed feature space vs in-memory feature space (goal <= 1.5x)")
        print(f"   {'form':44s} {'seconds':>8s} {'ratio':>7s} {'peak MiB':>9s}")
        values = {}
        for label, fn in forms.items():
            t, v = timed[label]
            values[label.split(" (")[0]] = v
            print(f"   {label:44s} {t:8.3f} {t / t_mem:7.2f} {_peak(fn):9.1f}")

        xs, ys = x[:gram_n], y[:gram_n]
        small = ActivationStore.from_arrays(Path(tmp) / "small.zarr", {"x": xs, "y": ys}, chunk_rows=500)
        pair = {"streamed feature space (memory_limit=64MiB)": lambda: streamed("64MiB", small),
                "Gram form (two n×n float64 kernels)": lambda: gram_cka(xs, ys)}
        timed = race(pair, repeat)
        (t_feat, v_feat), (_, v_gram) = timed[next(iter(pair))], timed[list(pair)[1]]
        print(f"\n2. n×n Gram form vs streamed feature space, n={gram_n}")
        print(f"   {'form':44s} {'seconds':>8s} {'ratio':>7s} {'peak MiB':>9s}")
        for label, fn in pair.items():
            print(f"   {label:44s} {timed[label][0]:8.3f} {timed[label][0] / t_feat:7.2f} {_peak(fn):9.1f}")
        t_text, v_text = race({"textbook": lambda: textbook_gram_cka(xs, ys)}, 1)["textbook"]
        label = "Gram form, textbook H·K·H centring (1 run)"
        print(f"   {label:44s} {t_text:8.3f} {t_text / t_feat:7.2f} {_peak(lambda: textbook_gram_cka(xs, ys)):9.1f}")
        full = 2 * n * n * 8 / 2**30
        print(f"   (the Gram form at n={n} would need {full:.1f} GiB for its two kernels alone;"
              f" the feature form needs {(dx + dy) ** 2 * 8 / 2**20:.1f} MiB of accumulators at any n)")

        print(f"\n3. values: n={n}: " + ", ".join(f"{k} {v:.10f}" for k, v in values.items()))
        print(f"   n={gram_n}: streamed {v_feat:.10f}, Gram form {v_gram:.10f}")
        spread = max(values.values()) - min(values.values())
        assert spread < 1e-9 and max(abs(v_feat - v_gram), abs(v_feat - v_text)) < 1e-9, "the forms disagree"
        print(f"   agree to {max(spread, abs(v_feat - v_gram)):.1e}")


if __name__ == "__main__":
    main()
