"""A topomap step (UMAP layout of 512 units) in fresh processes, with and without umap's
numba functions cached (``neuralatlas.analysis._umap``).

    .venv/bin/python benchmarks/umap_cache.py [--rounds 2] [--units 5000 --neighbours]

``--neighbours`` compares instead, from 4,096 units, exact neighbours from scikit-learn
(``NEURALATLAS_UMAP_EXACT_KNN=1``, the default) with pynndescent's NN-descent (``=0``), whose
numba code compiles in every process; the layout quality of both is printed.

Each round runs, in new processes, the layout with the cache (``NEURALATLAS_UMAP_CACHE=1``;
the first such process fills numba's on-disk cache) and without (``=0``, umap-learn as
installed, compiling its code again). Not in ``run_all.py``: each uncached process compiles
for ~13 s on a quiet core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CODE = """
import os, time
import numpy as np
from neuralatlas.analysis.topomap import TopomapLayout
n = int(os.environ.get("BENCH_UNITS", "512"))
rng = np.random.default_rng(0)
p = rng.normal(size=(8, 160))[rng.integers(0, 8, n)] * 2 + rng.normal(size=(n, 160))  # 8 planted clusters
t = time.perf_counter()
q = TopomapLayout(method="umap", seed=0).fit(p).quality_
print({k: round(float(v), 3) for k, v in q.items()})
print(time.perf_counter() - t)
"""


def run(cache: str, units: int = 512, variable: str = "NEURALATLAS_UMAP_CACHE") -> float:
    env = {**os.environ, variable: cache, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BENCH_UNITS": str(units)}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env)
    lines = out.stdout.strip().splitlines()
    print(f"   {variable}={cache}: quality {lines[-2]}")
    return float(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--neighbours", action="store_true",
                        help="exact neighbours vs pynndescent (from 4,096 units) instead of cached vs uncached")
    args = parser.parse_args()
    variable = "NEURALATLAS_UMAP_EXACT_KNN" if args.neighbours else "NEURALATLAS_UMAP_CACHE"
    run("1", args.units, variable)  # fill the cache
    times: dict[str, list[float]] = {"1": [], "0": []}
    for r in range(args.rounds):
        for cache in (("1", "0") if r % 2 == 0 else ("0", "1")):
            times[cache].append(run(cache, args.units, variable))
            print(f"   {variable}={cache}: {times[cache][-1]:6.1f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
    what = ("pynndescent / exact neighbours" if args.neighbours else "uncached / cached umap")
    print(f"-> UMAP layout of {args.units} units in a fresh process, {what}: {min(times['0']) / min(times['1']):.1f}x"
          f" ({min(times['0']):.1f} s vs {min(times['1']):.1f} s, min of {args.rounds})")


if __name__ == "__main__":
    main()
