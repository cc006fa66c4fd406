"""One loader for weights files: nested checkpoint dicts, wrapper prefixes, pickles refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralatlas.zoo import ModelError, load_checkpoint, mlp
from neuralatlas.zoo.checkpoints import load_weights, read_state_dict


class Whole(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"state": {}}, "loss": 0.1},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},                       # DDP / DataParallel
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},                    # torch.compile
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},        # Lightning
])
def test_checkpoint_layouts_load_the_same_weights(tmp_path, wrap):
    source, target = mlp(hidden=(5,), seed=1), mlp(hidden=(5,), seed=2)
    assert not _same(source, target)
    torch.save(wrap(source.state_dict()), tmp_path / "w.pt")
    load_checkpoint(target, tmp_path / "w.pt")
    assert _same(source, target)


def test_real_data_parallel_state_dict_loads(tmp_path):
    source, target = mlp(hidden=(4,), seed=1), mlp(hidden=(4,), seed=2)
    torch.save(nn.DataParallel(source).state_dict(), tmp_path / "ddp.pt")
    assert next(iter(torch.load(tmp_path / "ddp.pt", weights_only=True))).startswith("module.")
    load_weights(target, tmp_path / "ddp.pt")
    assert _same(source, target)


def test_pickled_model_is_refused_unless_trusted(tmp_path):
    net = Whole()
    torch.save(net, tmp_path / "whole.pt")
    with pytest.raises(ModelError) as err:
        read_state_dict(tmp_path / "whole.pt")
    msg = str(err.value)
    assert "torch.save(model.state_dict(), path)" in msg and "trust_pickle=True" in msg
    other = Whole()
    load_weights(other, tmp_path / "whole.pt", trust_pickle=True)
    assert _same(net, other)


def test_dict_without_weights_lists_its_keys(tmp_path):
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "opt.pt")
    with pytest.raises(ModelError, match=r"keys \['epoch', 'optimizer'\]"):
        read_state_dict(tmp_path / "opt.pt")


def test_a_prefix_is_stripped_only_when_it_makes_the_keys_fit(tmp_path):
    source = mlp(hidden=(4,), seed=1)
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["backbone.extra"] = torch.zeros(1)  # then it is not the model's keys: no guessing
    with pytest.raises(ModelError, match="unexpected keys"):
        load_weights(mlp(hidden=(4,), seed=2), state)


def test_shape_mismatch_names_the_key(tmp_path):
    torch.save(mlp(hidden=(4,)).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ModelError, match=r"fc1.weight: \(4, 64\) vs model \(5, 64\)"):
        load_checkpoint(mlp(hidden=(5,)), tmp_path / "w.pt")
