"""Loaders for data files a user already has: MNIST, Fashion-MNIST, CIFAR-10, image folders.

Nothing downloads. Each loader reads the files as they are usually published, validates
them (headers, sizes, keys), and returns ``ArrayDataset`` objects: ``(train, test)`` where
the format has a split, else one data set. A missing or malformed file raises a
``DataError`` that names the file, the layout that was expected, and where such files
usually come from.

The sample ``index`` is the position of a sample in its own split, as in torchvision
(``mnist(p)[1].index[7] == 7`` is test image 7); the splits are named ``"<source>:train"``
and ``"<source>:test"``.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import DataError

PathLike = str | os.PathLike

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
# split -> (images file, labels file), as published; each may also end in .gz
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = ("batches.meta", *CIFAR10_TRAIN_FILES, "test_batch")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")
MNIST_IMAGE_SHAPE = (28, 28)
CIFAR10_ROW = 3 * 32 * 32


@dataclass(frozen=True)
class _Format:
    """What a format's files look like and where they come from, for error messages."""

    title: str
    layout: str
    origin: str

    def error(self, file: PathLike, problem: str) -> DataError:
        return DataError(f"{file} {problem}. {self.title} expects {self.layout}. {self.origin};"
                         " nothing is downloaded.")


_IDX_LAYOUT = (
    "a folder holding " + ", ".join(IDX_FILES["train"] + IDX_FILES["test"])
    + " (each may end in .gz), or a {npz} with arrays x_train, y_train, x_test, y_test"
)
MNIST_FORMAT = _Format(
    "MNIST", _IDX_LAYOUT.format(npz="mnist.npz"),
    "These are the MNIST files as published by Yann LeCun (yann.lecun.com/exdb/mnist),"
    " torchvision's MNIST/raw folder, or keras' mnist.npz (~/.keras/datasets)",
)
FASHION_MNIST_FORMAT = _Format(
    "Fashion-MNIST", _IDX_LAYOUT.format(npz="fashion_mnist.npz"),
    "These are the Fashion-MNIST files published by Zalando Research"
    " (github.com/zalandoresearch/fashion-mnist, data/fashion), torchvision's FashionMNIST/raw"
    " folder, or keras' ~/.keras/datasets/fashion-mnist folder",
)
CIFAR10_FORMAT = _Format(
    "CIFAR-10",
    f"a folder {CIFAR10_FOLDER} (or its parent) holding " + ", ".join(CIFAR10_FILES),
    "These come from the 'CIFAR-10 python version' archive cifar-10-python.tar.gz"
    " (www.cs.toronto.edu/~kriz/cifar.html, also what torchvision's CIFAR10 keeps), extracted",
)
IMAGE_FOLDER_FORMAT = _Format(
    "image_folder",
    "a folder with one sub-folder per class holding image files, e.g. root/cat/001.png,"
    " root/dog/002.jpg (the sorted sub-folder names are the classes)",
    "This is the layout of torchvision's ImageFolder; any image Pillow reads works ("
    + ", ".join(IMAGE_SUFFIXES) + ")",
)


def mnist(path: PathLike, limit: int | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """MNIST from local files: the four IDX files (plain or .gz) or keras' ``mnist.npz``.

    Parameters
    ----------
    path : str or path-like
        A folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``;
        torchvision's root with ``MNIST/raw`` works too), or a ``mnist.npz`` with arrays
        ``x_train``, ``y_train``, ``x_test``, ``y_test``.
    limit : int, optional
        Read only the first ``limit`` samples of each split (a quick look).

    Returns
    -------
    (train, test) : tuple of ArrayDataset
        float32 images ``[N, 1, 28, 28]`` in [0, 1] (bytes / 255); classes ``"0"`` .. ``"9"``.

    Raises
    ------
    DataError
        A file is missing or malformed (wrong magic number, size, shape, labels).

    Example
    -------
    >>> train, test = mnist("~/data/mnist", limit=1000)  # doctest: +SKIP
    >>> train.input_shape  # doctest: +SKIP
    (1, 28, 28)
    """
    return _mnist_like(path, limit, "mnist", MNIST_CLASSES, MNIST_FORMAT, "MNIST", "mnist.npz")


def fashion_mnist(path: PathLike, limit: int | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """Fashion-MNIST from local files, laid out exactly like MNIST (IDX files or an .npz).

    Parameters
    ----------
    path : str or path-like
        A folder holding the four IDX files (same names as MNIST's, each may end in ``.gz``;
        torchvision's root with ``FashionMNIST/raw`` works too), or an ``.npz`` with arrays
        ``x_train``, ``y_train``, ``x_test``, ``y_test``.
    limit : int, optional
        Read only the first ``limit`` samples of each split.

    Returns
    -------
    (train, test) : tuple of ArrayDataset
        float32 images ``[N, 1, 28, 28]`` in [0, 1]; classes "T-shirt/top", "Trouser",
        "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot".

    Raises
    ------
    DataError
        A file is missing or malformed.

    Example
    -------
    >>> train, test = fashion_mnist("~/data/fashion")  # doctest: +SKIP
    >>> train.classes[9]  # doctest: +SKIP
    'Ankle boot'
    """
    return _mnist_like(path, limit, "fashion_mnist", FASHION_MNIST_CLASSES, FASHION_MNIST_FORMAT,
                       "FashionMNIST", "fashion_mnist.npz")


def cifar10(path: PathLike, limit: int | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-10 from the extracted 'python version' archive (``cifar-10-batches-py``).

    The batches are pickles; they are read with an unpickler that admits only what CIFAR
    batches hold (dicts, lists, bytes, numpy arrays), so a tampered file cannot run code.

    Parameters
    ----------
    path : str or path-like
        The ``cifar-10-batches-py`` folder (``batches.meta``, ``data_batch_1`` ..
        ``data_batch_5``, ``test_batch``) or the folder that contains it.
    limit : int, optional
        Read only the first ``limit`` samples of each split.

    Returns
    -------
    (train, test) : tuple of ArrayDataset
        float32 images ``[N, 3, 32, 32]`` in [0, 1]; classes from ``batches.meta``
        ("airplane", "automobile", ...).

    Raises
    ------
    DataError
        A file is missing or malformed.

    Example
    -------
    >>> train, test = cifar10("~/data")  # doctest: +SKIP
    >>> test.input_shape  # doctest: +SKIP
    (3, 32, 32)
    """
    _check_limit(limit)
    folder = _cifar10_folder(Path(path).expanduser())
    for name in CIFAR10_FILES:
        if not (folder / name).is_file():
            raise CIFAR10_FORMAT.error(folder / name, "was not found")
    meta = _unpickle(folder / "batches.meta")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise CIFAR10_FORMAT.error(folder / "batches.meta",
                                   "has no list 'label_names' of 10 class names")
    classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    x_train, y_train = _read_cifar10_batches([folder / f for f in CIFAR10_TRAIN_FILES], limit)
    x_test, y_test = _read_cifar10_batches([folder / "test_batch"], limit)
    return (_images_dataset(x_train, y_train, classes, "cifar10:train"),
            _images_dataset(x_test, y_test, classes, "cifar10:test"))


def image_folder(path: PathLike, size: int | Sequence[int] | None = None, grayscale: bool = False,
                 limit: int | None = None) -> ArrayDataset:
    """Images in one sub-folder per class (the layout of torchvision's ``ImageFolder``).

    Parameters
    ----------
    path : str or path-like
        The root folder; each sub-folder is a class (sorted names give the class order) and
        holds image files, searched recursively, in sorted order.
    size : int or (height, width), optional
        Resize every image to this size (bilinear, antialiased). Without it all images must
        have the same size.
    grayscale : bool
        Read images as one grey channel instead of three RGB channels.
    limit : int, optional
        Read at most ``limit`` images *per class* (the first in sorted order), so that a quick
        look still sees every class.

    Returns
    -------
    ArrayDataset
        float32 images ``[N, C, H, W]`` in [0, 1] (C = 1 or 3), ordered by class then file
        name; ``extra["file"]`` holds each image's path relative to ``path``.

    Raises
    ------
    DataError
        The folder is missing or has no class folders, a class folder holds no images, an
        image cannot be read, or images differ in size and ``size`` was not given.

    Example
    -------
    >>> ds = image_folder("~/photos", size=(64, 64))  # doctest: +SKIP
    >>> ds.input_shape  # doctest: +SKIP
    (3, 64, 64)
    """
    _check_limit(limit)
    target = _size_pair(size)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise IMAGE_FOLDER_FORMAT.error(root, "is not a folder" if root.exists() else
                                        "does not exist")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise IMAGE_FOLDER_FORMAT.error(root, "has no class sub-folders")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        images = sorted(f for f in class_dir.rglob("*") if f.is_file()
                        and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        if not images:
            raise IMAGE_FOLDER_FORMAT.error(class_dir, "holds no image files")
        images = images[:limit]
        files += images
        labels += [label] * len(images)

    pixels = _read_images(files, target, grayscale)
    return ArrayDataset(pixels.astype(np.float32) / 255.0, np.array(labels),
                        [d.name for d in class_dirs], name=f"image_folder:{root.name}",
                        extra={"file": np.array([f.relative_to(root).as_posix() for f in files])})


# --- MNIST and Fashion-MNIST -------------------------------------------------------------

def _mnist_like(path: PathLike, limit: int | None, name: str, classes: list[str], fmt: _Format,
                torchvision_dir: str, npz_name: str) -> tuple[ArrayDataset, ArrayDataset]:
    _check_limit(limit)
    source = _mnist_source(Path(path).expanduser(), fmt, torchvision_dir, npz_name)
    if source.suffix == ".npz":
        arrays = _read_mnist_npz(source, fmt, limit)
    else:
        arrays = {split: _read_idx_pair(source, *IDX_FILES[split], fmt=fmt, limit=limit)
                  for split in ("train", "test")}
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    return (_images_dataset(x_train[:, None], y_train, classes, f"{name}:train"),
            _images_dataset(x_test[:, None], y_test, classes, f"{name}:test"))


def _mnist_source(path: Path, fmt: _Format, torchvision_dir: str, npz_name: str) -> Path:
    """The folder holding the IDX files, or the .npz file, that ``path`` points to."""
    if not path.exists():
        raise fmt.error(path, "does not exist")
    if path.is_file():
        if path.suffix == ".npz":
            return path
        if _idx_stem(path.name) is not None:  # one of the four files: use its folder
            return path.parent
        raise fmt.error(path, "is neither a folder nor an .npz file")
    # torchvision keeps the raw files in <root>/MNIST/raw (FashionMNIST/raw)
    for folder in (path, path / "raw", path / torchvision_dir / "raw"):
        if _find_idx(folder, IDX_FILES["train"][0]) is not None:
            return folder
    if (path / npz_name).is_file():
        return path / npz_name
    return path  # reading it names the first missing file


def _idx_stem(file_name: str) -> str | None:
    """The published IDX name a file name stands for (``.gz`` and ``.idx`` spellings too)."""
    stem = file_name.removesuffix(".gz").replace(".idx", "-idx")
    return stem if any(stem in pair for pair in IDX_FILES.values()) else None


def _find_idx(folder: Path, stem: str) -> Path | None:
    # some mirrors (e.g. Kaggle) spell the names train-images.idx3-ubyte
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _read_idx_pair(folder: Path, images_stem: str, labels_stem: str, *, fmt: _Format,
                   limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    found: dict[str, Path] = {}
    for stem in (images_stem, labels_stem):
        file = _find_idx(folder, stem)
        if file is None:
            raise fmt.error(folder / stem, "was not found (nor with .gz)")
        found[stem] = file
    images_file, labels_file = found[images_stem], found[labels_stem]
    images, n_images = _read_idx(images_file, MNIST_IMAGE_SHAPE, fmt, limit)
    labels, n_labels = _read_idx(labels_file, (), fmt, limit)
    if n_images != n_labels:
        raise fmt.error(labels_file, f"declares {n_labels} labels but {images_file.name} declares"
                                     f" {n_images} images; the two files belong to different sets")
    _check_labels(labels, labels_file, fmt)
    return images, labels


def _read_idx(file: Path, item_shape: tuple[int, ...], fmt: _Format,
              limit: int | None) -> tuple[np.ndarray, int]:
    """Read an IDX file of unsigned bytes; return the first ``limit`` items and the item count.

    The header is a magic number ``0x0000 08 <ndim>`` (0x08: unsigned bytes) followed by
    ``ndim`` big-endian uint32 sizes, then the data in C order.
    """
    ndim = 1 + len(item_shape)
    magic = 0x0800 + ndim
    what = "images" if item_shape else "labels"
    item_size = math.prod(item_shape)
    try:
        with _open_maybe_gzip(file) as f:
            header = f.read(4)
            if len(header) < 4:
                raise fmt.error(file, "is truncated: it ends inside the 4-byte IDX magic number")
            found = int.from_bytes(header, "big")
            if found != magic:
                raise fmt.error(file, f"has magic number 0x{found:08X}, expected 0x{magic:08X}"
                                      f" (IDX {what}: unsigned bytes, {ndim} dimension(s))")
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise fmt.error(file, "is truncated: it ends inside the IDX header")
            n, *shape = (int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            if tuple(shape) != item_shape:
                raise fmt.error(file, f"holds {what} of shape {tuple(shape)}, expected {item_shape}")
            count = n if limit is None else min(limit, n)
            data = _read_at_most(f, count * item_size)
            if len(data) < count * item_size:
                raise fmt.error(file, f"is truncated: its header declares {n} {what}"
                                      f" ({n * item_size} bytes of data) but the data ends after"
                                      f" {len(data)} bytes")
            if limit is None and f.read(1):
                raise fmt.error(file, f"has bytes beyond the {n} {what} its header declares")
    except (OSError, EOFError, zlib.error) as e:  # unreadable, or a broken / cut gzip stream
        raise fmt.error(file, f"cannot be read ({e})") from e
    return np.frombuffer(data, dtype=np.uint8).reshape(count, *item_shape), n


def _read_at_most(f: BinaryIO, size: int) -> bytes:
    """Read up to ``size`` bytes in chunks.

    ``f.read(size)`` allocates ``size`` bytes up front, so a corrupt header declaring
    billions of images would fail with MemoryError instead of "truncated".
    """
    chunks, left = [], size
    while left > 0:
        chunk = f.read(min(left, 1 << 26))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _open_maybe_gzip(file: Path) -> BinaryIO:
    return gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")  # type: ignore[return-value]


def _read_mnist_npz(file: Path, fmt: _Format,
                    limit: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    keys = [key for pair in NPZ_KEYS.values() for key in pair]
    try:
        with np.load(file, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise fmt.error(file, f"has no array {missing[0]!r} (it holds"
                                      f" {', '.join(npz.files) or 'no arrays'})")
            loaded = {key: npz[key] for key in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise fmt.error(file, f"cannot be read as an .npz file ({e})") from e

    arrays = {}
    for split, (x_key, y_key) in NPZ_KEYS.items():
        x, y = loaded[x_key], loaded[y_key]
        where = f"{file} [{x_key!r}]"
        if x.ndim != 3 or x.shape[1:] != MNIST_IMAGE_SHAPE:
            raise fmt.error(where, f"has shape {x.shape}, expected (N, 28, 28)")
        if x.size and (x.min() < 0 or x.max() > 255):
            raise fmt.error(where, f"ranges over [{x.min()}, {x.max()}], expected bytes 0..255")
        if y.shape != (len(x),):
            raise fmt.error(f"{file} [{y_key!r}]", f"has shape {y.shape}, expected ({len(x)},)"
                                                   f" (one label per image in {x_key!r})")
        _check_labels(y, f"{file} [{y_key!r}]", fmt)
        arrays[split] = (x[:limit], y[:limit])
    return arrays


def _check_labels(labels: np.ndarray, file: PathLike, fmt: _Format) -> None:
    if not np.issubdtype(labels.dtype, np.integer):
        raise fmt.error(file, f"holds labels of type {labels.dtype}, expected integers 0..9")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise fmt.error(file, f"holds labels in [{labels.min()}, {labels.max()}], expected 0..9")


# --- CIFAR-10 -----------------------------------------------------------------------------

def _cifar10_folder(path: Path) -> Path:
    if not path.exists():
        raise CIFAR10_FORMAT.error(path, "does not exist")
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz")):
            raise CIFAR10_FORMAT.error(path, f"is the archive; extract it first (tar xzf"
                                             f" {path.name}) and pass {CIFAR10_FOLDER} or its parent")
        raise CIFAR10_FORMAT.error(path, "is a file, not a folder")
    return path / CIFAR10_FOLDER if (path / CIFAR10_FOLDER).is_dir() else path


def _read_cifar10_batches(files: list[Path], limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels, count = [], [], 0
    for file in files:
        if limit is not None and count >= limit:
            break
        batch = _unpickle(file)
        if "fine_labels" in batch:
            raise CIFAR10_FORMAT.error(file, "has 'fine_labels': it is a CIFAR-100 file")
        data, batch_labels = batch.get("data"), batch.get("labels")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == CIFAR10_ROW):
            found = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                     else type(data).__name__)
            raise CIFAR10_FORMAT.error(file, f"has 'data' {found}, expected a uint8 array of"
                                             f" shape (N, {CIFAR10_ROW})")
        if not isinstance(batch_labels, (list, tuple, np.ndarray)):
            raise CIFAR10_FORMAT.error(file, "has no 'labels' list")
        if len(batch_labels) != len(data):
            raise CIFAR10_FORMAT.error(file, f"has {len(data)} images but {len(batch_labels)} labels")
        batch_labels = np.asarray(batch_labels)
        _check_labels(batch_labels, file, CIFAR10_FORMAT)
        take = len(data) if limit is None else min(len(data), limit - count)
        images.append(data[:take])
        labels.append(batch_labels[:take])
        count += take
    # rows hold 1024 red, then 1024 green, then 1024 blue values, each image row-major
    return np.concatenate(images).reshape(-1, 3, 32, 32), np.concatenate(labels)


class _CifarUnpickler(pickle.Unpickler):
    """Admits only the globals that pickled numpy arrays need; anything else is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
               ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        # the published files were written by numpy 1 (numpy.core); numpy 2 calls it numpy._core
        if module.startswith("numpy.core."):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: CIFAR batches hold"
                                         " only dicts, lists, bytes and numpy arrays")
        if module.startswith("numpy._core.") and not hasattr(np, "_core"):  # numpy < 2
            module = "numpy.core." + module.removeprefix("numpy._core.")
        return super().find_class(module, name)


def _unpickle(file: Path) -> dict[str, Any]:
    try:
        with open(file, "rb") as f:
            # the published batches are Python 2 pickles whose strings are bytes
            content = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a damaged pickle can fail in many ways; all mean "malformed"
        raise CIFAR10_FORMAT.error(file, f"cannot be read as a CIFAR-10 pickle ({e})") from e
    if not isinstance(content, dict):
        raise CIFAR10_FORMAT.error(file, f"holds a {type(content).__name__}, expected a dict")
    return {k.decode("utf-8") if isinstance(k, bytes) else str(k): v for k, v in content.items()}


# --- image folders and shared helpers ----------------------------------------------------

def _read_images(files: list[Path], target: tuple[int, int] | None,
                 grayscale: bool) -> np.ndarray:
    """Decode images to uint8 ``[N, C, H, W]``; all must end up the same size."""
    from PIL import Image  # only image folders need Pillow

    arrays: list[np.ndarray] = []
    for file in files:
        try:
            with Image.open(file) as opened:
                image = opened.convert("L" if grayscale else "RGB")
                if target is not None:
                    image = image.resize((target[1], target[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise IMAGE_FOLDER_FORMAT.error(file, f"cannot be read as an image ({e})") from e
        if arrays and pixels.shape[:2] != arrays[0].shape[:2]:
            (h0, w0), (h, w) = arrays[0].shape[:2], pixels.shape[:2]
            raise IMAGE_FOLDER_FORMAT.error(
                file, f"is {h}x{w} pixels (height x width) but {files[0]} is {h0}x{w0}, and images"
                      f" of different sizes cannot be stacked; pass size=(height, width) to resize"
                      f" every image, e.g. image_folder(..., size=({h0}, {w0}))")
        arrays.append(pixels)
    stacked = np.stack(arrays)
    return stacked[:, None] if grayscale else stacked.transpose(0, 3, 1, 2)


def _images_dataset(images: np.ndarray, labels: np.ndarray, classes: list[str],
                    name: str) -> ArrayDataset:
    return ArrayDataset(images.astype(np.float32) / 255.0, labels.astype(np.int64), classes,
                        name=name)


def _size_pair(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in pair):
        raise DataError(f"image_folder: size={size!r} must be one positive integer or a pair"
                        " (height, width), e.g. size=(64, 64).")
    return int(pair[0]), int(pair[1])


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool)
                              or limit < 1):
        raise DataError(f"limit={limit!r} must be a positive number of samples, or None for all.")
