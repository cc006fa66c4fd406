"""Damaged checkpoints are named errors; a killed training's scratch folder does not stay for ever."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import neuralatlas as na
from neuralatlas.data import digits
from neuralatlas.zoo import ModelError, list_checkpoints, load_checkpoint, load_run, mlp, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    train_set, test_set = digits()
    out = tmp_path_factory.mktemp("run")
    train(mlp(hidden=(8,), seed=0), train_set.subset(slice(0, 100)), test_set.subset(slice(0, 50)),
          epochs=1, run_dir=out)
    return out


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_checkpoint_names_the_file_and_the_fix(run_dir, tmp_path, damage):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    last = list_checkpoints(copy)[1]
    data = last.read_bytes()
    last.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    word = "is empty (0 bytes)" if damage == "empty" else "is truncated or damaged"
    with pytest.raises(ModelError, match=rf"epoch_001.pt.*{re.escape(word)}.*Retrain"):
        load_checkpoint(mlp(hidden=(8,)), copy)
    with pytest.raises(ModelError, match=re.escape(word)):
        load_run(copy)
    from neuralatlas.cli import app

    result = CliRunner().invoke(app, ["capture", str(copy)])
    assert result.exit_code == 1
    assert "epoch_001.pt" in result.output and word in result.output and "Aborted" not in result.output


JOB = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    from neuralatlas.data import digits
    from neuralatlas.zoo import mlp, train
    torch.set_num_threads(1)
    train_set, test_set = digits()
    def pause(epoch, epochs, entry):
        if epoch == 1:
            Path(sys.argv[2]).touch()
            time.sleep(60)
    train(mlp(hidden=(8,)), train_set.subset(slice(0, 100)), None, epochs=3, run_dir=sys.argv[1],
          progress=pause)
""")


@pytest.mark.slow  # kills a training subprocess
def test_killed_training_leaves_its_scratch_folder_only_until_the_next_train(tmp_path):
    job, out, barrier = tmp_path / "job.py", tmp_path / "run", tmp_path / "paused"
    job.write_text(JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(na.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(job), str(out), str(barrier)], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not barrier.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        scratch = list(out.glob(".train-*"))
        assert len(scratch) == 1 and list(scratch[0].rglob("epoch_*.pt"))
        train_set, _ = digits()
        # a training running in another process keeps its folder
        train(mlp(hidden=(8,)), train_set.subset(slice(0, 50)), None, epochs=0, run_dir=out)
        assert scratch[0].is_dir()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert scratch[0].is_dir()               # kill -9: nothing could clean up
    train(mlp(hidden=(8,)), train_set.subset(slice(0, 50)), None, epochs=0, run_dir=out)
    assert not list(out.glob(".train-*"))    # the next training removed the dead one's folder
    assert list_checkpoints(out)             # and wrote its own run


def test_legacy_scratch_folder_is_removed_once_old(tmp_path):
    from neuralatlas.zoo.training import remove_stale_train_folders

    fresh, old = tmp_path / ".train-fresh", tmp_path / ".train-old"
    for folder in (fresh, old):
        (folder / "try_1" / "checkpoints").mkdir(parents=True)
        (folder / "try_1" / "checkpoints" / "epoch_000.pt").write_bytes(b"x")
    long_ago = time.time() - 2 * 3600
    for p in [old, *old.rglob("*")]:
        os.utime(p, (long_ago, long_ago))
    assert remove_stale_train_folders(tmp_path) == [old]
    assert fresh.is_dir() and not old.exists()
