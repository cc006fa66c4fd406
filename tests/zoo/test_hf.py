"""Hugging Face folders without transformers installed: the error names the extra."""

from __future__ import annotations

import sys

import pytest

from neuralatlas.zoo import ModelError
from neuralatlas.zoo.hf import hf_model


def test_missing_transformers_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(ModelError, match=r"pip install 'neuralatlas\[text\]'"):
        hf_model(tmp_path)
