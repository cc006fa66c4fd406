"""Data sets that ship with the install: scikit-learn's digits."""

from __future__ import annotations

import numpy as np

from neuralatlas.data.dataset import ArrayDataset

DIGITS_SPLIT_SEED = 0


def digits(test_fraction: float = 0.25, seed: int = DIGITS_SPLIT_SEED) -> tuple[ArrayDataset, ArrayDataset]:
    """scikit-learn's handwritten digits (1797 images, 8×8, 10 classes), split train/test.

    The split is stratified and seeded, so every call (and every machine) gets the same one.
    Images are float32 ``[N, 1, 8, 8]`` scaled to [0, 1] (the raw values are 0..16).

    Parameters
    ----------
    test_fraction : float
        Share of samples in the test split.
    seed : int
        Seed of the split; the default is the fixed split every example uses.

    Returns
    -------
    (train, test) : tuple of ArrayDataset
        The sample ``index`` is the row in ``sklearn.datasets.load_digits()``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=test_fraction, random_state=seed,
                                           stratify=labels)
    train_idx.sort()
    test_idx.sort()
    full = ArrayDataset(images, labels, [str(i) for i in range(10)], index=index, name="digits")
    return full.subset(train_idx), full.subset(test_idx)
