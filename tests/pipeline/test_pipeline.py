"""Config validation names the line; the cached pipeline redoes only what changed, and resumes."""

from __future__ import annotations

import textwrap

import pytest

from neuralatlas import pipeline
from neuralatlas.config import load_config
from neuralatlas.errors import ConfigError

BASE = textwrap.dedent("""\
    name: t
    out: {out}
    data:
      name: digits
    models:
      - name: mlp
        model: mlp
        train:
          epochs: 2
        layers: ["fc*"]
    capture:
      n: 120
      batch_size: 40
    analyses:
      counter: {{scale: 1}}
    report:
      html: false
""")


@pytest.fixture()
def counter(monkeypatch):
    """A stand-in analysis that counts its calls, registered like a real one."""
    calls = []

    def count(ctx, params, reporter):
        calls.append(params)
        store = ctx.store
        return {"n": store.n_samples * params.get("scale", 1)}

    monkeypatch.setitem(pipeline.ANALYSES, "counter", count)
    monkeypatch.setitem(pipeline.ANALYSES, "other", lambda ctx, params, reporter: {"ok": 1})
    return calls


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_typo_in_key_names_line_and_suggestion(tmp_path, counter):
    text = BASE.format(out=tmp_path / "r").replace("    train:\n      epochs: 2", "    train:\n      epoch: 2")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    msg = str(err.value)
    assert "run.yaml:9" in msg and "'models.0.train.epoch'" in msg and "Did you mean 'epochs'" in msg


def test_wrong_type_names_line(tmp_path, counter):
    text = BASE.format(out=tmp_path / "r").replace("n: 120", "n: many")
    with pytest.raises(ConfigError, match=r"run.yaml:12: capture.n: .*integer.*'many'"):
        load_config(write(tmp_path, text))


def test_unknown_analysis_is_named(tmp_path, counter):
    text = BASE.format(out=tmp_path / "r").replace("counter: {scale: 1}", "countr: {}")
    with pytest.raises(ConfigError, match=r"run.yaml:15: unknown analysis 'countr'. Did you mean 'counter'"):
        load_config(write(tmp_path, text))


def test_unknown_layer_fails_before_any_work(tmp_path, counter):
    text = BASE.format(out=tmp_path / "r").replace('layers: ["fc*"]', 'layers: ["fc1", "conv9"]')
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as err:
        pipeline.Pipeline(config).run()
    msg = str(err.value)
    assert "run.yaml:10" in msg and "'conv9'" in msg and "fc2" in msg
    assert not (tmp_path / "r").exists(), "nothing may be written before the config is valid"


def test_missing_data_file_fails_fast(tmp_path, counter):
    text = BASE.format(out=tmp_path / "r").replace("  name: digits", f"  name: mnist\n  path: {tmp_path / 'no-mnist'}")
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as err:
        pipeline.Pipeline(config).run()
    assert "run.yaml:5" in str(err.value) and "no-mnist" in str(err.value)


def test_rerun_does_no_work_and_a_changed_parameter_reruns_only_its_step(tmp_path, counter):
    path = write(tmp_path, BASE.format(out=tmp_path / "r"))
    first = pipeline.run(path)
    assert first.ran == ["mlp/train", "mlp/capture", "mlp/counter"]
    assert first.summaries["mlp"]["counter"] == {"n": 120}
    second = pipeline.run(path)
    assert second.ran == [] and len(second.cached) == 3 and len(counter) == 1
    write(tmp_path, BASE.format(out=tmp_path / "r").replace("scale: 1", "scale: 2"))
    third = pipeline.run(path)
    assert third.ran == ["mlp/counter"] and third.summaries["mlp"]["counter"] == {"n": 240}
    forced = pipeline.run(path, force=["capture"])
    assert forced.ran == ["mlp/capture"]  # same store key: the analysis stays cached


def test_run_killed_mid_capture_resumes(tmp_path, counter, monkeypatch):
    path = write(tmp_path, BASE.format(out=tmp_path / "r"))
    config = load_config(path)

    class Kill(Exception):
        pass

    class KillDuringCapture(pipeline.Reporter):
        step = None

        def step_started(self, step):
            self.step = step

        def progress(self, done, total):
            if self.step == "mlp/capture" and done >= 40:
                raise Kill

    with pytest.raises(Kill):
        pipeline.Pipeline(config, reporter=KillDuringCapture()).run()
    from neuralatlas.store import ActivationStore

    partial = ActivationStore.open(tmp_path / "r" / "mlp" / "acts.zarr")
    assert not partial.is_complete()
    resumed = pipeline.run(path)
    assert resumed.ran == ["mlp/capture", "mlp/counter"]  # training was not redone
    assert ActivationStore.open(tmp_path / "r" / "mlp" / "acts.zarr").is_complete()


def test_unknown_step_in_only_is_named(tmp_path, counter):
    config = load_config(write(tmp_path, BASE.format(out=tmp_path / "r")))
    with pytest.raises(ConfigError, match="Unknown step 'captur'. Did you mean 'capture'"):
        pipeline.Pipeline(config, only=["captur"])
