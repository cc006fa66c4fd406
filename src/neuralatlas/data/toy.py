"""Toy 2-D data sets (xor, circles, moons, spirals) and a stratified train/test split.

Every toy set is generated from a seed (same seed, identical arrays), holds balanced classes
(class sizes differ by at most one), and is shuffled so that no class comes first. The points
are centred on their mean and divided by one common factor so that the largest absolute
coordinate is 1: every value lies in [-1, 1] and the shape is kept (circles stay round).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import DataError, did_you_mean
from neuralatlas.vocabulary import renamed_parameter


@renamed_parameter("n", "n_samples")
def xor(n_samples: int = 400, noise: float = 0.1, seed: int = 0) -> ArrayDataset:
    """Points in the four quadrants; the label is ``(x > 0) xor (y > 0)``.

    Parameters
    ----------
    n_samples : int
        Number of points (two classes, balanced).
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate (before scaling).
    seed : int
        Random seed; the same seed gives identical arrays.

    Returns
    -------
    ArrayDataset
        float32 inputs ``[n_samples, 2]`` in [-1, 1]; classes ``["0", "1"]`` (the value of the xor).

    Example
    -------
    >>> ds = xor(n_samples=100)
    >>> ds.inputs.shape, ds.classes
    ((100, 2), ['0', '1'])
    """
    rng, labels = _start("xor", n_samples, noise, 2, seed)
    magnitude = rng.uniform(0.0, 1.0, size=(n_samples, 2))
    sign_x = rng.choice([-1.0, 1.0], size=n_samples)
    # class 0: both coordinates share a sign (xor false); class 1: the signs differ
    sign_y = np.where(labels == 0, sign_x, -sign_x)
    points = magnitude * np.stack([sign_x, sign_y], axis=1)
    return _finish("xor", points, labels, ["0", "1"], noise, rng)


@renamed_parameter("n", "n_samples")
def circles(n_samples: int = 400, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> ArrayDataset:
    """Two concentric circles: class 0 the outer one (radius 1), class 1 the inner one.

    Parameters
    ----------
    n_samples : int
        Number of points (two classes, balanced).
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate (before scaling).
    factor : float
        Radius of the inner circle relative to the outer one, in (0, 1).
    seed : int
        Random seed; the same seed gives identical arrays.

    Returns
    -------
    ArrayDataset
        float32 inputs ``[n_samples, 2]`` in [-1, 1]; classes ``["outer", "inner"]``.

    Example
    -------
    >>> ds = circles(n_samples=200, factor=0.3)
    >>> ds.classes
    ['outer', 'inner']
    """
    if not 0.0 < factor < 1.0:
        raise DataError(f"circles: factor={factor!r} is the inner radius relative to the outer;"
                        " pass a value strictly between 0 and 1, e.g. factor=0.5.")
    rng, labels = _start("circles", n_samples, noise, 2, seed)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n_samples)
    radius = np.where(labels == 0, 1.0, factor)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _finish("circles", points, labels, ["outer", "inner"], noise, rng)


@renamed_parameter("n", "n_samples")
def moons(n_samples: int = 400, noise: float = 0.1, seed: int = 0) -> ArrayDataset:
    """Two interleaving half circles (as ``sklearn.datasets.make_moons``, angles drawn at random).

    Parameters
    ----------
    n_samples : int
        Number of points (two classes, balanced).
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate (before scaling).
    seed : int
        Random seed; the same seed gives identical arrays.

    Returns
    -------
    ArrayDataset
        float32 inputs ``[n_samples, 2]`` in [-1, 1]; classes ``["upper", "lower"]``.

    Example
    -------
    >>> ds = moons(n_samples=200, noise=0.05, seed=1)
    >>> len(ds)
    200
    """
    rng, labels = _start("moons", n_samples, noise, 2, seed)
    angle = rng.uniform(0.0, np.pi, size=n_samples)
    upper = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    lower = np.stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)], axis=1)
    points = np.where((labels == 0)[:, None], upper, lower)
    return _finish("moons", points, labels, ["upper", "lower"], noise, rng)


@renamed_parameter("n", "n_samples")
def spirals(n_samples: int = 400, noise: float = 0.2, turns: float = 1.5, n_classes: int = 2,
            seed: int = 0) -> ArrayDataset:
    """Interleaved spiral arms, one per class, starting at the centre.

    Unlike the other toy sets the noise jitters the *angle* (in radians), as in the classic
    CS231n spirals: points near the centre move little, points on the rim up to ``noise``.

    Parameters
    ----------
    n_samples : int
        Number of points (``n_classes`` classes, balanced).
    noise : float
        Standard deviation of the Gaussian jitter of each point's angle, in radians.
    turns : float
        How many full turns each arm makes from the centre to the rim.
    n_classes : int
        Number of arms (classes), at least 2.
    seed : int
        Random seed; the same seed gives identical arrays.

    Returns
    -------
    ArrayDataset
        float32 inputs ``[n_samples, 2]`` in [-1, 1]; classes ``["arm 0", "arm 1", ...]``.

    Example
    -------
    >>> ds = spirals(n_samples=300, n_classes=3)
    >>> ds.n_classes
    3
    """
    if turns <= 0:
        raise DataError(f"spirals: turns={turns!r} must be positive, e.g. turns=1.5.")
    if not _is_int(n_classes) or n_classes < 2:
        raise DataError(f"spirals: n_classes={n_classes!r} must be an integer of at least 2.")
    rng, labels = _start("spirals", n_samples, noise, n_classes, seed)
    radius = rng.uniform(0.0, 1.0, size=n_samples)
    angle = (2.0 * np.pi * turns * radius + 2.0 * np.pi * labels / n_classes
             + noise * rng.standard_normal(n_samples))
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    # the noise is already in the angle, so none is added to the coordinates
    return _finish("spirals", points, labels, [f"arm {k}" for k in range(n_classes)], 0.0, rng)


TOY_SETS: dict[str, Callable[..., ArrayDataset]] = {
    "xor": xor, "circles": circles, "moons": moons, "spirals": spirals,
}


def toy(name: str, **kw: Any) -> ArrayDataset:
    """Generate the toy set called ``name`` with options ``kw``.

    Parameters
    ----------
    name : str
        One of ``"xor"``, ``"circles"``, ``"moons"``, ``"spirals"``.
    **kw
        Options of that generator (``n_samples``, ``noise``, ``seed``, ...; ``n`` is the old name of
        ``n_samples``).

    Returns
    -------
    ArrayDataset

    Raises
    ------
    DataError
        On an unknown name or option; the message lists the valid ones.

    Example
    -------
    >>> toy("moons", n_samples=100, seed=3).inputs.shape
    (100, 2)
    """
    generator = TOY_SETS.get(name)
    if generator is None:
        raise DataError(f"unknown toy data set {name!r}; valid names: {', '.join(TOY_SETS)}."
                        f"{did_you_mean(name, TOY_SETS)}")
    return call_checked(generator, kw, f"toy set {name!r}")


def split(dataset: ArrayDataset, test_fraction: float = 0.25,
          seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """Split a data set into train and test, stratified by label and seeded.

    Each class puts ``round(test_fraction * class_size)`` of its samples into the test
    split. Both splits keep the original order of their rows and the sample ``index``.

    Parameters
    ----------
    dataset : ArrayDataset
        The data set to split.
    test_fraction : float
        Share of each class that goes to the test split, strictly between 0 and 1.
    seed : int
        Seed of the split; the same seed gives the same split.

    Returns
    -------
    (train, test) : tuple of ArrayDataset

    Raises
    ------
    DataError
        When ``test_fraction`` is out of range or a split would be empty.

    Example
    -------
    >>> train, test = split(moons(n_samples=200), test_fraction=0.25)
    >>> len(train), len(test)
    (150, 50)
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"split: test_fraction={test_fraction!r} must lie strictly between 0 and 1,"
                        " e.g. 0.25.")
    rng = np.random.default_rng(seed)
    test_rows = []
    for label in np.unique(dataset.labels):
        rows = np.flatnonzero(dataset.labels == label)
        k = int(np.floor(test_fraction * len(rows) + 0.5))  # round half up, not to even
        test_rows.append(rng.permutation(rows)[:k])
    is_test = np.zeros(len(dataset), dtype=bool)
    if test_rows:
        is_test[np.concatenate(test_rows)] = True
    if is_test.all() or not is_test.any():
        raise DataError(
            f"split: {dataset.name} ({len(dataset)} samples) with test_fraction={test_fraction}"
            f" leaves the {'train' if is_test.all() else 'test'} split empty; use more samples"
            " or a test_fraction nearer 0.5."
        )
    return dataset.subset(np.flatnonzero(~is_test)), dataset.subset(np.flatnonzero(is_test))


def call_checked(function: Callable[..., Any], kw: dict[str, Any], what: str) -> Any:
    """Call ``function(**kw)``, turning an unknown option into a DataError that lists the valid ones.

    Configs and the CLI pass options by name; a typo should say what would be right rather
    than surface as a bare ``TypeError``.
    """
    valid = list(inspect.signature(function).parameters)
    renamed = getattr(function, "__renamed_parameters__", {})  # old names: they warn, and still work
    unknown = [key for key in kw if key not in valid and key not in renamed]
    if unknown:
        raise DataError(f"{what} has no option {unknown[0]!r}; valid options: {', '.join(valid)}."
                        f"{did_you_mean(unknown[0], valid)}")
    return function(**kw)


def _start(name: str, n_samples: int, noise: float, n_classes: int,
           seed: int) -> tuple[np.random.Generator, np.ndarray]:
    """Validate the shared options; return the generator and shuffled, balanced labels."""
    if not _is_int(n_samples) or n_samples < n_classes:
        raise DataError(f"{name}: n_samples={n_samples!r} must be an integer of at least {n_classes}"
                        f" (one point per class).")
    if noise < 0:
        raise DataError(f"{name}: noise={noise!r} is a standard deviation; pass a value >= 0.")
    rng = np.random.default_rng(seed)
    sizes = [n_samples // n_classes + (k < n_samples % n_classes) for k in range(n_classes)]
    labels = rng.permutation(np.repeat(np.arange(n_classes, dtype=np.int64), sizes))
    return rng, labels


def _finish(name: str, points: np.ndarray, labels: np.ndarray, classes: list[str],
            noise: float, rng: np.random.Generator) -> ArrayDataset:
    """Add coordinate noise, centre, scale into [-1, 1] and wrap as a data set."""
    points = points + noise * rng.standard_normal(points.shape)
    points = points - points.mean(axis=0)
    points = points / np.abs(points).max()
    return ArrayDataset(points.astype(np.float32), labels, classes, name=name)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
