"""Built-in data sets and loaders for files a user already has. Nothing downloads.

``load(name)`` is the one entry point configs and the CLI use; it always returns
``(train, test)``.
"""

from __future__ import annotations

import os
from typing import Any

from neuralatlas.data.builtin import digits
from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.data.files import cifar10, fashion_mnist, image_folder, mnist
from neuralatlas.data.photos import photo_patches, photos
from neuralatlas.data.text import TOPICS, TextDataset, topics
from neuralatlas.data.toy import TOY_SETS, call_checked, circles, moons, spirals, split, toy, xor
from neuralatlas.errors import DataError, did_you_mean

__all__ = ["ArrayDataset", "circles", "cifar10", "digits", "fashion_mnist", "image_folder", "load",
           "mnist", "moons", "photo_patches", "photos", "spirals", "split", "toy", "xor", "SOURCES",
           "TOPICS", "TextDataset", "topics"]

# name -> what it is; the keys are the names load() accepts
SOURCES: dict[str, str] = {
    "digits": "scikit-learn's 8x8 digits, built in",
    "photos": "the photographs inside scikit-image's and scikit-learn's wheels, built in",
    "photo_patches": "random multi-scale crops of those photographs, generated",
    "topics": "260 short English sentences in 4 topics (sport, food, weather, technology), built in",
    **{name: "toy 2-D set, generated" for name in TOY_SETS},
    "mnist": "MNIST from local IDX files or mnist.npz",
    "fashion_mnist": "Fashion-MNIST from local IDX files or an .npz",
    "cifar10": "CIFAR-10 from the extracted cifar-10-batches-py folder",
    "image_folder": "one sub-folder of images per class",
}
_FILE_LOADERS = {"mnist": mnist, "fashion_mnist": fashion_mnist, "cifar10": cifar10}
_ALIASES = {"fashionmnist": "fashion_mnist", "cifar_10": "cifar10", "imagefolder": "image_folder"}


def load(name_or_spec: str, path: str | os.PathLike | None = None,
         **kw: Any) -> tuple[Any, Any]:
    """Resolve a data set by name (as written in a config or on the command line).

    Parameters
    ----------
    name_or_spec : str
        A name from ``SOURCES`` (``"digits"``, ``"moons"``, ``"mnist"``, ...; case and ``-``
        versus ``_`` do not matter), ``"name:path"`` such as ``"mnist:~/data/mnist"``, or
        your own loader ``"package.module:function"`` (see :mod:`neuralatlas.data.custom`;
        its ``train`` is ``None`` when it returns one data set).
    path : str or path-like, optional
        Where the files are, for the file-based sources (mnist, fashion_mnist, cifar10,
        image_folder). Built-in and toy sets take none.
    **kw
        Options of the underlying function (``n``, ``noise``, ``seed`` for toy sets; ``limit``
        for files; ``size``, ``grayscale`` for image folders). Sources that come as one data
        set (toy sets, image folders) are split with :func:`split`, which takes
        ``test_fraction`` (default 0.25) and ``seed`` (default 0) from ``kw``.

    Returns
    -------
    (train, test) : tuple of ArrayDataset (TextDataset for ``"topics"``)

    Raises
    ------
    DataError
        Unknown name or option, a missing ``path``, or a missing or malformed file.

    Example
    -------
    >>> train, test = load("moons", n_samples=200)
    >>> len(train), len(test)
    (150, 50)
    """
    from neuralatlas.data.custom import is_import_spec, load_custom

    if is_import_spec(name_or_spec, builtin={*SOURCES, *_ALIASES}):  # the user's own loader, "package.module:function"
        return load_custom(name_or_spec, path=path, **kw)
    name, _, spec_path = name_or_spec.partition(":")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if spec_path:
        if path is not None:
            raise DataError(f"load({name_or_spec!r}, path={str(path)!r}) names two paths;"
                            f" give either {name!r} with path=... or {name_or_spec!r} alone.")
        path = spec_path
    if key not in SOURCES:
        raise DataError(f"unknown data set {name!r}; valid names: {', '.join(SOURCES)}."
                        f"{did_you_mean(key, SOURCES)}")

    if key in ("photos", "photo_patches"):
        if path is not None:
            raise DataError(f"{key!r} is {SOURCES[key]}, not read from files; drop path={str(path)!r}.")
        # one set for looking inside a pretrained model (nothing is trained on it): train = test
        dataset = call_checked(photos if key == "photos" else photo_patches, kw, repr(key))
        return dataset, dataset
    if key in ("digits", "topics") or key in TOY_SETS:
        if path is not None:
            raise DataError(f"{key!r} is {SOURCES[key]}, not read from files; drop path={str(path)!r}.")
        if key == "digits":
            return call_checked(digits, kw, "'digits'")
        if key == "topics":  # options: tokenizer (object or local model folder), max_length, padding
            return call_checked(topics, kw, "'topics'")
        test_fraction, seed = kw.pop("test_fraction", 0.25), kw.get("seed", 0)
        return split(toy(key, **kw), test_fraction=test_fraction, seed=seed)

    if path is None:
        raise DataError(f"{key!r} reads files you already have: {SOURCES[key]}. Pass path=..."
                        f" or write {key + ':/path/to/files'!r}; nothing is downloaded.")
    if key == "image_folder":
        test_fraction, seed = kw.pop("test_fraction", 0.25), kw.pop("seed", 0)
        dataset = call_checked(image_folder, {"path": path, **kw}, "'image_folder'")
        return split(dataset, test_fraction=test_fraction, seed=seed)
    return call_checked(_FILE_LOADERS[key], {"path": path, **kw}, repr(key))
