"""attribute(): every method against reference implementations, analytic cases and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuralatlas.attribution import METHODS, Attribution, attribute
from neuralatlas.attribution.integrated import gauss_legendre
from neuralatlas.data import ArrayDataset
from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.zoo import cnn, mlp


@pytest.fixture(scope="module")
def batch(digits_data):
    _, test = digits_data
    return torch.from_numpy(test.inputs[:24]), torch.from_numpy(test.labels[:24])


@pytest.fixture(scope="module")
def small_cnn():
    return cnn(seed=3).eval()


def plain_ig(model: nn.Module, x: torch.Tensor, t: torch.Tensor, baseline: torch.Tensor, n_steps: int,
             rule: str = "gausslegendre") -> torch.Tensor:
    """Integrated gradients as a plain weighted sum of gradients along the straight path."""
    if rule == "gausslegendre":
        alphas, weights = gauss_legendre(n_steps)
    else:  # trapezoid rule on n_steps equally spaced points
        alphas = np.linspace(0, 1, n_steps)
        weights = np.full(n_steps, 1.0 / (n_steps - 1))
        weights[[0, -1]] /= 2
    total = torch.zeros_like(x)
    for a, w in zip(alphas, weights, strict=True):
        xi = (baseline + float(a) * (x - baseline)).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi).gather(1, t.view(-1, 1)).sum(), xi)
        total += float(w) * g
    return total * (x - baseline)


def test_saliency_equals_autograd(small_cnn, batch):
    x, y = batch
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(small_cnn(xi).gather(1, y.view(-1, 1)).sum(), xi)
    res = attribute(small_cnn, x, "saliency", labels=y.numpy(), device="cpu")  # same kernels as the reference
    np.testing.assert_allclose(res.maps, g.abs().numpy(), rtol=1e-6, atol=1e-7)
    assert not res.signed and res.targets.tolist() == y.tolist()
    np.testing.assert_array_equal(res.predictions, small_cnn(x).argmax(1).numpy())


@pytest.mark.parametrize("rule,n_steps", [("gausslegendre", 50), ("riemann_trapezoid", 40)])
# the other two batch sizes run the same arithmetic again; "auto" keeps it in the fast loop
@pytest.mark.parametrize("internal_batch_size", ["auto", pytest.param(None, marks=pytest.mark.slow),
                                                 pytest.param(70, marks=pytest.mark.slow)])
def test_integrated_gradients_equal_plain_torch_sum(small_cnn, batch, rule, n_steps, internal_batch_size):
    x, y = batch
    baseline = torch.full_like(x[:1], 0.25)
    res = attribute(small_cnn, x, "ig", labels=y.numpy(), baseline=0.25, n_steps=n_steps, integration=rule,
                    internal_batch_size=internal_batch_size)
    ref = plain_ig(small_cnn, x, y, baseline, n_steps, rule)
    np.testing.assert_allclose(res.maps, ref.numpy(), atol=1e-5, rtol=0)


def test_integrated_gradients_completeness_is_reported_honestly(trained_cnn_run):
    model, test = trained_cnn_run.model, trained_cnn_run.test.subset(slice(0, 64))
    res = attribute(model, test, "integrated_gradients", n_steps=64)
    with torch.no_grad():
        logits_x = model(torch.from_numpy(test.inputs))
        logits_b = model(torch.zeros_like(torch.from_numpy(test.inputs)))
    t = torch.from_numpy(res.targets).view(-1, 1)
    gap = (logits_x.gather(1, t) - logits_b.gather(1, t)).squeeze(1).numpy()
    delta = res.maps.reshape(64, -1).sum(1) - gap
    np.testing.assert_allclose(res.delta, delta, atol=1e-4)
    # completeness holds within the error the result reports
    assert np.all(np.abs(delta) <= res.completeness * np.maximum(np.abs(gap), 1e-6) + 1e-4)
    assert np.median(res.completeness) < 0.05


def test_tolerance_raises_n_steps_until_complete(trained_cnn_run):
    test = trained_cnn_run.test.subset(slice(0, 32))
    coarse = attribute(trained_cnn_run.model, test, "ig", n_steps=4)
    fine = attribute(trained_cnn_run.model, test, "ig", n_steps=4, tolerance=0.01, max_steps=512)
    assert coarse.completeness.max() > 0.01  # the coarse rule is not good enough here
    done = fine.n_steps < 512
    assert np.all(fine.completeness[done] <= 0.01)
    assert fine.n_steps.max() > 4 and set(np.unique(fine.n_steps)) <= {4, 8, 16, 32, 64, 128, 256, 512}


def test_linear_model_gradient_x_input_and_ig_are_weight_times_input():
    torch.manual_seed(0)
    model = mlp(input_shape=(1, 4, 4), hidden=(), n_classes=3, seed=1).double().eval()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    t = np.array([0, 1, 2, 1, 0])
    w = model.out.weight.detach()[torch.from_numpy(t)].view(5, 1, 4, 4)
    expected = (w * x).numpy()
    # captum holds IG's quadrature weights in float32 (torch.tensor(...).float()), hence 1e-8 there
    for method, rtol in (("gradient_x_input", 1e-12), ("deeplift", 1e-12), ("integrated_gradients", 1e-8)):
        res = attribute(model, x, method, target=t)
        assert res.maps.dtype == np.float64
        np.testing.assert_allclose(res.maps, expected, rtol=rtol, atol=1e-14, err_msg=method)
    occ = attribute(model, x, "occlusion", target=t, window=1, stride=1)
    np.testing.assert_allclose(occ.maps, expected, rtol=1e-6, atol=1e-9)  # captum sums ablations in float32


def test_neuron_and_channel_attribution(small_cnn, batch):
    x, _ = batch
    xi = x.clone().requires_grad_(True)
    acts = {}
    handle = small_cnn.conv2.register_forward_hook(lambda m, a, o: acts.__setitem__("conv2", o))
    h2 = small_cnn.fc1.register_forward_hook(lambda m, a, o: acts.__setitem__("fc1", o))
    small_cnn(xi)
    handle.remove()
    h2.remove()
    (g_unit,) = torch.autograd.grad(acts["fc1"][:, 17].sum(), xi, retain_graph=True)
    (g_chan,) = torch.autograd.grad(acts["conv2"][:, 5].mean((1, 2)).sum(), xi)
    unit = attribute(small_cnn, x, "saliency", neuron=("fc1", 17), device="cpu")
    chan = attribute(small_cnn, x, "saliency", neuron=("conv2", 5), device="cpu")
    np.testing.assert_allclose(unit.maps, g_unit.abs().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(chan.maps, g_chan.abs().numpy(), rtol=1e-5, atol=1e-7)
    assert unit.neuron == ("fc1", 17) and unit.targets is None and unit.name == "saliency->fc1:17"
    ig = attribute(small_cnn, x, "ig", neuron=("conv2", (5, 1, 2)), n_steps=64)
    assert ig.completeness.max() < 0.05


def test_every_method_runs_with_the_right_shape(small_cnn, batch):
    x, y = batch
    for method, spec in METHODS.items():
        layer = "conv2" if method == "conductance" else None
        res = attribute(small_cnn, x[:6], method, labels=y[:6].numpy(), layer=layer, n_steps=8)
        expected = (6, 32, 4, 4) if method == "conductance" else (6, 1, 8, 8)
        assert res.maps.shape == expected, method
        assert np.isfinite(res.maps).all(), method
        assert res.signed == (spec.signed and method != "smoothgrad"), method


def test_grad_cam_defaults_to_the_last_convolution_and_is_upsampled(small_cnn, batch):
    x, y = batch
    cam = attribute(small_cnn, x, "grad_cam", labels=y.numpy())
    assert cam.layer == "conv2" and cam.name == "grad_cam@conv2"
    assert cam.maps.shape == (24, 1, 8, 8) and cam.maps.min() >= 0
    cam1 = attribute(small_cnn, x, "grad_cam", labels=y.numpy(), layer="relu1")
    assert cam1.layer == "relu1"


def test_layer_attribution_is_complete(small_cnn, batch):
    x, y = batch
    res = attribute(small_cnn, x, "integrated_gradients", labels=y.numpy(), layer="fc1", n_steps=100)
    assert res.maps.shape == (24, 64) and res.layer == "fc1"
    assert np.median(res.completeness) < 0.05


def test_smoothgrad_and_gradient_shap_are_seeded(small_cnn, batch):
    x, y = batch
    for method, kw in (("smoothgrad", {}), ("gradient_shap", {}), ("ig", {"smooth": 4, "n_steps": 8})):
        a = attribute(small_cnn, x, method, labels=y.numpy(), seed=1, **kw)
        b = attribute(small_cnn, x, method, labels=y.numpy(), seed=1, **kw)
        c = attribute(small_cnn, x, method, labels=y.numpy(), seed=2, **kw)
        np.testing.assert_allclose(a.maps, b.maps, rtol=0, atol=1e-6)  # bitwise on CPU; CUDA atomics may differ
        assert not np.allclose(a.maps, c.maps, rtol=0, atol=1e-6), method
    assert (
        attribute(small_cnn, x, "ig", labels=y.numpy(), smooth=2, n_steps=4).name == "smoothgrad(integrated_gradients)"
    )


def test_gradient_shap_draws_are_n_draws_and_the_old_keyword_warns(small_cnn, batch):
    x, y = batch
    new = attribute(small_cnn, x, "gradient_shap", labels=y.numpy(), seed=3, n_draws=4)
    assert new.params["n_draws"] == 4 and "n_samples" not in new.params
    with pytest.warns(DeprecationWarning, match="use n_draws"):
        old = attribute(small_cnn, x, "gradient_shap", labels=y.numpy(), seed=3, n_samples=4)
    np.testing.assert_array_equal(old.maps, new.maps)
    more = attribute(small_cnn, x, "gradient_shap", labels=y.numpy(), seed=3, n_draws=8)
    assert not np.allclose(more.maps, new.maps)  # the count reaches captum


def test_data_set_input_and_prediction_target(small_cnn, digits_data):
    _, test = digits_data
    sub = test.subset(slice(0, 40))
    res = attribute(small_cnn, sub, "gradient_x_input", target="prediction", batch_size=16)
    with torch.no_grad():
        pred = small_cnn(torch.from_numpy(sub.inputs)).argmax(1).numpy()
    np.testing.assert_array_equal(res.targets, pred)
    np.testing.assert_array_equal(res.index, sub.index)
    np.testing.assert_array_equal(res.labels, sub.labels)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(sub.inputs),
                                                                        torch.from_numpy(sub.labels)), batch_size=16)
    np.testing.assert_allclose(attribute(small_cnn, loader, "gradient_x_input", target="prediction").maps, res.maps,
                               atol=1e-6)


def test_model_left_as_found(batch):
    model = cnn(seed=5)  # training mode, trainable
    model.conv1.weight.requires_grad_(False)
    x, y = batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("saliency", "ig", "deeplift", "guided_backprop", "grad_cam", "smoothgrad"):
        attribute(model, x[:4], method, labels=y[:4].numpy(), n_steps=4)
    assert model.training and all(m.training for m in model.modules())
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bad_input_gets_clear_errors(small_cnn, batch):
    x, y = batch
    with pytest.raises(
        AnalysisError, match="Unknown attribution method 'integrated_gradient_x'.*Valid methods:.*saliency"
    ):
        attribute(small_cnn, x, "integrated_gradient_x", labels=y.numpy())
    with pytest.raises(
        AnalysisError, match=r"target 12 is out of range: the model has 10 outputs \(valid classes 0..9\)"
    ):
        attribute(small_cnn, x, "saliency", target=12)
    with pytest.raises(AnalysisError, match="out of range"):
        attribute(small_cnn, x, "saliency", labels=np.full(len(x), 10))
    with pytest.raises(
        AnalysisError,
        match=r"grad_cam needs a convolutional layer.*'fc1' \(Linear\)"
        r".*Layers that would do: conv1, relu1, pool1, conv2",
    ):
        attribute(small_cnn, x, "grad_cam", labels=y.numpy(), layer="fc1")
    with pytest.raises(LayerError, match="No layer 'conv9'.*conv1"):
        attribute(small_cnn, x, "grad_cam", labels=y.numpy(), layer="conv9")
    with pytest.raises(AnalysisError, match="target='label' needs labels"):
        attribute(small_cnn, x, "saliency")
    with pytest.raises(AnalysisError, match="neuron unit 64 is out of range: layer 'fc1' has 64 units"):
        attribute(small_cnn, x, "saliency", neuron=("fc1", 64))
    with pytest.raises(AnalysisError, match="has no layer form"):
        attribute(small_cnn, x, "occlusion", labels=y.numpy(), layer="fc1")
    with pytest.raises(AnalysisError, match="baseline of shape"):
        attribute(small_cnn, x, "ig", labels=y.numpy(), baseline=np.zeros((3, 3)))


def test_result_round_trip(small_cnn, batch, tmp_path):
    x, y = batch
    res = attribute(small_cnn, x, "ig", labels=y.numpy(), n_steps=8)
    res.save(tmp_path)
    back = Attribution.load(tmp_path)
    np.testing.assert_array_equal(back.maps, res.maps)
    np.testing.assert_array_equal(back.completeness, res.completeness)
    assert back.name == res.name and back.params["n_steps"] == 8 and back.summary() == res.summary()


def test_saliency_keeps_its_own_targets_and_the_model_s_predictions():
    """The per-call shortcuts (targets kept as numpy, argmax in numpy) change no number."""
    model = cnn(seed=0).eval()
    x = torch.rand(70, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = np.arange(70) % 10
    a = attribute(model, x, "saliency", target=t, batch_size=32)   # three batches, the last short
    t[:] = 0                                                       # the caller's array, changed after
    assert a.targets.tolist() == (np.arange(70) % 10).tolist()
    with torch.no_grad():
        assert a.predictions.tolist() == model(x).argmax(1).tolist()
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xi).gather(1, torch.as_tensor(np.arange(70) % 10).view(-1, 1)).sum(), xi)
    np.testing.assert_allclose(a.maps, g.abs().numpy(), rtol=1e-6, atol=1e-7)


def test_smooth_counts_draws_and_the_old_samples_key_warns_with_the_same_maps(small_cnn, batch):
    """A noise tunnel's copies are ``draws`` (``samples`` are data samples everywhere else)."""
    x, y = batch
    new = attribute(small_cnn, x[:4], "smoothgrad", labels=y[:4].numpy(), smooth={"draws": 3, "noise": 0.1}, seed=1)
    with pytest.warns(DeprecationWarning, match=r"smooth=\{'draws': \.\.\.\}"):
        old = attribute(small_cnn, x[:4], "smoothgrad", labels=y[:4].numpy(), smooth={"samples": 3, "noise": 0.1},
                        seed=1)
    np.testing.assert_array_equal(np.asarray(old.maps), np.asarray(new.maps))
    assert new.params["smooth"]["draws"] == 3
    with pytest.raises(AnalysisError, match="both 'samples'"):
        attribute(small_cnn, x[:2], "smoothgrad", labels=y[:2].numpy(), smooth={"samples": 3, "draws": 3})


class _Steep(nn.Module):
    """A sigmoid step along x.sum(): few integration steps miss most of F(x) - F(0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(20 * x.flatten(1).sum(1) - 10)
        return torch.stack([s, -s], 1)


def test_integrated_gradients_warn_when_the_maps_miss_completeness():
    # before: n_steps=2 returned maps summing to 5 % of F(x) - F(baseline) without a word
    import warnings

    x = np.full((4, 3), 0.3, np.float32) + np.arange(4, dtype=np.float32)[:, None] * 0.05
    data = ArrayDataset(x, np.zeros(4, np.int64), ["a", "b"])
    with pytest.warns(UserWarning, match="n_steps=2: the maps of 4 of 4 samples miss"):
        few = attribute(_Steep(), data, "integrated_gradients", target=0, n_steps=2)
    assert few.summary()["completeness_max"] > 0.1  # the warning says what the summary says
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough steps, or step doubling to a tolerance: silent
        assert attribute(_Steep(), data, "integrated_gradients", target=0).summary()["completeness_max"] < 0.1
        attribute(_Steep(), data, "integrated_gradients", target=0, n_steps=2, tolerance=0.01)
