"""ActivationStore: arrays from any framework round-trip, chunks stream, errors say what to do."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from neuralatlas.errors import LayerError, StoreError
from neuralatlas.store import ActivationStore


@pytest.fixture()
def arrays():
    rng = np.random.default_rng(0)
    return {"dense": rng.normal(size=(37, 5)).astype(np.float32),
            "block1.conv": rng.normal(size=(37, 3, 4, 4)).astype(np.float32)}


def test_from_arrays_round_trip(tmp_path, arrays):
    labels = np.arange(37) % 4
    groups = np.where(labels % 2, "odd", "even")
    grads = {"dense": np.ones((37, 5), np.float32)}
    ActivationStore.from_arrays(tmp_path / "s.zarr", arrays, labels=labels, groups=groups,
                                gradients=grads, classes=list("abcd"), chunk_rows=8, columns={"source": ["tf"] * 37})
    again = ActivationStore.open(tmp_path / "s.zarr")
    assert again.layers == ["dense", "block1.conv"]
    assert again.unit_shape("block1.conv") == (3, 4, 4)
    for name, a in arrays.items():
        np.testing.assert_array_equal(np.asarray(again.activations(name)), a)
    np.testing.assert_array_equal(np.asarray(again.gradients("dense")), grads["dense"])
    table = again.samples
    assert list(table["label"]) == list(labels)
    assert list(table["group"]) == list(groups)
    assert set(table["label_name"]) == set("abcd")
    assert list(table["source"]) == ["tf"] * 37
    assert again.attrs["versions"]["numpy"] == np.__version__


def test_iter_chunks_covers_every_row_once(tmp_path, arrays):
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", arrays, chunk_rows=8)
    seen = np.concatenate([block for _, block in store.iter_chunks("dense")])
    np.testing.assert_array_equal(seen, arrays["dense"])
    slices = [sl for sl, _ in store.iter_chunks("dense", rows=16)]
    assert [(s.start, s.stop) for s in slices] == [(0, 16), (16, 32), (32, 37)]


def test_epochs_round_trip(tmp_path, arrays):
    per_epoch = {e: {"dense": arrays["dense"] + e} for e in (0, 1, 2)}
    store = ActivationStore.from_arrays(tmp_path / "e.zarr", {}, epoch_activations=per_epoch)
    assert store.epochs == [0, 1, 2]
    np.testing.assert_array_equal(np.asarray(store.activations("dense", epoch=1)), arrays["dense"] + 1)
    np.testing.assert_array_equal(np.asarray(store.activations("dense")), arrays["dense"] + 2)


def test_errors_name_the_problem(tmp_path, arrays):
    with pytest.raises(StoreError, match="No activation store"):
        ActivationStore.open(tmp_path / "missing.zarr")
    with pytest.raises(StoreError, match="one row per sample"):
        ActivationStore.from_arrays(tmp_path / "b.zarr", {"a": np.zeros((3, 2)), "b": np.zeros((4, 2))})
    with pytest.raises(StoreError, match=r"gradients of 'dense' have shape \[37, 4\]"):
        ActivationStore.from_arrays(tmp_path / "g.zarr", arrays, gradients={"dense": np.zeros((37, 4))})
    store = ActivationStore.from_arrays(tmp_path / "ok.zarr", arrays)
    with pytest.raises(LayerError, match="Did you mean 'dense'"):
        store.activations("dens")
    with pytest.raises(StoreError, match="not empty; pass overwrite=True"):
        ActivationStore.from_arrays(tmp_path / "ok.zarr", arrays)
    # the refused write lost nothing
    np.testing.assert_array_equal(np.asarray(ActivationStore.open(tmp_path / "ok.zarr").activations("dense")),
                                  arrays["dense"])


@pytest.mark.slow  # a fresh interpreter
def test_store_use_does_not_import_torch(tmp_path):
    code = f"""
import sys, numpy as np
import neuralatlas
from neuralatlas import ActivationStore
s = ActivationStore.from_arrays(r"{tmp_path / 'n.zarr'}", {{"x": np.zeros((4, 2))}}, labels=[0, 1, 0, 1])
assert np.asarray(s.activations("x")).shape == (4, 2)
assert "torch" not in sys.modules, "store use imported torch"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
