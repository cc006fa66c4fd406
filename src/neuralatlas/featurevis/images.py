"""Reading and writing single images as ``[C, H, W]`` float arrays in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralatlas.errors import DataError


def read_image(path: str | Path, channels: int | None = None,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file (PNG, JPEG, ... or ``.npy``) as float32 ``[C, H, W]`` in [0, 1].

    Parameters
    ----------
    path : path
    channels : 1 or 3, optional
        Convert to grey or RGB (to match a model's input channels).
    size : (height, width), optional
        Resize to this size.

    Example
    -------
    >>> x = read_image("photo.jpg", channels=3)      # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Image {str(p)!r} does not exist; pass the path of a PNG/JPEG file or a .npy array.")
    if p.suffix.lower() == ".npy":
        arr = np.load(p).astype(np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise DataError(f"{str(p)!r} holds an array of shape {arr.shape}; expected [C, H, W] or [H, W].")
        if arr.shape[0] not in (1, 3) and arr.shape[-1] in (1, 3):
            arr = np.transpose(arr, (2, 0, 1))
        if channels == 1 and arr.shape[0] == 3:
            arr = arr.mean(0, keepdims=True)
        elif channels == 3 and arr.shape[0] == 1:
            arr = np.repeat(arr, 3, axis=0)
        if size is not None and tuple(arr.shape[1:]) != tuple(size):
            import torch
            import torch.nn.functional as F

            arr = F.interpolate(torch.from_numpy(arr)[None], size=tuple(size), mode="bilinear",
                                align_corners=False, antialias=True)[0].numpy()
        return np.ascontiguousarray(arr, dtype=np.float32)
    from PIL import Image

    try:
        img: Image.Image = Image.open(p)
        img.load()
    except Exception as err:  # PIL raises several types for unreadable files
        raise DataError(f"Cannot read image {str(p)!r}: {err}.") from err
    mode = {1: "L", 3: "RGB"}.get(channels or (1 if img.mode in ("L", "1", "I", "F") else 3), "RGB")
    img = img.convert(mode)
    if size is not None:
        img = img.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1))
    return np.ascontiguousarray(arr)


def write_image(path: str | Path, image: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0),
                scale: int = 1) -> Path:
    """Write ``[C, H, W]`` (values in ``value_range``) as an 8-bit PNG/JPEG, or ``.npy``.

    ``scale`` enlarges small images by pixel repetition (an 8×8 digit is hard to see).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(image, dtype=np.float32)
    if p.suffix.lower() == ".npy":
        np.save(p, arr)
        return p
    from PIL import Image

    lo, hi = value_range
    unit = np.clip((arr - lo) / (hi - lo), 0, 1)
    if scale > 1:
        unit = unit.repeat(scale, axis=1).repeat(scale, axis=2)
    pixels = (unit * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(np.transpose(pixels[:3], (1, 2, 0)))
    img.save(p)
    return p
