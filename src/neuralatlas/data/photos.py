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
    try:
        if package == "skimage":
            import skimage

            return os.path.join(os.path.dirname(skimage.__file__), "data")
        import sklearn

        return os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images")
    except ImportError as err:
        hint = "pip install 'neuralatlas[pretrained]'" if package == "skimage" else "pip install scikit-learn"
        raise DataError(f"The bundled photos need {package} ({hint}).") from err


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


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    shrink = size[0] < t.shape[-2]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False,
                         antialias=shrink)[0].clamp(0, 1).numpy()


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
        scale = short_side / min(h, w)
        nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
        x = _resize(_chw(img), (nh, nw))
        top, left = (nh - side) // 2, (nw - side) // 2
        out[i] = x[:, top:top + side, left:left + side]
        grey = bool(np.all(img[..., 0] == img[..., 1]) and np.all(img[..., 1] == img[..., 2]))
        groups.append("grey" if grey else "colour")
    return ArrayDataset(out, np.arange(len(chosen)), chosen, groups=np.asarray(groups), name=f"photos:{side}")


def photo_patches(n: int = 384, size: int = 112, scales: Sequence[float] = (0.2, 0.35, 0.6, 1.0),
                  names: Sequence[str] | None = None, seed: int = 0) -> ArrayDataset:
    """Random square crops of the bundled photos at several scales, resized to ``size``.

    Crop ``i`` comes from photo ``labels[i]`` (photos drawn in turn, so every photo gives
    about ``n / len(names)`` crops), with side ``scale * min(H, W)`` for a scale drawn from
    ``scales`` and a uniformly random position. The same ``seed`` gives the same crops on
    every machine.

    Parameters
    ----------
    n : int
        Number of crops.
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
        float32 ``[n, 3, size, size]``; ``extra["box"]`` ``[n, 3]`` (top, left, side) in the
        source photo's pixels and ``extra["scale"]`` ``[n]``; ``groups`` the scale as text.

    Example
    -------
    >>> ds = photo_patches(8, size=32, seed=1)
    >>> ds.inputs.shape, ds.extra["box"].shape
    ((8, 3, 32, 32), (8, 3))
    """
    chosen = _names(names)
    count, side = int(n), int(size)
    if count < 1 or side < 16:
        raise DataError(f"photo_patches needs n >= 1 and size >= 16, got n={n!r}, size={size!r}.")
    scale_list = [float(s) for s in scales]
    if not scale_list or any(not 0.0 < s <= 1.0 for s in scale_list):
        raise DataError(f"scales must be shares of the shorter side in (0, 1], got {list(scales)!r}.")
    rng = np.random.default_rng(int(seed))
    order = np.resize(np.arange(len(chosen)), count)
    rng.shuffle(order)
    out = np.empty((count, 3, side, side), dtype=np.float32)
    boxes = np.empty((count, 3), dtype=np.int64)
    drawn = np.empty(count, dtype=np.float32)
    cache: dict[int, np.ndarray] = {}
    for i, p in enumerate(order):
        if p not in cache:
            cache[p] = _chw(photo(chosen[p]))
        img = cache[p]
        h, w = img.shape[1:]
        s = scale_list[int(rng.integers(len(scale_list)))]
        crop = max(8, int(round(s * min(h, w))))
        top = int(rng.integers(0, h - crop + 1))
        left = int(rng.integers(0, w - crop + 1))
        out[i] = _resize(img[:, top:top + crop, left:left + crop], (side, side))
        boxes[i] = (top, left, crop)
        drawn[i] = s
    return ArrayDataset(out, order.astype(np.int64), chosen, groups=np.asarray([f"{s:g}" for s in drawn]),
                        name=f"photo_patches:{count}x{side}:seed{int(seed)}",
                        extra={"box": boxes, "scale": drawn})


__all__ = ["PHOTO_FILES", "photo", "photo_patches", "photos"]
