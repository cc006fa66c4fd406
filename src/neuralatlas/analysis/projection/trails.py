"""Trails: one smooth curve per sample through its positions, and their kernel-density bundling."""

from __future__ import annotations

import numpy as np

from neuralatlas.errors import AnalysisError


# ================================================================ trails and bundling
def smooth_trails(anchors: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
    """Smooth curves through each sample's positions, all samples at once.

    Each coordinate is a monotone piecewise-cubic (PCHIP) function of the step along the
    sequence: smooth (C1) at the positions, and between two positions it never leaves
    their range, so a curve cannot overshoot into loops the way a Catmull-Rom spline does
    when a point jumps far between layers.

    Parameters
    ----------
    anchors : array [n, L, 2]
        Position of each of ``n`` samples at each of ``L`` steps of a sequence.
    samples_per_segment : int
        Curve vertices per step (the anchors are vertices ``0, s, 2s, ...``).

    Returns
    -------
    array [n, (L − 1)·s + 1, 2]
        Passes exactly through every anchor; with ``L = 2``, straight segments.

    Example
    -------
    >>> smooth_trails(np.zeros((3, 4, 2)), 5).shape
    (3, 16, 2)
    """
    from scipy.interpolate import PchipInterpolator

    p = np.asarray(anchors, np.float64)
    if p.ndim != 3 or p.shape[1] < 2:
        raise AnalysisError(f"anchors must be [n_samples, n_steps >= 2, 2]; got shape {p.shape}.")
    s = max(1, int(samples_per_segment))
    steps = np.arange(p.shape[1], dtype=np.float64)
    fine = np.linspace(0.0, steps[-1], (p.shape[1] - 1) * s + 1)
    curve = PchipInterpolator(steps, p, axis=1)(fine)      # every trail and coordinate in one call
    curve[:, ::s] = p                                      # exactly through the positions
    return curve


def bundle_trails(paths: np.ndarray, *, anchor_every: int | None = None, groups: np.ndarray | None = None,
                  iterations: int = 10, bandwidth: float = 0.05, decay: float = 0.85, step: float = 0.4,
                  smoothing: float = 0.5, grid: int = 160) -> np.ndarray:
    """Kernel-density edge bundling of many curves (after Hurter, Ersoy and Telea 2012).

    Each iteration estimates the density of the curve vertices on a ``grid × grid`` image
    (a 2-D histogram blurred by a Gaussian of ``bandwidth`` × the picture's extent), moves
    every vertex a small ``step`` up the density gradient, and smooths every curve with a
    Laplacian filter. Curves that run side by side attract one another and merge into
    bundles, so thousands of trails read as a few flows. The bandwidth shrinks by ``decay``
    each iteration (coarse bundles first, then tighter ones).

    Vertices at the anchors (the real positions, every ``anchor_every`` vertices) never
    move and the movement tapers to zero towards them, so every trail still passes through
    its true positions. With ``groups`` (the class of each curve) every group follows its
    own density, so classes bundle among themselves and a bundle keeps one hue.

    Vectorised: per iteration one histogram, one blur per group, and one gradient lookup
    for all vertices of all curves.

    Parameters
    ----------
    paths : array [n, m, 2]
        Curves (e.g. from :func:`smooth_trails`).
    anchor_every : int, optional
        Vertex spacing of the fixed anchors (default: only the end points are fixed).
    groups : array [n] of int, optional
        Bundle each group separately (e.g. the class labels).
    iterations, bandwidth, decay, step, smoothing, grid
        The schedule; ``bandwidth`` is a fraction of the larger side of the picture,
        ``step`` a fraction of the current bandwidth, ``smoothing`` the Laplacian weight.

    Returns
    -------
    array [n, m, 2]

    Example
    -------
    >>> p = smooth_trails(np.random.default_rng(0).normal(size=(50, 3, 2)), 8)
    >>> bundle_trails(p, anchor_every=8).shape
    (50, 17, 2)
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    p = np.array(paths, np.float64)
    n, m, _ = p.shape
    if m < 3:
        return p
    if groups is None:
        group = np.zeros(n, np.int64)
    else:
        _, group = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
        if len(group) != n:
            raise AnalysisError(f"groups has {len(group)} entries for {n} curves; give one per curve.")
    n_groups = int(group.max()) + 1
    every = int(anchor_every) if anchor_every else m - 1
    j = np.arange(m)
    # movement weight: 0 at the anchors, 1 half-way between them
    weight = np.sin(np.pi * (j % every) / every) ** 2
    weight[-1] = 0.0
    w = weight[None, :, None]
    flat = p.reshape(-1, 2)
    extent = float((flat.max(0) - flat.min(0)).max()) or 1.0
    lo = flat.min(0) - 0.05 * extent
    cell = 1.1 * extent / grid                                 # data units per grid cell
    vertex_group = np.repeat(group, m).astype(np.float64)       # group of every vertex
    h = bandwidth * extent

    def laplacian(q: np.ndarray) -> np.ndarray:
        lap = np.zeros_like(q)
        lap[:, 1:-1] = 0.5 * (q[:, :-2] + q[:, 2:]) - q[:, 1:-1]
        return lap

    for _ in range(max(0, int(iterations))):
        g = (p.reshape(-1, 2) - lo) / cell                      # vertex positions in grid units
        ij = np.clip(g.astype(np.int64), 0, grid - 1)
        cells = (group.repeat(m) * grid + ij[:, 0]) * grid + ij[:, 1]
        density = np.bincount(cells, minlength=n_groups * grid * grid).reshape(n_groups, grid, grid)
        sigma = max(h / cell, 0.5)
        density = gaussian_filter(density.astype(np.float64), sigma=(0.0, sigma, sigma))
        gx, gy = np.gradient(density, axis=(1, 2))
        at = np.vstack([vertex_group, g.T - 0.5])               # (group, x, y) of every vertex
        grad = np.stack([map_coordinates(gx, at, order=1, mode="nearest"),
                         map_coordinates(gy, at, order=1, mode="nearest")], axis=1)
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        move = np.where(norm > 1e-12, grad / np.maximum(norm, 1e-12), 0.0).reshape(n, m, 2)
        p += (step * h) * w * move
        p += smoothing * w * laplacian(p)                       # keep the curves smooth while they bundle
        h *= decay
    for _ in range(3):                                          # a final relaxation rounds off the joins
        p += smoothing * w * laplacian(p)
    return p
