"""Deletion and insertion curves: faithful maps beat a random ordering on the trained digits CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralatlas.attribution import FaithfulnessResult, attribute, deletion_curves
from neuralatlas.errors import AnalysisError


@pytest.fixture(scope="module")
def curves(trained_cnn_run):
    test = trained_cnn_run.test.subset(slice(0, 96))
    return deletion_curves(trained_cnn_run.model, test, ["integrated_gradients", "saliency"], steps=16)


def test_integrated_gradients_beat_random(curves):
    assert curves.beats_random("integrated_gradients") == {"deletion": True, "insertion": True}
    auc = curves.auc("deletion")
    assert auc["integrated_gradients"] < 0.6 * auc["random"]
    assert set(curves.to_frame()["method"]) == {"integrated_gradients", "saliency", "random"}


def test_curves_start_and_end_at_the_right_scores(trained_cnn_run, curves):
    test = trained_cnn_run.test.subset(slice(0, 96))
    x = torch.from_numpy(test.inputs)
    t = torch.from_numpy(test.labels).view(-1, 1)
    with torch.no_grad():
        clean = trained_cnn_run.model(x).softmax(1).gather(1, t).squeeze(1).numpy()
        empty = trained_cnn_run.model(torch.zeros_like(x)).softmax(1).gather(1, t).squeeze(1).numpy()
    for method in curves.methods:
        np.testing.assert_allclose(curves.curves["deletion"][method][:, 0], clean, atol=1e-5)
        np.testing.assert_allclose(curves.curves["deletion"][method][:, -1], empty, atol=1e-5)
        np.testing.assert_allclose(curves.curves["insertion"][method][:, 0], empty, atol=1e-5)
        np.testing.assert_allclose(curves.curves["insertion"][method][:, -1], clean, atol=1e-5)
    assert curves.fractions[0] == 0 and curves.fractions[-1] == 1 and len(curves.fractions) == 17


def test_precomputed_maps_and_round_trip(trained_cnn_run, tmp_path):
    test = trained_cnn_run.test.subset(slice(0, 24))
    ig = attribute(trained_cnn_run.model, test, "ig", n_steps=16)
    a = deletion_curves(trained_cnn_run.model, test, ig, steps=8, modes="deletion")
    b = deletion_curves(trained_cnn_run.model, test, {"mine": ig.maps}, steps=8, modes="deletion")
    np.testing.assert_allclose(a.curves["deletion"]["integrated_gradients"], b.curves["deletion"]["mine"])
    a.save(tmp_path)
    back = FaithfulnessResult.load(tmp_path)
    assert back.auc("deletion") == pytest.approx(a.auc("deletion"))
    with pytest.raises(AnalysisError, match="do not cover inputs"):
        deletion_curves(trained_cnn_run.model, test, {"bad": np.zeros((24, 3, 3))})
