"""Projections of hidden activity (Rauber et al. 2017): subsets, alignment, sequences, neuron maps."""

from __future__ import annotations

import numpy as np
import pytest

from neuralatlas.analysis.projection import (
    Projection,
    bundle_trails,
    embed,
    layer_matrix,
    neuron_projection,
    procrustes_align,
    project,
    smooth_trails,
    stratified_subset,
    tsne_settings,
)
from neuralatlas.errors import AnalysisError, LayerError, StoreError
from neuralatlas.store import ActivationStore

N, CLASSES = 240, 4


def _acts(rng: np.random.Generator, labels: np.ndarray, d: int, sep: float) -> np.ndarray:
    centres = rng.normal(size=(CLASSES, d)) * sep
    return (centres[labels] + rng.normal(size=(len(labels), d))).astype(np.float32)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    # unbalanced classes, shuffled, so stratification has work to do
    return np.random.default_rng(1).permutation(np.repeat(np.arange(CLASSES), [90, 70, 50, 30]))


@pytest.fixture(scope="module")
def epoch_store(tmp_path_factory, labels) -> ActivationStore:
    """Two layers and a conv layer at epochs 0..2, classes separating with depth and training."""
    rng = np.random.default_rng(0)
    per_epoch = {e: {"a": _acts(rng, labels, 20, 0.5 + e), "b": _acts(rng, labels, 10, 1.0 + 2 * e),
                     "conv": rng.normal(size=(N, 5, 3, 3)).astype(np.float32)} for e in range(3)}
    return ActivationStore.from_arrays(tmp_path_factory.mktemp("proj") / "acts.zarr", {}, labels,
                                       epoch_activations=per_epoch, predictions=labels, chunk_rows=64)


@pytest.fixture(scope="module")
def final_store(tmp_path_factory, labels) -> ActivationStore:
    rng = np.random.default_rng(2)
    return ActivationStore.from_arrays(tmp_path_factory.mktemp("final") / "acts.zarr",
                                       {"a": _acts(rng, labels, 16, 1.0), "b": _acts(rng, labels, 8, 3.0)},
                                       labels, chunk_rows=50)


# ---------------------------------------------------------------------------- subsets
def test_stratified_subset_keeps_class_shares_and_is_seeded(labels):
    rows = stratified_subset(labels, 100, seed=3)
    assert len(rows) == 100 and len(np.unique(rows)) == 100 and np.all(np.diff(rows) > 0)
    counts = np.bincount(labels[rows], minlength=CLASSES)
    expected = np.bincount(labels) * 100 / N
    assert np.all(np.abs(counts - expected) < 1)               # largest-remainder rounding
    np.testing.assert_array_equal(rows, stratified_subset(labels, 100, seed=3))
    assert not np.array_equal(rows, stratified_subset(labels, 100, seed=4))
    np.testing.assert_array_equal(stratified_subset(labels, N, seed=0), np.arange(N))


def test_subset_is_identical_across_layers_and_epochs(epoch_store, labels):
    res = project(epoch_store, layers=["a", "b"], epochs="all", method="pca", n_samples=120, seed=5, align=False)
    np.testing.assert_array_equal(res.rows, stratified_subset(labels, 120, seed=5))
    np.testing.assert_array_equal(res.labels, labels[res.rows])
    # each embedding is the PCA of exactly those rows of its own (layer, epoch)
    for (layer, epoch), coords in res.coordinates.items():
        x = np.asarray(epoch_store.activations(layer, epoch))[res.rows]
        direct = embed(x, "pca", seed=5)
        np.testing.assert_allclose(procrustes_align(coords, direct), direct, atol=1e-4)   # float32 data
    # another call with other layers draws the very same samples
    other = project(epoch_store, layers=["b"], epochs=[1], method="pca", n_samples=120, seed=5)
    np.testing.assert_array_equal(other.rows, res.rows)
    np.testing.assert_allclose(other["b", 1], res["b", 1] - res["b", 1].mean(0), atol=1e-6)


# ---------------------------------------------------------------------------- alignment
def test_procrustes_recovers_rotation_reflection_and_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(80, 2))
    theta = 0.7
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    reflection = np.array([[1.0, 0.0], [0.0, -1.0]])
    moved = ref @ rotation @ reflection + np.array([5.0, -3.0])
    np.testing.assert_allclose(procrustes_align(moved, ref), ref, atol=1e-10)
    # with a scale change, scale=True undoes it too; distances are kept otherwise
    np.testing.assert_allclose(procrustes_align(2.5 * moved, ref, scale=True), ref, atol=1e-10)
    kept = procrustes_align(2.5 * moved, ref)
    assert np.linalg.norm(kept[0] - kept[1]) == pytest.approx(2.5 * np.linalg.norm(ref[0] - ref[1]))


def test_aligned_sequence_follows_a_reflected_layer(final_store, labels, tmp_path):
    # layer "b" is layer "a" reflected and rotated: aligned, the two pictures coincide
    a = np.asarray(final_store.activations("a"))
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 16)))
    q[:, 0] *= -1
    res = project({"a": a, "b": a @ q}, labels=labels, method="pca", n_samples=None)
    np.testing.assert_allclose(res["b"], res["a"], atol=1e-6)
    independent = project({"a": a, "b": a @ q}, labels=labels, method="pca", n_samples=None, align=False)
    assert np.abs(independent["b"] - independent["a"]).max() > 1e-3


@pytest.mark.slow  # two full t-SNE sequences
def test_tsne_sequence_same_seed_same_coordinates(final_store):
    kwargs = dict(layers=["a", "b"], method="tsne", n_samples=100, seed=7, n_jobs=1)
    one, two = project(final_store, **kwargs), project(final_store, **kwargs)
    for key in one.coordinates:
        np.testing.assert_array_equal(one.coordinates[key], two.coordinates[key])
    other = project(final_store, **{**kwargs, "seed": 8})
    assert not np.array_equal(other["a"], one["a"])
    assert one.quality["b", None]["neighborhood_hit"] > 0.9        # well-separated classes
    assert 0.5 < one.quality["a", None]["trustworthiness"] <= 1.0
    assert one.params["tsne"]["negative_gradient_method"] == "bh"


@pytest.mark.slow
def test_umap_sequence_is_seeded_and_aligned(final_store):
    kwargs = dict(layers=["a", "b"], method="umap", n_samples=80, seed=0)
    one, two = project(final_store, **kwargs), project(final_store, **kwargs)
    np.testing.assert_array_equal(one["b"], two["b"])
    assert one.quality["b", None]["neighborhood_hit"] > 0.9


def test_tsne_settings_pick_the_gradient_method_by_size():
    assert tsne_settings(2000)["negative_gradient_method"] == "bh"
    assert tsne_settings(10000)["negative_gradient_method"] == "fft"
    assert tsne_settings(2000, warm=True)["early_exaggeration_iter"] < tsne_settings(2000)["early_exaggeration_iter"]


# ---------------------------------------------------------------------------- inputs and results
def test_raw_input_pseudo_layer_and_conv_flattening(final_store, labels):
    raw = np.random.default_rng(3).normal(size=(N, 1, 4, 4)).astype(np.float32)
    res = project(final_store, layers=["input", "b"], method="pca", inputs=raw, n_samples=60)
    assert res.layers == ["input", "b"]
    assert res["input"].shape == (60, 2)
    with pytest.raises(AnalysisError, match="inputs has 10 rows but the store holds 240"):
        project(final_store, inputs=raw[:10], method="pca")
    assert layer_matrix(final_store, "input", inputs=raw).shape == (N, 16)


def test_glob_layers_and_final_epoch_of_a_per_epoch_store(epoch_store):
    res = project(epoch_store, layers="[ab]", method="pca", n_samples=50)
    assert res.layers == ["a", "b"] and res.epochs == [2]            # final = last captured epoch
    assert set(res.predictions) == {2}


def test_save_and_load_round_trip(epoch_store, tmp_path):
    res = project(epoch_store, layers=["a", "b"], epochs=[0, 2], method="pca", n_samples=80)
    res.save(tmp_path / "results" / "projection")
    back = Projection.load(tmp_path)                                  # a run folder works too
    assert back.layers == res.layers and back.epochs == res.epochs and back.method == "pca"
    for key in res.coordinates:
        np.testing.assert_array_equal(back.coordinates[key], res.coordinates[key])
        assert back.quality[key] == pytest.approx(res.quality[key])
    np.testing.assert_array_equal(back.rows, res.rows)
    np.testing.assert_array_equal(back.prediction(2), res.prediction(2))
    assert (tmp_path / "results" / "projection" / "summary.json").exists()
    assert "neighborhood_hit" in res.quality_table() and "<table" in res._repr_html_()


def test_bad_input_gets_clear_errors(epoch_store, final_store):
    with pytest.raises(LayerError, match=r"'fc9' is not in .*Layers available: a, b, conv"):
        project(epoch_store, layers=["fc9"], method="pca")
    with pytest.raises(AnalysisError, match="n=500 samples asked for, but .* holds only 240"):
        project(epoch_store, layers=["a"], method="pca", n_samples=500)
    with pytest.raises(StoreError, match="no per-epoch activations.*checkpoints=RUN_DIR"):
        project(final_store, epochs="all", method="pca")
    with pytest.raises(StoreError, match=r"Epoch\(s\) \[7\] not in .*epochs captured: 0, 1, 2"):
        project(epoch_store, epochs=[7], method="pca")
    with pytest.raises(AnalysisError, match="method='mds' is not known"):
        project(epoch_store, method="mds")
    res = project(final_store, layers=["a"], method="pca", n_samples=50)
    with pytest.raises(StoreError, match="inter-epoch sequence needs two or more"):
        res.sequence("epochs", layer="a")
    with pytest.raises(AnalysisError, match="need labels"):
        project({"a": np.zeros((10, 3))})


# ---------------------------------------------------------------------------- trails
def test_smooth_trails_pass_through_positions_without_overshoot():
    anchors = np.random.default_rng(0).normal(size=(30, 4, 2))
    paths = smooth_trails(anchors, 6)
    assert paths.shape == (30, 19, 2)
    np.testing.assert_allclose(paths[:, ::6], anchors)
    # monotone cubic: between two positions a coordinate stays within their range
    seg = paths[:, 0:7]
    lo = np.minimum(anchors[:, 0], anchors[:, 1])[:, None] - 1e-12
    hi = np.maximum(anchors[:, 0], anchors[:, 1])[:, None] + 1e-12
    assert np.all((seg >= lo) & (seg <= hi))


def test_bundling_pulls_parallel_trails_together_and_keeps_positions():
    rng = np.random.default_rng(0)
    n = 200
    start = np.c_[np.zeros(n), rng.uniform(-1, 1, n)]
    end = np.c_[np.full(n, 10.0), rng.uniform(-1, 1, n)]
    paths = smooth_trails(np.stack([start, end], axis=1), 16)
    bundled = bundle_trails(paths, anchor_every=16)
    np.testing.assert_allclose(bundled[:, [0, -1]], paths[:, [0, -1]])      # true positions kept
    assert bundled[:, 8, 1].std() < 0.5 * paths[:, 8, 1].std()             # mid-points gathered
    # grouped: each class bundles on its own, so two classes stay apart instead of merging
    groups = (start[:, 1] > 0).astype(int)
    apart = bundle_trails(paths, anchor_every=16, groups=groups)

    def gap(p):
        return abs(p[groups == 1, 8, 1].mean() - p[groups == 0, 8, 1].mean())

    assert gap(apart) > 0.3 and gap(bundled) < 0.1
    assert all(apart[groups == g, 8, 1].std() < 0.25 * paths[groups == g, 8, 1].std() for g in (0, 1))


# ---------------------------------------------------------------------------- neuron projections
def test_neuron_projection_groups_correlated_neurons(tmp_path, labels):
    rng = np.random.default_rng(0)
    s1, s2 = rng.normal(size=(2, N))
    acts = np.c_[s1[:, None] + 0.1 * rng.normal(size=(N, 6)), s2[:, None] + 0.1 * rng.normal(size=(N, 6)),
                 np.zeros(N)]                                                   # + one dead neuron
    for method, kwargs in (("pca", {}), ("tsne", {"n_jobs": 1})):
        res = neuron_projection({"fc": acts}, "fc", method=method, labels=labels, **kwargs)
        y = res.coordinates
        assert y.shape == (13, 2) and res.dead.tolist() == [False] * 12 + [True]
        d = np.linalg.norm(y[:12, None] - y[None, :12], axis=-1)
        same = np.add.outer(np.arange(12) < 6, np.arange(12) < 6) != 1
        assert d[same & ~np.eye(12, dtype=bool)].mean() < 0.5 * d[~same].mean()
    path = res.save(tmp_path)
    back = type(res).load(path)
    np.testing.assert_array_equal(back.coordinates, res.coordinates)


def test_neuron_projection_default_metric_is_rauber_abs_correlation(labels):
    """1 − |r| (Rauber et al. 2017): a neuron and its mirror image are neighbours; 1 − r parts them."""
    from neuralatlas.analysis.projection import correlation_profiles, neuron_distance

    rng = np.random.default_rng(1)
    sources = rng.normal(size=(N, 4))
    # neuron 2i and 2i+1 are the same signal with opposite signs (r ≈ −1)
    acts = np.repeat(sources, 2, axis=1) * np.tile([1.0, -1.0], 4) + 0.05 * rng.normal(size=(N, 8))
    z, dead = correlation_profiles(acts)
    r = np.corrcoef(acts, rowvar=False)
    np.testing.assert_allclose(neuron_distance(z, dead), 1 - np.abs(r), atol=1e-12)
    np.testing.assert_allclose(neuron_distance(z, dead, "correlation"), 1 - r, atol=1e-12)

    def mirror_is_nearest(res):
        d = np.linalg.norm(res.coordinates[:, None] - res.coordinates[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        return np.all(d.argmin(1) == np.arange(8) ^ 1)

    for method in ("pca", "tsne"):
        res = neuron_projection({"fc": acts}, "fc", method=method, labels=labels, n_jobs=1, perplexity=2)
        assert res.params["metric"] == "abs_correlation"
        assert mirror_is_nearest(res)
    signed = neuron_projection({"fc": acts}, "fc", method="pca", labels=labels, metric="correlation")
    assert not mirror_is_nearest(signed)
    with pytest.raises(AnalysisError, match="abs_correlation"):
        neuron_projection({"fc": acts}, "fc", labels=labels, metric="cosine")


def test_neuron_projection_trustworthiness_is_against_its_own_distance(labels):
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    from neuralatlas.analysis.projection import correlation_profiles, neuron_distance

    rng = np.random.default_rng(2)
    acts = rng.normal(size=(N, 30)) @ rng.normal(size=(30, 30))
    res = neuron_projection({"fc": acts}, "fc", method="pca", labels=labels)
    z, dead = correlation_profiles(acts)
    expected = sk_trustworthiness(neuron_distance(z, dead), res.coordinates, n_neighbors=7, metric="precomputed")
    assert res.quality["trustworthiness"] == pytest.approx(expected, abs=1e-12)


def test_neuron_projection_pools_conv_channels(epoch_store):
    res = neuron_projection(epoch_store, "conv", epoch=1, method="pca", n_samples=100)
    assert res.n_neurons == 5 and res.epoch == 1
    with pytest.raises(AnalysisError, match="at least 5 are needed"):
        neuron_projection({"fc": np.zeros((20, 3))}, "fc", labels=np.arange(20) % 2, method="pca")


# ---------------------------------------------------------------------------- figures and CLI
def test_projection_figures(epoch_store):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from neuralatlas.plots import projection as figs

    res = project(epoch_store, layers=["a", "b"], epochs="all", method="pca", n_samples=100)
    neurons = neuron_projection(epoch_store, "a", method="pca", n_samples=100)
    made = [figs.projection_scatter(res, "b", 2), figs.projection_sequence(res, "layers", epoch=0),
            figs.inter_layer_evolution(res, epoch=2, bundle=True), figs.inter_epoch_evolution(res, "b"),
            figs.trail_image(res, "epochs", layer="a"), figs.projection_quality(res),
            figs.neuron_map(neurons, np.arange(neurons.n_neurons))]
    from neuralatlas.analysis.discriminative import discriminative_neurons

    scores = discriminative_neurons(epoch_store, "a", method="anova", n_samples=100)
    by_class = figs.neuron_map(neurons, discriminative=scores)
    legend = [t.get_text() for t in by_class.axes[0].get_legend().get_texts()]
    assert set(legend) == {scores.classes[c] for c in np.unique(scores.best_class[~neurons.dead])}
    assert "1 − |r|" in by_class.axes[0].get_title()
    made.append(by_class)
    assert all(isinstance(f, Figure) for f in made)
    assert "NH" in made[0].axes[0].get_title()
    for f in made:
        plt.close(f)


@pytest.mark.slow  # the CLI end to end (t-SNE, figures)
def test_cli_project_writes_results_and_figures(epoch_store, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from neuralatlas.cli import app

    run = tmp_path / "run"
    shutil.copytree(epoch_store.path, run / "acts.zarr")
    out = CliRunner().invoke(app, ["project", str(run), "-l", "a", "-l", "b", "--epochs", "0,2", "--method", "pca",
                                   "--n", "80", "--neurons", "a", "--discriminative", "anova"])
    assert out.exit_code == 0, out.output
    assert Projection.load(run).epochs == [0, 2]
    figures = {p.name for p in (run / "figures" / "projection").iterdir()}
    assert {"layers_epoch0.png", "layers_epoch2.pdf", "epochs_b.png", "quality.png",
            "discriminative_a_anova.png"} <= figures
    bad = CliRunner().invoke(app, ["project", str(run), "-l", "zz", "--method", "pca"])
    assert bad.exit_code == 1 and "zz" in bad.output


# ---------------------------------------------------------------------------- the paper's finding
@pytest.mark.slow  # t-SNE of every layer and epoch
def test_digits_mlp_separates_classes_with_depth_and_training(trained_mlp_run, capsys):
    """Rauber et al.'s central finding on the digits MLP: deeper and later is better separated.

    Neighbourhood hit (k = 6) of the last hidden layer beats the first hidden layer and the
    raw input, and the last epoch beats epoch 0. Asserted on PCA projections, which show
    how *linearly* each layer separates the classes. t-SNE numbers are printed beside them:
    on 8×8 digits the raw pixels are already almost perfectly neighbourhood-separated for a
    non-linear embedding (a kNN on raw digits scores ~98 %), so with t-SNE the gain with
    depth shows only over training, which is asserted too.
    """
    run = trained_mlp_run
    store = run.store
    first, last = store.epochs[0], store.epochs[-1]
    raw = run.test.inputs
    res = project(store, layers=["input", "relu1", "relu2"], epochs=[first, last], method="pca", n_samples=None,
                  inputs=raw)
    nh = {key: q["neighborhood_hit"] for key, q in res.quality.items()}
    nh_tsne = {}
    for layers, epochs in ((["input", "relu1", "relu2"], [last]), (["relu2"], [first])):
        tsne = project(store, layers=layers, epochs=epochs, method="tsne", n_samples=None, n_jobs=1, inputs=raw)
        nh_tsne.update({key: q["neighborhood_hit"] for key, q in tsne.quality.items()})
    with capsys.disabled():
        print(f"\nneighbourhood hit (k=6) on {res.n} digits test samples, digits MLP (Rauber et al. 2017):")
        print(f"  {'layer':<8}{'PCA e' + str(first):>10}{'PCA e' + str(last):>10}{'t-SNE e' + str(first):>11}"
              f"{'t-SNE e' + str(last):>11}")
        for layer in res.layers:
            t = [f"{nh_tsne[layer, e]:.3f}" if (layer, e) in nh_tsne else "-" for e in (first, last)]
            print(f"  {layer:<8}{nh[layer, first]:>10.3f}{nh[layer, last]:>10.3f}{t[0]:>11}{t[1]:>11}")
    assert nh["relu2", last] > nh["relu1", last] > nh["input", last]
    assert nh["relu2", last] > nh["relu2", first]
    assert nh_tsne["relu2", last] > nh_tsne["relu2", first]


def test_next_epoch_refines_with_the_short_schedule_and_keeps_the_neighbourhood_hit():
    from neuralatlas.analysis.projection import embed
    from neuralatlas.analysis.quality import neighborhood_hit

    assert tsne_settings(2000, warm=True, next_epoch=True)["early_exaggeration_iter"] == 0
    assert tsne_settings(2000, warm=False, next_epoch=True) == tsne_settings(2000)  # only a warm start refines
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(6, 20))
    labels = np.repeat(np.arange(6), 60)
    before = centres[labels] + rng.normal(size=(360, 20))
    after = before + 0.3 * rng.normal(size=before.shape)  # one epoch later: a small drift
    start = embed(before, "tsne", seed=0)
    short = embed(after, "tsne", init=start, seed=0, next_epoch=True)
    full = embed(after, "tsne", init=start, seed=0)
    hit_short, hit_full = neighborhood_hit(short, labels, k=6), neighborhood_hit(full, labels, k=6)
    assert abs(hit_short - hit_full) < 0.03, (hit_short, hit_full)
    # and it stays where it started (the point of a warm start): aligned without a rotation
    assert np.corrcoef(short[:, 0], start[:, 0])[0, 1] > 0.9
