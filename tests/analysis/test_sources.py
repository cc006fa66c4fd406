"""The one data-access layer: one layer rule at every entry point, epochs as selections, honest sample counts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from neuralatlas.analysis.discriminative import anova_importances, discriminative_neurons
from neuralatlas.analysis.naps import naps
from neuralatlas.analysis.projection import neuron_projection, project
from neuralatlas.analysis.similarity import cka_matrix, linear_probes
from neuralatlas.analysis.sources import (
    DEFAULT_N_SAMPLES,
    AtMost,
    open_source,
    open_store,
    resolve_epochs,
    resolve_layers,
    resolve_sample_count,
    subset_rows,
)
from neuralatlas.analysis.topomap import topomaps
from neuralatlas.capture.hooks import resolve_layers as model_layers
from neuralatlas.errors import AnalysisError, ConfigError, LayerError, StoreError
from neuralatlas.featurevis.maps import feature_maps
from neuralatlas.store import ActivationStore

N = 60


class Net(nn.Module):
    """Three conv maps in model order fc1, relu1, fc2 (the names of the issue's example)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu1(self.fc1(x)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], N // 3)
    acts = {name: (rng.normal(size=(N, 4, 3, 3)) + labels[:, None, None, None] * (i + 1)).astype(np.float32)
            for i, name in enumerate(["fc1", "relu1", "fc2"])}
    path = tmp_path_factory.mktemp("sources") / "s.zarr"
    return ActivationStore.from_arrays(path, acts, labels, classes=["a", "b", "c"])


# Every entry point that takes a layer selection, each returning the layers it used in order.
def _naps(store, layers):
    return naps(store, layers=layers).layers


def _similarity(store, layers):
    return cka_matrix(store, layers).rows


def _probes(store, layers):
    return linear_probes(store, layers, cv=2).layers


def _projection(store, layers):
    return project(store, layers=layers, method="pca", quality=False).layers


def _topomap(store, layers):
    return topomaps(naps(store), layers=layers, method="grid", min_units=4).layers


def _feature_maps(store, layers):
    return list(feature_maps(store, layers=layers).maps)


def _capture_hooks(store, layers):
    return model_layers(Net(), layers)


ENTRY_POINTS = [_naps, _similarity, _probes, _projection, _topomap, _feature_maps, _capture_hooks]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__.strip("_"))
def test_every_entry_point_keeps_the_order_given(store, entry):
    # the store (and the model) hold fc1, relu1, fc2; the user asked for fc2 then fc1
    assert entry(store, ["fc2", "fc1"]) == ["fc2", "fc1"]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__.strip("_"))
def test_every_entry_point_refuses_an_empty_selection(store, entry):
    with pytest.raises(LayerError, match=r"layers=\[\] selects no layer of .*layers=None for every layer"):
        entry(store, [])


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__.strip("_"))
def test_every_entry_point_expands_a_pattern_in_store_order(store, entry):
    # a pattern expands in the store's (model's) order; a layer named twice is used once
    assert entry(store, ["fc*", "fc2"]) == ["fc1", "fc2"]


def test_no_selection_is_every_layer_in_store_order(store):
    assert resolve_layers(store, None) == ["fc1", "relu1", "fc2"]
    assert cka_matrix(store).rows == ["fc1", "relu1", "fc2"]
    assert naps(store).layers == ["fc1", "relu1", "fc2"]


def test_an_unknown_layer_names_what_exists(store):
    with pytest.raises(
        LayerError, match=r"'fc3' is not in the store .*Did you mean .*'fc1'.*Layers stored: fc1, relu1, fc2"
    ):
        resolve_layers(store, ["fc1", "fc3"])
    with pytest.raises(LayerError, match=r"Layers are named by strings; got 3"):
        resolve_layers(store, [3])


def test_open_store_takes_a_store_a_path_or_a_run_folder(store, tmp_path):
    assert open_store(store) is store
    assert open_store(str(store.path)).layers == store.layers
    with pytest.raises(AnalysisError, match="other must be an ActivationStore"):
        open_store(42, "other")


def test_epochs_are_a_selection(store):
    available = [0, 1, 2]
    assert resolve_epochs(available, None, where="x", final=2) == [2]
    assert resolve_epochs(available, "all", where="x") == [0, 1, 2]
    assert resolve_epochs(available, "last", where="x") == [2]
    assert resolve_epochs(available, 1, where="x") == [1]
    assert resolve_epochs(available, [2, 0], where="x") == [2, 0]
    with pytest.raises(AnalysisError, match="epochs=True is a yes/no; epochs is a selection"):
        resolve_epochs(available, True, where="x")
    with pytest.raises(StoreError, match=r"Epoch\(s\) \[5\] not in x; epochs captured: 0, 1, 2"):
        resolve_epochs(available, [0, 5], where="x")
    with pytest.raises(StoreError, match="no per-epoch activations"):
        resolve_epochs([], "all", where="x")


def test_the_default_sample_count_is_honest(store):
    # the old default was an int subclass equal to 2000 that behaved unlike a typed 2000;
    # the new one is visibly "up to": it is not an int and not equal to 2000
    assert not isinstance(DEFAULT_N_SAMPLES, int) and DEFAULT_N_SAMPLES != 2000
    assert repr(DEFAULT_N_SAMPLES) == "AtMost(2000)"
    assert resolve_sample_count(DEFAULT_N_SAMPLES, N, where="x") == N
    assert resolve_sample_count(AtMost(10), N, where="x") == 10
    assert resolve_sample_count(None, N, where="x") == N
    assert resolve_sample_count("all", N, where="x") == N
    assert resolve_sample_count(N, N, where="x") == N
    with pytest.raises(AnalysisError, match=f"n=2000 samples asked for, but x holds only {N}.*AtMost"):
        resolve_sample_count(2000, N, where="x")
    with pytest.raises(ConfigError, match="n_samples=0 is ambiguous"):
        resolve_sample_count(0, N, where="x")
    with pytest.raises(ConfigError):
        AtMost(0)


def test_subsets_are_stratified_seeded_and_all_means_all(store):
    labels = np.repeat([0, 1, 2], [30, 20, 10])
    rows = subset_rows(labels, 30, seed=3, where="x")
    assert len(rows) == 30 and np.array_equal(rows, np.sort(rows))
    assert np.bincount(labels[rows]).tolist() == [15, 10, 5]          # each class its share
    assert np.array_equal(rows, subset_rows(labels, 30, seed=3, where="x"))
    assert not np.array_equal(rows, subset_rows(labels, 30, seed=4, where="x"))
    everything = np.arange(len(labels))
    for n_samples in (None, len(labels), AtMost(10_000)):
        assert np.array_equal(subset_rows(labels, n_samples, seed=0, where="x"), everything)


def test_default_typed_count_and_none_agree_where_they_should(store):
    default = project(store, layers=["fc1"], method="pca", quality=False)
    typed = project(store, layers=["fc1"], method="pca", quality=False, n_samples=N)
    everything = project(store, layers=["fc1"], method="pca", quality=False, n_samples=None)
    assert default.n == typed.n == everything.n == N
    np.testing.assert_allclose(default["fc1"], typed["fc1"])
    with pytest.raises(AnalysisError, match=f"n=2000 samples asked for, but the store .* holds only {N}"):
        project(store, layers=["fc1"], method="pca", n_samples=2000)


@pytest.mark.parametrize("call", [
    lambda s, **kw: project(s, layers=["fc1"], method="pca", quality=False, **kw).rows,
    lambda s, **kw: neuron_projection(s, "fc1", method="pca", pool=None, **kw).coordinates,
    lambda s, **kw: discriminative_neurons(s, "fc1", method="anova", **kw).importances,
], ids=["project", "neuron_projection", "discriminative_neurons"])
def test_the_old_name_n_still_works_with_a_deprecation_warning(store, call):
    with pytest.warns(DeprecationWarning, match=r"\(n=\.\.\.\) is deprecated.*use n_samples="):
        old = call(store, n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = call(store, n_samples=30)
    np.testing.assert_allclose(old, new)
    with pytest.raises(TypeError, match="got both 'n' .*and 'n_samples'"):
        call(store, n=30, n_samples=30)


def test_one_source_for_stores_and_arrays(store):
    from_store = open_source(store)
    from_arrays = open_source({"fc1": np.asarray(store.activations("fc1"))}, labels=store.samples["label"])
    assert from_store.layers == ["fc1", "relu1", "fc2"] and from_arrays.layers == ["fc1"]
    rows = from_store.subset(30, 1)
    np.testing.assert_array_equal(rows, from_arrays.subset(30, 1))   # the same labels give the same subset
    np.testing.assert_array_equal(from_store.read("fc1", None, rows), from_arrays.read("fc1", None, rows))
    with pytest.raises(LayerError, match="layers=\\[\\] selects no layer of the arrays given"):
        from_arrays.resolve_layers([])


def test_similarity_speaks_the_same_vocabulary(store):
    from neuralatlas.analysis.similarity import rbf_cka, similarity

    x = np.asarray(store.activations("fc1")).reshape(N, -1)
    y = np.asarray(store.activations("fc2")).reshape(N, -1)
    # the old subsample= meant "up to": it maps onto AtMost, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match=r"rbf_cka\(subsample=\.\.\.\) is deprecated.*n_samples="):
        old = rbf_cka(x, y, subsample=5000)
    assert old == rbf_cka(x, y, n_samples=AtMost(5000)) == rbf_cka(x, y, n_samples=None)
    assert rbf_cka(x, y, n_samples=30, seed=2) == rbf_cka(x, y, n_samples=30, seed=2)
    with pytest.raises(AnalysisError, match=f"n=5000 samples asked for, but the data compared holds only {N}"):
        rbf_cka(x, y, n_samples=5000)
    with pytest.warns(DeprecationWarning, match=r"linear_probes\(max_samples=\.\.\.\)"):
        probes = linear_probes(store, ["fc1"], cv=2, max_samples=40)
    assert probes.n_samples == 40
    # epochs is a selection: None is no epoch×epoch matrix; the old True/False still work, deprecated
    result = similarity(store, layers=["fc2", "fc1"], epochs=None, rbf=False, rsa=False, probes=False)
    assert list(result.matrices) == ["linear_cka"] and result.info["layers"] == ["fc2", "fc1"]
    with pytest.warns(DeprecationWarning, match=r"similarity\(epochs=False\) is deprecated.*epochs=None"):
        similarity(store, epochs=False, rbf=False, rsa=False, probes=False)


def test_samples_are_grouped_by_a_column_with_by(tmp_path):
    rng = np.random.default_rng(2)
    group = np.repeat(["left", "right"], 20)
    store = ActivationStore.from_arrays(tmp_path / "g.zarr", {"fc": rng.normal(size=(40, 6)).astype(np.float32)},
                                        np.tile([0, 1], 20), group)
    res = project(store, method="pca", by="group", quality=False, n_samples=None)
    assert res.classes == ["left", "right"]
    np.testing.assert_array_equal(res.labels, (group == "right").astype(int))
    with pytest.warns(DeprecationWarning, match=r"project\(labels='group'\) is deprecated.*by='group'"):
        old = project(store, method="pca", labels="group", quality=False, n_samples=None)
    np.testing.assert_array_equal(old.labels, res.labels)
    with pytest.raises(AnalysisError, match="by='group' names a sample-table column, which arrays do not have"):
        project({"fc": np.zeros((40, 6))}, labels=np.zeros(40), by="group", method="pca")


# ------------------------------------------------------------------- float labels are not classes
def _regression_store(tmp_path):
    """A store captured from a regression net: float labels, as capture keeps them."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    from neuralatlas.capture import capture

    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return capture(model, data, layers=["0", "1"], out=tmp_path / "reg.zarr"), y


def test_float_labels_are_refused_by_class_scores_not_truncated(tmp_path):
    # before: int64(label) made a "class" per truncated value, and project() returned a
    # plausible neighbourhood hit of those fake classes without a word
    store, y = _regression_store(tmp_path)
    assert store.samples["label"].dtype.kind == "f"
    with pytest.raises(AnalysisError, match="floats \\(regression targets\\).*by=pd.qcut"):
        project(store, method="pca", n_samples=None)
    with pytest.raises(AnalysisError, match="regression targets"):
        discriminative_neurons(store, "0", method="anova", n_samples=None)
    with pytest.raises(AnalysisError, match="regression targets"):
        open_source({"a": np.zeros((3, 2))}, labels=np.array([0.5, 1.0, 2.0]))
    # binned targets, as the message says, are classes: the scores are those of the bins
    bins = (y > np.median(y)).astype(np.int64)
    proj = project(store, method="pca", n_samples=None, by=bins)
    assert proj.labels.tolist() == bins.tolist()


def test_integral_float_labels_still_read_as_classes():
    src = open_source({"a": np.zeros((3, 2))}, labels=np.array([0.0, 1.0, 1.0]))
    assert src.labels.dtype == np.int64 and src.labels.tolist() == [0, 1, 1]


def test_labels_array_on_a_store_is_used_not_dropped(tmp_path):
    # before: discriminative_neurons(store, layer, labels=array) silently used the store's labels
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(N, 5)).astype(np.float32)
    own = np.repeat([0, 1], N // 2)
    acts[own == 1, 2] += 5.0  # neuron 2 separates the caller's classes, not the store's
    theirs = np.tile([0, 1], N // 2)  # the store's labels: independent of the caller's
    acts[theirs == 1, 4] += 5.0  # neuron 4 separates the store's classes
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"a": acts}, labels=theirs)
    for n_samples in (None, N):  # streamed ANOVA and the in-memory path
        res = discriminative_neurons(store, "a", labels=own, method="anova", n_samples=n_samples)
        assert int(np.argmax(res.importances.max(axis=1))) == 2
        assert np.allclose(res.importances, anova_importances(acts, own))
    assert int(np.argmax(discriminative_neurons(store, "a", method="anova").importances.max(axis=1))) == 4


def test_a_labels_array_on_a_store_is_checked_like_the_store_s_own_labels(tmp_path):
    """Fractional floats are refused, -1 stays "no label" (not a class), and the length must match."""
    from neuralatlas.analysis.sources import open_source

    acts = np.random.default_rng(2).normal(size=(N, 3)).astype(np.float32)
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"a": acts}, labels=np.tile([0, 1], N // 2))
    with pytest.raises(AnalysisError, match=r"floats \(regression targets\)"):
        open_source(store, labels=np.linspace(0.0, 1.0, N))
    own = np.repeat([0, 1], N // 2)
    own[:3] = -1
    src = open_source(store, labels=own)
    assert src.labels[:3].tolist() == [-1, -1, -1] and src.classes == ["0", "1"]
    with pytest.raises(AnalysisError, match="labels= has 3 values"):
        open_source(store, labels=np.array([0, 1, 0]))
    with pytest.raises(AnalysisError, match="Both by= and labels="):
        open_source(store, labels=own, by="label")
