"""path_integral against captum's IntegratedGradients: the same sum, every integration rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralatlas.attribution.integrated import integrated_gradients, path_integral

captum_attr = pytest.importorskip("captum.attr")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)).eval()


class _WithMask(nn.Module):
    """A forward with an extra tensor argument (like an attention mask) passed along the path."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _model()

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.net(x * scale.view(-1, 1, 1, 1))


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_middle"])
@pytest.mark.parametrize("ibs", [None, 6, 1])
def test_path_integral_equals_captum(method: str, ibs: int | None) -> None:
    model = _model()
    x = torch.randn(3, 1, 5, 5, dtype=torch.float64)
    b = torch.randn(3, 1, 5, 5, dtype=torch.float64) * 0.1
    t = torch.tensor([0, 2, 1])
    model = model.double()
    ref = captum_attr.IntegratedGradients(model).attribute(x, baselines=b, target=t, n_steps=7, method=method,
                                                           internal_batch_size=ibs)
    ours = path_integral(model, x, b, t, n_steps=7, method=method, internal_batch_size=ibs)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9)


def test_path_integral_extras_equal_captum() -> None:
    model = _WithMask().double()
    x = torch.randn(4, 1, 5, 5, dtype=torch.float64)
    b = torch.zeros_like(x)
    t = torch.tensor([1, 0, 2, 1])
    scale = torch.tensor([1.0, 0.5, 2.0, -1.0], dtype=torch.float64)
    ref = captum_attr.IntegratedGradients(model).attribute(x, baselines=b, target=t, n_steps=9,
                                                           additional_forward_args=(scale,), internal_batch_size=8)
    ours = path_integral(model, x, b, t, n_steps=9, internal_batch_size=8, extras=(scale,))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9)


def test_integrated_gradients_complete_on_a_linear_model() -> None:
    # a linear model: IG is exact, (x - b) * w, and completeness holds to rounding
    lin = nn.Linear(6, 2).double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    t = torch.tensor([0, 1, 1, 0, 1])
    out = integrated_gradients(lin, x, t, torch.zeros(1, 6, dtype=torch.float64), n_steps=3)
    torch.testing.assert_close(out.maps, x * lin.weight.detach()[t])
    assert float(out.relative.max()) < 1e-10


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_attribute_leaves_the_model_as_found(method: str) -> None:
    # the restore now touches only what changed: a training model with one frozen layer
    from neuralatlas.attribution import attribute

    model = _model().float().train()
    model[0].weight.requires_grad_(False)
    model[3].eval()                                  # a mixed state, restored as it was
    x = torch.randn(4, 1, 5, 5)
    attribute(model, x, method, target=[0, 1, 2, 0], n_steps=4, keep_inputs=False)
    assert [m.training for m in model.modules()] == [True, True, True, True, False]
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_completeness_of_one_shared_baseline_row_is_that_of_the_baseline_per_sample() -> None:
    from neuralatlas.attribution.integrated import completeness

    model = _model().double()
    x = torch.randn(6, 1, 5, 5, dtype=torch.float64)
    t = torch.tensor([0, 2, 1, 1, 0, 2])
    maps = torch.randn(6, 1, 5, 5, dtype=torch.float64)
    for b in (torch.zeros(1, 1, 5, 5, dtype=torch.float64), torch.rand(1, 1, 5, 5, dtype=torch.float64)):
        once = completeness(model, x, b, t, maps)             # the baseline's row run once
        each = completeness(model, x, b.expand_as(x).clone(), t, maps)  # once per sample
        for a, e in zip(once, each, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    # IG with the baseline's row: the same completeness as with it repeated per sample
    row = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    a = integrated_gradients(model, x, t, row, n_steps=5)
    e = integrated_gradients(model, x, t, row.expand_as(x).clone(), n_steps=5)
    torch.testing.assert_close(a.maps, e.maps, rtol=0, atol=0)
    torch.testing.assert_close(a.delta, e.delta, rtol=1e-12, atol=1e-12)


def test_activation_bytes_are_measured_again_when_the_model_changes() -> None:
    from neuralatlas.attribution.integrated import activation_bytes_per_row

    model = _model()
    x = torch.randn(2, 1, 5, 5)
    before = activation_bytes_per_row(model, x)
    assert activation_bytes_per_row(model, x) == before  # cached
    model[0] = nn.Conv2d(1, 40, 3, padding=1)               # ten times the channels...
    model[3] = nn.Linear(40 * 5 * 5, 3)
    assert activation_bytes_per_row(model, x) > 5 * before  # ...and the rows per pass follow
