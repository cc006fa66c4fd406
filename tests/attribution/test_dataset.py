"""attribute_dataset(): a store beside the activations, same sample index, resumable by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from neuralatlas.attribution import attribute, attribute_dataset
from neuralatlas.errors import StoreError
from neuralatlas.store import ActivationStore


class Stop(Exception):
    pass


def test_store_matches_attribute_and_capture_index(trained_cnn_run, tmp_path):
    model, test = trained_cnn_run.model, trained_cnn_run.test.subset(slice(0, 100))
    store = attribute_dataset(model, test, ["saliency", "ig", "grad_cam"], tmp_path / "attr.zarr",
                              options={"ig": {"n_steps": 16}}, batch_size=32, chunk_rows=32)
    assert store.layers == ["saliency", "integrated_gradients", "grad_cam"]
    assert store.attrs["source"] == "attribution" and store.is_complete()
    samples = store.samples
    np.testing.assert_array_equal(samples["index"], test.index)
    np.testing.assert_array_equal(samples["label"], test.labels)
    np.testing.assert_array_equal(samples["index"], trained_cnn_run.store.samples["index"][:100])
    direct = attribute(model, test, "ig", n_steps=16)
    np.testing.assert_allclose(np.asarray(store.activations("integrated_gradients")), direct.maps, atol=1e-6)
    np.testing.assert_allclose(samples["completeness_integrated_gradients"], direct.completeness, atol=1e-5)
    assert store.unit_shape("grad_cam") == (1, 8, 8)
    reopened = ActivationStore.open(tmp_path / "attr.zarr")
    assert reopened.n_samples == 100 and reopened.chunk_rows == 32


def test_interrupted_run_resumes_where_it_stopped(trained_cnn_run, tmp_path):
    model, test = trained_cnn_run.model, trained_cnn_run.test.subset(slice(0, 96))
    out = tmp_path / "attr.zarr"
    seen: list[int] = []

    def interrupt(done: int, total: int) -> None:
        seen.append(done)
        if done >= 64:
            raise Stop

    with pytest.raises(Stop):
        attribute_dataset(model, test, ["saliency", "gradient_x_input"], out, chunk_rows=32, batch_size=32,
                          progress=interrupt)
    partial = ActivationStore.open(out)
    assert not partial.is_complete()
    resumed: list[int] = []
    store = attribute_dataset(model, test, ["saliency", "gradient_x_input"], out, chunk_rows=32, batch_size=32,
                              progress=lambda d, t: resumed.append(d))
    assert resumed[0] == 96 and store.is_complete()  # only the last chunk was computed
    full = attribute(model, test, "gradient_x_input")
    np.testing.assert_allclose(np.asarray(store.activations("gradient_x_input")), full.maps, atol=1e-5)
    with pytest.raises(StoreError, match="other arguments.*methods"):
        attribute_dataset(model, test, ["saliency"], out, chunk_rows=32)
