"""Findings in words, the confusion matrix, and the caption registry, on known numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuralatlas.report.captions import describe, register_caption
from neuralatlas.report.collect import AnalysisOutput, ModelInfo, StoreInfo
from neuralatlas.report.findings import cka_blocks, confusion, model_findings


def _model(tmp_path: Path, layers: list[str], summaries: dict[str, dict], csv: str | None = None) -> ModelInfo:
    store = StoreInfo(tmp_path / "acts.zarr", 10, layers, {}, [0, 1], [], 0, True, {})
    model = ModelInfo("m", tmp_path, store=store,
                      metrics={"epochs": [{"epoch": 0, "test_accuracy": 0.1, "train_accuracy": 0.1},
                                          {"epoch": 1, "test_accuracy": 0.8, "train_accuracy": 0.9}]})
    for name, summary in summaries.items():
        model.analyses[name] = AnalysisOutput(name, "m", tmp_path / "results" / name, tmp_path / "figures" / name,
                                              summary)
    if csv is not None:
        results = tmp_path / "results" / "architecture"
        results.mkdir(parents=True)
        (results / "summary.csv").write_text(csv)
        model.analyses["architecture"] = AnalysisOutput("architecture", "m", results, tmp_path / "f", {})
    return model


def test_confusion_matches_sklearn():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    label, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    label[:5] = -1  # unlabelled rows are left out
    keep = label >= 0
    np.testing.assert_array_equal(confusion(label, pred, 4), confusion_matrix(label[keep], pred[keep], labels=range(4)))


def test_cka_blocks_are_runs_of_similar_adjacent_layers():
    order = ["a", "b", "c", "d", "e", "f"]
    adjacent = {"a → b": 0.99, "b → c": 0.96, "c → d": 0.5, "d → e": 0.97, "e → f": 0.951}
    assert cka_blocks(adjacent, order) == [["a", "b", "c"], ["d", "e", "f"]]
    assert cka_blocks({"a → b": 0.99}, order) == []              # two layers are no block
    assert cka_blocks({**adjacent, "b → c": 0.94}, order) == [["d", "e", "f"]]


def test_findings_name_the_layer_that_separates_first_and_the_input_baseline(tmp_path):
    layers = ["flatten", "fc1", "relu1", "fc2", "out"]
    hits = {"flatten": 0.95, "fc1": 0.70, "relu1": 0.80, "fc2": 0.90, "out": 0.91}
    scores = [{"layer": k, "epoch": 1, "neighborhood_hit": v} for k, v in hits.items()]
    scores += [{"layer": k, "epoch": 0, "neighborhood_hit": 0.99} for k in layers]   # not the last epoch
    csv = "name,is_leaf,params\nflatten,True,0\nfc1,True,10\nrelu1,True,0\nfc2,True,10\nout,True,10\n"
    model = _model(
        tmp_path,
        layers,
        {
            "projection": {"method": "tsne", "layers": layers, "scores": scores},
            "attribution": {
                "methods": {
                    "saliency": {"sanity_passed": True},
                    "integrated_gradients": {"sanity_passed": False},
                    "random": {"deletion_auc": 0.3},
                }
            },
            "adversarial": {
                "method": "pgd",
                "norm": "linf",
                "curve": [
                    {"eps": 0.05, "accuracy": 0.6, "clean_accuracy": 0.9},
                    {"eps": 0.1, "accuracy": 0.25, "clean_accuracy": 0.9},
                ],
            },
            "similarity": {
                "probe_accuracy": {"flatten": 0.9, "fc1": 0.5, "relu1": 0.93, "fc2": 0.94, "out": 0.8},
                "probe_chance": 0.1,
                "adjacent_layer_cka": {
                    "fc1 → relu1": 0.99,
                    "relu1 → fc2": 0.98,
                    "flatten → fc1": 0.4,
                    "fc2 → out": 0.7,
                },
            },
        },
        csv,
    )
    text = {f.topic: f.text for f in model_findings(model)}
    # 0.98 x 0.91 = 0.892: fc2 (0.90) is the first learned layer that close to the best (out)
    assert "separate first at fc2 (neighbourhood hit 0.900" in text["projection"]
    assert "best, out 0.910" in text["projection"]
    assert "raw input (flatten, a baseline) already scores 0.950; no layer beats it" in text["projection"]
    assert "probe reads the class from relu1 at 0.930 (best fc2 0.940, chance 0.100)" in text["probes"]
    assert text["attribution"].startswith("Sanity check (cascading weight randomisation): saliency passes;"
                                          " integrated gradients fails")
    assert text["adversarial"] == "PGD (linf) drops accuracy from 0.900 (clean) to ε = 0.05: 0.600, ε = 0.1: 0.250."
    assert "Test accuracy 0.800 after 1 epochs (train 0.900; gap +0.100)." == text["training"]
    sims = [f.text for f in model_findings(model) if f.topic == "similarity"]
    assert any("fc1–fc2" in t for t in sims) and any("flatten → fc1 (adjacent CKA 0.400)" in t for t in sims)


def test_findings_are_empty_without_results(tmp_path):
    model = ModelInfo("m", tmp_path)
    assert model_findings(model) == []


@pytest.mark.parametrize(("analysis", "stem", "expected"), [
    ("naps", "fc1_heatmap", "Neuron activation patterns of fc1"),
    ("naps", "conv2_maps", "Spatial activation patterns of conv2"),
    ("adversarial", "grid_eps0p05", "ε = 0.05"),
    ("attribution", "sanity_maps_integrated_gradients", "Cascading randomisation of integrated gradients"),
    ("attribution", "sanity_saliency", "Sanity check of saliency"),
    ("projection", "layers_epoch3", "every layer (epoch 3)"),
    ("projection", "discriminative_relu2_anova", "relu2 (ANOVA F)"),
    ("topomap", "som/overview", "every layer (rows"),
])
def test_captions_come_from_the_registry(analysis, stem, expected):
    text = describe(analysis, stem, layers=["fc1", "conv2", "relu2"])
    assert expected in text
    assert stem not in text and "_" not in text


def test_a_figure_nobody_described_gets_a_sentence_not_its_file_name():
    text = describe("my_analysis", "probe_fc1", layers=["fc1"])
    assert text != "probe_fc1" and "probe_fc1" not in text and "layer fc1" in text
    register_caption("my_analysis", "probe_*", "Probe accuracy of {layer}.")
    assert describe("my_analysis", "probe_fc1", layers=["fc1"], model="mlp") == "mlp: Probe accuracy of fc1."


def test_token_stores_are_worded_as_tokens_and_positions_not_classes(tmp_path):
    from neuralatlas.report.captions import caption_fields

    layers = ["emb", "mix"]
    scores = [{"layer": "emb", "epoch": None, "neighborhood_hit": 0.3},
              {"layer": "mix", "epoch": None, "neighborhood_hit": 0.6}]
    model = _model(tmp_path, layers, {
        "projection": {"method": "pca", "layers": layers, "scores": scores},
        "naps": {"by": "position", "groups": [str(i) for i in range(16)]},
        "topomap": {"groups": [str(i) for i in range(16)], "options": {}},
    })
    model.metrics = None
    model.store.attrs.update(rows="tokens", has_prediction=False)
    found = {f.topic: f.text for f in model_findings(model)}
    assert found["projection"].startswith("The tokens' classes (each token labelled with its sentence's)"
                                          " separate first at mix")
    assert "by position (16 positions: 0, 1, 2, 3, 4, 5, …), not by class" in found["naps"]
    # captions: the NAPs' and topomaps' groups are positions; points are tokens, with no rings
    naps = describe("naps", "emb_heatmap", layers=layers, **caption_fields(model, "naps"))
    assert "each position's mean activation" in naps and "class" not in naps
    topo = describe("topomap", "som/overview", layers=layers, **caption_fields(model, "topomap"))
    assert "and position (columns)" in topo
    proj = describe("projection", "layers_final", layers=layers, **caption_fields(model, "projection"))
    assert "a token's move" in proj and "misclassified" not in proj
    # a sample store grouped by label keeps "class" and the rings, and adds no NAP sentence
    model.store.attrs.update(rows="samples", has_prediction=True)
    model.analyses["naps"].summary["by"] = "label"
    assert "naps" not in {f.topic for f in model_findings(model)}
    assert "each class's" in describe("naps", "emb_heatmap", layers=layers, **caption_fields(model, "naps"))
    assert "rings mark misclassified samples" in describe("projection", "layers_final", layers=layers,
                                                          **caption_fields(model, "projection"))
