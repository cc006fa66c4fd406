"""The featurevis, dream and architecture commands write into the run folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from neuralatlas.cli import app
from neuralatlas.featurevis import FeatureVisResult
from neuralatlas.featurevis.images import read_image, write_image


@pytest.fixture
def run_copy(tmp_path, trained_cnn_run):
    """The session's run folder, copied (checkpoints) and linked (store), so writes stay here."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained_cnn_run.run_dir / "model.json", run / "model.json")
    shutil.copytree(trained_cnn_run.run_dir / "checkpoints", run / "checkpoints")
    (run / "acts.zarr").symlink_to(trained_cnn_run.run_dir / "acts.zarr")
    return run


@pytest.mark.slow  # trains a run and visualises it through the CLI
def test_featurevis_command(run_copy):
    result = CliRunner().invoke(app, ["featurevis", str(run_copy), "--layer", "conv2", "--units", "0-3,7",
                                      "--steps", "8", "--filters", "--maps", "2", "--maps-layer", "conv1",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    res = FeatureVisResult.load(run_copy / "results" / "featurevis" / "conv2")
    assert res.labels == ["conv2:0", "conv2:1", "conv2:2", "conv2:3", "conv2:7"]
    figures = run_copy / "figures" / "featurevis"
    for stem in ("conv2_images", "conv2_trace", "filters_conv2", "feature_maps_2_conv1"):
        assert (figures / f"{stem}.png").is_file() and (figures / f"{stem}.pdf").is_file()
    result = CliRunner().invoke(app, ["featurevis", str(run_copy), "--steps", "4", "--units", "all"])
    assert result.exit_code == 0, result.output
    meta = json.loads((run_copy / "results" / "featurevis" / "logits" / "featurevis.json").read_text())
    assert len(meta["labels"]) == 10


def test_featurevis_command_explains_a_bad_layer(run_copy):
    result = CliRunner().invoke(app, ["featurevis", str(run_copy), "--layer", "conv9", "--steps", "2"])
    assert result.exit_code == 1
    assert "conv9" in result.output and "conv2" in result.output


@pytest.mark.slow  # the CLI end to end (tests/featurevis/test_featurevis_dream_maps.py dreams in the loop)
def test_dream_command(tmp_path, run_copy, trained_cnn_run):
    image = tmp_path / "digit.png"
    write_image(image, trained_cnn_run.test.inputs[0])
    result = CliRunner().invoke(app, ["dream", str(image), "--model", str(run_copy), "--layer", "conv2",
                                      "--octaves", "1", "--steps", "5", "--out", str(tmp_path / "d.png")])
    assert result.exit_code == 0, result.output
    dreamed = read_image(tmp_path / "d.png")
    assert dreamed.shape == (1, 256, 256)  # enlarged 32x for viewing
    assert (run_copy / "results" / "dream" / "digit" / "dream.npz").is_file()
    assert (run_copy / "figures" / "dream" / "digit.png").is_file()
    assert np.isfinite(dreamed).all()


@pytest.mark.slow  # the CLI end to end, twice (VGG and the run; tests/architecture draws graphs in the loop)
def test_architecture_command(tmp_path, run_copy):
    result = CliRunner().invoke(app, ["architecture", "vgg", "--out", str(tmp_path / "arch")])
    assert result.exit_code == 0, result.output
    assert "block1.conv1" in result.output and "Total params" in result.output
    for name in ("graph.json", "summary.csv", "summary.txt", "architecture.svg", "layer_costs.png"):
        assert (tmp_path / "arch" / name).is_file(), name
    result = CliRunner().invoke(app, ["architecture", str(run_copy)])
    assert result.exit_code == 0, result.output
    assert (run_copy / "results" / "architecture" / "graph.json").is_file()
    assert (run_copy / "figures" / "architecture" / "layer_costs.png").is_file()
