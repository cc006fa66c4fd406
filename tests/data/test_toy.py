from __future__ import annotations

import numpy as np
import pytest

from neuralatlas.data import ArrayDataset, circles, load, moons, spirals, split, toy, xor
from neuralatlas.errors import DataError

GENERATORS = [xor, circles, moons, spirals]


@pytest.mark.parametrize("generate", GENERATORS, ids=lambda f: f.__name__)
def test_toy_set_shape_range_and_balance(generate):
    ds = generate(n_samples=300)
    assert isinstance(ds, ArrayDataset) and ds.name == generate.__name__
    assert ds.inputs.shape == (300, 2) and ds.inputs.dtype == np.float32
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.index, np.arange(300))
    # centred, one common scale: the largest absolute coordinate is exactly 1
    assert np.abs(ds.inputs).max() == pytest.approx(1.0)
    np.testing.assert_allclose(ds.inputs.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(np.bincount(ds.labels), [150, 150])
    assert ds.n_classes == 2
    # shuffled: the classes are mixed, not one block after the other
    assert 0 < ds.labels[:150].sum() < 150


@pytest.mark.parametrize("generate", GENERATORS, ids=lambda f: f.__name__)
def test_toy_set_is_seeded(generate):
    a, b, c = generate(seed=7), generate(seed=7), generate(seed=8)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.inputs, c.inputs)


@pytest.mark.parametrize("generate", GENERATORS, ids=lambda f: f.__name__)
def test_toy_set_odd_size_stays_balanced(generate):
    counts = np.bincount(generate(n_samples=401).labels)
    assert counts.sum() == 401 and counts.max() - counts.min() == 1


def test_circles_radii_follow_factor():
    ds = circles(n_samples=400, noise=0.0, factor=0.3)
    radius = np.linalg.norm(ds.inputs - ds.inputs.mean(axis=0), axis=1)
    outer, inner = radius[ds.labels == 0], radius[ds.labels == 1]
    np.testing.assert_allclose(inner.mean() / outer.mean(), 0.3, rtol=0.02)
    assert ds.classes == ["outer", "inner"]


def test_xor_labels_follow_quadrants_without_noise():
    ds = xor(n_samples=200, noise=0.0)
    # centring moves the quadrant boundaries by the small sample mean only
    expected = (ds.inputs[:, 0] > 0) != (ds.inputs[:, 1] > 0)
    assert (expected == ds.labels.astype(bool)).mean() > 0.95


def test_spirals_with_more_arms():
    ds = spirals(n_samples=300, n_classes=3, noise=0.0)
    np.testing.assert_array_equal(np.bincount(ds.labels), [100, 100, 100])
    assert ds.classes == ["arm 0", "arm 1", "arm 2"]


def test_toy_dispatcher_matches_direct_call():
    a, b = toy("moons", n_samples=120, noise=0.2, seed=4), moons(n_samples=120, noise=0.2, seed=4)
    np.testing.assert_array_equal(a.inputs, b.inputs)


def test_toy_dispatcher_lists_names_on_a_typo():
    with pytest.raises(DataError) as info:
        toy("moon")
    message = str(info.value)
    assert "'moon'" in message and "Did you mean 'moons'" in message
    for name in ("xor", "circles", "moons", "spirals"):
        assert name in message


def test_toy_dispatcher_lists_options_on_a_typo():
    with pytest.raises(DataError, match="valid options: n_samples, noise, factor, seed.*'noise'"):
        toy("circles", nosie=0.1)


@pytest.mark.parametrize("call, words", [
    (lambda: xor(n_samples=1), "n_samples=1"),
    (lambda: moons(n_samples=10.5), "n_samples=10.5"),
    (lambda: moons(noise=-1), "noise=-1"),
    (lambda: circles(factor=1.5), "factor=1.5"),
    (lambda: spirals(n_classes=1), "n_classes=1"),
    (lambda: spirals(turns=0), "turns=0"),
])
def test_toy_rejects_bad_options(call, words):
    with pytest.raises(DataError, match=words.replace(".", r"\.")):
        call()


def test_split_is_stratified_and_keeps_index():
    ds = spirals(n_samples=403, n_classes=3, seed=1).subset(np.arange(3, 403))  # index starts at 3
    train, test = split(ds, test_fraction=0.2, seed=5)
    assert len(train) + len(test) == len(ds)
    assert not set(train.index) & set(test.index)
    np.testing.assert_array_equal(np.sort(np.concatenate([train.index, test.index])), ds.index)
    per_class = np.bincount(ds.labels)
    np.testing.assert_array_equal(np.bincount(test.labels), np.floor(0.2 * per_class + 0.5))
    # rows keep their original order and their inputs follow their index
    assert np.all(np.diff(test.index) > 0)
    np.testing.assert_array_equal(test.inputs, ds.inputs[test.index - 3])


def test_split_is_seeded():
    ds = moons(n_samples=200)
    a, b, c = split(ds, seed=1)[1], split(ds, seed=1)[1], split(ds, seed=2)[1]
    np.testing.assert_array_equal(a.index, b.index)
    assert not np.array_equal(a.index, c.index)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2])
def test_split_rejects_fraction_out_of_range(fraction):
    with pytest.raises(DataError, match="test_fraction"):
        split(moons(n_samples=20), test_fraction=fraction)


def test_split_refuses_an_empty_split():
    with pytest.raises(DataError, match="empty"):
        split(moons(n_samples=2), test_fraction=0.1)


def test_load_toy_returns_a_stratified_split():
    train, test = load("moons", n_samples=200, noise=0.05, seed=2, test_fraction=0.3)
    assert (len(train), len(test)) == (140, 60)
    np.testing.assert_array_equal(np.bincount(test.labels), [30, 30])
    full = moons(n_samples=200, noise=0.05, seed=2)
    np.testing.assert_array_equal(test.inputs, full.inputs[test.index])


def test_load_unknown_name_suggests():
    with pytest.raises(DataError, match="valid names: .*spirals.*Did you mean 'spirals'"):
        load("spiral")


@pytest.mark.parametrize("generate", [xor, circles, moons, spirals])
def test_the_old_n_keyword_warns_and_generates_the_same_set(generate):
    with pytest.warns(DeprecationWarning, match=r"\(n=...\) is deprecated since 0.2; use n_samples="):
        old = generate(n=60, seed=3)
    new = generate(n_samples=60, seed=3)
    assert np.array_equal(old.inputs, new.inputs) and np.array_equal(old.labels, new.labels)


def test_the_old_n_option_of_the_loaders_warns_and_loads_the_same():
    with pytest.warns(DeprecationWarning, match="use n_samples="):
        old = load("moons", n=80, seed=1)
    with pytest.warns(DeprecationWarning, match="use n_samples="):
        via_toy = toy("moons", n=80, seed=1)
    new = load("moons", n_samples=80, seed=1)
    assert all(np.array_equal(a.inputs, b.inputs) for a, b in zip(old, new, strict=True))
    assert np.array_equal(via_toy.inputs, moons(n_samples=80, seed=1).inputs)
    with pytest.raises(TypeError, match="got both 'n' .deprecated. and 'n_samples'"):
        toy("moons", n=80, n_samples=80)
