"""Image parameterisations: what the optimiser changes to make an image.

Optimising raw pixels gives high-frequency noise that excites a unit without looking like
anything; Olah et al. ("Feature Visualization", Distill 2017) optimise instead the image's
spectrum, scaled so every frequency band moves at a similar rate (a decorrelated, whitened
space), and, for RGB, colours in a decorrelated colour basis. Both are here, with plain
pixels as an option. Every parameterisation ends in a sigmoid onto the model's input range,
so images are always valid inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from neuralatlas.errors import AnalysisError

# The square root of ImageNet's colour correlation matrix (from Lucid), columns normalised:
# optimising in this basis moves luminance and colour-opponent directions independently.
_COLOR_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02],
                              [0.27, 0.00, -0.05],
                              [0.27, -0.09, 0.03]], dtype=np.float64)
COLOR_CORRELATION = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))

PARAMETERISATIONS = ("fourier", "pixel")

# Fourier images are divided by this so a unit-scale spectrum gives a mild image (Lucid's value).
_FOURIER_DAMPING = 4.0
_EPS = 1e-6


class ImageParam(nn.Module):
    """A batch of images made from learnable parameters; ``forward()`` returns the images.

    Parameters
    ----------
    shape : (B, C, H, W)
        Batch of images made.
    decorrelate : bool
        For 3-channel images, mix colours through :data:`COLOR_CORRELATION` (no effect on
        other channel counts).
    value_range : (low, high)
        The sigmoid maps onto this range (the model's input range).
    """

    def __init__(self, shape: Sequence[int], decorrelate: bool = True,
                 value_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        if len(shape) != 4 or min(shape) < 1:
            raise AnalysisError(f"Image shape must be (batch, channels, height, width), got {tuple(shape)}.")
        self.shape = tuple(int(s) for s in shape)
        self.decorrelate = bool(decorrelate) and self.shape[1] == 3
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise AnalysisError(f"value_range must be (low, high) with high > low, got {value_range!r}.")
        self.value_range = (lo, hi)
        self.register_buffer("color", torch.as_tensor(COLOR_CORRELATION, dtype=torch.float32),
                             persistent=False)

    # -- the shared tail: colour basis, then a sigmoid onto the value range ----------------
    def _to_image(self, x: torch.Tensor) -> torch.Tensor:
        if self.decorrelate:
            x = torch.einsum("ij,bjhw->bihw", self.color, x)
        lo, hi = self.value_range
        return lo + (hi - lo) * torch.sigmoid(x)

    def _from_image(self, images: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range
        unit = ((images - lo) / (hi - lo)).clamp(_EPS, 1 - _EPS)
        x = torch.log(unit) - torch.log1p(-unit)  # logit, the sigmoid's inverse
        if self.decorrelate:
            x = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.color.double()).float(), x)
        return x

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        """The images, ``[B, C, H, W]`` in the model's input range."""
        raise NotImplementedError

    def set_images(self, images: torch.Tensor) -> None:  # pragma: no cover - abstract
        """Set the parameters so that :meth:`forward` gives ``images``."""
        raise NotImplementedError


class PixelImage(ImageParam):
    """Pixels (before the sigmoid) are the parameters.

    Example
    -------
    >>> p = PixelImage((4, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    >>> p().shape
    torch.Size([4, 1, 8, 8])
    """

    def __init__(self, shape: Sequence[int], *, sd: float = 0.01, decorrelate: bool = True,
                 value_range: tuple[float, float] = (0.0, 1.0),
                 generator: torch.Generator | None = None):
        super().__init__(shape, decorrelate, value_range)
        self.pixels = nn.Parameter(torch.randn(self.shape, generator=generator) * float(sd))

    def forward(self) -> torch.Tensor:
        """The images, ``[B, C, H, W]`` in the model's input range."""
        return self._to_image(self.pixels)

    @torch.no_grad()
    def set_images(self, images: torch.Tensor) -> None:
        """Set the parameters so that ``forward()`` gives ``images`` (values strictly inside the range)."""
        self.pixels.copy_(self._from_image(images.to(self.pixels)))


def frequency_scale(height: int, width: int, decay_power: float = 1.0) -> torch.Tensor:
    """``1 / f**decay_power`` for the frequencies of ``rfft2`` on ``height × width`` images.

    The lowest frequency is floored at ``1 / max(height, width)`` so the mean (f = 0) gets a
    finite, largest scale.
    """
    fy = torch.fft.fftfreq(height).view(-1, 1)
    fx = torch.fft.rfftfreq(width).view(1, -1)
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(freqs, min=1.0 / max(height, width)) ** float(decay_power)


class FourierImage(ImageParam):
    """The image's spectrum, scaled by ``1/f``, is the parameter (Olah et al., 2017).

    ``image = sigmoid(colour(irfft2(scale * spectrum) / 4))`` with an orthonormal FFT, so a
    gradient step changes low and high frequencies at similar rates and the optimiser does
    not drift into pixel noise.

    Parameters
    ----------
    shape : (B, C, H, W)
    sd : float
        Standard deviation of the random initial spectrum.
    decay_power : float
        Exponent of the ``1/f`` scale; larger favours smoother images.
    decorrelate, value_range
        As :class:`ImageParam`.
    generator : torch.Generator, optional
        Seeded generator for the initial spectrum.

    Example
    -------
    >>> p = FourierImage((1, 3, 32, 32))
    >>> p.set_images(torch.rand(1, 3, 32, 32) * 0.9 + 0.05)   # round-trips
    """

    scale: torch.Tensor  # the 1/f buffer (register_buffer), typed for the checker

    def __init__(self, shape: Sequence[int], *, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True, value_range: tuple[float, float] = (0.0, 1.0),
                 generator: torch.Generator | None = None):
        super().__init__(shape, decorrelate, value_range)
        b, c, h, w = self.shape
        self.register_buffer("scale", frequency_scale(h, w, decay_power), persistent=False)
        # Real and imaginary parts as a trailing axis: Adam then sees real parameters.
        self.spectrum = nn.Parameter(torch.randn((b, c, h, w // 2 + 1, 2), generator=generator) * float(sd))

    def forward(self) -> torch.Tensor:
        """The images from the scaled spectrum, ``[B, C, H, W]`` in the model's input range."""
        h, w = self.shape[2:]
        spec = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfft2(spec, s=(h, w), norm="ortho") / _FOURIER_DAMPING
        return self._to_image(x)

    def spectrum_of(self, images: torch.Tensor) -> torch.Tensor:
        """The parameter (``[B, C, H, W//2+1, 2]``) that gives ``images``: image → spectrum."""
        x = self._from_image(images.to(self.scale)) * _FOURIER_DAMPING
        spec = torch.fft.rfft2(x, norm="ortho") / self.scale
        return torch.view_as_real(spec).contiguous()

    @torch.no_grad()
    def set_images(self, images: torch.Tensor) -> None:
        """Set the spectrum so that ``forward()`` gives ``images`` back."""
        self.spectrum.copy_(self.spectrum_of(images))


def make_param(kind: str, shape: Sequence[int], *, seed: int = 0, sd: float = 0.01,
               decorrelate: bool = True, value_range: tuple[float, float] = (0.0, 1.0),
               decay_power: float = 1.0) -> ImageParam:
    """Build a parameterisation by name (``"fourier"`` or ``"pixel"``), seeded, on the CPU.

    The initial values are drawn on the CPU from ``seed`` so that a seed means the same
    start on every device.

    Example
    -------
    >>> make_param("fourier", (2, 1, 8, 8), seed=0)().shape
    torch.Size([2, 1, 8, 8])
    """
    gen = torch.Generator().manual_seed(int(seed))
    if kind == "fourier":
        return FourierImage(shape, sd=sd, decay_power=decay_power, decorrelate=decorrelate,
                            value_range=value_range, generator=gen)
    if kind == "pixel":
        return PixelImage(shape, sd=sd, decorrelate=decorrelate, value_range=value_range, generator=gen)
    raise AnalysisError(f"Unknown parameterisation {kind!r}; choose one of {list(PARAMETERISATIONS)}.")


__all__ = ["COLOR_CORRELATION", "FourierImage", "ImageParam", "PARAMETERISATIONS", "PixelImage",
           "frequency_scale", "make_param"]

