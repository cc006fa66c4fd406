"""The training loop: accuracy, determinism, the run folder, restarts, loading back."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from neuralatlas.data import ArrayDataset, digits
from neuralatlas.errors import ConfigError, DataError
from neuralatlas.zoo import ModelError, TrainResult, build, list_checkpoints, load_checkpoint, load_run, mlp, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These models are too small to gain from threads; on a shared, busy machine extra
    # threads only spin and wait, which made this file several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> tuple[ArrayDataset, ArrayDataset]:
    return digits()


@pytest.fixture(scope="module")
def small(data) -> tuple[ArrayDataset, ArrayDataset]:
    train_set, test_set = data
    return train_set.subset(slice(0, 200)), test_set.subset(slice(0, 100))


def tiny(seed: int = 0) -> nn.Module:
    return mlp(hidden=(8,), seed=seed)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mlp_learns_digits_and_writes_the_run_folder(data, tmp_path):
    train_set, test_set = data
    model = mlp(seed=0)
    initial = weights(model)
    seen = []
    result = train(model, train_set, test_set, epochs=5, run_dir=tmp_path, lr=3e-3, batch_size=32,
                   progress=lambda e, n, m: seen.append((e, n, m["try"])))
    assert isinstance(result, TrainResult) and result.model is model
    assert result.metrics[-1]["test_accuracy"] > 0.9
    assert result.tries == 1 and result.reached_target is None and result.run_dir == tmp_path
    assert seen == [(e, 5, 1) for e in range(6)]

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.json", "model.json"]
    found = list_checkpoints(tmp_path)
    assert list(found) == [0, 1, 2, 3, 4, 5]
    assert found[0].name == "epoch_000.pt"
    assert equal(torch.load(found[0], weights_only=True), initial)  # epoch 0 = before training
    assert equal(torch.load(found[5], weights_only=True), weights(model))

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics["epochs"]] == [0, 1, 2, 3, 4, 5]
    assert {"epoch", "loss", "train_accuracy", "test_accuracy"} <= set(metrics["epochs"][0])
    assert metrics["epochs"] == result.metrics
    assert metrics["tries"] == 1 and metrics["restarted_because"] == []
    assert metrics["epochs"][-1]["loss"] < metrics["epochs"][0]["loss"]

    info = json.loads((tmp_path / "model.json").read_text())
    assert info == {"builder": "mlp", "kwargs": {"input_shape": [1, 8, 8], "n_classes": 10, "hidden": [64, 32],
                                                 "activation": "relu"},
                    "input_shape": [1, 8, 8], "classes": [str(i) for i in range(10)], "seed": 0}

    rebuilt, rebuilt_metrics = load_run(tmp_path)
    assert equal(weights(rebuilt), weights(model))
    assert rebuilt_metrics == result.metrics
    assert equal(weights(load_checkpoint(mlp(seed=5), tmp_path, epoch=0)), initial)


def test_same_seed_same_weights(small):
    train_set, test_set = small
    runs = [train(tiny(), train_set, test_set, epochs=2, seed=s).model for s in (1, 1, 2)]
    assert equal(weights(runs[0]), weights(runs[1]))
    assert not equal(weights(runs[0]), weights(runs[2]))


def test_training_leaves_mode_and_global_rng_alone(small):
    train_set, _ = small
    model = tiny().eval()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    train(model, train_set, epochs=1)
    assert torch.equal(torch.rand(3), expected)
    assert not any(m.training for m in model.modules())


def test_restarts_until_the_tries_run_out(small, tmp_path):
    train_set, test_set = small
    model = tiny()
    starts = {}

    def snapshot(epoch, n, metrics):
        if epoch == 0:
            starts[metrics["try"]] = weights(model)

    result = train(model, train_set, test_set, epochs=1, run_dir=tmp_path, seed=3, restarts=1,
                   target_accuracy=1.01, progress=snapshot)
    assert result.tries == 2 and result.reached_target is False
    # Try 1 starts from the model as given, try 2 from a rebuild with seed + 1.
    assert equal(starts[1], weights(tiny())) and equal(starts[2], weights(tiny(seed=4)))
    assert len(result.restarted_because) == 1 and "1.01" in result.restarted_because[0]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tries"] == 2 and metrics["reached_target"] is False
    assert [h["seed"] for h in metrics["history"]] == [3, 4]
    assert list(list_checkpoints(tmp_path)) == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.json", "model.json"]
    # The kept try is the one in the folder and in the model.
    assert equal(weights(load_checkpoint(tiny(), tmp_path)), weights(result.model))
    best = max(metrics["history"], key=lambda h: h["final_test_accuracy"])
    assert metrics["best_try"] == best["try"] and result.seed == best["seed"]


def test_restarts_stop_once_the_target_is_reached(small):
    train_set, test_set = small
    result = train(tiny(), train_set, test_set, epochs=1, restarts=3, target_accuracy=0.05)
    assert result.tries == 1 and result.reached_target is True and result.restarted_because == []


def test_restart_reinitialises_a_model_without_spec(small):
    train_set, _ = small
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    starts = {}

    def snapshot(epoch, n, metrics):
        if epoch == 0:
            starts[metrics["try"]] = weights(model)

    result = train(model, train_set, epochs=1, restarts=1, target_accuracy=1.01, progress=snapshot)
    assert result.tries == 2
    assert not equal(starts[1], starts[2])  # reset_parameters() gave try 2 fresh weights


def test_model_without_spec_gets_no_model_json(small, tmp_path):
    train_set, _ = small
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    train(model, train_set, epochs=0, run_dir=tmp_path)
    assert list(list_checkpoints(tmp_path)) == [0]
    assert not (tmp_path / "model.json").exists()
    with pytest.raises(ModelError, match="no model.json"):
        load_run(tmp_path)
    assert equal(weights(load_checkpoint(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), tmp_path)), weights(model))


def test_plain_torch_dataset(small):
    train_set, _ = small
    plain = TensorDataset(torch.from_numpy(train_set.inputs), torch.from_numpy(train_set.labels))
    result = train(tiny(), plain, epochs=1)
    assert result.metrics[-1]["test_accuracy"] is None and result.metrics[-1]["train_accuracy"] > 0


def test_checkpoint_errors(small, tmp_path):
    train_set, _ = small
    train(tiny(), train_set, epochs=1, run_dir=tmp_path)
    with pytest.raises(ModelError, match=r"epoch 7.*epochs present: \[0, 1\]"):
        load_checkpoint(tiny(), tmp_path, epoch=7)
    with pytest.raises(ModelError, match="fc1.weight"):
        load_checkpoint(mlp(hidden=(9,)), tmp_path)
    with pytest.raises(ModelError, match="No checkpoints"):
        load_checkpoint(tiny(), tmp_path / "elsewhere")
    assert list_checkpoints(tmp_path / "elsewhere") == {}


def test_failed_training_leaves_model_and_earlier_run_as_found(small, tmp_path):
    train_set, _ = small
    train(tiny(), train_set, epochs=1, run_dir=tmp_path)
    before = {e: torch.load(p, weights_only=True) for e, p in list_checkpoints(tmp_path).items()}
    model = tiny(seed=1)
    initial = weights(model)

    def stop(epoch, n, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model, train_set, epochs=3, run_dir=tmp_path, progress=stop)
    assert equal(weights(model), initial)
    after = list_checkpoints(tmp_path)
    assert list(after) == list(before) and all(
        equal(torch.load(after[e], weights_only=True), before[e]) for e in before
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.json", "model.json"]


def test_bad_settings_and_mismatched_data(small):
    train_set, _ = small
    with pytest.raises(ConfigError, match="batch_size"):
        train(tiny(), train_set, batch_size=0)
    with pytest.raises(ConfigError, match="epochs"):
        train(tiny(), train_set, epochs=-1)
    with pytest.raises(DataError, match="n_classes=10"):
        train(mlp(n_classes=3), train_set, epochs=1)
    with pytest.raises(DataError, match=r"inputs of shape \(200, 1, 8, 8\)"):
        train(mlp(input_shape=(2,)), train_set, epochs=1)


def test_retraining_replaces_the_checkpoints(small, tmp_path):
    train_set, _ = small
    train(build("mlp", hidden=(8,)), train_set, epochs=3, run_dir=tmp_path)
    train(build("mlp", hidden=(8,)), train_set, epochs=1, run_dir=tmp_path)
    assert list(list_checkpoints(tmp_path)) == [0, 1]
    assert len(json.loads((tmp_path / "metrics.json").read_text())["epochs"]) == 2


def test_float_labels_are_refused_with_the_fix_not_a_torch_error(tmp_path):
    # before: RuntimeError "expected target dtype to be Long or Byte, but got Float" from inside torch
    x = torch.randn(20, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(1))
    model = torch.nn.Linear(4, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DataError, match="regression targets.*checkpoints="):
        train(model, data, epochs=1, run_dir=tmp_path / "run")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
