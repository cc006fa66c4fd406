"""The CLI's vocabulary: ``--epochs`` is a selection wherever it appears; old flags warn."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from neuralatlas.analysis.similarity import SimilarityResult
from neuralatlas.cli import app
from neuralatlas.store import ActivationStore


@pytest.fixture()
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    epochs = {e: {"a": rng.standard_normal((40, 6)).astype(np.float32),
                  "b": rng.standard_normal((40, 3)).astype(np.float32)} for e in (0, 1, 2)}
    ActivationStore.from_arrays(tmp_path / "acts.zarr", epochs[2], labels=labels, epoch_activations=epochs)
    return tmp_path


def _epoch_matrices(run_dir, *flags):
    result = CliRunner().invoke(app, ["similarity", str(run_dir), "--no-rbf", "--no-rsa", "--no-probes", *flags])
    assert result.exit_code == 0, result.output
    saved = SimilarityResult.load(run_dir / "results" / "similarity")
    return {k: m.rows for k, m in saved.matrices.items() if k.startswith("epoch_cka/")}, result.output


def test_similarity_epochs_is_a_selection(run_dir):
    every, _ = _epoch_matrices(run_dir)
    assert set(every) == {"epoch_cka/a", "epoch_cka/b"} and len(every["epoch_cka/a"]) == 3
    chosen, _ = _epoch_matrices(run_dir, "--epochs", "0,2")
    assert len(chosen["epoch_cka/a"]) == 2 and chosen["epoch_cka/a"] != every["epoch_cka/a"]
    none, _ = _epoch_matrices(run_dir, "--epochs", "none")
    assert none == {}


def test_similarity_no_epochs_still_works_with_a_warning(run_dir):
    with pytest.warns(DeprecationWarning, match="use --epochs none"):
        old, output = _epoch_matrices(run_dir, "--no-epochs")
    assert old == {} and "--no-epochs is deprecated" in output
    both = CliRunner().invoke(app, ["similarity", str(run_dir), "--no-epochs", "--epochs", "all"])
    assert both.exit_code != 0 and "give --epochs only" in both.output
    bad = CliRunner().invoke(app, ["similarity", str(run_dir), "--epochs", "first"])
    assert bad.exit_code != 0 and "use 'all', 'none' or epochs like 0,4,8" in bad.output
