"""`neuralatlas attribute` and `neuralatlas attack` on a run folder: stores, results, figures."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from neuralatlas.cli import app
from neuralatlas.store import ActivationStore


@pytest.fixture()
def run_dir(trained_cnn_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained_cnn_run.run_dir / "model.json", run / "model.json")
    shutil.copytree(trained_cnn_run.run_dir / "checkpoints", run / "checkpoints")
    return run


@pytest.mark.slow  # trains a run and attributes it through the CLI
def test_attribute_command(run_dir):
    result = CliRunner().invoke(app, ["attribute", str(run_dir), "-m", "saliency", "-m", "ig", "--samples", "40",
                                      "--n-steps", "16"])
    assert result.exit_code == 0, result.output
    store = ActivationStore.open(run_dir / "attributions.zarr")
    assert store.layers == ["saliency", "integrated_gradients"] and store.n_samples == 40
    summary = json.loads((run_dir / "results" / "attribution" / "summary.json").read_text())
    ig = summary["methods"]["integrated_gradients"]
    assert {"completeness_max", "deletion_auc", "insertion_auc", "sanity_passed"} <= set(ig)
    assert summary["methods"]["saliency"]["sanity_passed"] is True
    figures = {p.name for p in (run_dir / "figures" / "attribution").iterdir()}
    assert {"grid.png", "grid.pdf", "faithfulness.png", "sanity_saliency.png"} <= figures
    again = CliRunner().invoke(app, ["attribute", str(run_dir), "-m", "saliency", "--samples", "40",
                                     "--no-sanity", "--no-faithfulness"])
    assert again.exit_code == 1 and "other arguments" in again.output and "overwrite" in again.output
    bad = CliRunner().invoke(app, ["attribute", str(run_dir), "-m", "heatmap"])
    assert bad.exit_code == 1 and "Unknown attribution method 'heatmap'" in bad.output


@pytest.mark.slow  # the CLI end to end
def test_attack_command(run_dir):
    result = CliRunner().invoke(app, ["attack", str(run_dir), "--eps", "0.05", "--eps", "0.15", "--samples", "40",
                                      "--steps", "5", "-l", "fc1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "results" / "adversarial" / "summary.json").read_text())
    assert [row["eps"] for row in summary["curve"]] == [0.05, 0.15]
    assert summary["curve"][1]["accuracy"] < summary["curve"][0]["accuracy"]
    store = ActivationStore.open(run_dir / "adversarial.zarr")
    assert store.n_samples == 80 and set(store.samples["group"]) == {"clean", "adversarial"}
    figures = {p.name for p in (run_dir / "figures" / "adversarial").iterdir()}
    assert {"robustness.png", "grid_eps0p05.png", "grid_eps0p15.pdf"} <= figures
