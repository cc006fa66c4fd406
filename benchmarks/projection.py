"""t-SNE of activations: neuralatlas vs scikit-learn, side by side in one run.

    .venv/bin/python benchmarks/projection.py [--quick] [--n-jobs 2]

Prints
  1. one t-SNE of a 2,000 x 512 and of a 10,000 x 256 activation matrix: scikit-learn's
     ``TSNE`` (Barnes-Hut, its defaults), plain openTSNE (its defaults: FFT), and
     ``neuralatlas.analysis.projection.embed`` (settings picked by size), with the
     speed-up over scikit-learn and the quality of each picture (neighbourhood hit k=6,
     trustworthiness k=7 on 1,000 points), so speed is not bought with a worse embedding;
  2. the inter-layer sequence of 4 layers x 2,000 samples through ``neuralatlas.project``
     (aligned: each layer initialised from the previous, then Procrustes) vs 4 independent
     scikit-learn runs.

The activation matrices are ReLU outputs of a 10-class Gaussian mixture whose classes
separate more with depth, like the hidden layers of a trained classifier. scikit-learn
runs on ``--n-jobs`` threads (its OpenMP pool capped too); neuralatlas on its own choice
(``tsne_threads``: one thread below 5,000 points, where synchronising threads costs more
than it saves on a busy machine), never more than ``--n-jobs``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def activations(n: int, d: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ReLU(class centre + noise): ``n`` samples of ``d`` units, 10 balanced classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    centres = rng.normal(size=(10, d)) * separation
    # a low-rank shared component, as real layers have correlated units
    mix = rng.normal(size=(n, 8)) @ rng.normal(size=(8, d)) * 0.5
    x = np.maximum(centres[labels] + mix + rng.normal(size=(n, d)), 0.0)
    return x.astype(np.float32), labels


def scores(x: np.ndarray, y: np.ndarray, labels: np.ndarray, sample: int = 1000) -> tuple[float, float]:
    from neuralatlas.analysis.quality import neighborhood_hit, trustworthiness

    pick = np.random.default_rng(1).choice(len(x), min(sample, len(x)), replace=False)
    return neighborhood_hit(y, labels, k=6), trustworthiness(x[pick], y[pick], k=7)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def sklearn_tsne(x: np.ndarray, n_jobs: int, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=30.0, init="pca", learning_rate="auto", random_state=seed,
                n_jobs=n_jobs).fit_transform(x)


def opentsne_defaults(x: np.ndarray, n_jobs: int, seed: int = 0) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(n_jobs=n_jobs, random_state=seed).fit(x))


def our_threads(n: int, n_jobs: int) -> int:
    """neuralatlas's own thread choice for ``n`` points, never more than ``n_jobs``."""
    from neuralatlas.analysis.projection import tsne_threads

    chosen = tsne_threads(n)
    return n_jobs if chosen < 0 else min(chosen, n_jobs)


def single(n: int, d: int, n_jobs: int, plain: bool) -> None:
    from neuralatlas.analysis.projection import embed, tsne_settings

    x, labels = activations(n, d, separation=0.6)
    print(f"\n== one t-SNE of {n:,} x {d} activations (n_jobs={n_jobs}) ==")
    threads = our_threads(n, n_jobs)
    print(f"   neuralatlas settings: {tsne_settings(n)}, threads: {threads}")
    rows = []
    y_sk, t_sk = timed(lambda: sklearn_tsne(x, n_jobs))
    rows.append(("scikit-learn TSNE", t_sk, *scores(x, y_sk, labels)))
    if plain:
        y_ot, t_ot = timed(lambda: opentsne_defaults(x, n_jobs))
        rows.append(("openTSNE defaults (FFT)", t_ot, *scores(x, y_ot, labels)))
    y_na, t_na = timed(lambda: embed(x, "tsne", seed=0, n_jobs=threads))
    rows.append(("neuralatlas embed", t_na, *scores(x, y_na, labels)))
    print(f"   {'method':<26}{'seconds':>9}{'vs sklearn':>12}{'NH(6)':>8}{'T(7)':>8}")
    for name, t, nh, tw in rows:
        print(f"   {name:<26}{t:>9.2f}{t_sk / t:>11.2f}x{nh:>8.3f}{tw:>8.3f}")


def sequence(n: int, n_jobs: int) -> None:
    from neuralatlas.analysis.projection import project

    widths = (512, 256, 128, 64)
    layers, labels = chain(n, widths)
    print(f"\n== inter-layer sequence: {len(widths)} layers x {n:,} samples (widths {widths}, n_jobs={n_jobs}) ==")
    ys, t_sk = timed(lambda: [sklearn_tsne(x, n_jobs) for x in layers.values()])
    res, t_na = timed(lambda: project(layers, labels=labels, method="tsne", n=None, align=True, seed=0,
                                      n_jobs=our_threads(n, n_jobs), quality=False))
    nh_sk = np.mean([scores(x, y, labels)[0] for x, y in zip(layers.values(), ys)])
    nh_na = np.mean([scores(x, res[name], labels)[0] for name, x in layers.items()])
    # how far points move between consecutive layers, relative to the picture's size:
    # aligned sequences move only as much as the representation changes
    def drift(seq):
        seq = [s / np.sqrt((s ** 2).sum(1).mean()) for s in (s - s.mean(0) for s in seq)]
        return float(np.mean([np.linalg.norm(a - b, axis=1).mean() for a, b in zip(seq, seq[1:])]))

    print(f"   {'method':<34}{'seconds':>9}{'vs sklearn':>12}{'mean NH(6)':>12}{'drift':>8}")
    print(f"   {'4 independent scikit-learn TSNE':<34}{t_sk:>9.2f}{1.0:>11.2f}x{nh_sk:>12.3f}{drift(ys):>8.2f}")
    print(f"   {'neuralatlas.project (aligned)':<34}{t_na:>9.2f}{t_sk / t_na:>11.2f}x{nh_na:>12.3f}"
          f"{drift([res[k] for k in layers]):>8.2f}")
    print("   drift: mean displacement of a point between consecutive layers / RMS radius (lower = easier to follow)")


def chain(n: int, widths: tuple[int, ...], seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Layers of one forward pass: each is ReLU(previous @ W + class signal).

    The class signals are set so that the classes separate more with depth (neighbourhood
    hit in activation space about 0.45, 0.60, 0.71, 0.74 for 4 layers), like a trained net.
    """
    rng = np.random.default_rng(seed)
    x, labels = activations(n, widths[0], separation=0.5, seed=seed)
    layers = {"layer1": x}
    for i, d in enumerate(widths[1:], start=2):
        w = rng.normal(size=(x.shape[1], d)) / np.sqrt(x.shape[1])
        signal = rng.normal(size=(10, d)) * (0.1 + 0.1 * i)
        h = x @ w
        h = (h - h.mean(0)) / (h.std(0) + 1e-6)
        x = np.maximum(h + signal[labels] + 0.5 * rng.normal(size=(n, d)), 0.0).astype(np.float32)
        layers[f"layer{i}"] = x
    return layers, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the script")
    parser.add_argument("--n-jobs", type=int, default=2, help="threads: scikit-learn's, and neuralatlas's at most (default 2)")
    parser.add_argument("--no-plain", action="store_true", help="skip plain openTSNE (its FFT is slow at 2,000)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    # scikit-learn's Barnes-Hut gradient runs on every OpenMP thread whatever n_jobs says:
    # cap every thread pool (OpenMP, BLAS) at the same count for all methods
    threadpool_limits(limits=args.n_jobs)
    if args.quick:
        single(600, 128, args.n_jobs, not args.no_plain)
        sequence(400, args.n_jobs)
        return
    single(2000, 512, args.n_jobs, not args.no_plain)
    single(10000, 256, args.n_jobs, not args.no_plain)
    sequence(2000, args.n_jobs)


if __name__ == "__main__":
    main()
