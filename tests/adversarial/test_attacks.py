"""FGSM and PGD: ε = 0 changes nothing, moderate ε drops accuracy, norms and data range hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralatlas.adversarial import AttackResult, attack, capture_adversarial, fgsm, pgd, robustness_curve
from neuralatlas.errors import AnalysisError


@pytest.fixture(scope="module")
def model_and_data(trained_cnn_run):
    return trained_cnn_run.model, trained_cnn_run.test.subset(slice(0, 150))


def test_fgsm_at_zero_eps_changes_nothing(model_and_data):
    model, test = model_and_data
    res = fgsm(model, test, eps=0.0)
    np.testing.assert_array_equal(res.adversarial, test.inputs)
    np.testing.assert_array_equal(res.adv_pred, res.clean_pred)
    assert res.success_rate == 0.0 and res.adversarial_accuracy == res.clean_accuracy
    assert pgd(model, test, eps=0.0, random_start=False).success_rate == 0.0


def test_pgd_at_moderate_eps_drops_accuracy(model_and_data):
    model, test = model_and_data
    res = pgd(model, test, eps=0.15, steps=10)
    assert res.clean_accuracy > 0.85
    assert res.adversarial_accuracy < res.clean_accuracy - 0.4
    assert res.norms().max() <= 0.15 + 1e-6
    assert res.adversarial.min() >= 0.0 and res.adversarial.max() <= 1.0  # digits live in [0, 1]
    weaker = fgsm(model, test, eps=0.15)
    assert res.success_rate >= weaker.success_rate  # iterating finds at least what one step does


def test_fgsm_is_the_sign_of_the_loss_gradient(model_and_data):
    model, test = model_and_data
    x = torch.from_numpy(test.inputs[:8]).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(test.labels[:8]), reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    expected = (x + 0.1 * g.sign()).clamp(0, 1).detach().numpy()
    res = fgsm(model, test.subset(slice(0, 8)), eps=0.1)
    np.testing.assert_allclose(res.adversarial, expected, atol=1e-7)


def test_l2_and_targeted(model_and_data):
    model, test = model_and_data
    l2 = pgd(model, test, eps=1.0, norm="l2", steps=10)
    assert l2.norms().max() <= 1.0 + 1e-5 and l2.adversarial_accuracy < l2.clean_accuracy
    targeted = pgd(model, test, eps=0.25, steps=20, target_class=3)
    assert targeted.success_rate > 0.5
    assert (targeted.adv_pred == 3).mean() > (targeted.clean_pred == 3).mean() + 0.4
    again = pgd(model, test, eps=0.25, steps=20, target_class=3)
    np.testing.assert_array_equal(again.adversarial, targeted.adversarial)  # seeded random start


def test_robustness_curve_is_monotone_enough(model_and_data):
    model, test = model_and_data
    curve = robustness_curve(model, test, eps=[0.0, 0.05, 0.1, 0.2], steps=5)
    acc = curve.table["accuracy"].to_numpy()
    assert acc[0] == pytest.approx(curve.table["clean_accuracy"].iloc[0]) and acc[-1] < acc[0] - 0.5
    assert np.all(np.diff(acc) <= 1e-9)


def test_capture_clean_and_adversarial_into_one_store(model_and_data, tmp_path):
    model, test = model_and_data
    res = pgd(model, test.subset(slice(0, 40)), eps=0.1, steps=5)
    store = capture_adversarial(model, None, tmp_path / "adv.zarr", result=res, layers=["fc1", "out"])
    table = store.samples
    assert store.n_samples == 80 and store.layers == ["fc1", "out"]
    assert table["group"].tolist() == ["clean"] * 40 + ["adversarial"] * 40
    np.testing.assert_array_equal(table["index"][:40], table["index"][40:])
    np.testing.assert_array_equal(table["prediction"][40:], res.adv_pred)
    res.save(tmp_path / "results" / res.stem)
    back = AttackResult.load(tmp_path / "results" / "pgd_linf_eps0.1")
    np.testing.assert_array_equal(back.adversarial, res.adversarial)


def test_bad_arguments(model_and_data):
    model, test = model_and_data
    with pytest.raises(AnalysisError, match="Unknown attack 'cw'.*fgsm, pgd"):
        attack(model, test, "cw")
    with pytest.raises(AnalysisError, match="FGSM is an L∞ attack"):
        attack(model, test, "fgsm", norm="l2")
    with pytest.raises(AnalysisError, match="target_class 10 is out of range"):
        pgd(model, test, eps=0.1, target_class=10)
    with pytest.raises(AnalysisError, match="needs the true labels"):
        pgd(model, torch.rand(4, 1, 8, 8), eps=0.1)
