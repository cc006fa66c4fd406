"""Shared fixtures: digits, and trained digits models with a per-epoch store of their activations.

Training and capture run once per test session (a few seconds on 2 cores).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# JAX compiles every jitted function afresh in each process: ~5 s of CPU in the Flax/JAX tests on
# every run of the loop. A persistent compilation cache (gitignored, under .pytest_cache/, which
# `make clean` removes) lets later runs load the compiled programs instead. The cache is keyed by
# the program, the compile options, the devices and the jax/jaxlib versions, so it changes no
# result; a JAX_COMPILATION_CACHE_DIR of your own wins, and NEURALATLAS_TEST_JAX_CACHE=0 turns it
# off. Set here, before anything imports jax (jax reads these at import).
# One folder per pytest-xdist worker (gw0, gw1; "main" without xdist): jax writes an entry in
# place (Path.write_bytes, no rename), so a worker could read another's half-written entry. The
# workers inherit the controller's environment, so a folder set by this file is replaced, not
# kept as if it were your own.
JAX_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"
if os.environ.get("NEURALATLAS_TEST_JAX_CACHE", "1") != "0":
    if os.environ.get("JAX_COMPILATION_CACHE_DIR", str(JAX_CACHE)).startswith(str(JAX_CACHE)):
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(JAX_CACHE / os.environ.get("PYTEST_XDIST_WORKER", "main"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # the tests' programs are small

# Under pytest-xdist (`make test-fast` runs -n 2 on 2 cores) each worker computes on one thread:
# two workers' BLAS/OpenMP pools on the same two cores cost more than they gave (measured on 2
# cores: the fast loop took 70 s with them, 53 s without). An OMP_NUM_THREADS of your own wins.
# torch reads it when first imported (later); numpy's BLAS is loaded already (the zarr pytest
# plugin imports numpy), so it is limited in place.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)

EPOCHS = 8

#: Fixtures that make a test end to end or heavy, so ``slow`` (``make test-fast`` leaves them out):
#: the pipeline-built report runs (every analysis, then the report), a dask LocalCluster, and
#: real pretrained models (CONTRIBUTING.md: a test that loads one is slow).
SLOW_FIXTURES = {"report_run": "a pipeline run of every analysis, then the report",
                 "report_run2": "a pipeline run of every analysis, then the report",
                 "client": "a dask LocalCluster of worker processes",
                 "done_run": "a whole pipeline run", "vgg16_file": "VGG16 (138 M parameters)",
                 "minilm": "the real MiniLM (22 M parameters; tests/capture, tests/attribution)"}


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@dataclass
class TrainedRun:
    model: object
    run_dir: Path
    store: object
    train: object
    test: object
    metrics: list


@pytest.fixture(scope="session")
def digits_data():
    from neuralatlas.data import digits

    return digits()


def _trained(kind: str, tmp_path_factory, digits_data) -> TrainedRun:
    import torch

    from neuralatlas import capture
    from neuralatlas.zoo import build, train

    torch.set_num_threads(min(2, torch.get_num_threads()))
    train_set, test_set = digits_data
    run_dir = tmp_path_factory.mktemp(f"{kind}_run")
    model = build(kind, seed=0)
    result = train(model, train_set, test_set, epochs=EPOCHS, run_dir=run_dir, seed=0, lr=3e-3)
    model.eval()
    store = capture(model, test_set, layers=None, out=run_dir / "acts.zarr", gradients=True,
                    target="label", checkpoints=run_dir, batch_size=128)
    return TrainedRun(model, run_dir, store, train_set, test_set, result.metrics)


@pytest.fixture(scope="session")
def trained_mlp_run(tmp_path_factory, digits_data) -> TrainedRun:
    return _trained("mlp", tmp_path_factory, digits_data)


@pytest.fixture(scope="session")
def trained_cnn_run(tmp_path_factory, digits_data) -> TrainedRun:
    return _trained("cnn", tmp_path_factory, digits_data)


@pytest.fixture(scope="session")
def untrained_cnn():
    from neuralatlas.zoo import build

    return build("cnn", seed=0).eval()
