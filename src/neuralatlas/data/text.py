"""A built-in text data set: short English sentences in four topics, tokenised on demand.

``topics()`` returns a fixed, stratified ``(train, test)`` split of the 260 sentences in
``topics.csv`` (65 each of sport, food, weather and technology, 6-12 words, written for
this package). Each split is a :class:`TextDataset`: give it a Hugging Face tokenizer and
its items are ``(dict(input_ids=..., attention_mask=...), topic_label)``, ready for
``capture``, ``attribute`` or a ``DataLoader``. Without a tokenizer it still carries the raw
sentences (``.texts``) and labels, which is all the report needs to show them.

Two ways to pad, both over the same tokenisation:

- ``padding="max_length"`` (default): every item is padded to ``max_length`` tokens
  (default: the longest sentence of the whole set, so every split has the same width and
  the default collate of a ``DataLoader`` stacks items).
- ``padding="batch"``: items keep their own length; ``dataset.collate_fn`` pads each batch
  to its longest item (pass it to ``DataLoader(collate_fn=...)`` or use ``dataset.loader()``).
  Less padding, and ``attention_mask`` tells the model which positions are real either way.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from neuralatlas.errors import DataError

TOPICS = ("sport", "food", "weather", "technology")
TOPICS_SPLIT_SEED = 0
PADDINGS = ("max_length", "batch")


def topic_sentences() -> tuple[list[str], np.ndarray]:
    """All sentences of the built-in set and their topic labels (indices into ``TOPICS``)."""
    text = resources.files("neuralatlas.data").joinpath("topics.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    bad = sorted({r["topic"] for r in rows} - set(TOPICS))
    if bad:  # the shipped file and TOPICS must agree; a silent -1 label would be worse
        raise DataError(f"topics.csv names topics {bad} that are not in TOPICS {TOPICS}.")
    return [r["text"] for r in rows], np.array([TOPICS.index(r["topic"]) for r in rows], np.int64)


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object as given, or one loaded (offline) from a local model folder path."""
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    try:
        from transformers import AutoTokenizer
    except ImportError as err:  # pragma: no cover - transformers is an optional extra
        raise DataError("A tokenizer named by path needs transformers; pip install 'neuralatlas[text]'.") from err
    if not os.path.isdir(tokenizer):
        raise DataError(f"tokenizer={str(tokenizer)!r} is not a folder; give a tokenizer object or the path of a"
                        " local model folder (nothing is downloaded).")
    return AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)


@dataclass
class TextDataset:
    """Sentences with labels, tokenised into ``(dict(input_ids, attention_mask), label)`` items.

    Usable wherever a torch ``Dataset`` is (it has ``__len__`` and ``__getitem__``), without
    importing torch until an item is asked for.

    Parameters
    ----------
    texts : sequence of str
        The raw sentences; ``dataset.texts[i]`` is the sentence of item ``i``.
    labels : array-like of int
        ``[N]`` class index of each sentence.
    classes : sequence of str
        Class names; ``classes[label]`` names a label.
    tokenizer : tokenizer or path, optional
        A Hugging Face tokenizer (or the path of a local model folder holding one). Needed for
        items; not for ``texts``/``labels``.
    max_length : int, optional
        Tokens per item with ``padding="max_length"`` (default: the longest sentence of the
        set, counting special tokens). A sentence longer than this is an error unless
        ``truncation=True``.
    padding : "max_length" or "batch"
        Pad every item to ``max_length``, or leave items their own length and pad per batch
        with :meth:`collate_fn`.
    truncation : bool
        Cut sentences longer than ``max_length`` instead of raising.
    index : array-like of int, optional
        Stable sample index (row in the original set; subsets keep it). Default ``arange(N)``.
    name : str
        A short name for provenance.

    Examples
    --------
    >>> from neuralatlas.data import topics                                     # doctest: +SKIP
    >>> train, test = topics(tokenizer=tok)                     # doctest: +SKIP
    >>> item, label = test[0]                                                   # doctest: +SKIP
    >>> sorted(item), test.texts[0], test.classes[label]        # doctest: +SKIP
    (['attention_mask', 'input_ids'], 'Our local team ...', 'sport')
    >>> loader = test.with_padding("batch").loader(batch_size=32)  # doctest: +SKIP
    """

    texts: Sequence[str]
    labels: np.ndarray
    classes: Sequence[str]
    tokenizer: Any = None
    max_length: int | None = None
    padding: str = "max_length"
    truncation: bool = False
    index: np.ndarray | None = None
    name: str = "texts"
    groups: np.ndarray | None = None
    _ids: list[np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.texts = [str(t) for t in self.texts]
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.texts)
        if self.labels.shape != (n,):
            raise DataError(f"{self.name}: labels have shape {self.labels.shape} but there are {n} texts;"
                            f" pass one integer label per text (shape ({n},)).")
        self.classes = [str(c) for c in self.classes]
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"{self.name}: labels range over [{self.labels.min()}, {self.labels.max()}] but only"
                            f" {len(self.classes)} class names were given.")
        self.index = np.arange(n, dtype=np.int64) if self.index is None else np.asarray(self.index, np.int64)
        if self.index.shape != (n,):
            raise DataError(f"{self.name}: index has shape {self.index.shape}, expected ({n},).")
        if self.padding not in PADDINGS:
            raise DataError(f"padding={self.padding!r}: choose 'max_length' (every item padded to max_length)"
                            " or 'batch' (padded per batch by collate_fn).")
        if self.max_length is not None and int(self.max_length) < 1:
            raise DataError(f"max_length={self.max_length} must be a positive number of tokens.")
        self.tokenizer = load_tokenizer(self.tokenizer)
        if self.tokenizer is not None and self._ids is None:
            self._ids = self._tokenise()

    # ------------------------------------------------------------------ tokenisation
    def _tokenise(self) -> list[np.ndarray]:
        tok = self.tokenizer
        if tok.pad_token_id is None:
            raise DataError(f"The tokenizer {type(tok).__name__} has no pad token, so sentences cannot be padded;"
                            " set one first, e.g. tokenizer.pad_token = tokenizer.eos_token.")
        ids = [np.asarray(tok(t, add_special_tokens=True)["input_ids"], np.int64) for t in self.texts]
        if self.max_length is not None:
            longest = max((len(i) for i in ids), default=0)
            if longest > self.max_length:
                if not self.truncation:
                    raise DataError(f"{self.name}: the longest sentence has {longest} tokens, more than"
                                    f" max_length={self.max_length}; raise max_length or pass truncation=True.")
                ids = [_truncate(i, int(self.max_length), tok) for i in ids]
        return ids

    def _require_tokenizer(self) -> list[np.ndarray]:
        """The token ids of every sentence; an error naming the fix when there is no tokenizer."""
        if self._ids is None:
            raise DataError(f"{self.name} has no tokenizer, so it has texts but no model inputs; pass tokenizer=..."
                            " (a Hugging Face tokenizer or a local model folder), e.g. topics(tokenizer=tok).")
        return self._ids

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's pad id (what padded positions and a pad baseline hold)."""
        self._require_tokenizer()
        return int(self.tokenizer.pad_token_id)

    @property
    def width(self) -> int:
        """Tokens per item with ``padding="max_length"``: ``max_length`` or the longest sentence."""
        ids = self._require_tokenizer()
        return int(self.max_length) if self.max_length is not None else max(len(i) for i in ids)

    @property
    def lengths(self) -> np.ndarray:
        """``[N]`` real tokens (special tokens included) of each sentence."""
        ids = self._require_tokenizer()
        return np.array([len(i) for i in ids], np.int64)

    def tokens(self, i: int) -> list[str]:
        """The tokens of sentence ``i`` as the tokenizer writes them (no padding)."""
        ids = self._require_tokenizer()
        return list(self.tokenizer.convert_ids_to_tokens(ids[i].tolist()))

    def encoded(self, rows: Sequence[int] | slice | None = None) -> dict[str, np.ndarray]:
        """``{"input_ids", "attention_mask"}`` int64 arrays ``[n, width]`` of the chosen rows."""
        ids = self._require_tokenizer()
        picked = range(len(self))[rows] if isinstance(rows, slice) else (range(len(self)) if rows is None else rows)
        chosen = [ids[int(r)] for r in picked]
        width = self.width if self.padding == "max_length" else max((len(c) for c in chosen), default=0)
        return _pad(chosen, width, self.pad_token_id)

    # ------------------------------------------------------------------ the Dataset protocol
    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[dict[str, Any], int]:
        import torch

        ids = self._require_tokenizer()[int(i)]
        if self.padding == "max_length":
            row = _pad([ids], self.width, self.pad_token_id)
            item = {k: torch.from_numpy(v[0]) for k, v in row.items()}
        else:
            item = {"input_ids": torch.from_numpy(ids.copy()),
                    "attention_mask": torch.ones(len(ids), dtype=torch.long)}
        return item, int(self.labels[int(i)])

    def collate_fn(self, batch: Sequence[tuple[dict[str, Any], int]]) -> tuple[dict[str, Any], Any]:
        """Pad a list of items to the batch's longest one: ``(dict of [b, T] tensors, [b] labels)``.

        Works for both paddings (fixed-width items are simply stacked). Pads ``input_ids``
        with the tokenizer's pad id and ``attention_mask`` with 0, on the tokenizer's side
        (``tokenizer.padding_side``, right for BERT and GPT-2 by default).
        """
        import torch

        self._require_tokenizer()
        ids = [item["input_ids"].numpy() for item, _ in batch]
        lengths = [int(item["attention_mask"].sum()) for item, _ in batch]
        real = [i[:n] if getattr(self.tokenizer, "padding_side", "right") == "right" else i[len(i) - n:]
                for i, n in zip(ids, lengths, strict=True)]
        padded = _pad(real, max(len(i) for i in ids), self.pad_token_id,
                      left=getattr(self.tokenizer, "padding_side", "right") == "left")
        return ({k: torch.from_numpy(v) for k, v in padded.items()},
                torch.tensor([int(y) for _, y in batch], dtype=torch.long))

    def loader(self, batch_size: int = 32) -> Any:
        """A ``DataLoader`` in order (no shuffling), padding per batch with :meth:`collate_fn`."""
        import torch

        self._require_tokenizer()
        return torch.utils.data.DataLoader(self, batch_size=int(batch_size), shuffle=False,
                                           collate_fn=self.collate_fn)

    # ------------------------------------------------------------------ like ArrayDataset
    @property
    def n_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    def subset(self, which: np.ndarray | slice | Sequence[int]) -> TextDataset:
        """A new data set of the chosen rows; sample indices, tokenizer and width are kept."""
        rows = np.arange(len(self))[which]
        # a fixed width stays that of the whole set, so a subset's items match the full set's
        width = self.width if self._ids is not None and self.padding == "max_length" else self.max_length
        return TextDataset([self.texts[r] for r in rows], self.labels[rows], self.classes, self.tokenizer,
                           width, self.padding, self.truncation, self.index[rows], self.name,
                           None if self.groups is None else np.asarray(self.groups)[rows],
                           _ids=None if self._ids is None else [self._ids[r] for r in rows])

    def with_padding(self, padding: str, max_length: int | None = None) -> TextDataset:
        """The same sentences padded another way (``"max_length"`` or ``"batch"``)."""
        return TextDataset(self.texts, self.labels, self.classes, self.tokenizer, max_length, padding,
                           self.truncation, self.index, self.name, self.groups)

    def with_tokenizer(self, tokenizer: Any, max_length: int | None = None) -> TextDataset:
        """The same sentences tokenised by ``tokenizer`` (an object or a local folder path)."""
        return TextDataset(self.texts, self.labels, self.classes, tokenizer, max_length, self.padding,
                           self.truncation, self.index, self.name, self.groups)

    def fingerprint(self) -> str:
        """A short content hash (texts, labels, index, token ids, padding) to refuse mixing stores."""
        h = hashlib.sha1()
        for t in self.texts:
            h.update(t.encode("utf-8") + b"\0")
        for a in (self.labels, self.index):
            h.update(np.ascontiguousarray(a).data)
        h.update(f"{self.padding}:{self.max_length}".encode())
        for ids in self._ids or []:
            h.update(np.ascontiguousarray(ids).tobytes() + b"|")
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        tok = type(self.tokenizer).__name__ if self.tokenizer is not None else None
        return (f"TextDataset(name={self.name!r}, n={len(self)}, classes={len(self.classes)},"
                f" tokenizer={tok}, padding={self.padding!r})")


def _truncate(ids: np.ndarray, n: int, tok: Any) -> np.ndarray:
    """The first ``n`` tokens, keeping a final special token (SEP / EOS) where there is one."""
    if len(ids) <= n:
        return ids
    special = set(getattr(tok, "all_special_ids", []) or [])
    if n >= 2 and int(ids[-1]) in special:
        return np.concatenate([ids[:n - 1], ids[-1:]])
    return ids[:n]


def _pad(rows: Sequence[np.ndarray], width: int, pad_id: int, left: bool = False) -> dict[str, np.ndarray]:
    ids = np.full((len(rows), width), pad_id, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        if left:
            ids[r, width - len(row):], mask[r, width - len(row):] = row, 1
        else:
            ids[r, :len(row)], mask[r, :len(row)] = row, 1
    return {"input_ids": ids, "attention_mask": mask}


def topics(tokenizer: Any = None, *, max_length: int | None = None, padding: str = "max_length",
           truncation: bool = False, test_fraction: float = 0.25,
           seed: int = TOPICS_SPLIT_SEED) -> tuple[TextDataset, TextDataset]:
    """The built-in sentences in four topics, split train/test (stratified and fixed).

    260 short English sentences, 65 per topic (``TOPICS``: sport, food, weather, technology).
    Each topic's sentences are shuffled by a seeded generator and its first
    ``round(65 * test_fraction)`` go to the test split, so the split is the same on every call
    and every machine, with each topic in the same share in both splits. Sample ``index`` is
    the row in ``topics.csv``.

    Parameters
    ----------
    tokenizer : tokenizer or path, optional
        A Hugging Face tokenizer, or the path of a local model folder with one (loaded
        offline). Without it the splits carry texts and labels only.
    max_length, padding, truncation
        See :class:`TextDataset`. With ``padding="max_length"`` and no ``max_length`` both
        splits are padded to the longest sentence of the whole set.
    test_fraction : float
        Share of each topic in the test split.
    seed : int
        Seed of the split; the default is the fixed split every example uses.

    Returns
    -------
    (train, test) : tuple of TextDataset

    Examples
    --------
    >>> train, test = topics()
    >>> len(train), len(test), test.classes
    (196, 64, ['sport', 'food', 'weather', 'technology'])
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction={test_fraction} must be between 0 and 1 (exclusive).")
    texts, labels = topic_sentences()
    full = TextDataset(texts, labels, TOPICS, tokenizer, max_length, padding, truncation, name="topics")
    rng = np.random.default_rng(int(seed))
    test_rows = []
    for c in range(len(TOPICS)):
        rows = np.flatnonzero(labels == c)
        test_rows.append(rng.permutation(rows)[:round(len(rows) * test_fraction)])
    test_idx = np.sort(np.concatenate(test_rows))
    train_idx = np.setdiff1d(np.arange(len(texts)), test_idx)
    return full.subset(train_idx), full.subset(test_idx)
