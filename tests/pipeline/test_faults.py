"""The pipeline under faults: outputs deleted behind its back, typos found before any work, a
rebuild that fails half-way, duplicate YAML keys. Nothing already made may be lost."""

from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest

from neuralatlas import pipeline
from neuralatlas.config import load_config
from neuralatlas.errors import ConfigError
from neuralatlas.store import ActivationStore

BASE = textwrap.dedent("""\
    name: t
    out: {out}
    data:
      name: digits
    models:
      - name: mlp
        model: mlp
        train:
          epochs: 1
        layers: ["fc*"]
    capture:
      n: 120
      batch_size: 40
      per_epoch: false
      gradients: {gradients}
      target: {target}
    analyses:
      naps: {{by: label}}
    report:
      html: {html}
""")


def config(tmp_path, gradients="true", target="label", html="false"):
    path = tmp_path / "run.yaml"
    path.write_text(BASE.format(out=tmp_path / "r", gradients=gradients, target=target, html=html))
    return path


def naps_values(tmp_path):
    return np.load(next((tmp_path / "r" / "mlp" / "results" / "naps").glob("*.npz")))


@pytest.fixture()
def done_run(tmp_path):
    path = config(tmp_path)
    first = pipeline.run(path)
    assert first.ran == ["mlp/train", "mlp/capture", "mlp/naps"]
    again = pipeline.run(path)   # output stamps are stable: a second run does nothing
    assert again.ran == [], again.ran
    return path


@pytest.mark.slow  # whole pipeline runs
def test_deleted_report_is_written_again(tmp_path):
    path = config(tmp_path, html="true")
    assert pipeline.run(path).ran[-1] == "report"
    assert pipeline.run(path).ran == []
    (tmp_path / "r" / "report.html").unlink()
    redone = pipeline.run(path)
    assert redone.ran == ["report"] and (tmp_path / "r" / "report.html").is_file()


def test_deleted_outputs_are_made_again(tmp_path, done_run):
    run_dir = tmp_path / "r" / "mlp"
    results = sorted(p.name for p in (run_dir / "results" / "naps").iterdir())
    shutil.rmtree(run_dir / "results" / "naps")
    redone = pipeline.run(done_run)
    assert redone.ran == ["mlp/naps"]
    assert sorted(p.name for p in (run_dir / "results" / "naps").iterdir()) == results

    shutil.rmtree(run_dir / "acts.zarr")
    redone = pipeline.run(done_run)
    assert redone.ran == ["mlp/capture"]        # same key, same store: the analyses stand
    assert ActivationStore.open(run_dir / "acts.zarr").is_complete()


def test_a_deleted_chunk_makes_capture_mend_it(tmp_path, done_run):
    run_dir = tmp_path / "r" / "mlp"
    before = np.asarray(ActivationStore.open(run_dir / "acts.zarr").activations("fc2"))
    (run_dir / "acts.zarr" / "acts" / "fc2" / "c.0.0").unlink()  # one chunk of 120 rows
    with pytest.warns(UserWarning, match="recomputing 1 chunk"):
        redone = pipeline.run(done_run)
    assert redone.ran == ["mlp/capture"]
    np.testing.assert_array_equal(np.asarray(ActivationStore.open(run_dir / "acts.zarr").activations("fc2")), before)


def test_typos_fail_before_any_work_and_keep_the_store(tmp_path, done_run):
    store = tmp_path / "r" / "mlp" / "acts.zarr"
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    with pytest.raises(ConfigError, match=r"run.yaml:16: capture.target='lable'.*Did you mean 'label'"):
        pipeline.run(config(tmp_path, target="lable"))
    text = config(tmp_path).read_text().replace("naps: {by: label}", "naps: {by: label, alpha: 1}")
    (tmp_path / "run.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"analyses.naps: unknown parameter 'alpha'"):
        pipeline.run(tmp_path / "run.yaml")
    assert sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) == size
    assert ActivationStore.open(store).is_complete()


def test_analysis_typo_is_refused_before_training(tmp_path):
    path = config(tmp_path)
    path.write_text(path.read_text().replace("naps: {by: label}", "naps: {by: label, layer: fc1}"))
    with pytest.raises(ConfigError, match=r"unknown parameter 'layer'. Did you mean 'layers'"):
        pipeline.run(path)
    assert not (tmp_path / "r" / "mlp" / "checkpoints").exists()


def test_a_rebuild_that_fails_keeps_the_old_store_and_resumes(tmp_path, done_run):
    store_path = tmp_path / "r" / "mlp" / "acts.zarr"
    old = np.asarray(ActivationStore.open(store_path).activations("fc1"))
    changed = config(tmp_path, gradients="false")

    class Stop(Exception):
        pass

    class StopMidCapture(pipeline.Reporter):
        def progress(self, done, total):
            if done >= 40:
                raise Stop

    with pytest.raises(Stop):
        pipeline.Pipeline(load_config(changed), reporter=StopMidCapture()).run()
    kept = ActivationStore.open(store_path)                  # the old store is untouched
    assert kept.is_complete() and kept.has_gradients("fc1")
    np.testing.assert_array_equal(np.asarray(kept.activations("fc1")), old)
    assert (store_path.parent / "acts.zarr.new").is_dir()    # the rebuild, half-made, beside it
    finished = pipeline.run(changed)
    assert "mlp/capture" in finished.ran
    new = ActivationStore.open(store_path)
    assert new.is_complete() and not new.has_gradients("fc1")
    np.testing.assert_array_equal(np.asarray(new.activations("fc1")), old)
    assert not (store_path.parent / "acts.zarr.new").exists()
    assert not list(store_path.parent.glob(".acts.zarr.*"))


def test_duplicate_yaml_key_names_both_lines(tmp_path):
    path = config(tmp_path)
    path.write_text(path.read_text().replace("  n: 120\n", "  n: 120\n  split: test\n  n: 60\n"))
    with pytest.raises(ConfigError, match=r"run.yaml:14: duplicate key 'n' \(first at line 12\)"):
        load_config(path)
