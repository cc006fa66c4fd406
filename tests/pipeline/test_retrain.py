"""A retrained run must never pass for the one its store was captured from."""

from __future__ import annotations

import pytest

import neuralatlas as na
from neuralatlas.errors import StoreMismatchError
from neuralatlas.zoo import build, train


def test_retraining_invalidates_a_per_epoch_store(tmp_path, digits_data):
    train_set, test_set = digits_data
    small = test_set.subset(slice(0, 60))
    model = build("mlp", seed=0)
    train(model, train_set.subset(slice(0, 200)), epochs=1, run_dir=tmp_path, seed=0)
    na.capture(model, small, layers=["fc1"], out=tmp_path / "acts.zarr", checkpoints=tmp_path)
    train(model, train_set.subset(slice(0, 200)), epochs=1, run_dir=tmp_path, seed=1)
    with pytest.raises(StoreMismatchError, match="weights"):
        na.capture(model, small, layers=["fc1"], out=tmp_path / "acts.zarr", checkpoints=tmp_path)
