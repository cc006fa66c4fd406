"""Out-of-core and distributed analyses equal their in-memory results.

Stores here have chunks of 7 rows, far smaller than the data, and a memory limit that allows
only a few chunks per block, so every analysis streams dozens of blocks; the references are
plain numpy (or scikit-learn) on the whole array in memory.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuralatlas.analysis import _kernels
from neuralatlas.analysis.naps import contrastive_naps, naps
from neuralatlas.analysis.streaming import block_rows, parse_memory_limit
from neuralatlas.errors import AnalysisError, StoreError
from neuralatlas.store import ActivationStore

N = 523


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, N)
    labels[:4] = np.arange(4)
    # a mean that dwarfs the spread (1000 ± 0.1): E[x²] − E[x]² in float32 would lose it all
    offset = (1000.0 + 0.1 * rng.normal(size=(N, 9)) + labels[:, None] * 0.05).astype(np.float32)
    conv = (rng.normal(size=(N, 5, 4, 3)) + labels[:, None, None, None] * 0.3).astype(np.float32)
    conv[:, 2] = np.maximum(conv[:, 2], 0)
    grads = rng.normal(size=conv.shape).astype(np.float32)
    return dict(offset=offset, conv=conv, grads=grads, labels=labels)


@pytest.fixture(scope="module")
def small_chunks(arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("ooc") / "s.zarr"
    return ActivationStore.from_arrays(path, {"offset": arrays["offset"], "conv": arrays["conv"]},
                                       labels=arrays["labels"], gradients={"conv": arrays["grads"]},
                                       chunk_rows=7)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


TINY = 16384  # bytes: blocks of one or a few 7-row chunks


def _grouped(x, labels, k):
    x = x.reshape(len(x), -1).astype(np.float64)
    return (np.stack([x[labels == g].mean(0) for g in range(k)]),
            np.stack([x[labels == g].std(0) for g in range(k)]))


# ---------------------------------------------------------------------------- memory limit
def test_memory_limit_strings_and_block_rows():
    assert parse_memory_limit("2GB") == 2 * 10**9
    assert parse_memory_limit("512MiB") == 512 * 2**20
    assert parse_memory_limit(1000) == 1000
    with pytest.raises(AnalysisError, match="not a size"):
        parse_memory_limit("lots")
    # whole chunks when the budget holds more than one; never more rows than the data
    assert block_rows(1000, 10, 1000, chunk_rows=7) == 98
    assert block_rows(50, 10, 10**9, chunk_rows=7) == 50
    with pytest.raises(AnalysisError, match="memory_limit"):
        block_rows(1000, 100, 1000, fixed=950)


# ---------------------------------------------------------------------------- NAPs
@pytest.mark.parametrize("fused", [True, False], ids=["numba", "numpy"])
def test_naps_out_of_core_equal_in_memory(small_chunks, arrays, fused, monkeypatch):
    if not fused:
        monkeypatch.setattr(_kernels, "grouped_moments", None)
    elif _kernels.grouped_moments is None:
        pytest.skip("numba is not installed")
    calls = []
    result = naps(small_chunks, by="label", memory_limit=TINY, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) > 2 * N // 40            # many small blocks, not one read of everything
    assert calls[-1][0] == calls[-1][1]
    for layer in ("offset", "conv"):
        mean, std = _grouped(arrays[layer], arrays["labels"], 4)
        shape = arrays[layer].shape[1:]
        np.testing.assert_allclose(result.values(layer), mean.reshape(4, *shape), rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(result.std(layer), std.reshape(4, *shape), rtol=2e-3, atol=1e-5)
        stats = result.statistics(layer)
        np.testing.assert_allclose(stats.mean, arrays[layer].mean(0, dtype=np.float64), rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(stats.max, arrays[layer].max(0))
        np.testing.assert_array_equal(stats.min, arrays[layer].min(0))
        np.testing.assert_allclose(stats.active_fraction, (arrays[layer] > 0).mean(0))
    # the spread of a unit at 1000 ± 0.1 survives (no catastrophic cancellation)
    assert np.all(result.std("offset") > 0.05)


def test_naps_refuse_a_memory_limit_below_one_row(small_chunks):
    with pytest.raises(AnalysisError, match="memory_limit=.*too small.*Raise memory_limit"):
        naps(small_chunks, memory_limit=100)


@pytest.mark.slow  # starts a dask cluster
def test_naps_on_a_cluster_equal_local(small_chunks, client):
    local = naps(small_chunks, by="label", align="gradient", memory_limit=TINY)
    remote = naps(small_chunks, by="label", align="gradient", memory_limit=TINY, client=client)
    assert remote.groups == local.groups and remote.aligned == local.aligned == ["conv"]
    for layer in local.layers:
        np.testing.assert_allclose(remote.values(layer), local.values(layer), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(remote.std(layer), local.std(layer), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(remote.statistics(layer).max, local.statistics(layer).max)
        np.testing.assert_allclose(remote.statistics(layer).active_fraction,
                                   local.statistics(layer).active_fraction)
    contrast = contrastive_naps(small_chunks, weight_by_size=True, by="label", client=client, memory_limit=TINY)
    np.testing.assert_allclose(contrast.values("conv"),
                               contrastive_naps(naps(small_chunks), weight_by_size=True).values("conv"),
                               rtol=1e-5, atol=1e-5)


def test_a_non_client_is_refused(small_chunks):
    with pytest.raises(AnalysisError, match="dask.distributed.Client"):
        naps(small_chunks, client="tcp://localhost:8786")


# ---------------------------------------------------------------------------- similarity
def test_linear_cka_streamed_and_on_a_cluster_equal_the_in_memory_form(small_chunks, arrays, client):
    from neuralatlas.analysis.similarity import cka_matrix

    def cka(x, y):                      # the feature-space form on whole arrays in memory
        x = x.reshape(len(x), -1).astype(np.float64)
        y = y.reshape(len(y), -1).astype(np.float64)
        x, y = x - x.mean(0), y - y.mean(0)
        return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))

    expected = cka(arrays["offset"], arrays["conv"])
    streamed = cka_matrix(small_chunks, method="feature", memory_limit=100_000)
    remote = cka_matrix(small_chunks, method="feature", memory_limit=100_000, client=client)
    for m in (streamed, remote):
        assert m["offset", "conv"] == pytest.approx(expected, rel=1e-9)
        assert m["conv", "conv"] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(remote.values, streamed.values, rtol=1e-10)


# ---------------------------------------------------------------------------- discriminative, PCA, neurons
@pytest.mark.slow  # starts a dask cluster
def test_streamed_anova_equals_in_memory_and_on_a_cluster(small_chunks, arrays, client):
    from neuralatlas.analysis.discriminative import anova_importances, discriminative_neurons

    pooled = arrays["conv"].mean(axis=(2, 3))
    expected = anova_importances(pooled, arrays["labels"], 4, normalise=False)
    from neuralatlas.analysis.discriminative import streamed_anova_importances

    raw = streamed_anova_importances(small_chunks, "conv", normalise=False, memory_limit=TINY)
    np.testing.assert_allclose(raw, expected, rtol=1e-6)
    # the public entry point streams for n=None, locally and on the cluster
    local = discriminative_neurons(small_chunks, "offset", method="anova", n_samples=None, memory_limit=TINY)
    remote = discriminative_neurons(small_chunks, "offset", method="anova", n_samples=None, memory_limit=TINY,
                                    client=client)
    reference = anova_importances(arrays["offset"], arrays["labels"], 4)
    np.testing.assert_allclose(local.importances, reference, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(remote.importances, local.importances, rtol=1e-9, atol=1e-12)
    assert local.params["streamed"] and local.params["n_samples"] == N  # the vocabulary's name (was "n")


def test_streamed_pca_projection_equals_sklearn_on_all_samples(small_chunks, arrays, client):
    from sklearn.decomposition import PCA

    from neuralatlas.analysis.projection import project

    x = arrays["conv"].reshape(N, -1).astype(np.float64)
    expected = PCA(2, svd_solver="full").fit_transform(x)
    for kwargs in ({}, {"client": client}):
        result = project(small_chunks, layers=["conv"], method="pca", n_samples=None, memory_limit=100_000, **kwargs)
        y = result["conv"]
        assert y.shape == (N, 2) and result.params["streamed"]
        # the same axes up to sign
        signs = np.sign((y * expected).sum(0))
        np.testing.assert_allclose(y * signs, expected, rtol=1e-6, atol=1e-6)
        assert 0.0 <= result.quality[("conv", None)]["trustworthiness"] <= 1.0


def test_streamed_neuron_map_equals_the_in_memory_one(small_chunks, arrays):
    from neuralatlas.analysis.projection import correlation_factor, correlation_profiles, neuron_projection

    x = arrays["conv"].reshape(N, -1).astype(np.float64)
    profiles, dead = correlation_profiles(x)
    factor, dead_streamed = correlation_factor(x.mean(0), np.cov(x, rowvar=False, bias=True))
    np.testing.assert_array_equal(dead, dead_streamed)
    np.testing.assert_allclose(factor @ factor.T, profiles @ profiles.T, atol=1e-9)
    streamed = neuron_projection(small_chunks, "conv", method="pca", n_samples=None, pool=None, memory_limit=100_000)
    in_memory = neuron_projection({"conv": arrays["conv"]}, "conv", method="pca", n_samples=None, pool=None,
                                  labels=arrays["labels"])
    a, b = streamed.coordinates, in_memory.coordinates
    signs = np.sign((a * b).sum(0))
    np.testing.assert_allclose(a * signs, b, atol=5e-5)      # the in-memory embedding runs in float32


def test_a_store_opened_by_url_streams_on_the_cluster(small_chunks, client):
    # file:// goes through zarr's fsspec store, the same road as s3:// or gs:// (whose
    # filesystems need their own packages and credentials); workers reopen it by its URL
    url = "file://" + str(small_chunks.path.absolute())
    remote_store = ActivationStore.open(url)
    assert str(remote_store.path) == url and remote_store.path.name == "s.zarr"
    assert remote_store.nbytes() == small_chunks.nbytes()
    by_url = naps(url, memory_limit=TINY, client=client)
    local = naps(small_chunks, memory_limit=TINY)
    for layer in local.layers:
        np.testing.assert_allclose(by_url.values(layer), local.values(layer), rtol=1e-6, atol=1e-6)
    with pytest.raises(StoreError, match="No activation store at file://"):
        ActivationStore.open(url + "-missing")


def test_naps_on_a_cluster_survive_a_killed_worker(small_chunks, client):
    import os
    import signal

    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one_worker_after_first_shard(done, total):
        if not killed:
            killed.append(done)
            os.kill(pids[0], signal.SIGKILL)  # the nanny restarts it; lost shards and merges rerun

    remote = naps(small_chunks, memory_limit=TINY, client=client, progress=kill_one_worker_after_first_shard)
    assert killed
    local = naps(small_chunks, memory_limit=TINY)
    for layer in local.layers:
        np.testing.assert_allclose(remote.values(layer), local.values(layer), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(remote.std(layer), local.std(layer), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(remote.counts, local.counts)
    client.wait_for_workers(2, timeout=60)
