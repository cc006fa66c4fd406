"""Capture: exact values, gradients, resume, a model left as found, and clear errors."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import neuralatlas as na
from neuralatlas.capture import hooks, resolve_layers
from neuralatlas.errors import CaptureError, DataError, LayerError, StoreError
from neuralatlas.zoo import build


@pytest.fixture()
def small(digits_data):
    _, test = digits_data
    return test.subset(slice(0, 200))


def _forward_layers(model, x, names):
    """Reference: plain forward with detached copies of the named modules' outputs."""
    seen = {}
    handles = [dict(model.named_modules())[n].register_forward_hook(
        lambda m, i, o, n=n: seen.__setitem__(n, o.detach().clone())) for n in names]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return seen, logits


def test_activations_equal_a_direct_forward_pass(small, tmp_path):
    model = build("cnn", seed=1).eval()
    store = na.capture(model, small, out=tmp_path / "a.zarr", batch_size=50, chunk_rows=100, device="cpu")
    assert store.layers == resolve_layers(model, None)
    for lo in range(0, len(small), 50):
        x = torch.from_numpy(small.inputs[lo:lo + 50])
        ref, logits = _forward_layers(model, x, store.layers)
        for name in store.layers:
            np.testing.assert_array_equal(np.asarray(store.activations(name)[lo:lo + 50]), ref[name].numpy())
        np.testing.assert_array_equal(store.samples["prediction"][lo:lo + 50], logits.argmax(1).numpy())
    np.testing.assert_array_equal(store.samples["label"], small.labels)
    np.testing.assert_array_equal(store.samples["index"], small.index)


@pytest.mark.parametrize("target", ["label", "prediction", "loss", 3])
def test_gradients_equal_autograd(small, tmp_path, target):
    model = build("mlp", seed=2).eval()
    names = ["fc1", "relu1", "fc2"]
    store = na.capture(model, small, layers=names, out=tmp_path / "g.zarr", gradients=True,
                       target=target, batch_size=64)
    x = torch.from_numpy(small.inputs)
    y = torch.from_numpy(small.labels)
    outs = {}
    handles = [dict(model.named_modules())[n].register_forward_hook(
        lambda m, i, o, n=n: outs.__setitem__(n, o)) for n in names]
    logits = model(x)
    for h in handles:
        h.remove()
    if target == "label":
        scalar = logits.gather(1, y[:, None]).sum()
    elif target == "prediction":
        scalar = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
    elif target == "loss":
        scalar = nn.functional.cross_entropy(logits, y, reduction="sum")
    else:
        scalar = logits[:, target].sum()
    grads = torch.autograd.grad(scalar, [outs[n] for n in names])
    for name, g in zip(names, grads, strict=True):
        np.testing.assert_allclose(np.asarray(store.gradients(name)), g.numpy(), rtol=1e-5, atol=1e-6)


def test_inplace_relu_does_not_change_recorded_conv_output(tmp_path, small):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(256, 10)).eval()
    store = na.capture(model, small, layers=["0"], out=tmp_path / "i.zarr", gradients=True)
    conv = np.asarray(store.activations("0"))
    assert (conv < 0).any(), "pre-ReLU values must survive the in-place ReLU"
    x = torch.from_numpy(small.inputs)
    c = model[0](x)
    logits = model[3](model[2](torch.relu(c)))
    g = torch.autograd.grad(logits.gather(1, torch.from_numpy(small.labels)[:, None]).sum(), c)[0]
    np.testing.assert_allclose(np.asarray(store.gradients("0")), g.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("gradients", "inplace", "forwards"),
                         [(False, False, 4), (True, False, 5), (False, True, 5)])
def test_the_probe_forward_is_the_first_batch(small, tmp_path, gradients, inplace, forwards):
    """The forward that learns the layers' shapes is the first batch's: 200 samples in batches of
    50 take 4 forwards in all, not 5. With gradients (the probe keeps no graph) or a recorded
    output changed in place after its hook (the probe's rows are not what the layer gave) the
    first batch runs again, and the values are a plain forward's either way."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.Flatten(),
                          nn.Linear(256, 10)).eval()
    calls = []
    handle = model.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    try:
        store = na.capture(model, small, layers=["0", "1", "3"], out=tmp_path / "p.zarr", batch_size=50,
                           gradients=gradients)
    finally:
        handle.remove()
    assert len(calls) == forwards and sum(calls) == len(small) + 50 * (forwards - 4)
    ref, logits = _forward_layers(model, torch.from_numpy(small.inputs), ["0", "3"])
    np.testing.assert_array_equal(store.read("0"), ref["0"].numpy())  # pre-ReLU, in place or not
    np.testing.assert_array_equal(store.read("3"), ref["3"].numpy())
    np.testing.assert_array_equal(store.samples["prediction"], logits.argmax(1).numpy())


def _state(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            sum(len(m._forward_hooks) for m in model.modules()))


def _assert_same_state(model, before):
    weights, modes, grads, n_hooks = _state(model)
    for k in before[0]:
        assert torch.equal(before[0][k], weights[k]), k
    assert modes == before[1]
    assert grads == before[2]
    assert n_hooks == before[3] == 0


def test_model_left_as_found_after_success_and_failure(small, tmp_path):
    model = build("cnn", seed=3)
    model.train()
    model.fc1.weight.requires_grad_(False)
    before = _state(model)
    na.capture(model, small, out=tmp_path / "ok.zarr", gradients=True)
    _assert_same_state(model, before)

    class Boom(Exception):
        pass

    def explode(done, total):
        raise Boom

    with pytest.raises(Boom):
        na.capture(model, small, out=tmp_path / "fail.zarr", gradients=True, chunk_rows=64,
                   batch_size=32, progress=explode)
    _assert_same_state(model, before)


def test_objects_from_before_the_capture_are_out_of_the_collectors_scans_and_given_back(small, tmp_path):
    import gc

    model = build("mlp", seed=3).eval()
    inside: dict[str, int] = {}

    def look(module, args, output):
        if inside:
            return
        inside["frozen"] = gc.get_freeze_count()
        cycle: list = []
        cycle.append(cycle)  # garbage made during the capture is still collected
        del cycle
        inside["collected"] = gc.collect()

    handle = model.fc1.register_forward_hook(look)
    try:
        assert gc.get_freeze_count() == 0
        na.capture(model, small, layers=["fc1"], out=tmp_path / "a.zarr", device="cpu")
    finally:
        handle.remove()
    assert inside["frozen"] >= len(gc.get_objects()) // 2  # the process's objects, not a handful
    assert inside["collected"] >= 1
    assert gc.get_freeze_count() == 0 and gc.isenabled()  # given back, as found

    class Boom(Exception):
        pass

    def explode(done, total):
        raise Boom

    with pytest.raises(Boom):
        na.capture(model, small, layers=["fc1"], out=tmp_path / "b.zarr", device="cpu", progress=explode)
    assert gc.get_freeze_count() == 0

    gc.freeze()  # a process that froze its own objects keeps them frozen, and no more
    try:
        frozen = gc.get_freeze_count()
        na.capture(model, small, layers=["fc1"], out=tmp_path / "c.zarr", device="cpu")
        # none added, none given back (a frozen object freed by its reference count leaves)
        assert frozen - 100 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_per_epoch_capture_restores_weights(trained_mlp_run, tmp_path):
    run = trained_mlp_run
    before = _state(run.model)
    store = na.capture(run.model, run.test, layers=["fc2"], out=tmp_path / "e.zarr",
                       checkpoints=run.run_dir, epochs=[0, 3])
    _assert_same_state(run.model, before)
    assert store.epochs == [0, 3]
    from neuralatlas.zoo import load_checkpoint

    for epoch in (0, 3):
        ref_model = build("mlp", seed=0).eval()
        load_checkpoint(ref_model, run.run_dir, epoch=epoch)
        ref, _ = _forward_layers(ref_model, torch.from_numpy(run.test.inputs[:128]), ["fc2"])
        np.testing.assert_allclose(np.asarray(store.activations("fc2", epoch=epoch)[:128]),
                                   ref["fc2"].numpy(), rtol=1e-6, atol=1e-6)
    # epoch=None on an epoch-only store is the last epoch
    np.testing.assert_array_equal(np.asarray(store.activations("fc2")), np.asarray(store.activations("fc2", epoch=3)))
    with pytest.raises(StoreError, match="Epoch 5 is not in the store"):
        store.activations("fc2", epoch=5)


def test_interrupted_capture_resumes_to_identical_store(small, tmp_path):
    model = build("cnn", seed=4).eval()
    kwargs = dict(gradients=True, batch_size=20, chunk_rows=40)
    full = na.capture(model, small, out=tmp_path / "full.zarr", **kwargs)

    calls = []

    def stop_after_two_chunks(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        na.capture(model, small, out=tmp_path / "part.zarr", progress=stop_after_two_chunks, **kwargs)
    partial = na.ActivationStore.open(tmp_path / "part.zarr")
    assert not partial.is_complete()
    # at least the two reported chunks are kept; a third too when the writer thread finished it
    # before the same flagging pass (commit flags every written chunk, then reports each: seen
    # under load, with pytest-xdist), and whatever is flagged is complete on disk
    kept = int(partial.done_flags(None)[:].sum())
    assert 2 <= kept < 5
    with pytest.raises(StoreError, match=f"did not finish: {kept} of 5 chunks"):
        partial.activations("conv1")

    computed = []
    resumed = na.capture(model, small, out=tmp_path / "part.zarr",
                         progress=lambda d, t: computed.append(d), **kwargs)
    assert resumed.is_complete()
    assert computed[0] == 40 * (kept + 1)  # the finished chunks were skipped, the next computed
    for name in full.layers:
        np.testing.assert_array_equal(np.asarray(resumed.activations(name)), np.asarray(full.activations(name)))
        np.testing.assert_array_equal(np.asarray(resumed.gradients(name)), np.asarray(full.gradients(name)))
    assert resumed.samples.equals(full.samples)


@pytest.mark.slow  # kills a capture subprocess and resumes it
def test_killed_process_resumes(tmp_path):
    """A real SIGKILL in the middle of a capture; the rerun finishes only what is missing."""
    script = textwrap.dedent(f"""
        import sys, time, torch
        import neuralatlas as na
        from neuralatlas.data import digits
        from neuralatlas.zoo import build
        torch.set_num_threads(1)
        _, test = digits()
        model = build("cnn", seed=5).eval()
        slow = sys.argv[1] == "slow"
        def tick(done, total):
            if slow:
                print(done, flush=True); time.sleep(0.4)
        na.capture(model, test, out=r"{tmp_path / 'k.zarr'}", batch_size=30, chunk_rows=60,
                   gradients=True, progress=tick)
        print("finished", flush=True)
    """)
    path = tmp_path / "job.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path), "slow"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "60"
    assert proc.stdout.readline().strip() == "120"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = na.ActivationStore.open(tmp_path / "k.zarr").done_flags(None)[:]
    assert 2 <= done.sum() < len(done)
    subprocess.run([sys.executable, str(path), "fast"], check=True, capture_output=True)
    store = na.ActivationStore.open(tmp_path / "k.zarr")
    from neuralatlas.data import digits

    ref = na.capture(build("cnn", seed=5).eval(), digits()[1], out=tmp_path / "ref.zarr",
                     batch_size=30, chunk_rows=60, gradients=True)
    for name in ref.layers:
        np.testing.assert_array_equal(np.asarray(store.activations(name)), np.asarray(ref.activations(name)))


def test_mismatched_resume_arguments_are_named(small, tmp_path):
    model = build("mlp", seed=0).eval()
    na.capture(model, small, layers=["fc1"], out=tmp_path / "m.zarr")
    with pytest.raises(StoreError, match=r"layers: store has \['fc1'\], this call has \['fc2'\]"):
        na.capture(model, small, layers=["fc2"], out=tmp_path / "m.zarr")
    other = build("mlp", seed=1).eval()
    with pytest.raises(StoreError, match="weights"):
        na.capture(other, small, layers=["fc1"], out=tmp_path / "m.zarr")
    # nothing already written is lost
    assert na.ActivationStore.open(tmp_path / "m.zarr").is_complete()
    na.capture(other, small, layers=["fc1"], out=tmp_path / "m.zarr", overwrite=True)


def test_unknown_layer_lists_layers_and_close_matches(small, tmp_path):
    model = build("cnn")
    with pytest.raises(LayerError) as err:
        na.capture(model, small, layers=["conv3", "fc1"], out=tmp_path / "x.zarr")
    message = str(err.value)
    assert "'conv3'" in message and "conv1" in message and "relu_fc1" in message
    assert not (tmp_path / "x.zarr").exists()


def test_wrong_input_shape_is_explained(tmp_path, digits_data):
    model = build("mlp", input_shape=(1, 28, 28))
    with pytest.raises(CaptureError, match=r"inputs of shape \[256, 1, 8, 8\]"):
        na.capture(model, digits_data[1], out=tmp_path / "w.zarr")


def test_missing_data_file_is_explained(tmp_path):
    from neuralatlas.data import mnist

    with pytest.raises(DataError) as err:
        mnist(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)


def test_a_tuple_of_inputs_and_targets_is_refused_with_the_fix_named(tmp_path):
    """(X, y) / an autoencoder's (X, X): not a data set of two items each a whole array."""
    X = torch.randn(60, 12)
    net = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 12))
    for data in ((X, X), (X, X[:, 0]), (X.numpy(), X.numpy()[:, :3])):
        with pytest.raises(DataError, match=r"tuple of 2 arrays of 60 rows.*TensorDataset.*as a list"):
            na.capture(net, data, out=tmp_path / "t.zarr", batch_size=20)
        assert not (tmp_path / "t.zarr").exists()  # refused before anything is written
    # the readings the message offers: rows as a TensorDataset, and items as a list
    store = na.capture(net, torch.utils.data.TensorDataset(X, X), out=tmp_path / "rows.zarr", batch_size=20)
    assert store.n_samples == 60 and store.unit_shape("2") == (12,)
    store = na.capture(net, [X[:5], X[5:10]], out=tmp_path / "items.zarr", batch_size=2)
    assert store.n_samples == 2 and store.unit_shape("2") == (5, 12)


def test_shuffled_drop_last_loader_reads_its_dataset_in_order(small, tmp_path):
    # issue 12: a shuffling loader was refused and drop_last=True crashed; both are now read
    # through the dataset in order, every sample once, with the loader's batch size
    model = build("mlp", seed=0).eval()
    ref = na.capture(model, small, out=tmp_path / "r.zarr", batch_size=30)
    loader = torch.utils.data.DataLoader(small, batch_size=30, shuffle=True, drop_last=True)
    store = na.capture(model, loader, out=tmp_path / "s.zarr")
    assert store.n_samples == len(small) == 200  # 200 is not a multiple of 30: nothing dropped
    for name in ref.layers:
        np.testing.assert_array_equal(np.asarray(store.activations(name)), np.asarray(ref.activations(name)))
    np.testing.assert_array_equal(store.samples["label"], small.labels)


def test_loader_and_dataset_sources_match_arrays(small, tmp_path):
    model = build("mlp", seed=0).eval()
    ref = na.capture(model, small, out=tmp_path / "r.zarr", batch_size=32)
    loader = torch.utils.data.DataLoader(small, batch_size=32, shuffle=False)
    via_loader = na.capture(model, loader, out=tmp_path / "l.zarr")
    plain = torch.utils.data.TensorDataset(torch.from_numpy(small.inputs), torch.from_numpy(small.labels))
    via_dataset = na.capture(model, plain, out=tmp_path / "d.zarr", batch_size=32)
    for store in (via_loader, via_dataset):
        for name in ref.layers:
            np.testing.assert_array_equal(np.asarray(store.activations(name)), np.asarray(ref.activations(name)))
        np.testing.assert_array_equal(store.samples["label"], small.labels)


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor


class DictTupleModel(nn.Module):
    """HuggingFace-style: keyword inputs with a mask, a tuple-returning block, an output object."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.block = nn.GRU(8, 6, batch_first=True)  # returns (sequence, hidden)
        self.head = nn.Linear(6, 3)

    def forward(self, input_ids, attention_mask):
        seq, _ = self.block(self.embed(input_ids))
        m = attention_mask.unsqueeze(-1).float()
        pooled = (seq * m).sum(1) / m.sum(1)
        return Output(logits=self.head(pooled), hidden=seq)


class TokenData(torch.utils.data.Dataset):
    def __init__(self, n=24, t=7):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 20, (n, t), generator=g)
        self.lengths = torch.randint(2, t + 1, (n,), generator=g)
        self.labels = torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        mask = (torch.arange(self.ids.shape[1]) < self.lengths[i]).long()
        return {"input_ids": self.ids[i], "attention_mask": mask}, self.labels[i]


def test_dict_inputs_tuple_outputs_and_masked_token_mean(tmp_path):
    torch.manual_seed(0)
    model = DictTupleModel().eval()
    data = TokenData()
    store = na.capture(model, data, layers=["block", "head"], out=tmp_path / "t.zarr", batch_size=8,
                       reduce={"block": "token_mean"}, gradients=True, device="cpu")
    assert store.unit_shape("block") == (6,)
    x = {"input_ids": data.ids, "attention_mask": torch.stack([data[i][0]["attention_mask"] for i in range(len(data))])}
    with torch.no_grad():
        seq, _ = model.block(model.embed(x["input_ids"]))
        m = x["attention_mask"].unsqueeze(-1).float()
        expected = (seq * m).sum(1) / m.sum(1)
    np.testing.assert_allclose(np.asarray(store.activations("block")), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert np.asarray(store.gradients("head")).shape == (24, 3)


def test_shared_module_is_reported(small, tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.shared = nn.Linear(64, 64)
            self.out = nn.Linear(64, 10)

        def forward(self, x):
            return self.out(self.shared(self.shared(self.flatten(x))))

    model = Twice().eval()
    with pytest.raises(CaptureError, match="'shared' ran 2 times"):
        na.capture(model, small, out=tmp_path / "sh.zarr")
    store = na.capture(model, small, layers=["shared"], out=tmp_path / "sh2.zarr", repeated="last",
                       overwrite=True, device="cpu")
    x = torch.from_numpy(small.inputs[:256])
    with torch.no_grad():
        last = model.shared(model.shared(model.flatten(x)))
    np.testing.assert_allclose(np.asarray(store.activations("shared")), last.numpy(), rtol=1e-6)


def test_spatial_reduction_at_capture(small, tmp_path):
    model = build("cnn", seed=0).eval()
    full = na.capture(model, small, layers=["conv2"], out=tmp_path / "f.zarr")
    red = na.capture(model, small, layers=["conv2"], out=tmp_path / "r.zarr", reduce="max")
    np.testing.assert_allclose(np.asarray(red.activations("conv2")),
                               np.asarray(full.activations("conv2")).max(axis=(2, 3)), rtol=1e-6)


def test_hooks_context_manager_leaves_no_hooks():
    model = build("mlp")
    with hooks(model, ["fc*"]) as rec:
        model(torch.zeros(2, 1, 8, 8))
    assert set(rec.outputs) == {"fc1", "fc2"}
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_device_selection_on_this_machine():
    from neuralatlas.capture import pick_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(None).type == expected
    if not torch.cuda.is_available():
        with pytest.raises(CaptureError, match="CUDA is not available"):
            pick_device("cuda")


class _LateInplace(nn.Module):
    """Changes its input in place from its second call on: an in-place op the first
    (probing) forward does not show, so the capture must notice it on a later batch."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.relu_() if self.calls > 2 else x.relu()


def test_gradients_of_a_layer_changed_in_place_only_on_later_batches(tmp_path, small):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _LateInplace(), nn.Flatten(),
                          nn.Linear(256, 10)).eval()
    store = na.capture(model, small, layers=["0", "3"], out=tmp_path / "late.zarr", gradients=True,
                       batch_size=16)
    x = torch.from_numpy(small.inputs)
    c = model[0](x)
    logits = model[3](model[2](torch.relu(c)))
    g = torch.autograd.grad(logits.gather(1, torch.from_numpy(small.labels)[:, None]).sum(), c)[0]
    np.testing.assert_allclose(np.asarray(store.activations("0")), c.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(store.gradients("0")), g.numpy(), rtol=1e-5, atol=1e-6)


def test_recorder_clones_only_outputs_changed_in_place(small):
    model = nn.Sequential(nn.Linear(64, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    x = torch.from_numpy(small.inputs[:5]).flatten(1).requires_grad_(True)
    from neuralatlas.capture.hooks import Recorder

    with Recorder(model, ["0", "2"], keep_graph=True) as rec:
        model(x)
        assert rec.mutated() == ["0"] and rec.clone == {"0"}
        rec.reset()
        model(x)
        assert rec.mutated() == []  # cloned now: the ReLU changes the copy
    assert rec.outputs["0"].min() < 0


def test_a_target_that_changes_outputs_in_place_is_refused(tmp_path, small):
    model = build("cnn", seed=0).eval()

    def target(out, labels):
        return out.relu_()[:, 0]

    with pytest.raises(CaptureError, match="in place"):
        na.capture(model, small, layers=["out"], out=tmp_path / "t.zarr", gradients=True, target=target)


def test_gradients_where_autograd_refuses_an_in_place_op_on_a_recorded_view(tmp_path, small):
    # Flatten of the input is a view of a leaf that requires grad: the in-place ReLU after it
    # raises inside the forward unless the recorded output is copied
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.ReLU(inplace=True), nn.Linear(64, 10)).eval()
    store = na.capture(model, small, layers=["0"], out=tmp_path / "v.zarr", gradients=True)
    x = torch.from_numpy(small.inputs).flatten(1).requires_grad_(True)
    logits = model[2](torch.relu(x))
    g = torch.autograd.grad(logits.gather(1, torch.from_numpy(small.labels)[:, None]).sum(), x)[0]
    np.testing.assert_allclose(np.asarray(store.activations("0")), x.detach().numpy())
    np.testing.assert_allclose(np.asarray(store.gradients("0")), g.numpy(), rtol=1e-5, atol=1e-6)


def test_in_place_change_seen_then_autograd_refusal_in_one_batch(tmp_path, small):
    # layer "1" is changed in place (seen by the version check), and the Flatten view of the
    # input is changed in place too (autograd refuses it): both kinds in one model
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.ReLU(inplace=True), nn.Linear(64, 10), nn.ReLU(inplace=True),
                          nn.Linear(10, 10)).eval()
    store = na.capture(model, small, layers=["0", "2"], out=tmp_path / "w.zarr", gradients=True)
    x = torch.from_numpy(small.inputs).flatten(1).requires_grad_(True)
    h = model[2](torch.relu(x))
    logits = model[4](torch.relu(h))
    gx, gh = torch.autograd.grad(logits.gather(1, torch.from_numpy(small.labels)[:, None]).sum(), [x, h])
    np.testing.assert_allclose(np.asarray(store.activations("2")), h.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(store.gradients("0")), gx.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(store.gradients("2")), gh.numpy(), rtol=1e-5, atol=1e-6)
