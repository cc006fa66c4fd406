"""Every example a new user copies runs as written."""

from __future__ import annotations

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
