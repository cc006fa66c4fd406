"""The benchmark suite's smoke run: every script in ``benchmarks/`` runs at small sizes and exits 0.

CI runs it as ``python benchmarks/run_all.py --quick`` (this test does the same); the figures
of a quick run are not to be quoted, only the scripts' health is checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_benchmark_runs_in_quick_mode():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick"],
                          check=False, capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed:" not in proc.stdout
    # every script printed at least one headline ratio line
    assert proc.stdout.count("->") >= 8, proc.stdout[-4000:]
