"""Parameterisations (Fourier round trip, numpy reference) and transforms (exact shifts, scipy blur)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy import ndimage

from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis import param as P
from neuralatlas.featurevis import transforms as T


@pytest.mark.parametrize("shape,value_range", [((2, 1, 8, 8), (0.0, 1.0)), ((1, 3, 32, 32), (0.0, 1.0)),
                                               ((2, 3, 7, 9), (-2.0, 3.0))])
def test_fourier_round_trip_image_spectrum_image(shape, value_range):
    p = P.FourierImage(shape, value_range=value_range, generator=torch.Generator().manual_seed(1))
    lo, hi = value_range
    images = lo + (hi - lo) * (0.05 + 0.9 * torch.rand(shape, generator=torch.Generator().manual_seed(2)))
    spectrum = p.spectrum_of(images)
    assert spectrum.shape == (*shape[:3], shape[3] // 2 + 1, 2)
    p.set_images(images)
    torch.testing.assert_close(p(), images, atol=2e-5, rtol=1e-5)


def test_fourier_image_matches_a_numpy_reference():
    shape = (1, 3, 6, 8)
    p = P.FourierImage(shape, sd=0.5, decay_power=1.0, generator=torch.Generator().manual_seed(0))
    spec = p.spectrum.detach().numpy()
    spec = spec[..., 0] + 1j * spec[..., 1]
    fy = np.fft.fftfreq(6)[:, None]
    fx = np.fft.rfftfreq(8)[None, :]
    scale = 1 / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1 / 8)
    x = np.fft.irfft2(spec * scale, s=(6, 8), norm="ortho") / 4
    x = np.einsum("ij,bjhw->bihw", P.COLOR_CORRELATION, x)
    expected = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(p().detach().numpy(), expected, atol=1e-5)


def test_pixel_round_trip_and_range():
    p = P.make_param("pixel", (3, 3, 5, 5), seed=0, value_range=(-1.0, 1.0))
    img = p()
    assert img.min() > -1 and img.max() < 1
    target = torch.rand(3, 3, 5, 5) * 1.8 - 0.9
    p.set_images(target)
    torch.testing.assert_close(p(), target, atol=1e-5, rtol=1e-5)


def test_same_seed_same_start_other_seed_other_start():
    a = P.make_param("fourier", (2, 1, 8, 8), seed=3)()
    b = P.make_param("fourier", (2, 1, 8, 8), seed=3)()
    c = P.make_param("fourier", (2, 1, 8, 8), seed=4)()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unknown_parameterisation_lists_the_choices():
    with pytest.raises(AnalysisError, match="fourier"):
        P.make_param("wavelet", (1, 1, 8, 8))


def test_jitter_is_an_exact_shift_inside_and_keeps_the_size():
    x = torch.arange(2 * 64, dtype=torch.float32).view(2, 1, 8, 8)
    rng = random.Random(5)
    expected_rng = random.Random(5)
    oy, ox = expected_rng.randint(0, 2), expected_rng.randint(0, 2)
    y = T.jitter(1)(x, rng)
    assert y.shape == x.shape
    dy, dx = 1 - oy, 1 - ox  # content moves by (dy, dx)
    inner = y[..., 1:7, 1:7]
    torch.testing.assert_close(inner, x[..., 1 - dy:7 - dy, 1 - dx:7 - dx])
    assert torch.equal(T.jitter(0)(x, rng), x)


def test_pad_grows_with_the_image_mean_and_resize_returns():
    x = torch.rand(2, 3, 8, 8)
    y = T.pad(2)(x, random.Random(0))
    assert y.shape == (2, 3, 12, 12)
    torch.testing.assert_close(y[..., 0, 0], x.mean((2, 3)))
    torch.testing.assert_close(y[..., 2:-2, 2:-2], x)
    assert T.resize(y, (8, 8)).shape == x.shape


def test_rotate_90_degrees_equals_rot90_and_identity_cases():
    x = torch.rand(1, 2, 6, 6)
    y = T.rotate([90.0])(x, random.Random(0))
    candidates = [torch.rot90(x, k, (2, 3)) for k in (1, 3)]
    assert any(torch.allclose(y, c, atol=1e-5) for c in candidates)
    assert torch.equal(T.rotate([0.0])(x, random.Random(0)), x)
    assert torch.equal(T.scale([1.0])(x, random.Random(0)), x)


def test_scale_two_zooms_into_the_centre():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 3:5, 3:5] = 1.0
    y = T.scale([2.0])(x, random.Random(0))
    assert y.shape == x.shape
    # The 2x2 square now covers the central 4x4 (bilinear edges), nothing reaches the border.
    assert torch.allclose(y[..., 3:5, 3:5], torch.ones(2, 2))
    assert (y[..., 2:6, 2:6] > 0.5).all() and y[..., 0, :].abs().max() < 1e-6
    assert y.sum() > 2.5 * x.sum()


def test_blur_matches_scipy():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = T.blur(1.0)(x, random.Random(0)).numpy()
    expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, 1.0, 1.0), mode="mirror", truncate=2.0)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_default_transforms_fit_the_image_size():
    assert [t.name for t in T.default_transforms(8, 8)] == ["jitter(1)"]
    mid = T.default_transforms(32, 32)
    assert mid[0].name == "pad(2)" and any("rotate" in t.name for t in mid)
    x = torch.rand(2, 3, 32, 32)
    out = T.compose(mid)(x, random.Random(0))
    assert T.resize(out, (32, 32)).shape == x.shape
    big = T.default_transforms(224, 224)
    assert big[0].name == "pad(12)" and big[1].name == "jitter(8)"


def test_transforms_are_seeded():
    x = torch.rand(1, 3, 32, 32)
    pipe = T.compose(T.default_transforms(32, 32))
    assert torch.equal(pipe(x, random.Random(7)), pipe(x, random.Random(7)))
