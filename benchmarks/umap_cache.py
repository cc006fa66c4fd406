"""A topomap step (UMAP layout of 512 units) in fresh processes, with and without umap's
numba functions cached (``neuralatlas.analysis._umap``).

    .venv/bin/python benchmarks/umap_cache.py [--rounds 2]

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
p = np.random.default_rng(0).random((512, 160))
t = time.perf_counter()
TopomapLayout(method="umap", seed=0).fit(p)
print(time.perf_counter() - t)
"""


def run(cache: str) -> float:
    env = {**os.environ, "NEURALATLAS_UMAP_CACHE": cache, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    run("1")  # fill the cache
    times: dict[str, list[float]] = {"1": [], "0": []}
    for r in range(args.rounds):
        for cache in (("1", "0") if r % 2 == 0 else ("0", "1")):
            times[cache].append(run(cache))
            print(f"   cache={cache}: {times[cache][-1]:6.1f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"-> topomap step in a fresh process, uncached / cached umap: {min(times['0']) / min(times['1']):.1f}x"
          f" ({min(times['0']):.1f} s vs {min(times['1']):.1f} s, min of {args.rounds})")


if __name__ == "__main__":
    main()
