"""The framework-neutral parts: optional extras, nothing imported unasked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False,
                          timeout=120, env={"PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.slow  # fresh interpreters, one per import
def test_import_never_pulls_in_jax_flax_keras():
    result = run("""
        import sys
        import neuralatlas as na
        na.capture, na.naps, na.attribute, na.summary
        import neuralatlas.capture.loop, neuralatlas.capture.foreign, neuralatlas.architecture.foreign
        import neuralatlas.attribution.jax_methods
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "flax", "keras", "jaxlib"))
        print(bad)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.slow  # fresh interpreters with extras hidden
def test_missing_extra_names_it():
    result = run("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("flax", "keras"):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        from neuralatlas.errors import ModelError
        for module in ("neuralatlas.capture.flax_adapter", "neuralatlas.capture.keras_adapter"):
            try:
                __import__(module)
            except ModelError as err:
                print(err)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pip install 'neuralatlas[jax]'" in result.stdout
    assert "pip install 'neuralatlas[keras]'" in result.stdout
