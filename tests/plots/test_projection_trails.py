"""Trails as small multiples: one panel per step on shared axes, lines = each sample's move."""

from __future__ import annotations

import numpy as np
import pytest


def _projection(n_layers: int = 6, n: int = 40):
    from neuralatlas.analysis.projection import Projection

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 4
    base = rng.normal(size=(n, 2))
    # layer k: the same points, moved by k * 0.1 and scaled by (k + 1) (an arbitrary scale)
    coords = {(f"l{k}", None): (base + 0.1 * k) * (k + 1) for k in range(n_layers)}
    quality = {key: {"neighborhood_hit": 0.5, "trustworthiness": 0.9} for key in coords}
    return Projection(coords, rows=np.arange(n), index=np.arange(n), labels=labels, quality=quality,
                      classes=["a", "b", "c", "d"], method="pca"), base


def test_one_panel_per_layer_on_shared_axes_with_a_line_per_sample():
    from matplotlib.collections import LineCollection

    from neuralatlas.plots.projection import projection_trails

    result, base = _projection()
    fig = projection_trails(result)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 6
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["l0"] + [f"l{k - 1} → l{k}" for k in range(1, 6)]
    limits = {(ax.get_xlim(), ax.get_ylim()) for ax in panels}
    assert len(limits) == 1                                        # shared axes
    lines = [c for ax in panels for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 5 and all(len(c.get_segments()) == 40 for c in lines)
    # standardised per layer: scaled copies of one configuration do not move at all
    assert all("moved 0.00" in ax.get_title() for ax in panels[1:])
    segs = lines[0].get_segments()
    centred = base - base.mean(0)
    unit = centred / np.sqrt((centred ** 2).sum(1).mean())
    np.testing.assert_allclose(np.sort([s[1][0] for s in segs]), np.sort(unit[:, 0]), atol=1e-9)


def test_a_real_move_is_measured_in_standardised_units():
    from neuralatlas.analysis.projection import Projection
    from neuralatlas.plots.projection import projection_trails

    pts = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])   # RMS radius 1
    swapped = pts[[1, 0, 3, 2]]                                         # every point moves by 2
    result = Projection({("a", None): pts, ("b", None): swapped}, rows=np.arange(4), index=np.arange(4),
                        labels=np.array([0, 0, 1, 1]), classes=["x", "y"], method="pca")
    fig = projection_trails(result)
    assert "moved 2.00" in fig.axes[1].get_title()


@pytest.mark.parametrize("bundle", [False, True])
def test_the_evolution_figure_is_the_small_multiples(bundle):
    from neuralatlas.plots.projection import inter_layer_evolution

    result, _ = _projection(n_layers=10)
    fig = inter_layer_evolution(result, bundle=bundle)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 10 + bundle          # ten panels (+ the bundled overlay when asked)
    assert fig.get_size_inches()[0] <= 6.5 + 1e-9
