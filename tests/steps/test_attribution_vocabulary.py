"""The attribution and adversarial steps take ``n_samples``; their old ``samples=`` warns and means the same."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from torch import nn

from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import ConfigError
from neuralatlas.steps.adversarial import attack_run
from neuralatlas.steps.attribution import attribute_run, jax_step, load_run_data


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.standard_normal((10, 4)).astype(np.float32), rng.integers(0, 2, 10), ["a", "b"])


def test_load_run_data_keeps_the_first_n_samples(tmp_path, data):
    model = nn.Linear(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, first = load_run_data(tmp_path, data, n_samples=3, model=model)
        _, every = load_run_data(tmp_path, data, n_samples="all", model=model)
    assert np.array_equal(first.inputs, data.inputs[:3]) and len(every) == len(data)
    with pytest.raises(ConfigError, match="ambiguous"):  # 0 once meant "all" on the CLI
        load_run_data(tmp_path, data, n_samples=0, model=model)


def test_the_old_samples_keyword_warns_and_gives_the_same_data(tmp_path, data):
    model = nn.Linear(4, 2)
    with pytest.warns(DeprecationWarning, match=r"load_run_data\(samples=...\) is deprecated.*use n_samples"):
        _, old = load_run_data(tmp_path, data, samples=3, model=model)
    _, new = load_run_data(tmp_path, data, n_samples=3, model=model)
    assert np.array_equal(old.inputs, new.inputs) and np.array_equal(old.labels, new.labels)


@pytest.mark.parametrize("step", [attribute_run, attack_run, jax_step])
def test_each_step_takes_the_one_name_and_refuses_both(tmp_path, step):
    import inspect

    params = inspect.signature(step).parameters
    assert "n_samples" in params and "samples" not in params
    with pytest.raises(TypeError, match="got both 'samples' .deprecated. and 'n_samples'"):
        step(tmp_path, samples=3, n_samples=3)

