"""Capture sharded over a dask.distributed LocalCluster equals a single-process capture."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.zoo import build

pytestmark = pytest.mark.slow  # each test runs a dask cluster of worker processes

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _assert_same(a, b):
    """Same layers, sample table and values. Values to 1 ulp: oneDNN picks convolution kernels
    per process (state, memory layout), which can round the last bit differently; within one
    process a capture is bitwise reproducible (see test_capture.py)."""
    assert a.layers == b.layers
    for name in a.layers:
        np.testing.assert_allclose(np.asarray(a.activations(name)), np.asarray(b.activations(name)),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(a.gradients(name)), np.asarray(b.gradients(name)),
                                   rtol=1e-5, atol=1e-6)
    assert a.samples.equals(b.samples)


def test_distributed_capture_equals_single_process(client, digits_data, tmp_path):
    _, test = digits_data
    model = build("cnn", seed=0).eval()
    kwargs = dict(gradients=True, batch_size=30, chunk_rows=30)
    single = na.capture(model, test, out=tmp_path / "single.zarr", **kwargs)
    sharded = na.capture(model, test, out=tmp_path / "sharded.zarr", client=client, **kwargs)
    _assert_same(single, sharded)


def test_distributed_capture_survives_a_killed_worker(client, digits_data, tmp_path):
    _, test = digits_data
    model = build("cnn", seed=1).eval()
    kwargs = dict(gradients=True, batch_size=15, chunk_rows=15)
    single = na.capture(model, test, out=tmp_path / "single.zarr", **kwargs)
    pids = list(client.run(os.getpid).values())
    progressed = threading.Event()

    def kill_one_worker_after_first_shard(done, total):
        if not progressed.is_set():
            progressed.set()
            os.kill(pids[0], signal.SIGKILL)  # the nanny restarts it; its shard is recomputed

    sharded = na.capture(model, test, out=tmp_path / "sharded.zarr", client=client,
                         progress=kill_one_worker_after_first_shard, **kwargs)
    assert progressed.is_set()
    _assert_same(single, sharded)
    client.wait_for_workers(2, timeout=60)


def test_distributed_resume_writes_only_missing_chunks(client, digits_data, tmp_path):
    _, test = digits_data
    model = build("mlp", seed=2).eval()
    kwargs = dict(batch_size=50, chunk_rows=50)
    single = na.capture(model, test, out=tmp_path / "single.zarr", **kwargs)

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        na.capture(model, test, out=tmp_path / "part.zarr", client=client, progress=stop, **kwargs)
    partial = na.ActivationStore.open(tmp_path / "part.zarr")
    already = partial.done_flags(None)[:].sum()
    assert 1 <= already
    resumed = na.capture(model, test, out=tmp_path / "part.zarr", client=client, **kwargs)
    assert resumed.is_complete()
    for name in single.layers:
        np.testing.assert_allclose(np.asarray(resumed.activations(name)), np.asarray(single.activations(name)),
                                   rtol=1e-5, atol=1e-6)
