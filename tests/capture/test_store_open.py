"""The store opener every capture loop shares: create, resume or refuse, with no model framework."""

from __future__ import annotations

import types

import numpy as np
import pytest

from neuralatlas.capture.store_open import open_or_create
from neuralatlas.errors import StoreError, StoreMismatchError
from neuralatlas.store.core import chunk_rows_for


class Conv:  # only its class name is recorded, as the layer's type
    pass


class Run:
    """A capture run as the opener sees it (what torch's and the Flax/Keras loops both hand in)."""

    layers = ["a", "b"]
    rows = "samples"
    n_rows = 10
    row_batch = 3
    layouts = {"a": "flat", "b": "channels_first"}
    has_prediction = False
    label_dtype = np.int64

    def __init__(self) -> None:
        self.source = types.SimpleNamespace(n=10, index=np.arange(100, 110), groups=None, classes=["x", "y"])
        self.model = types.SimpleNamespace(named_modules=lambda: iter([("a", Conv()), ("b", Conv()), ("c", Conv())]))
        self.probes = 0

    def probe(self):
        self.probes += 1
        return {"a": (4,), "b": (2, 3, 3)}, 4 * 18

    def write_sample_table(self, store, groups):
        store.write_samples(index=self.source.index, label=np.arange(10) % 2, group=groups)


SETTINGS = {"model": "m", "layers": ["a", "b"], "weights": "w1", "n_samples": 10}


def test_creates_a_store_from_the_probe_and_resumes_it_without_probing(tmp_path):
    out, run = tmp_path / "s.zarr", Run()
    store = open_or_create(out, SETTINGS, False, run, [None], None, None, None)
    assert run.probes == 1
    assert store.attrs["layers"] == ["a", "b"] and store.attrs["capture"] == SETTINGS
    assert store.attrs["unit_shapes"] == {"a": [4], "b": [2, 3, 3]}
    assert store.attrs["layer_types"] == {"a": "Conv", "b": "Conv"}  # only the layers captured
    assert store.attrs["classes"] == ["x", "y"] and store.attrs["layouts"] == run.layouts
    assert store.chunk_rows == chunk_rows_for(4 * 18, 3, 10) and store.chunk_rows % 3 == 0
    assert np.array_equal(store.sample_column("index")[:], np.arange(100, 110))

    again = Run()
    back = open_or_create(out, dict(SETTINGS), False, again, [None], None, ["p", "q"], 5)
    # same settings: the store is resumed as it is (not probed, not re-made with the new classes)
    assert again.probes == 0 and back.attrs["classes"] == ["x", "y"]
    assert back.chunk_rows == store.chunk_rows


def test_other_settings_are_refused_naming_the_difference_and_overwrite_replaces(tmp_path):
    out = tmp_path / "s.zarr"
    open_or_create(out, SETTINGS, False, Run(), [None], None, None, None)
    with pytest.raises(StoreMismatchError, match=r"weights: store has 'w1', this call has 'w2'.*overwrite=True"):
        open_or_create(out, {**SETTINGS, "weights": "w2"}, False, Run(), [None], None, None, None)
    store = open_or_create(out, {**SETTINGS, "weights": "w2"}, True, Run(), [3, 5], None, None, 6)
    assert store.attrs["capture"]["weights"] == "w2" and store.attrs["epochs"] == [3, 5]
    assert store.chunk_rows == 6


def test_a_folder_that_is_no_store_is_not_overwritten_unasked(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(StoreError, match="is not an activation store"):
        open_or_create(out, SETTINGS, False, Run(), [None], None, None, None)
    assert (out / "mine.txt").read_text() == "keep me"
