"""Discriminative neurons: planted neurons, scikit-learn's F statistic, agreement of the methods."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.feature_selection import f_classif

from neuralatlas.analysis.discriminative import (
    DiscriminativeNeurons,
    anova_importances,
    discriminative_neurons,
    importance_agreement,
)
from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.store import ActivationStore


def _planted(n: int = 300, noise: int = 15, planted: int = 7, cls: int = 2, seed: int = 0):
    """Noise neurons plus neuron ``planted`` that fires for class ``cls`` only."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(size=(n, noise + 1))
    x[:, planted] = (y == cls) * 2.0 + 0.3 * rng.normal(size=n)
    return x, y


@pytest.mark.parametrize("method", ["trees", "anova"])
def test_planted_discriminative_neuron_ranks_first(method):
    x, y = _planted()
    res = discriminative_neurons(x, labels=y, method=method, n_estimators=50, n_jobs=1)
    assert res.importances.shape == (16, 4)
    np.testing.assert_allclose(res.importances.sum(0), 1.0)
    assert res.top(2, 1)[0] == 7
    assert res.best_class[7] == 2
    assert res.strength[7] == res.importances[:, 2].max()


def test_planted_channel_in_a_conv_store_ranks_first(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(200) % 3
    maps = rng.normal(size=(200, 6, 4, 4)).astype(np.float32)
    maps[:, 4] += (y == 1)[:, None, None] * 1.5                     # channel 4 lights up for class 1
    store = ActivationStore.from_arrays(tmp_path / "acts.zarr", {"conv": maps}, y, classes=["a", "b", "c"])
    for method in ("trees", "anova"):
        res = discriminative_neurons(store, "conv", method=method, n_samples=150, n_estimators=50, n_jobs=1)
        assert res.importances.shape == (6, 3)                       # one neuron per channel
        assert res.top("b", 1)[0] == 4
    table = res.to_frame()
    assert table.loc[4, "best_class"] == "b" and list(table.columns[-3:]) == ["a", "b", "c"]
    back = DiscriminativeNeurons.load(res.save(tmp_path / "out"))
    np.testing.assert_array_equal(back.importances, res.importances)
    assert back.classes == ["a", "b", "c"] and back.method == "anova"


def test_anova_matches_sklearn_f_classif_one_vs_rest():
    x, y = _planted(n=250, seed=3)
    x[:, 3] = 1.0                                                    # a constant neuron scores 0
    f = anova_importances(x, y, normalise=False)
    with np.errstate(divide="ignore", invalid="ignore"), pytest.warns(UserWarning, match="constant"):
        reference = np.stack([np.nan_to_num(f_classif(x, y == c)[0]) for c in range(4)], axis=1)
    np.testing.assert_allclose(f, reference, rtol=1e-9, atol=1e-9)


def test_perfect_separation_takes_the_whole_column():
    y = np.repeat([0, 1], 20)
    x = np.c_[y.astype(float), np.random.default_rng(0).normal(size=(40, 3))]
    imp = anova_importances(x, y)
    np.testing.assert_allclose(imp[:, 0], [1.0, 0.0, 0.0, 0.0])


def test_agreement_is_spearman_per_class():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 30, 5))
    expected = [spearmanr(a[:, c], b[:, c]).statistic for c in range(5)]
    np.testing.assert_allclose(importance_agreement(a, b), expected)
    np.testing.assert_allclose(importance_agreement(a, np.exp(a)), 1.0)      # any monotone map
    np.testing.assert_allclose(importance_agreement(a, -a), -1.0)


def test_trees_and_anova_broadly_agree_on_the_digits_mlp(trained_mlp_run, capsys):
    store = trained_mlp_run.store
    trees = discriminative_neurons(store, "fc2", method="trees", n_estimators=100, n_jobs=1)
    anova = discriminative_neurons(store, "fc2", method="anova")
    rho = trees.agreement(anova)
    with capsys.disabled():
        print(f"\nfc2 of the digits MLP: trees vs ANOVA importances, Spearman per class: "
              f"{' '.join(f'{v:.2f}' for v in rho)} (mean {rho.mean():.2f})")
    assert rho.mean() > 0.5 and (rho > 0).all()
    # both pick the same strongest neuron for most classes
    same = np.mean(trees.importances.argmax(0) == anova.importances.argmax(0))
    assert same >= 0.5


def test_discriminative_errors(tmp_path):
    x, y = _planted()
    with pytest.raises(AnalysisError, match="method='svm' is not known"):
        discriminative_neurons(x, labels=y, method="svm")
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"fc": x}, y)
    with pytest.raises(LayerError, match="'fx' is not in .*Did you mean 'fc'"):
        discriminative_neurons(store, "fx", method="anova")
    with pytest.raises(AnalysisError, match=r"Classes \[3\] have no samples"):
        anova_importances(x[y < 3], y[y < 3], n_classes=4)
    with pytest.raises(AnalysisError, match="300 samples but 10 labels"):
        anova_importances(x, y[:10])


def test_discriminative_figures(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from neuralatlas.analysis.projection import neuron_projection
    from neuralatlas.plots.discriminative import compare_projections, discriminative_map, importance_agreement_plot

    x, y = _planted()
    x[:, 0] = 0.0                                                     # a dead neuron
    neurons = neuron_projection({"fc": x}, "fc", method="pca", labels=y)
    trees = discriminative_neurons({"fc": x}, "fc", labels=y, n_estimators=20, n_jobs=1)
    anova = discriminative_neurons({"fc": x}, "fc", labels=y, method="anova")
    figs = [compare_projections(neurons, trees, classes=[0, 2]), discriminative_map(neurons, anova),
            importance_agreement_plot(trees.agreement(anova))]
    assert all(isinstance(f, Figure) for f in figs)
    assert len([a for a in figs[0].axes if a.get_title().startswith("class")]) == 2
    with pytest.raises(AnalysisError, match="describe 3 neurons but the neuron projection has 16"):
        discriminative_map(neurons, np.ones((3, 4)))
    for f in figs:
        plt.close(f)


def test_old_sample_count_keyword_and_table_still_work_with_a_warning():
    x, y = _planted(n=120, seed=1)
    with pytest.warns(DeprecationWarning, match="use n_samples"):
        old = discriminative_neurons({"fc": x}, "fc", labels=y, method="anova", n=60)
    new = discriminative_neurons({"fc": x}, "fc", labels=y, method="anova", n_samples=60)
    np.testing.assert_array_equal(old.importances, new.importances)
    assert new.params["n_samples"] == 60
    with pytest.warns(DeprecationWarning, match="to_frame"):
        assert old.table().equals(old.to_frame())
