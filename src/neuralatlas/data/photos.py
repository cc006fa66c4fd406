"""Real photographs that ship inside installed wheels, and a patch set cut from them.

scikit-image's wheel holds a few photographs as files (``skimage/data/*.png|jpg``; others
there are fetched by pooch on first use and are left out: nothing here downloads), and
scikit-learn ships two more (``load_sample_images``). :func:`photos` gives them as a data set
prepared like ImageNet evaluation images (shorter side resized, centre crop);
:func:`photo_patches` cuts many random square crops at several scales from them, seeded,
so a unit's top-activating examples can be found among real image content.

Labels are the photo a sample comes from (``classes`` are photo names), not ImageNet
classes: these sets are for looking inside a model, not for training or scoring it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import DataError
from neuralatlas.vocabulary import renamed_parameter

#: name -> (package, file). Colour photographs first, then grey ones (given as RGB).
PHOTO_FILES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "motorcycle": ("skimage", "motorcycle_left.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "retina": ("skimage", "retina.jpg"),
    "ihc": ("skimage", "ihc.png"),
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
    "camera": ("skimage", "camera.png"),
    "coins": ("skimage", "coins.png"),
    "moon": ("skimage", "moon.png"),
    "brick": ("skimage", "brick.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "page": ("skimage", "page.png"),
    "text": ("skimage", "text.png"),
}


def _folder(package: str) -> str:
    # find_spec locates the package without importing it (importing sklearn takes seconds)
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        hint = "pip install 'neuralatlas[pretrained]'" if package == "skimage" else "pip install scikit-learn"
        raise DataError(f"The bundled photos need {package} ({hint}).")
    root = os.path.dirname(spec.origin)
    return os.path.join(root, "data") if package == "skimage" else os.path.join(root, "datasets", "images")


@lru_cache(maxsize=32)
def _read(name: str) -> np.ndarray:
    from PIL import Image

    package, file = PHOTO_FILES[name]
    path = os.path.join(_folder(package), file)
    if not os.path.isfile(path):
        raise DataError(f"Photo {name!r} ({path}) is not in the installed {package}; the set needs"
                        f" {package}'s own files (scikit-image 0.26 ships it).")
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    arr.setflags(write=False)
    return arr


def photo(name: str) -> np.ndarray:
    """One bundled photograph as ``[H, W, 3]`` uint8 (grey photos repeated into RGB)."""
    if name not in PHOTO_FILES:
        from neuralatlas.errors import did_you_mean

        raise DataError(f"Unknown photo {name!r}.{did_you_mean(name, PHOTO_FILES)} Photos: {', '.join(PHOTO_FILES)}.")
    return _read(name)


def _names(names: Sequence[str] | None) -> list[str]:
    chosen = list(PHOTO_FILES) if names is None else list(names)
    if not chosen:
        raise DataError("names is empty; give at least one photo name, or None for all.")
    for n in chosen:
        photo(n)  # raises for unknown names
    return chosen


def _chw(img: np.ndarray) -> np.ndarray:
    return np.transpose(img, (2, 0, 1)).astype(np.float32) / 255.0


def photos(size: int = 224, names: Sequence[str] | None = None, resize: int | None = None) -> ArrayDataset:
    """The bundled photographs, each resized and centre-cropped to ``size`` × ``size``.

    The ImageNet evaluation transform: the shorter side goes to ``resize`` (default
    ``size * 256 / 224``), then the centre square is cut.

    Parameters
    ----------
    size : int
        Side of the square images.
    names : sequence of str, optional
        Which photos (keys of :data:`PHOTO_FILES`); default all 18.
    resize : int, optional
        Shorter side before the crop.

    Returns
    -------
    ArrayDataset
        float32 ``[N, 3, size, size]`` in [0, 1]; ``labels[i] = i`` and ``classes`` the photo
        names; ``groups`` "colour" or "grey".

    Example
    -------
    >>> ds = photos(112, names=["chelsea", "coffee"])
    >>> ds.inputs.shape, ds.classes
    ((2, 3, 112, 112), ['chelsea', 'coffee'])
    """
    chosen = _names(names)
    side = int(size)
    if side < 16:
        raise DataError(f"size must be at least 16 pixels, got {size!r}.")
    short_side = int(resize) if resize is not None else round(side * 256 / 224)
    if short_side < side:
        raise DataError(f"resize={resize} is smaller than size={size}; the crop must fit.")
    out = np.empty((len(chosen), 3, side, side), dtype=np.float32)
    groups = []
    for i, n in enumerate(chosen):
        img = photo(n)
        h, w = img.shape[:2]
        # shorter side -> short_side, centre crop of side x side, in one PIL resize (box =
        # the source region of the crop); PIL's bilinear filter antialiases when shrinking
        crop = min(h, w) * side / short_side
        top, left = (h - crop) / 2, (w - crop) / 2
        from PIL import Image

        pic = Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR,
                                          box=(left, top, left + crop, top + crop))
        out[i] = np.asarray(pic, dtype=np.float32).transpose(2, 0, 1) / 255.0
        grey = bool(np.all(img[..., 0] == img[..., 1]) and np.all(img[..., 1] == img[..., 2]))
        groups.append("grey" if grey else "colour")
    return ArrayDataset(out, np.arange(len(chosen)), chosen, groups=np.asarray(groups), name=f"photos:{side}")


@renamed_parameter("n", "n_samples")
def photo_patches(n_samples: int = 384, size: int = 112, scales: Sequence[float] = (0.2, 0.35, 0.6, 1.0),
                  names: Sequence[str] | None = None, seed: int = 0) -> ArrayDataset:
    """Random square crops of the bundled photos at several scales, resized to ``size``.

    Crop ``i`` comes from photo ``labels[i]`` (photos drawn in turn, so every photo gives
    about ``n_samples / len(names)`` crops), with side ``scale * min(H, W)`` for a scale drawn from
    ``scales`` and a uniformly random position. The same ``seed`` gives the same crops on
    every machine.

    Parameters
    ----------
    n_samples : int
        Number of crops (``n`` is its old name).
    size : int
        Side of each crop after resizing (112 keeps 384 crops at 58 MB of float32).
    scales : sequence of float
        Crop sides as shares of the photo's shorter side, in (0, 1].
    names : sequence of str, optional
        Photos to cut from; default all.
    seed : int

    Returns
    -------
    ArrayDataset
        float32 ``[n_samples, 3, size, size]``; ``extra["box"]`` ``[n_samples, 3]`` (top, left,
        side) in the source photo's pixels and ``extra["scale"]`` ``[n_samples]``; ``groups`` the scale as text.

    Example
    -------
    >>> ds = photo_patches(8, size=32, seed=1)
    >>> ds.inputs.shape, ds.extra["box"].shape
    ((8, 3, 32, 32), (8, 3))
    """
    chosen = _names(names)
    count, side = int(n_samples), int(size)
    if count < 1 or side < 16:
        raise DataError(f"photo_patches needs n_samples >= 1 and size >= 16, got n_samples={n_samples!r},"
                        f" size={size!r}.")
    scale_list = [float(s) for s in scales]
    if not scale_list or any(not 0.0 < s <= 1.0 for s in scale_list):
        raise DataError(f"scales must be shares of the shorter side in (0, 1], got {list(scales)!r}.")
    rng = np.random.default_rng(int(seed))
    order = np.resize(np.arange(len(chosen)), count)
    rng.shuffle(order)
    out = np.empty((count, 3, side, side), dtype=np.float32)
    boxes = np.empty((count, 3), dtype=np.int64)
    drawn = np.empty(count, dtype=np.float32)
    from PIL import Image

    cache: dict[int, Image.Image] = {}
    for i, p in enumerate(order.tolist()):  # Python ints: the cache's keys
        if p not in cache:
            cache[p] = Image.fromarray(photo(chosen[p]))
        img = cache[p]
        w, h = img.size
        s = scale_list[int(rng.integers(len(scale_list)))]
        crop = max(8, round(s * min(h, w)))
        top = int(rng.integers(0, h - crop + 1))
        left = int(rng.integers(0, w - crop + 1))
        # PIL's bilinear filter widens its support when shrinking (antialiased), on uint8: fast
        patch = img.resize((side, side), Image.Resampling.BILINEAR, box=(left, top, left + crop, top + crop))
        out[i] = np.asarray(patch, dtype=np.float32).transpose(2, 0, 1) / 255.0
        boxes[i] = (top, left, crop)
        drawn[i] = s
    return ArrayDataset(out, order.astype(np.int64), chosen, groups=np.asarray([f"{s:g}" for s in drawn]),
                        name=f"photo_patches:{count}x{side}:seed{int(seed)}",
                        extra={"box": boxes, "scale": drawn})


__all__ = ["PHOTO_FILES", "photo", "photo_patches", "photos"]
