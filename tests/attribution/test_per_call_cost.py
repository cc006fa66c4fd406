"""What makes attribute() cheap per call: saliency's direct path and the probe cache.

The direct path must give the general path's result and errors; the cache must see a model
changed between calls and must not keep a model alive.
"""

from __future__ import annotations

import copy
import gc
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from neuralatlas.attribution import attribute
from neuralatlas.attribution import methods as M
from neuralatlas.errors import AnalysisError
from neuralatlas.zoo import cnn


@pytest.fixture(scope="module")
def batch(digits_data):
    _, test = digits_data
    return torch.from_numpy(test.inputs[:24]), torch.from_numpy(test.labels[:24])


def _both_paths(monkeypatch, *args, **kwargs):
    """attribute() through the direct saliency path and through the general one."""
    direct = attribute(*args, **kwargs)
    monkeypatch.setattr(M, "_DIRECT_SALIENCY", False)
    general = attribute(*args, **kwargs)
    monkeypatch.setattr(M, "_DIRECT_SALIENCY", True)
    return direct, general


def _assert_same_result(a, b) -> None:
    for name in ("method", "signed", "layer", "neuron", "params"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("maps", "targets", "inputs", "labels", "predictions", "index", "delta", "completeness",
                 "n_steps", "mask", "tokens"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("target", ["label", "prediction", 3, "array", "tensor"])
@pytest.mark.parametrize("batch_size,keep_inputs", [(64, True), (10, False)])
def test_direct_saliency_is_the_general_path(monkeypatch, batch, target, batch_size, keep_inputs):
    x, y = batch
    model = cnn(seed=4)  # training mode and trainable: both paths must set eval and freeze, then restore
    kind, target = target, {"array": y.numpy()[::-1].copy(), "tensor": y.flip(0)}.get(target, target)
    direct, general = _both_paths(monkeypatch, model, x, "saliency", target=target, labels=y.numpy(),
                                  batch_size=batch_size, keep_inputs=keep_inputs, baseline="zeros")
    _assert_same_result(direct, general)
    assert model.training and all(p.requires_grad for p in model.parameters())
    if kind == "prediction":  # the targets are the predictions, from the saliency's own forward
        np.testing.assert_array_equal(direct.targets, direct.predictions)
        with torch.no_grad():
            np.testing.assert_array_equal(direct.predictions, model.eval()(x).argmax(1).numpy())


def test_direct_saliency_under_no_grad_and_with_inputs_that_require_grad(monkeypatch, batch):
    x, y = batch
    model = cnn(seed=4).eval()
    xr = x.clone().requires_grad_(True)
    with torch.no_grad():
        direct, general = _both_paths(monkeypatch, model, xr, "saliency", labels=y.numpy())
    _assert_same_result(direct, general)
    assert xr.grad is None and direct.maps.any()


@pytest.mark.parametrize("kwargs,message", [
    ({"target": 10}, r"target 10 is out of range: the model has 10 outputs"),
    ({"target": -1}, r"target -1 is out of range"),
    ({"target": np.full(24, -3)}, r"target -3 is out of range"),
    ({"target": np.zeros(5, int)}, r"target has 5 entries but there are 24 samples"),
    ({}, r"target='label' needs labels"),
    ({"labels": np.full(24, 12)}, r"label 12 is out of range"),
    ({"labels": np.zeros(3, int)}, r"labels has 3 entries but the inputs hold 24 samples"),
])
def test_direct_saliency_errors_are_the_general_path_s(monkeypatch, batch, kwargs, message):
    x, _ = batch
    model = cnn(seed=4).eval()
    for direct in (True, False):
        monkeypatch.setattr(M, "_DIRECT_SALIENCY", direct)
        with pytest.raises(AnalysisError, match=message):
            attribute(model, x, "saliency", **kwargs)
    with pytest.raises(AnalysisError, match=r"no inputs to attribute \(0 samples\)"):
        attribute(model, x[:0], "saliency", target=0)


def _saliency_by_autograd(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> np.ndarray:
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xi).gather(1, t.view(-1, 1)).sum(), xi)
    return g.abs().numpy()


def test_a_model_changed_between_calls_is_probed_again(batch):
    x, y = batch
    model = cnn(seed=4).eval()
    attribute(model, x, "saliency", labels=y.numpy())
    attribute(model, x, "grad_cam", labels=y.numpy(), layer="conv2")
    # a new head with 5 classes: the cached 10 outputs would let class 7 through
    model.out = nn.Linear(model.out.in_features, 5)
    with pytest.raises(AnalysisError, match="target 7 is out of range: the model has 5 outputs"):
        attribute(model, x, "saliency", target=7)
    res = attribute(model, x, "saliency", target=4)
    np.testing.assert_allclose(res.maps, _saliency_by_autograd(model, x, torch.full((24,), 4)), rtol=1e-6, atol=1e-7)
    # the same modules, a parameter of another shape (as pruning tools do)
    model.out.weight = nn.Parameter(model.out.weight[:3].detach().clone())
    model.out.bias = nn.Parameter(model.out.bias[:3].detach().clone())
    with pytest.raises(AnalysisError, match="target 4 is out of range: the model has 3 outputs"):
        attribute(model, x, "saliency", target=4)
    # a new conv2: Grad-CAM must hook the module that runs, not the one cached
    model.conv2 = nn.Conv2d(model.conv2.in_channels, model.conv2.out_channels, 3, padding=1)
    fresh = copy.deepcopy(model)
    np.testing.assert_allclose(attribute(model, x, "grad_cam", target=1, layer="conv2").maps,
                               attribute(fresh, x, "grad_cam", target=1, layer="conv2").maps, rtol=1e-5, atol=1e-7)


@pytest.mark.filterwarnings("ignore:integrated gradients with n_steps")
def test_the_caches_do_not_keep_a_model_alive(batch):
    x, y = batch
    model = cnn(seed=4)
    for method in ("saliency", "grad_cam", "integrated_gradients"):
        attribute(model, x[:4], method, labels=y[:4].numpy(), n_steps=4)
    attribute(model, x[:4].numpy(), "saliency", labels=y[:4].numpy())  # the general path too
    assert model in M._PROBES
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_probe_entries_per_model_are_bounded(batch):
    x, _ = batch
    model = cnn(seed=4).eval()
    def class_score(k: int):
        return lambda out: out[:, k]

    for k in range(M._PROBES_PER_MODEL + 5):  # a target function made anew each call is a new cache key
        attribute(model, x[:2], "saliency", target=class_score(k % 10))
    assert len(M._PROBES[model][1]) <= M._PROBES_PER_MODEL


class _Flat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1)  # [batch]: no class axis


@pytest.mark.parametrize("model,message", [
    (nn.Linear(3, 2), r"Linear failed on inputs of shape \[\d+, 1, 8, 8\]: RuntimeError: .*Check that the inputs"),
    (_Flat(), r"The model's output is \[\d+\]; attribution needs \[batch, classes\] scores"),
])
def test_direct_saliency_tells_a_model_that_does_not_fit_as_the_general_path_does(monkeypatch, batch, model, message):
    x, _ = batch
    for direct in (True, False):
        monkeypatch.setattr(M, "_DIRECT_SALIENCY", direct)
        with pytest.raises(AnalysisError, match=message):
            attribute(model, x, "saliency", target=0)
