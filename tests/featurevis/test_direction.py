"""The direction objective: a vector in a layer's space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis import objectives as O


def _maps():
    return {"conv": torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0)),
            "fc": torch.randn(3, 4, generator=torch.Generator().manual_seed(1))}


def test_a_basis_vector_is_the_channel_objective():
    t = _maps()
    e2 = np.eye(4)[2] * 3.0  # length does not matter: directions are unit vectors
    assert torch.allclose(O.direction("conv", e2)(t), O.channel("conv", 2)(t), atol=1e-6)
    assert torch.allclose(O.direction("fc", e2)(t), t["fc"][:, 2], atol=1e-6)


def test_dot_product_and_cosine_by_hand():
    t = _maps()
    v = np.array([1.0, -2.0, 0.5, 0.0])
    u = torch.tensor(v / np.linalg.norm(v), dtype=torch.float32)
    a = t["conv"]
    expected = torch.einsum("bchw,c->bhw", a, u).mean((1, 2))
    assert torch.allclose(O.direction("conv", v)(t), expected, atol=1e-5)
    cos = (torch.einsum("bchw,c->bhw", a, u) / a.norm(dim=1)).mean((1, 2))
    got = O.direction("conv", v, cosine=True)(t)
    assert torch.allclose(got, cos, atol=1e-5) and got.abs().max() <= 1


def test_several_directions_one_image_each():
    t = _maps()
    obj = O.direction("fc", np.eye(4)[:3])
    assert obj.n_images == 3
    assert torch.allclose(obj(t), t["fc"][torch.arange(3), torch.arange(3)], atol=1e-6)


def test_bad_vectors_raise():
    t = _maps()
    with pytest.raises(AnalysisError, match="zero"):
        O.direction("fc", np.zeros(4))
    with pytest.raises(AnalysisError, match="4 channels"):
        O.direction("fc", np.ones(5))(t)
    with pytest.raises(AnalysisError, match="vector"):
        O.direction("fc", np.ones((2, 2, 2)))


def test_visualising_a_direction_raises_it(digits_cnn=None):
    from neuralatlas.featurevis import visualize_feature
    from neuralatlas.zoo import cnn

    model = cnn().eval()
    v = np.random.default_rng(0).normal(size=32)
    res = visualize_feature(model, O.direction("conv2", v), steps=30, lr=0.1)
    assert res.trace[-5:].mean() > res.trace[:3].mean()
