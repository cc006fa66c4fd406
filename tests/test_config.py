"""The config's vocabulary: ``n_samples`` is the one name, old keys warn for one release."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from neuralatlas.config import RENAMED_PARAMS, load_config
from neuralatlas.errors import ConfigError
from neuralatlas.steps.registry import validate_params

RUN = textwrap.dedent("""\
    models:
      - name: mlp
        model: mlp
      - name: own
        model: mlp
        analyses:
          adversarial: {{eps: [0.1], {own}: 7}}
    analyses:
      attribution:
        methods: [saliency]
        {key}: 12
      adversarial: {{eps: [0.05]}}
""")


def test_n_samples_is_read_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(RUN.format(key="n_samples", own="n_samples"))
    assert config.analyses["attribution"] == {"methods": ["saliency"], "n_samples": 12}
    assert config.models[1].analyses["adversarial"] == {"eps": [0.1], "n_samples": 7}


def test_the_old_samples_key_warns_naming_the_new_one_and_reads_the_same():
    new = load_config(RUN.format(key="n_samples", own="n_samples"))
    with pytest.warns(DeprecationWarning) as caught:
        old = load_config(RUN.format(key="samples", own="samples"))
    messages = [str(w.message) for w in caught]
    assert any("config:11: analyses.attribution.samples is deprecated" in m
               and "write analyses.attribution.n_samples" in m for m in messages), messages
    assert any("config:7: models.1.analyses.adversarial.samples" in m for m in messages), messages
    assert old.analyses == new.analyses
    assert old.models[1].analyses == new.models[1].analyses
    for name, params in old.analyses.items():  # what the run then checks before training
        validate_params(name, params)


def test_both_names_in_one_block_are_an_error_naming_the_line():
    text = RUN.format(key="samples", own="n_samples").replace("    methods: [saliency]\n",
                                                             "    methods: [saliency]\n    n_samples: 3\n")
    with pytest.raises(ConfigError, match=r"config:12: analyses.attribution gives both 'samples' and 'n_samples'"):
        load_config(text)


def test_a_dict_config_is_not_changed_in_place():
    raw = {"models": [{"name": "m", "model": "mlp"}], "analyses": {"attribution": {"samples": 4}}}
    with pytest.warns(DeprecationWarning):
        config = load_config(raw)
    assert raw["analyses"]["attribution"] == {"samples": 4}
    assert config.analyses["attribution"] == {"n_samples": 4}


def test_every_renamed_key_names_a_parameter_the_step_takes():
    for analysis, names in RENAMED_PARAMS.items():
        for old, new in names.items():
            validate_params(analysis, {new: 5})
            with pytest.raises(ConfigError, match=f"unknown parameter '{old}'.*Did you mean '{new}'"):
                validate_params(analysis, {old: 5})  # the step itself knows only the new name


def test_photo_attribution_smooth_samples_is_renamed_to_smooth_draws():
    text = "models:\n  - name: m\n    model: mlp\nanalyses:\n  photo_attribution: {smooth_samples: 4}\n"
    with pytest.warns(DeprecationWarning, match="photo_attribution.smooth_samples is deprecated") as caught:
        config = load_config(text)
    assert config.analyses["photo_attribution"] == {"smooth_draws": 4}
    assert not any("every sample" in str(w.message) for w in caught)  # no n_samples wording for draws
    validate_params("photo_attribution", config.analyses["photo_attribution"])
