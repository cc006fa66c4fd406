"""The model walk and the context manager that leaves a model as found."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralatlas.capture.hooks import module_tree, preserved


def _shared_model() -> nn.Module:
    shared = nn.Linear(4, 4)
    tied = nn.Linear(4, 4)
    model = nn.Sequential(nn.Sequential(shared, nn.ReLU(), shared), nn.BatchNorm1d(4),
                          nn.ModuleDict({"a": tied, "b": nn.Sequential(nn.Identity())}), nn.Linear(4, 2))
    model[3].weight = tied.weight               # a parameter shared by two modules
    model[2]["b"].register_parameter("none", None)
    return model


def test_module_tree_is_modules_and_parameters_in_torchs_order():
    model = _shared_model()
    modules, params = module_tree(model)
    assert [id(m) for m in modules] == [id(m) for m in model.modules()]
    assert [id(p) for p in params] == [id(p) for p in model.parameters()]


def test_preserved_restores_flags_grads_and_device_also_on_error():
    model = _shared_model().train()
    model[3].bias.requires_grad_(False)
    with pytest.raises(RuntimeError), preserved(model) as m:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(True)
        m.to(torch.float64)  # moved in place: the same parameter objects
        raise RuntimeError("the body fails")
    assert all(mod.training for mod in model.modules())
    assert not model[3].bias.requires_grad and model[3].weight.requires_grad
    keeper = preserved(model)
    with keeper:
        assert [id(p) for p in keeper.params] == [id(p) for p in model.parameters()]
        assert len(keeper.modules) == len(list(model.modules()))
