"""Similarity: CKA invariants, streamed = Gram form = in-memory, RSA, probes, results, figures, CLI, errors."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

import neuralatlas as na
from neuralatlas.analysis.similarity import (
    SimilarityResult,
    SimilarityWarning,
    cka_matrix,
    default_memory_limit,
    epoch_cka_matrix,
    linear_cka,
    linear_probes,
    rbf_cka,
    rdm,
    rsa,
    rsa_matrix,
    run_similarity,
    save_figures,
    similarity,
)
from neuralatlas.analysis.streaming import parse_memory_limit
from neuralatlas.errors import AnalysisError, LayerError, StoreError
from neuralatlas.store import ActivationStore


# ---------------------------------------------------------------------------- references
def gram_cka(x, y):
    """Centred HSIC with n×n Grams, written plainly: the definition, not our streamed form."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_))


def rbf_gram_cka(x, y, threshold=1.0):
    def kernel(a):
        d2 = np.square(a[:, None, :] - a[None, :, :]).sum(-1)
        sigma2 = np.median(d2[np.triu_indices(len(a), 1)]) * threshold**2
        return np.exp(-d2 / (2 * sigma2))

    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ kernel(x) @ h, h @ kernel(y) @ h
    return np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_))


def feature_cka(x, y):
    """The in-memory feature-space form."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _relu_pair(rng, n=240, dx=20, dy=30):
    x = rng.normal(size=(n, dx))
    y = np.maximum(x @ rng.normal(size=(dx, dy)), 0) + 0.5 * rng.normal(size=(n, dy))
    return x, y


@pytest.fixture(scope="module")
def layered_store(tmp_path_factory):
    """Three layers (one conv-shaped) of 300 samples, 16 rows per chunk, and their arrays."""
    tmp_path = tmp_path_factory.mktemp("layered")
    rng = np.random.default_rng(1)
    n = 300
    a = rng.normal(size=(n, 40)).astype(np.float32)
    b = np.maximum(a @ rng.normal(size=(40, 36)), 0).astype(np.float32)
    c = (b @ rng.normal(size=(36, 4 * 3 * 3))).reshape(n, 4, 3, 3).astype(np.float32) + 5.0
    labels = np.arange(n) % 3
    epochs = {e: {"a": a, "b": (b + e * rng.normal(size=b.shape)).astype(np.float32), "c": c} for e in range(4)}
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"a": a, "b": b, "c": c}, labels=labels,
                                        epoch_activations=epochs, chunk_rows=16)
    return store, {"a": a, "b": b, "c": c}, epochs


# ---------------------------------------------------------------------------- CKA invariants
def test_cka_of_a_representation_with_itself_is_one():
    x, y = _relu_pair(np.random.default_rng(0))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(y, y, rows=7) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(y, y) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transforms_isotropic_scaling_and_shifts():
    rng = np.random.default_rng(0)
    x, y = _relu_pair(rng)
    q = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(7.5 * x + 3.0, y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, x @ q * 0.01) == pytest.approx(1.0, abs=1e-12)
    # RBF CKA with a median-distance bandwidth is invariant to these too
    assert rbf_cka(x @ q * 4.0 + 1.0, y) == pytest.approx(rbf_cka(x, y), abs=1e-10)
    # ...but not to scaling single features: the invariance tests are not vacuous
    assert linear_cka(x * np.linspace(0.1, 10, 20), x) < 0.95


def test_streamed_feature_form_equals_the_gram_form_and_the_in_memory_form():
    x, y = _relu_pair(np.random.default_rng(2))
    expected = gram_cka(x, y)
    assert 0.2 < expected < 0.95
    assert linear_cka(x, y, method="feature", rows=13) == pytest.approx(expected, rel=1e-10)
    assert linear_cka(x, y, method="gram") == pytest.approx(expected, rel=1e-10)
    assert linear_cka(x, y) == pytest.approx(feature_cka(x, y), rel=1e-10)
    assert rbf_cka(x, y) == pytest.approx(rbf_gram_cka(x, y), rel=1e-10)
    assert rbf_cka(x, y, threshold=0.5) == pytest.approx(rbf_gram_cka(x, y, 0.5), rel=1e-10)


def test_centring_survives_a_large_offset():
    # activations far from zero: an uncentred sum of squares would cancel catastrophically
    x, y = _relu_pair(np.random.default_rng(3))
    assert linear_cka(x + 1e4, y - 3e3, rows=11) == pytest.approx(feature_cka(x, y), rel=1e-8)


def test_streamed_store_matrix_equals_the_in_memory_result(layered_store):
    store, arrays, _ = layered_store
    names = list(arrays)
    expected = np.array([[feature_cka(arrays[r], arrays[c]) for c in names] for r in names])
    m = cka_matrix(store, method="feature", rows=16)
    assert m.method == "feature" and m.rows == names == m.cols
    np.testing.assert_allclose(m.values, expected, rtol=1e-9)
    # a budget too small for one pass: layers split into groups, blocks of a few rows
    small = cka_matrix(store, method="feature", memory_limit=40_000)
    np.testing.assert_allclose(small.values, expected, rtol=1e-9)
    # auto picks the exact Gram form here or not; the value is the same
    np.testing.assert_allclose(cka_matrix(store).values, expected, rtol=1e-9)
    assert m["a", "b"] == pytest.approx(expected[0, 1])


def test_pooling_conv_maps(layered_store):
    store, arrays, _ = layered_store
    pooled = arrays["c"].reshape(300, 4, -1).mean(-1)
    m = cka_matrix(store, ["a", "c"], pool="mean", method="feature", rows=32)
    assert m.values[0, 1] == pytest.approx(feature_cka(arrays["a"], pooled), rel=1e-9)
    assert linear_cka(arrays["c"], pooled, pool="max") == pytest.approx(
        feature_cka(arrays["c"].reshape(300, 4, -1).max(-1), pooled), rel=1e-9)


def test_too_wide_layers_fall_back_to_the_gram_form(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 500)).astype(np.float32)
    y = np.tanh(x[:, :30] @ rng.normal(size=(30, 20))).astype(np.float32)
    store = ActivationStore.from_arrays(tmp_path / "w.zarr", {"x": x, "y": y}, chunk_rows=8)
    # d×d of x (2 MB) exceeds the budget but the n×n Grams fit: the exact Gram form
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimilarityWarning)
        m = cka_matrix(store, memory_limit=1_000_000)
    assert m.method == "gram" and not m.notes
    assert m.values[0, 1] == pytest.approx(gram_cka(x, y), rel=1e-6)
    # neither fits: a seeded subsample, said so in a warning and in the notes
    with pytest.warns(SimilarityWarning, match="subsample|of 60 samples"):
        est = cka_matrix(store, memory_limit=100_000, n_samples=40, seed=1)
    assert "gram-subsample" in est.method and est.notes
    assert 0 < est.values[0, 1] <= 1
    with pytest.warns(SimilarityWarning):
        again = cka_matrix(store, memory_limit=100_000, n_samples=40, seed=1)
    np.testing.assert_array_equal(est.values, again.values)


def test_epoch_matrix(layered_store):
    store, _, epochs = layered_store
    m = epoch_cka_matrix(store, "b", method="feature", rows=64)
    assert m.rows == [f"epoch {e}" for e in range(4)]
    expected = np.array([[feature_cka(epochs[i]["b"], epochs[j]["b"]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(m.values, expected, rtol=1e-9)
    np.testing.assert_allclose(np.diag(m.values), 1.0)
    assert m.values[0, 3] < m.values[0, 1] < 1.0  # more noise, further from epoch 0
    np.testing.assert_allclose(epoch_cka_matrix(store, "a", [0, 2]).values, 1.0)


def test_model_vs_model(tmp_path, layered_store):
    store, arrays, _ = layered_store
    rng = np.random.default_rng(5)
    other_arrays = {"p": (arrays["a"] @ rng.normal(size=(40, 8))).astype(np.float32),
                    "q": rng.normal(size=(300, 5)).astype(np.float32)}
    other = ActivationStore.from_arrays(tmp_path / "o.zarr", other_arrays, chunk_rows=50)
    m = cka_matrix(store, ["a", "b"], other=other, method="feature")
    assert (m.rows, m.cols) == (["a", "b"], ["p", "q"])
    expected = [[feature_cka(arrays[r], other_arrays[c]) for c in "pq"] for r in "ab"]
    np.testing.assert_allclose(m.values, expected, rtol=1e-9)
    r = rsa_matrix(store, ["a"], other=other)
    assert r.values.shape == (1, 2) and r.values[0, 0] > r.values[0, 1]


def test_stores_of_different_samples_are_refused(tmp_path, layered_store):
    store, arrays, _ = layered_store
    shuffled = ActivationStore.from_arrays(tmp_path / "x.zarr", {"a": arrays["a"]}, index=np.arange(300)[::-1])
    with pytest.raises(AnalysisError, match="different samples.*first at row 0"):
        cka_matrix(store, other=shuffled)
    shorter = ActivationStore.from_arrays(tmp_path / "y.zarr", {"a": arrays["a"][:200]})
    with pytest.raises(AnalysisError, match="300.*200"):
        similarity(store, other=shorter)
    with pytest.raises(AnalysisError, match="sample counts differ"):
        linear_cka(arrays["a"], arrays["b"][:10])


def test_bad_input_gets_a_clear_error(layered_store):
    store, arrays, _ = layered_store
    with pytest.raises(LayerError, match="'bb'.*Did you mean 'b'.*Layers stored: a, b, c"):
        cka_matrix(store, ["a", "bb"])
    with pytest.raises(LayerError, match="'zz'"):
        linear_probes(store, "zz")
    with pytest.raises(StoreError, match="Epoch.*9.*epochs captured: 0, 1, 2, 3"):
        epoch_cka_matrix(store, "a", [0, 9])
    with pytest.raises(AnalysisError, match="pool='avg'.*'mean'"):
        cka_matrix(store, pool="avg")
    with pytest.raises(AnalysisError, match="method='fast'"):
        linear_cka(arrays["a"], arrays["b"], method="fast")
    with pytest.raises(AnalysisError, match="metric='manhattan'"):
        rsa(arrays["a"], arrays["b"], metric="manhattan")
    with pytest.raises(AnalysisError, match="memory_limit='lots'"):
        linear_cka(arrays["a"], arrays["b"], memory_limit="lots")
    with pytest.raises(AnalysisError, match="shape"):
        linear_cka(np.zeros(5), np.zeros(5))


def test_memory_limit():
    assert (parse_memory_limit("2GB") == 2 * 10**9 and parse_memory_limit("512MiB") == 512 * 2**20
            and parse_memory_limit(1000) == 1000)
    assert 64 * 2**20 <= default_memory_limit() <= 4 * 2**30


# ---------------------------------------------------------------------------- RSA
def test_rsa_of_identical_representations_is_one_and_matches_scipy():
    x, y = _relu_pair(np.random.default_rng(6), n=120)
    assert rsa(x, x) == pytest.approx(1.0, abs=1e-12)
    assert rsa(x, 3 * x + 2) == pytest.approx(1.0, abs=1e-12)   # correlation distance ignores affine maps
    np.testing.assert_allclose(rdm(x), pdist(x, "correlation"))
    expected = spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic
    assert rsa(x, y) == pytest.approx(expected, rel=1e-10)
    assert rsa(x, y, metric="euclidean") == pytest.approx(
        spearmanr(pdist(x), pdist(y)).statistic, rel=1e-10)
    # a seeded subsample: same seed, same value
    assert rsa(x, y, n_samples=50, seed=3) == rsa(x, y, n_samples=50, seed=3)


def test_rsa_matrix(layered_store):
    store, arrays, _ = layered_store
    m = rsa_matrix(store)
    np.testing.assert_allclose(np.diag(m.values), 1.0)
    np.testing.assert_allclose(m.values, m.values.T)
    assert m.values[0, 1] == pytest.approx(rsa(arrays["a"], arrays["b"]), rel=1e-10)


# ---------------------------------------------------------------------------- probes
def test_probe_accuracy_rises_with_depth(trained_mlp_run):
    store = trained_mlp_run.store
    assert {"flatten", "relu1", "relu2"} <= set(store.layers)
    probes = linear_probes(store, seed=0)
    assert probes.layers == store.layers
    hidden = [probes[layer] for layer in ("fc1", "relu1", "fc2", "relu2")]
    # the first hidden layer reads out the digit better than the pixels do, and so do the
    # hidden layers on average (digits' pixels are already ~93% linearly separable)
    assert probes["relu1"] > probes["flatten"]
    assert np.mean(hidden) > probes["flatten"]
    assert probes.chance < 0.2 < probes["flatten"]
    again = linear_probes(store, seed=0)
    np.testing.assert_array_equal(again.accuracy, probes.accuracy)


def test_probe_errors_and_pca(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 300)).astype(np.float32)
    labels = np.repeat([0, 1], 30)
    x[labels == 1, :20] += 3.0  # a direction of large variance: PCA keeps it
    store = ActivationStore.from_arrays(tmp_path / "p.zarr", {"wide": x}, labels=labels)
    probes = linear_probes(store, max_features=20, cv=3)
    assert probes.n_components == [20] and probes["wide"] > 0.8
    with pytest.raises(AnalysisError, match="only 2 samples.*cv=5"):
        linear_probes(store, labels=np.r_[np.zeros(58, int), 1, 1])
    unlabelled = ActivationStore.from_arrays(tmp_path / "u.zarr", {"wide": x})
    with pytest.raises(AnalysisError, match="no labels"):
        linear_probes(unlabelled)


# ---------------------------------------------------------------------------- results, figures, CLI
def test_similarity_result_save_load_figures(trained_mlp_run, tmp_path):
    import matplotlib.pyplot as plt

    from neuralatlas.plots.similarity import similarity_figures

    result = similarity(trained_mlp_run.store, other=trained_mlp_run.store, rbf=True, n_samples=300)
    layers = trained_mlp_run.store.layers
    assert set(result.matrices) >= {"linear_cka", "rbf_cka", "rsa", "linear_cka_vs_other", "rsa_vs_other"}
    assert set(result.epoch_matrices) == set(layers)
    np.testing.assert_allclose(np.diag(result.matrices["linear_cka_vs_other"].values), 1.0)
    result.save(tmp_path / "res")
    loaded = SimilarityResult.load(tmp_path / "res")
    for key, m in result.matrices.items():
        np.testing.assert_array_equal(loaded.matrices[key].values, m.values)
        assert loaded.matrices[key].rows == m.rows and loaded.matrices[key].method == m.method
    np.testing.assert_array_equal(loaded.probes.accuracy, result.probes.accuracy)
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["n_samples"] == trained_mlp_run.store.n_samples
    assert set(summary["probe_accuracy"]) == set(layers)
    assert summary["cka_first_vs_last_epoch"]["flatten"] == pytest.approx(1.0)  # the input never trains
    figs = similarity_figures(loaded)
    assert set(figs) == {"layer_cka", "layer_rbf_cka", "layer_rsa", "cka_vs_other", "rsa_vs_other",
                         "epoch_cka", "probes"}
    ticks = [t.get_text() for t in figs["layer_cka"].axes[0].get_xticklabels()]
    assert ticks == layers
    for fig in figs.values():
        plt.close(fig)
    assert "linear_cka" in result._repr_html_()
    with pytest.raises(AnalysisError, match="No similarity results"):
        SimilarityResult.load(tmp_path / "nothing")


def test_pipeline_step(trained_mlp_run, tmp_path):
    def folder(kind):
        def make(name):
            path = tmp_path / kind / name
            path.mkdir(parents=True, exist_ok=True)
            return path
        return make

    ctx = SimpleNamespace(store=trained_mlp_run.store, results_dir=folder("results"), figures_dir=folder("figures"))
    calls = []
    summary = run_similarity(ctx, {"rbf": False, "epochs": None, "layers": ["flatten", "relu1", "out"]},
                             SimpleNamespace(progress=lambda d, t: calls.append((d, t))))
    assert set(summary["probe_accuracy"]) == {"flatten", "relu1", "out"}
    assert (tmp_path / "results" / "similarity" / "summary.json").exists()
    assert (tmp_path / "figures" / "similarity" / "layer_cka.png").exists()
    assert calls and calls[-1][0] == calls[-1][1]
    json.dumps(summary)
    with pytest.raises(AnalysisError, match="'rbff'.*Did you mean 'rbf'"):
        run_similarity(ctx, {"rbff": False})


@pytest.mark.slow  # the CLI end to end (test_pipeline_step runs the same step in the loop)
def test_cli(trained_mlp_run, tmp_path):
    from typer.testing import CliRunner

    from neuralatlas.cli import app

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "acts.zarr").symlink_to(trained_mlp_run.store.path)
    result = CliRunner().invoke(app, ["similarity", str(run_dir), "--no-rbf", "--no-epochs", "-l", "relu*"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "results" / "similarity" / "summary.json").exists()
    assert (run_dir / "figures" / "similarity" / "probes.pdf").exists()
    bad = CliRunner().invoke(app, ["similarity", str(run_dir), "-l", "relu9"])
    assert bad.exit_code == 1 and "relu9" in bad.output


def test_public_names():
    assert na.linear_cka is linear_cka and na.similarity is similarity
    assert callable(na.cka_matrix) and callable(na.rsa) and callable(na.linear_probes)
    assert save_figures is not None


def _reference_debiased_cka(x, y):
    """Kornblith et al.'s feature-space debiased linear CKA, written out from the paper's
    formula (an independent derivation from the Gram U-centring the library uses)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    n = len(x)

    def debiased_dot(xty, rx, ry, nx, ny):
        return xty - n / (n - 2.0) * rx.dot(ry) + nx * ny / ((n - 1) * (n - 2))

    rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    hsic = debiased_dot(np.linalg.norm(x.T @ y) ** 2, rx, ry, rx.sum(), ry.sum())
    norm_x = np.sqrt(debiased_dot(np.linalg.norm(x.T @ x) ** 2, rx, rx, rx.sum(), rx.sum()))
    norm_y = np.sqrt(debiased_dot(np.linalg.norm(y.T @ y) ** 2, ry, ry, ry.sum(), ry.sum()))
    return hsic / (norm_x * norm_y)


def test_debiased_cka_equals_kornblith_and_removes_the_bias_of_wide_layers(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(60, 200))
    y = rng.normal(size=(60, 150))                     # independent of x, far more features than samples
    related = x[:, :50] @ rng.normal(size=(50, 40)) + 0.5 * rng.normal(size=(60, 40))
    for other in (y, related):
        assert na.linear_cka(x, other, debiased=True) == pytest.approx(_reference_debiased_cka(x, other), abs=1e-10)
    biased, debiased = na.linear_cka(x, y), na.linear_cka(x, y, debiased=True)
    assert biased > 0.5 and abs(debiased) < 0.1          # the bias is gone, the relation is kept
    assert na.linear_cka(x, related, debiased=True) > 0.3
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"x": x.astype(np.float32), "y": y.astype(np.float32)},
                                        labels=np.arange(60) % 3)
    m = na.cka_matrix(store, debiased=True)
    assert m.measure == "debiased_linear_cka" and "debiased" in m.title
    assert m["x", "y"] == pytest.approx(_reference_debiased_cka(x.astype(np.float32).astype(np.float64),
                                                               y.astype(np.float32).astype(np.float64)), abs=1e-6)
    assert m["x", "x"] == pytest.approx(1.0)


def test_similarity_offers_debiased_cka_beside_the_biased_one(tmp_path):
    from neuralatlas.plots.similarity import similarity_figures

    rng = np.random.default_rng(12)
    a = rng.normal(size=(50, 80)).astype(np.float32)
    store = ActivationStore.from_arrays(
        tmp_path / "s.zarr", {"a": a, "b": a @ rng.normal(size=(80, 30)).astype(np.float32)}, labels=np.arange(50) % 2
    )
    result = na.similarity(store, rbf=False, rsa=False, probes=False, debiased=True)
    assert set(result.matrices) == {"linear_cka", "debiased_linear_cka"}
    assert result.matrices["debiased_linear_cka"]["a", "b"] < result.matrices["linear_cka"]["a", "b"]
    assert "layer_debiased_cka" in similarity_figures(result)


def _token_rows(tmp_path, n_sentences=60, per_sentence=8, dim=80, seed=3):
    """Token rows whose only structure is the sentence: each sentence a random vector shared
    by its tokens (plus a little noise), each sentence a random class."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(n_sentences, dim)) * 3
    sentence = np.repeat(np.arange(n_sentences), per_sentence)
    x = (centre[sentence] + 0.1 * rng.normal(size=(len(sentence), dim))).astype(np.float32)
    topic = rng.integers(0, 2, n_sentences)[sentence]
    position = np.tile(np.arange(per_sentence), n_sentences)
    store = ActivationStore.from_arrays(tmp_path / "tok.zarr", {"h": x}, labels=topic,
                                        columns={"sample": sentence, "position": position})
    return store, x, topic, sentence


def test_probes_on_token_rows_keep_each_sentence_in_one_fold(tmp_path):
    store, x, topic, _ = _token_rows(tmp_path)
    probes = linear_probes(store, cv=5)
    # a class given per sentence at random cannot be read out of tokens of unseen sentences;
    # folds that split sentences let the probe recognise them (accuracy near 1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    leaky = cross_val_score(LogisticRegression(max_iter=2000), x, topic,
                            cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert leaky > 0.9
    assert probes["h"] < 0.75


def test_probes_by_position_leave_out_rare_positions_with_a_warning(tmp_path):
    store, x, _, sentence = _token_rows(tmp_path)
    position = store.samples["position"].to_numpy().copy()
    position[position == 7] = np.where(np.arange((position == 7).sum()) < 3, 7, 6)  # only 3 rows at 7
    x[position == 3] += 5.0  # position 3 is easy to read out
    store = ActivationStore.from_arrays(tmp_path / "pos.zarr", {"h": x}, labels=position,
                                        columns={"sample": sentence, "position": position})
    with pytest.warns(SimilarityWarning, match="leave out 1 of 8 classes.*7"):
        probes = linear_probes(store, labels=store.samples["position"])
    assert probes.n_samples == len(position) - 3
    counts = np.bincount(position[position != 7])
    assert probes.chance == pytest.approx(counts.max() / counts.sum())
