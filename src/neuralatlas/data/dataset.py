"""The one data set type every loader returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuralatlas.errors import DataError


@dataclass
class ArrayDataset:
    """Images (or 2-D points) with labels, usable as a ``torch.utils.data.Dataset``.

    Parameters
    ----------
    inputs : numpy.ndarray
        float32 array ``[N, C, H, W]`` scaled to [0, 1] for images, ``[N, D]`` for points.
    labels : numpy.ndarray
        int64 array ``[N]`` of class indices.
    classes : sequence of str
        Class names; ``classes[label]`` names a label.
    index : numpy.ndarray, optional
        Stable int64 sample index ``[N]`` (position in the original data set). Defaults to
        ``arange(N)``; subsets keep the index of the samples they hold.
    groups : numpy.ndarray, optional
        An optional group column ``[N]`` (strings or ints), e.g. "clean"/"adversarial".
    name : str
        A short name for provenance ("digits", "mnist:/path", ...).

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> train, test = digits()
    >>> x, y = test[0]
    """

    inputs: np.ndarray
    labels: np.ndarray
    classes: Sequence[str]
    index: np.ndarray | None = None
    groups: np.ndarray | None = None
    name: str = "arrays"
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inputs = np.ascontiguousarray(self.inputs, dtype=np.float32)
        labels = np.asarray(self.labels)
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            # NaN/inf would cast to INT64_MIN: a plausible-looking "no label" or a wrong class
            raise DataError(f"{self.name}: {int((~np.isfinite(labels)).sum())} labels are NaN or infinite;"
                            " ArrayDataset holds integer class indices (-1 for an unlabelled sample).")
        if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
            # casting would truncate regression targets to plausible-looking class indices
            raise DataError(
                f"{self.name}: labels are floats with fractional values (regression targets?);"
                " ArrayDataset holds integer class indices. For float targets use"
                " torch.utils.data.TensorDataset(torch.from_numpy(inputs), torch.from_numpy(labels))"
                " (capture keeps float labels), or bin them into classes first."
            )
        self.labels = np.asarray(labels, dtype=np.int64)
        n = len(self.inputs)
        if self.labels.shape != (n,):
            raise DataError(
                f"{self.name}: labels have shape {self.labels.shape} but inputs hold {n} samples;"
                f" pass one integer label per sample (shape ({n},))."
            )
        self.index = (np.arange(n, dtype=np.int64) if self.index is None
                      else np.asarray(self.index, dtype=np.int64))
        if self.index.shape != (n,):
            raise DataError(f"{self.name}: index has shape {self.index.shape}, expected ({n},).")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != (n,):
                raise DataError(f"{self.name}: groups have shape {self.groups.shape}, expected ({n},).")
        self.classes = [str(c) for c in self.classes]
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(
                f"{self.name}: labels range over [{self.labels.min()}, {self.labels.max()}] but only"
                f" {len(self.classes)} class names were given."
            )

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int):
        import torch  # only model-facing use needs torch

        return torch.from_numpy(self.inputs[i]), int(self.labels[i])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 8, 8)``."""
        return tuple(self.inputs.shape[1:])

    @property
    def n_classes(self) -> int:
        """The number of classes."""
        return len(self.classes)

    def subset(self, which: np.ndarray | slice | Sequence[int]) -> ArrayDataset:
        """A new data set of the chosen rows; sample indices are kept."""
        rows = np.arange(len(self))[which]
        return ArrayDataset(
            inputs=self.inputs[rows], labels=self.labels[rows], classes=self.classes,
            index=self.index[rows], groups=None if self.groups is None else self.groups[rows],
            name=self.name, extra={k: v[rows] for k, v in self.extra.items()},
        )

    def with_groups(self, groups: np.ndarray | Sequence) -> ArrayDataset:
        """A copy with a group column (e.g. for contrasting clean and adversarial inputs)."""
        return ArrayDataset(self.inputs, self.labels, self.classes, self.index,
                            np.asarray(groups), self.name, dict(self.extra))

    def fingerprint(self) -> str:
        """A short content hash (inputs, labels, index) used to refuse mixing stores."""
        import hashlib

        h = hashlib.sha1()
        for a in (self.inputs, self.labels, self.index):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape},"
                f" classes={len(self.classes)})")
