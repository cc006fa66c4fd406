"""Random image transforms applied at every optimisation step (transformation robustness).

An image that excites a unit only at one exact pixel alignment is an adversarial pattern,
not a feature; asking it to work under small random shifts, scalings and rotations gives
images a person can read (Olah et al., 2017). Every transform takes a batch ``[B, C, H, W]``
and a :class:`random.Random` (seeded by the caller, so the same seed gives the same run on
any device) and returns a batch; the whole batch gets the same draw, so many units
optimised together see the same transforms.

:func:`jitter`, :func:`scale`, :func:`rotate` and :func:`blur` keep the image size;
:func:`pad` grows it (the optimiser resizes back to the model's input size at the end).
Sizes are in pixels: on 8×8 digits a jitter of 1 px is already an eighth of the image,
which is why :func:`default_transforms` scales everything with the image.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from neuralatlas.errors import AnalysisError

TransformFn = Callable[[torch.Tensor, random.Random], torch.Tensor]


class Transform:
    """A named random transform; ``t(images, rng) -> images``."""

    def __init__(self, fn: TransformFn, name: str):
        self.fn = fn
        self.name = name

    def __call__(self, images: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """``images`` transformed, random choices drawn from ``rng``."""
        return self.fn(images, rng)

    def __repr__(self) -> str:
        return self.name


def _fit_pad_mode(mode: str, pad: int, h: int, w: int) -> str:
    # Reflection needs the pad smaller than the image; fall back to edge replication.
    return "replicate" if mode == "reflect" and pad >= min(h, w) else mode


def jitter(pixels: int) -> Transform:
    """Shift the image by a random whole number of pixels in ``[-pixels, pixels]`` each way.

    The size is kept: the uncovered border is filled by reflection.

    Example
    -------
    >>> t = jitter(1)
    >>> t(torch.rand(2, 1, 8, 8), random.Random(0)).shape
    torch.Size([2, 1, 8, 8])
    """
    d = int(pixels)
    if d < 0:
        raise AnalysisError(f"jitter needs pixels >= 0, got {pixels!r}.")

    def fn(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if d == 0:
            return x
        h, w = x.shape[-2:]
        mode = _fit_pad_mode("reflect", d, h, w)
        padded = F.pad(x, (d, d, d, d), mode=mode)
        oy, ox = rng.randint(0, 2 * d), rng.randint(0, 2 * d)
        return padded[..., oy:oy + h, ox:ox + w]

    return Transform(fn, f"jitter({d})")


def pad(pixels: int, mode: str = "constant", value: float | None = None) -> Transform:
    """Add ``pixels`` on every side (the image grows; a later jitter moves the content).

    Parameters
    ----------
    pixels : int
    mode : "constant", "reflect" or "replicate"
    value : float, optional
        Fill for ``"constant"``; default each image's mean, a neutral colour whatever the
        model's input range.
    """
    p = int(pixels)
    if p < 0:
        raise AnalysisError(f"pad needs pixels >= 0, got {pixels!r}.")
    if mode not in ("constant", "reflect", "replicate"):
        raise AnalysisError(f"pad mode {mode!r} is not one of 'constant', 'reflect', 'replicate'.")

    def fn(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if p == 0:
            return x
        if mode != "constant":
            return F.pad(x, (p, p, p, p), mode=_fit_pad_mode(mode, p, *x.shape[-2:]))
        if value is not None:
            return F.pad(x, (p, p, p, p), value=float(value))
        fill = x.mean(dim=(-2, -1), keepdim=True).detach()
        out = fill.expand(*x.shape[:-2], x.shape[-2] + 2 * p, x.shape[-1] + 2 * p).clone()
        out[..., p:-p, p:-p] = x
        return out

    return Transform(fn, f"pad({p})")


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def scale(factors: Sequence[float]) -> Transform:
    """Zoom by a factor drawn from ``factors`` about the centre, keeping the size.

    Example
    -------
    >>> t = scale([0.95, 1.0, 1.05])
    """
    choices = [float(f) for f in factors]
    if not choices or min(choices) <= 0:
        raise AnalysisError(f"scale needs positive factors, got {list(factors)!r}.")

    def fn(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        s = rng.choice(choices)
        if s == 1.0:
            return x
        theta = torch.tensor([[1.0 / s, 0.0, 0.0], [0.0, 1.0 / s, 0.0]], dtype=x.dtype, device=x.device)
        return _affine(x, theta)

    return Transform(fn, f"scale({choices})")


def rotate(degrees: Sequence[float] | float) -> Transform:
    """Rotate by an angle drawn from ``degrees`` (a sequence, or ``d`` for ``-d..d`` in steps of 1).

    Example
    -------
    >>> t = rotate(5)       # -5, -4, ..., 5 degrees
    """
    if isinstance(degrees, (int, float)):
        d = abs(float(degrees))
        choices = [float(a) for a in range(-int(d), int(d) + 1)] or [0.0]
    else:
        choices = [float(a) for a in degrees]
    if not choices:
        raise AnalysisError("rotate needs at least one angle.")

    def fn(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        a = math.radians(rng.choice(choices))
        if a == 0.0:
            return x
        h, w = x.shape[-2:]
        c, s = math.cos(a), math.sin(a)
        # affine_grid works in [-1, 1] per axis; the aspect ratio keeps the rotation rigid.
        theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=x.dtype, device=x.device)
        return _affine(x, theta)

    return Transform(fn, f"rotate(±{max(abs(a) for a in choices):g}°)")


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel (odd length, ``2·ceil(2σ)+1`` by default)."""
    radius = max(1, math.ceil(2 * sigma)) if size is None else size // 2
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / max(float(sigma), 1e-6)) ** 2)
    return k / k.sum()


def blur(sigma: float) -> Transform:
    """Gaussian blur of standard deviation ``sigma`` pixels (deterministic; keeps the size).

    Example
    -------
    >>> t = blur(0.5)
    """
    s = float(sigma)
    if s < 0:
        raise AnalysisError(f"blur needs sigma >= 0, got {sigma!r}.")

    def fn(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if s == 0:
            return x
        return gaussian_blur(x, s)

    return Transform(fn, f"blur({s:g})")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``[B, C, H, W]`` batch with reflected borders."""
    c, h, w = x.shape[1:]
    k = gaussian_kernel(sigma).to(x)
    r = len(k) // 2
    r = min(r, h - 1, w - 1)
    if r < 1:
        return x
    k = k[len(k) // 2 - r: len(k) // 2 + r + 1]
    k = k / k.sum()
    xp = F.pad(x, (r, r, r, r), mode="reflect")
    xp = F.conv2d(xp, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(xp, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def compose(transforms: Sequence[Transform | TransformFn]) -> Transform:
    """Apply ``transforms`` in order."""
    steps = list(transforms)

    def fn(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        for t in steps:
            x = t(x, rng)
        return x

    return Transform(fn, " → ".join(getattr(t, "name", getattr(t, "__name__", "fn")) for t in steps))


def default_transforms(height: int, width: int) -> list[Transform]:
    """Transforms that suit the image size.

    - under 16 px (8×8 digits): ``jitter(1)`` only; scaling or rotating 8 pixels mostly blurs.
    - 16 to 63 px (CIFAR's 32×32): a small pad, jitter, ±5% scale, ±5° rotation, a last jitter.
    - 64 px and more: Lucid's standard set, scaled from its 224 px to the image size
      (pad 12, jitter 8, scale 0.9..1.1, rotate ±10°, jitter 4 at 224 px).

    Example
    -------
    >>> default_transforms(8, 8)
    [jitter(1)]
    """
    size = min(int(height), int(width))
    if size < 16:
        return [jitter(1)]
    if size < 64:
        return [pad(max(1, size // 16)), jitter(max(1, size // 16)),
                scale([0.95, 0.975, 1.0, 1.025, 1.05]), rotate(5), jitter(1)]
    f = size / 224.0
    return [pad(max(1, round(12 * f))), jitter(max(1, round(8 * f))),
            scale([1 + (i - 5) / 50 for i in range(11)]), rotate(10), jitter(max(1, round(4 * f)))]


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (no-op when already that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


__all__ = ["Transform", "blur", "compose", "default_transforms", "gaussian_blur", "gaussian_kernel",
           "jitter", "pad", "resize", "rotate", "scale"]
