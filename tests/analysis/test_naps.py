"""NAPs: exact group means over chunked stores, gradient alignment, contrast, unit statistics, errors."""

from __future__ import annotations

import numpy as np
import pytest

import neuralatlas as na
from neuralatlas.analysis.naps import NAPs, align_by_gradient, contrastive_naps, naps, unit_statistics
from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.store import ActivationStore


def _uneven_labels(rng, n, k=5):
    labels = rng.choice(k, size=n, p=np.array([8, 4, 2, 1, 0.5])[:k] / np.array([8, 4, 2, 1, 0.5])[:k].sum())
    labels[:k] = np.arange(k)  # every class present
    return rng.permutation(labels)


@pytest.fixture()
def random_store(tmp_path):
    rng = np.random.default_rng(0)
    n = 523
    conv = rng.normal(size=(n, 6, 5, 4)).astype(np.float32)
    dense = np.maximum(rng.normal(size=(n, 17)), 0).astype(np.float32)
    dense[:, 3] = 0.0                          # a dead unit
    dense[:, 5] = 1.0 + rng.random(n)          # an always-on unit
    grads = rng.normal(size=conv.shape).astype(np.float32)
    labels = _uneven_labels(rng, n)
    source = rng.choice(["clean", "noisy", "adv"], size=n)
    predictions = np.where(rng.random(n) < 0.7, labels, (labels + 1) % 5)
    # 37 rows per chunk: chunks cut through every group
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"conv": conv, "dense": dense}, labels=labels,
                                        gradients={"conv": grads}, predictions=predictions,
                                        columns={"source": source}, chunk_rows=37)
    return store, dict(conv=conv, dense=dense, grads=grads, labels=labels, source=source, predictions=predictions)


def _group_means(x, codes, order):
    return np.stack([x[codes == g].mean(0) for g in order]), np.stack([x[codes == g].std(0) for g in order])


def test_naps_equal_numpy_group_means_over_chunks_that_split_groups(random_store):
    store, a = random_store
    result = naps(store, by="label")
    assert result.groups == ["0", "1", "2", "3", "4"]
    np.testing.assert_array_equal(result.counts, np.bincount(a["labels"]))
    for layer in ("conv", "dense"):
        mean, std = _group_means(a[layer].astype(np.float64), a["labels"], range(5))
        assert result.values(layer).shape == (5, *a[layer].shape[1:])
        np.testing.assert_allclose(result.values(layer), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.std(layer), std, rtol=1e-4, atol=1e-5)


def test_naps_by_any_column_array_and_group_selection(random_store):
    store, a = random_store
    by_source = naps(store, by="source", layers="dense")
    assert by_source.groups == ["adv", "clean", "noisy"]
    mean, _ = _group_means(a["dense"], a["source"], ["adv", "clean", "noisy"])
    np.testing.assert_allclose(by_source.values("dense"), mean, rtol=1e-5, atol=1e-6)

    custom = naps(store, by=a["source"], layers="dense", groups=["noisy", "clean"])
    assert custom.groups == ["noisy", "clean"] and custom.by == "custom"
    np.testing.assert_allclose(custom.values("dense"), mean[[2, 1]], rtol=1e-5, atol=1e-6)

    correct = naps(store, by="correct", layers="dense")
    ok = a["labels"] == a["predictions"]
    assert correct.groups == ["correct", "wrong"]
    np.testing.assert_array_equal(correct.counts, [ok.sum(), (~ok).sum()])
    np.testing.assert_allclose(correct.values("dense")[1], a["dense"][~ok].mean(0), rtol=1e-5, atol=1e-6)


def test_unit_statistics_from_the_same_pass(random_store):
    store, a = random_store
    stats = naps(store, layers=["dense", "conv"]).statistics("dense")
    x = a["dense"]
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stats.max, x.max(0))
    np.testing.assert_array_equal(stats.min, x.min(0))
    np.testing.assert_allclose(stats.active_fraction, (x > 0).mean(0))
    assert stats.dead[3] and stats.dead.sum() == 1
    assert stats.always_on[5]
    assert stats.sparsity == pytest.approx(1 - (x > 0).mean())
    conv_stats = unit_statistics(store, "conv")["conv"]
    assert conv_stats.summary()["channels"] == 6
    np.testing.assert_allclose(conv_stats.mean, a["conv"].mean(0), rtol=1e-4, atol=1e-5)


def test_std_survives_a_large_offset(tmp_path):
    rng = np.random.default_rng(1)
    x = (1000.0 + 0.01 * rng.normal(size=(300, 8))).astype(np.float32)
    labels = rng.integers(0, 3, 300)
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"a": x}, labels=labels, chunk_rows=64)
    result = naps(store)
    ref = np.stack([x[labels == g].astype(np.float64).std(0) for g in range(3)])
    np.testing.assert_allclose(result.std("a"), ref, rtol=2e-2)


def _align_reference(acts, grads):
    """iNNtrospect's per-sample loop (channels-first): pad, then crop, around the gradient peak."""
    out = np.empty_like(acts)
    for i in range(len(acts)):
        sal = np.abs(grads[i]).mean(0)
        if sal.min() == sal.max():
            out[i] = acts[i]
            continue
        peak = np.array(np.unravel_index(sal.argmax(), sal.shape))
        shift = peak - np.array(sal.shape) // 2
        pads = [(0, 0)] + [(max(-p, 0), max(p, 0)) for p in shift]
        padded = np.pad(acts[i], pads)
        crop = (slice(None),) + tuple(
            slice(max(p, 0), d - max(-p, 0)) for p, d in zip(shift, padded.shape[1:], strict=True)
        )
        out[i] = padded[crop]
    return out


@pytest.mark.parametrize("spatial", [(7, 6), (9,), (3, 4, 5)])
def test_alignment_moves_a_planted_peak_to_the_centre(spatial):
    rng = np.random.default_rng(2)
    n, c = 12, 3
    acts = rng.normal(size=(n, c, *spatial)).astype(np.float32)
    grads = 0.01 * rng.random(size=acts.shape).astype(np.float32)
    peaks = [tuple(rng.integers(0, s) for s in spatial) for _ in range(n)]
    for i, p in enumerate(peaks):
        grads[(i, slice(None), *p)] = 5.0
    grads[0] = 1.0                              # a constant-gradient sample: left as it is
    aligned = align_by_gradient(acts, grads)
    np.testing.assert_array_equal(aligned[0], acts[0])
    centre = tuple(s // 2 for s in spatial)
    for i in range(1, n):
        np.testing.assert_array_equal(aligned[(i, slice(None), *centre)], acts[(i, slice(None), *peaks[i])])
    np.testing.assert_array_equal(aligned, _align_reference(acts, grads))


def test_aligned_naps_are_means_of_aligned_samples(random_store):
    store, a = random_store
    result = naps(store, by="label", align="gradient")
    assert result.aligned == ["conv"]               # the dense layer is left unaligned
    aligned = _align_reference(a["conv"], a["grads"])
    mean, _ = _group_means(aligned.astype(np.float64), a["labels"], range(5))
    np.testing.assert_allclose(result.values("conv"), mean, rtol=1e-5, atol=1e-6)
    # unit statistics describe the raw activations
    np.testing.assert_array_equal(result.statistics("conv").max, a["conv"].max(0))


@pytest.mark.parametrize("weight_by_size", [False, True])
@pytest.mark.parametrize("normalize", [None, "zscore"])
def test_contrastive_naps_sum_to_zero(random_store, weight_by_size, normalize):
    store, a = random_store
    result = naps(store)
    chosen = ["0", "2", "4"]
    contrast = contrastive_naps(result, groups=chosen, weight_by_size=weight_by_size, normalize=normalize)
    assert contrast.groups == chosen and contrast.kind == "contrastive"
    w = np.asarray(contrast.reference["weights"])
    expected_w = result.counts[[0, 2, 4]] / result.counts[[0, 2, 4]].sum() if weight_by_size else np.ones(3) / 3
    np.testing.assert_allclose(w, expected_w)
    for layer in ("conv", "dense"):
        v = contrast.values(layer).astype(np.float64)
        np.testing.assert_allclose(np.tensordot(w, v, 1), 0, atol=1e-5)
        raw = result.values(layer)[[0, 2, 4]].astype(np.float64)
        diff = raw - np.tensordot(w, raw, 1)
        if normalize is None:
            np.testing.assert_allclose(v, diff, rtol=1e-5, atol=1e-6)
        else:
            sd = np.sqrt(np.tensordot(w, diff ** 2, 1))
            np.testing.assert_allclose(v, np.where(sd > 0, diff / np.where(sd > 0, sd, 1), 0), rtol=1e-4, atol=1e-5)
    # the dead unit does not vary across groups: its z-score is 0, not NaN
    if normalize == "zscore":
        assert np.all(contrast.values("dense")[:, 3] == 0)


def test_save_and_load_round_trip(random_store, tmp_path):
    store, _ = random_store
    result = naps(store, by="source", align="gradient")
    back = NAPs.load(result.save(tmp_path / "results" / "naps"))
    assert back.groups == result.groups and back.by == "source" and back.aligned == ["conv"]
    np.testing.assert_array_equal(back.counts, result.counts)
    for layer in result.layers:
        np.testing.assert_array_equal(back.values(layer), result.values(layer))
        np.testing.assert_array_equal(back.std(layer), result.std(layer))
        np.testing.assert_array_equal(back.statistics(layer).active_fraction, result.statistics(layer).active_fraction)
    contrast = contrastive_naps(back)
    again = NAPs.load(contrast.save(tmp_path / "c"))
    assert again.kind == "contrastive" and again.reference == contrast.reference
    assert "<table>" in result._repr_html_()
    assert (tmp_path / "results" / "naps" / "summary.json").exists()


def test_public_names_and_run_folder_path(random_store):
    store, a = random_store
    result = na.naps(store.path, layers=["dense"])
    np.testing.assert_array_equal(result.counts, np.bincount(a["labels"]))
    assert isinstance(na.contrastive_naps(result), NAPs)


def test_bad_input_gets_a_clear_error(random_store, tmp_path):
    store, _ = random_store
    with pytest.raises(AnalysisError, match=r"no such column.*Did you mean 'source'"):
        naps(store, by="sourse")
    with pytest.raises(AnalysisError, match=r"Group '7' has no samples in 'label'.*Groups with samples: 0, 1, 2, 3, 4"):
        naps(store, groups=["1", "7"])
    with pytest.raises(AnalysisError, match=r"spatial or temporal axes.*'dense'.*\(17,\)"):
        naps(store, layers=["conv", "dense"], align="gradient")
    with pytest.raises(AnalysisError, match="align='sideways'"):
        naps(store, align="sideways")
    with pytest.raises(LayerError, match="Did you mean 'conv'"):
        naps(store, layers="cnov")
    with pytest.raises(AnalysisError, match="one value per sample"):
        naps(store, by=np.zeros(3))
    no_grads = ActivationStore.from_arrays(tmp_path / "g.zarr", {"c": np.ones((10, 2, 3, 3), np.float32)},
                                           labels=np.arange(10) % 2)
    with pytest.raises(AnalysisError, match="gradients=True"):
        naps(no_grads, align="gradient")
    with pytest.raises(AnalysisError, match="at least two groups"):
        contrastive_naps(naps(store, layers="dense"), groups=["1"])
    with pytest.raises(AnalysisError, match="already contrastive"):
        contrastive_naps(contrastive_naps(naps(store, layers="dense")))


@pytest.mark.slow  # trains, captures and runs the step end to end
def test_run_folder_heatmaps_default_to_contrastive_sorted_and_gradient_aligned(tmp_path):
    """The heat map shows contrastive NAPs, units sorted by preferred class, conv layers
    aligned by gradient when the store has gradients, and its title says so."""
    import matplotlib.pyplot as plt

    from neuralatlas import steps
    from neuralatlas.plots import nap_heatmap
    from neuralatlas.plots.naps import preferred_order

    rng = np.random.default_rng(5)
    n = 240
    labels = np.repeat(np.arange(4), n // 4)
    dense = rng.normal(size=(n, 20)).astype(np.float32)
    dense[np.arange(n), 5 * labels] += 10.0          # unit 5c answers to class c, on a big common offset
    dense += 50.0
    conv = rng.normal(size=(n, 3, 5, 5)).astype(np.float32)
    run = tmp_path / "run"
    ActivationStore.from_arrays(run / "acts.zarr", {"conv": conv, "fc": dense}, labels=labels,
                                gradients={"conv": rng.normal(size=conv.shape).astype(np.float32)})
    result, _ = steps.naps(run)
    assert result.aligned == ["conv"]
    contrast = contrastive_naps(result)
    values = contrast.values("fc")
    order = preferred_order(values)
    best = values.argmax(0)[order]
    assert np.all(np.diff(best) >= 0)                # blocks by preferred class, in class order
    firsts = order[np.r_[0, np.flatnonzero(np.diff(best)) + 1]]
    assert firsts.tolist() == [0, 5, 10, 15]         # each block led by the class's own strong unit
    fig = nap_heatmap(contrast, "fc")
    ax = fig.axes[0]
    assert "contrastive NAP" in ax.get_title() and "sorted by preferred label" in ax.get_xlabel()
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown[:, 0], contrast.values("fc")[:, 0], rtol=1e-6)
    assert "gradient-aligned" in nap_heatmap(contrast, "conv").axes[0].get_title()
    assert (run / "figures" / "naps" / "fc_heatmap.png").exists()
    # without gradients there is nothing to align; an explicit None is respected
    assert steps.auto_alignment(ActivationStore.from_arrays(tmp_path / "b.zarr", {"conv": conv}, labels=labels)) is None
    assert steps.naps(run, align=None, figures=False)[0].aligned == []
    with pytest.raises(AnalysisError, match="heatmap="):
        steps.naps(run, heatmap="stripes")
    plt.close("all")


# ---------------------------------------------------------------------------- pieces, threads
@pytest.mark.parametrize("groups", [3, 100], ids=["float32-scratch", "float64-direct"])
def test_naps_in_cache_sized_pieces_equal_float64_with_and_without_the_reader_thread(tmp_path, monkeypatch,
                                                                                     groups):
    """Rows of 16 KiB, 384-row chunks: the pass reads 64-row pieces of a chunk (1 MiB), the
    kernel's float32 scratch emptied after each piece; a large common offset exercises the shift."""
    from neuralatlas.analysis import _kernels

    if _kernels.moments_into is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(5)
    n = 1000
    x = (50.0 + rng.normal(size=(n, 16, 16, 16))).astype(np.float32)   # 4,096 units
    x[:, 0] = np.maximum(x[:, 0] - 50.0, 0)                              # some inactive values
    labels = rng.integers(0, groups, n)
    labels[:groups] = np.arange(groups)
    store = ActivationStore.from_arrays(tmp_path / "p.zarr", {"big": x}, labels=labels, chunk_rows=384)
    x64 = x.reshape(n, -1).astype(np.float64)
    order = np.unique(labels)
    mean = np.stack([x64[labels == g].mean(0) for g in order])
    std = np.stack([x64[labels == g].std(0) for g in order])
    results = {}
    for mode in ("sync", "thread"):
        monkeypatch.setenv("NEURALATLAS_PREFETCH", mode)
        results[mode] = r = naps(store)
        np.testing.assert_allclose(r.values("big").reshape(len(order), -1), mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(r.std("big").reshape(len(order), -1), std, rtol=1e-4, atol=1e-6)
        s = r.statistics("big")
        np.testing.assert_array_equal(s.max.reshape(-1), x64.max(0).astype(np.float32))
        np.testing.assert_array_equal(s.min.reshape(-1), x64.min(0).astype(np.float32))
        np.testing.assert_allclose(s.active_fraction.reshape(-1), (x64 > 0).mean(0))
        np.testing.assert_allclose(s.mean.reshape(-1), x64.mean(0), rtol=1e-6)
    # the thread reads the same pieces: the same sums to the bit
    np.testing.assert_array_equal(results["sync"].values("big"), results["thread"].values("big"))
    np.testing.assert_array_equal(results["sync"].std("big"), results["thread"].std("big"))


def test_the_kernel_scratch_carries_across_calls_and_flushes(monkeypatch):
    """moments_into on pieces, flushed only at the end, equals one call on the whole block."""
    from neuralatlas.analysis import _kernels

    if _kernels.moments_into is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(700, 33)).astype(np.float32)
    codes = rng.integers(-1, 4, 700)               # -1: rows in no group (the total is kept apart)
    g, u = 4, 33

    def fresh():
        return (np.zeros((g, u)), np.zeros((g, u)), np.full(u, -np.inf, np.float32), np.full(u, np.inf, np.float32),
                np.zeros(u, np.int64), np.zeros(u))

    whole = fresh()
    _kernels.grouped_moments(x, x, codes, np.zeros(u), *whole, np.float32(0.1), True, True, True)
    parts = fresh()
    scratch = (np.zeros((g, u), np.float32), np.zeros((g, u), np.float32), np.zeros(u, np.float32),
               np.zeros(u, np.int32), np.zeros(g, np.bool_), np.zeros(1, np.int64))
    for lo in range(0, 700, 90):
        _kernels.moments_into(x[lo:lo + 90], x[lo:lo + 90], codes[lo:lo + 90], np.zeros(u, np.float32), *parts,
                              np.float32(0.1), True, True, True, *scratch, False)
    assert 0 < scratch[5][0] < _kernels.FLUSH_ROWS and scratch[0].any()  # rows still in the scratch
    _kernels.flush_moments(parts[0], parts[1], parts[4], parts[5], *scratch, True, True, True)
    assert not scratch[0].any() and scratch[5][0] == 0
    x64 = x.astype(np.float64)
    for k in range(g):
        np.testing.assert_allclose(parts[0][k], x64[codes == k].sum(0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(parts[1][k], (x64[codes == k] ** 2).sum(0), rtol=1e-5, atol=1e-4)
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(parts[4], (x > 0.1).sum(0))
    np.testing.assert_allclose(parts[5], x64.sum(0), rtol=1e-5, atol=1e-4)


def test_the_prefetch_choice(monkeypatch):
    from neuralatlas.analysis.streaming import prefetch_reads

    monkeypatch.setenv("NEURALATLAS_PREFETCH", "thread")
    assert prefetch_reads() is True
    monkeypatch.setenv("NEURALATLAS_PREFETCH", "sync")
    assert prefetch_reads() is False
    monkeypatch.delenv("NEURALATLAS_PREFETCH")
    monkeypatch.setattr("os.getloadavg", lambda: (50.0, 50.0, 50.0))
    assert prefetch_reads() is False               # no idle core: no reader thread
