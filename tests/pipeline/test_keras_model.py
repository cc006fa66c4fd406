"""A saved ``.keras`` model in a run config loads like a checkpoint: capture and analyses run on it."""

from __future__ import annotations

import os
import textwrap

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest

keras = pytest.importorskip("keras")


@pytest.mark.slow  # a Keras model through the whole pipeline
def test_keras_file_runs_through_the_pipeline(tmp_path):
    from neuralatlas.config import load_config
    from neuralatlas.pipeline import Pipeline
    from neuralatlas.store import ActivationStore

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1, 8, 8)), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(12, activation="relu", name="dense1"),
                              keras.layers.Dense(10, name="dense2")])
    model.save(tmp_path / "digits.keras")
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: k
        out: {tmp_path / "run"}
        data:
          name: digits
        models:
          - name: keras
            model: {tmp_path / "digits.keras"}
            layers: ["dense*"]
        capture:
          n: 60
          batch_size: 32
        analyses:
          naps: {{}}
          architecture: {{}}
        report:
          html: false
    """))
    Pipeline(load_config(config)).run()
    store = ActivationStore.open(tmp_path / "run" / "keras" / "acts.zarr")
    assert store.layers == ["dense1", "dense2"] and store.attrs["framework"].startswith("keras:")
    from neuralatlas.data import digits

    _, test = digits()
    np.testing.assert_allclose(np.asarray(store.activations("dense2")),
                               np.asarray(model(test.inputs[:60])), rtol=1e-5, atol=1e-5)
    assert (tmp_path / "run" / "keras" / "results" / "naps").is_dir()
    import pandas as pd

    table = pd.read_csv(tmp_path / "run" / "keras" / "results" / "architecture" / "summary.csv")
    assert list(table["name"]) == ["flat", "dense1", "dense2"]
    assert int(table["params"].sum()) == model.count_params()
