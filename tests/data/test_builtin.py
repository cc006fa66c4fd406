from __future__ import annotations

import numpy as np
import pytest

from neuralatlas.data import ArrayDataset, digits, load
from neuralatlas.errors import DataError


@pytest.fixture(scope="module")
def split_digits() -> tuple[ArrayDataset, ArrayDataset]:
    return digits()


def test_digits_shapes_and_values(split_digits):
    train, test = split_digits
    assert len(train) + len(test) == 1797
    for ds in (train, test):
        assert ds.inputs.dtype == np.float32 and ds.labels.dtype == np.int64
        assert ds.input_shape == (1, 8, 8)
        assert ds.inputs.min() >= 0.0 and ds.inputs.max() <= 1.0
        assert ds.classes == [str(d) for d in range(10)]
    assert train.inputs.max() == 1.0  # raw 16 maps to 1, not below


def test_digits_index_partitions_the_full_set(split_digits):
    train, test = split_digits
    assert not set(train.index) & set(test.index)
    np.testing.assert_array_equal(np.sort(np.concatenate([train.index, test.index])),
                                  np.arange(1797))


def test_digits_split_is_fixed_across_calls(split_digits):
    train, test = split_digits
    train2, test2 = digits()
    np.testing.assert_array_equal(test.index, test2.index)
    np.testing.assert_array_equal(train.inputs, train2.inputs)
    assert train.fingerprint() == train2.fingerprint()


def test_digits_split_is_stratified(split_digits):
    train, test = split_digits
    total = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
    in_test = np.bincount(test.labels, minlength=10)
    assert np.all(np.abs(in_test - 0.25 * total) <= 1)


def test_digits_works_with_a_torch_dataloader(split_digits):
    torch = pytest.importorskip("torch")
    _, test = split_digits
    x, y = test[0]
    assert isinstance(x, torch.Tensor) and x.shape == (1, 8, 8) and isinstance(y, int)
    xb, yb = next(iter(torch.utils.data.DataLoader(test, batch_size=16)))
    assert xb.shape == (16, 1, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    np.testing.assert_array_equal(yb.numpy(), test.labels[:16])


def test_load_digits_matches_digits(split_digits):
    train, test = load("digits")
    np.testing.assert_array_equal(test.index, split_digits[1].index)
    train_half, test_half = load("Digits", test_fraction=0.5)
    assert abs(len(test_half) - 1797 / 2) <= 5


def test_load_digits_rejects_a_path_and_unknown_options():
    with pytest.raises(DataError, match="drop path"):
        load("digits", path="/somewhere")
    with pytest.raises(DataError, match="test_fraction"):
        load("digits", test_fractoin=0.5)


def test_array_dataset_refuses_fractional_float_labels():
    # before: regression targets were cast to int64, truncated into class indices without a word
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="regression targets.*TensorDataset"):
        ArrayDataset(x, np.array([0.2, 1.7, 1.0]), classes=["a", "b"])
    assert ArrayDataset(x, np.array([0.0, 1.0, 1.0]), classes=["a", "b"]).labels.tolist() == [0, 1, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_array_dataset_refuses_non_finite_labels(bad):
    # before: NaN was refused as a "fractional" regression target, and inf cast to INT64_MIN without a word
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="1 labels are NaN or infinite"):
        ArrayDataset(x, np.array([0.0, bad, 1.0]), classes=["a", "b"])
