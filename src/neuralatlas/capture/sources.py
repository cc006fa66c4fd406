"""Data sources for capture: batches by row range, in data order, whatever form the data came in.

A neuralatlas :class:`~neuralatlas.data.dataset.ArrayDataset`, a map-style torch ``Dataset``
(optionally with a ``collate_fn`` for variable-length items) and a ``DataLoader`` all become
a :class:`Source` that gives the batches of rows ``start..stop`` in data order. A loader is
read through its dataset, ``collate_fn`` and batch size: its shuffling and ``drop_last``
would change which row is which sample, and every row of a store must keep its index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from neuralatlas.capture.fingerprints import callable_fingerprint, dataset_fingerprint
from neuralatlas.errors import DataError

# Keys a collated dict batch may carry its labels under; they are not passed to the model.
LABEL_KEYS = ("labels", "label")


class Source:
    """Batches of a data set by row range, whatever form the data came in."""

    n: int
    batch_size: int
    index: np.ndarray
    groups: np.ndarray | None = None
    classes: list[str] | None = None
    name: str = "data"

    def batches(self, start: int, stop: int) -> Iterator[tuple[Any, torch.Tensor]]:
        """``(inputs, labels)`` batches of rows ``start..stop``, ``batch_size`` rows from ``start``."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """What identifies the data: its name and size."""
        return f"{self.name}:{self.n}"


class ArraySource(Source):
    """Batches of an in-memory data set (an ``ArrayDataset`` or the like), in its order."""

    def __init__(self, data: Any, batch_size: int, data_id: str | None = None):
        self.data, self.n, self.batch_size = data, len(data), batch_size
        self.index, self.groups, self.classes = data.index, data.groups, list(data.classes)
        self.name = data.name
        self.data_id = data_id

    def batches(self, start: int, stop: int):
        """``(inputs, labels)`` batches of rows ``start`` to ``stop``."""
        for lo in range(start, stop, self.batch_size):
            hi = min(lo + self.batch_size, stop)
            yield torch.from_numpy(self.data.inputs[lo:hi]), torch.from_numpy(self.data.labels[lo:hi])

    def fingerprint(self) -> str:
        """What identifies the data: its name and content fingerprint."""
        return f"{self.name}:{self.data_id if self.data_id is not None else self.data.fingerprint()}"


class DatasetSource(Source):
    """A map-style Dataset read in order, items collated by ``collate_fn`` (torch's default)."""

    num_workers: int = 0  # a DataLoader's own, when read through one

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int,
                 collate_fn: Callable[[list], Any] | None = None, data_id: str | None = None):
        self.dataset, self.n, self.batch_size = dataset, len(dataset), batch_size
        # a data set that brings its own batching (TextDataset(padding="batch").collate_fn) uses it
        own = getattr(dataset, "collate_fn", None)
        self.collate_fn = collate_fn if collate_fn is not None else (own if callable(own) else None)
        self.data_id = data_id
        self.index = np.arange(self.n)
        self.name = type(dataset).__name__
        self._fingerprint: str | None = None
        # a data set that knows its samples' stable index and class names (TextDataset) keeps them
        index = getattr(dataset, "index", None)
        if isinstance(index, np.ndarray) and index.shape == (self.n,):
            self.index = index.astype(np.int64)
        classes = getattr(dataset, "classes", None)
        if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
            self.classes = list(classes)

    def batches(self, start: int, stop: int):
        """``(inputs, labels)`` batches of rows ``start`` to ``stop``, collated as a DataLoader would."""
        collate = self.collate_fn or torch.utils.data.default_collate
        subset = torch.utils.data.Subset(self.dataset, range(start, stop))
        loader = torch.utils.data.DataLoader(subset, batch_size=self.batch_size, shuffle=False,
                                             collate_fn=collate, num_workers=self.num_workers)
        lo = start
        batches = iter(loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError as err:
                if self.collate_fn is not None or "equal size" not in str(err) and "same size" not in str(err):
                    raise
                hi = min(lo + self.batch_size, stop) - 1
                raise DataError(
                    f"Items {lo}..{hi} of the {self.name} have different sizes and cannot be"
                    f" stacked into one batch ({str(err).splitlines()[-1]}). Pass collate_fn= (e.g. a"
                    " tokenizer's padding collator, or transformers.DataCollatorWithPadding(tokenizer))"
                    " to pad each batch, or pad every item to one length."
                ) from None
            lo += self.batch_size
            yield split_batch(batch)

    def fingerprint(self) -> str:
        """What identifies the data set: a fingerprint of its items (computed once)."""
        if self._fingerprint is None:
            fp = dataset_fingerprint(self.dataset, self.n, self.data_id)
            if self.collate_fn is not None and self.collate_fn is not torch.utils.data.default_collate:
                fp += f":collate={callable_fingerprint(self.collate_fn)}"
            self._fingerprint = fp
        return self._fingerprint


class LoaderSource(DatasetSource):
    """A DataLoader, read through its dataset in order with its ``collate_fn`` and batch size.

    Its sampler (shuffling), ``drop_last`` and workers are not used: a store's rows are the
    dataset's items in order, each once.
    """

    def __init__(self, loader: torch.utils.data.DataLoader, batch_size: int, data_id: str | None = None):
        if isinstance(loader.dataset, torch.utils.data.IterableDataset):
            raise DataError("The DataLoader reads an IterableDataset, which has no length or stable"
                            " positions; pass a map-style Dataset (or a DataLoader over one).")
        super().__init__(loader.dataset, loader.batch_size or batch_size, loader.collate_fn, data_id)
        self.num_workers = loader.num_workers  # the user's choice of parallel loading is kept


def _batch_len(x: Any) -> int | None:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.dim() else None
    if isinstance(x, Mapping):
        for v in x.values():
            n = _batch_len(v)
            if n is not None:
                return n
    if isinstance(x, (tuple, list)):
        for v in x:
            n = _batch_len(v)
            if n is not None:
                return n
    return None


def split_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    """A collated batch as ``(inputs, labels)``.

    ``(inputs, labels)`` pairs as they are; a dict (a tokenizer's output) is the inputs, its
    ``labels``/``label`` entry the labels; a lone tensor is inputs without labels. Missing
    labels are ``-1`` (integer: no label).
    """
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, labels = batch
        return inputs, torch.as_tensor(labels)
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
        key = next((k for k in LABEL_KEYS if k in batch), None)
        n = _batch_len(inputs)
        if n is None:
            raise DataError(f"A dict batch needs tensors with a batch axis; got keys {list(batch)}.")
        labels = torch.as_tensor(batch[key]) if key is not None else torch.full((n,), -1, dtype=torch.int64)
        return inputs, labels
    if isinstance(batch, torch.Tensor) and batch.dim() >= 1:
        return batch, torch.full((batch.shape[0],), -1, dtype=torch.int64)
    raise DataError(
        f"Each batch must be an (inputs, labels) pair, a dict of input tensors or a tensor; got"
        f" {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        + ". Wrap the data so items are (inputs, label), where inputs are a tensor, tuple or dict."
    )


def _columns_of_rows(data: Any) -> bool:
    """Whether ``data`` is a tuple of arrays that share their first axis: (X, y), not items."""
    if not isinstance(data, tuple) or len(data) < 2:
        return False
    shapes = [getattr(x, "shape", None) for x in data]
    if not all(isinstance(shape, tuple) and len(shape) >= 1 for shape in shapes):
        return False
    return len({shape[0] for shape in shapes}) == 1  # type: ignore[index]


def as_source(data: Any, batch_size: int, collate_fn: Callable[[list], Any] | None = None,
              data_id: str | None = None) -> Source:
    """Wrap a neuralatlas data set, a torch Dataset of (inputs, label) or a DataLoader.

    Raises
    ------
    DataError
        An IterableDataset, a ``collate_fn`` given beside a DataLoader or an ArrayDataset,
        a tuple of arrays with one number of rows (``(X, y)``: which of the two readings is
        meant cannot be told), or data of another type.
    """
    from neuralatlas.data.dataset import ArrayDataset

    if collate_fn is not None and isinstance(data, (ArrayDataset, torch.utils.data.DataLoader)):
        raise DataError(f"collate_fn= applies to a plain torch Dataset; a {type(data).__name__}"
                        " brings its own batching (a DataLoader's collate_fn is used as it is).")
    if isinstance(data, ArrayDataset):
        return ArraySource(data, batch_size, data_id)
    if isinstance(data, torch.utils.data.DataLoader):
        return LoaderSource(data, batch_size, data_id)
    if isinstance(data, torch.utils.data.IterableDataset):
        raise DataError("An IterableDataset has no length or stable positions; pass a map-style"
                        " Dataset or a DataLoader over one.")
    if _columns_of_rows(data):
        # (X, y) as scikit-learn and Keras take it. Read as a sequence it is a data set of 2
        # items, each a whole array: with X and y of one shape (an autoencoder's (X, X)) that
        # captured 2 "samples" of every row at once, without a word.
        shapes = ", ".join(str(tuple(x.shape)) for x in data)
        raise DataError(
            f"data is a tuple of {len(data)} arrays of {len(data[0])} rows each ({shapes}); read as a"
            f" sequence it would be a data set of {len(data)} items, each a whole array. For inputs"
            " and labels, pass torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))"
            " or neuralatlas.data.ArrayDataset(X, y, classes); inputs alone, pass X. For a data set"
            f" of {len(data)} samples, pass them as a list."
        )
    if isinstance(data, torch.utils.data.Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DatasetSource(data, batch_size, collate_fn, data_id)
    raise DataError(
        f"Cannot capture from data of type {type(data).__name__}; pass a neuralatlas data set"
        " (neuralatlas.data.digits()), a torch Dataset of (inputs, label) pairs, or a DataLoader."
    )
