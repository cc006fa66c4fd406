"""`neuralatlas verify`: reports a store's state, names bad chunks, repairs exactly them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuralatlas.cli import app
from neuralatlas.data import digits
from neuralatlas.store import ActivationStore
from neuralatlas.zoo import mlp, train


@pytest.fixture()
def run_dir(tmp_path):
    torch.set_num_threads(1)
    train_set, test_set = digits()
    out = tmp_path / "run"
    train(mlp(hidden=(8,), seed=0), train_set.subset(slice(0, 100)), test_set, epochs=1, run_dir=out)
    result = CliRunner().invoke(app, ["capture", str(out), "--batch-size", "50"])
    assert result.exit_code == 0, result.output
    return out


def test_verify_finds_and_repairs_a_flipped_byte(run_dir):
    store = ActivationStore.open(run_dir / "acts.zarr")
    before = np.asarray(store.gradients("fc1", epoch=1))
    ok = CliRunner().invoke(app, ["verify", str(run_dir), "--deep"])
    assert ok.exit_code == 0 and "OK" in ok.output and "checksums on every array" in ok.output
    chunk = run_dir / "acts.zarr" / "epochs" / "1" / "grads" / "fc1" / "c.0.0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    shallow = CliRunner().invoke(app, ["verify", str(run_dir)])
    assert shallow.exit_code == 0        # the listing cannot see bytes: that is what --deep is for
    found = CliRunner().invoke(app, ["verify", str(run_dir), "--deep"])
    assert found.exit_code == 1
    assert "gradients of 'fc1' (epoch 1)" in found.output and "corrupt" in found.output
    assert "verify --repair --deep" in found.output
    repaired = CliRunner().invoke(app, ["verify", str(run_dir), "--deep", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "repaired 1 chunk" in repaired.output
    np.testing.assert_array_equal(np.asarray(ActivationStore.open(run_dir / "acts.zarr").gradients("fc1", epoch=1)),
                                  before)


def test_cli_says_overwrite_as_an_option(run_dir):
    (run_dir / "acts.zarr" / "zarr.json").write_text("garbage")
    result = CliRunner().invoke(app, ["capture", str(run_dir)])
    assert result.exit_code == 1
    assert "zarr.json is unreadable" in result.output and "--overwrite" in result.output
    assert "overwrite=True" not in result.output
