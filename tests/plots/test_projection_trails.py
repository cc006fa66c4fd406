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


def _epoch_projection(wrong_share: dict[int, float], n: int = 60):
    """One layer over epochs; at each epoch the first ``share * n`` samples are misclassified."""
    from neuralatlas.analysis.projection import Projection

    rng = np.random.default_rng(1)
    labels = np.arange(n) % 3
    coords = {("fc", e): rng.normal(size=(n, 2)) for e in wrong_share}
    predictions = {}
    for e, share in wrong_share.items():
        pred = labels.copy()
        k = int(round(share * n))
        pred[:k] = (labels[:k] + 1) % 3
        predictions[e] = pred
    return Projection(coords, rows=np.arange(n), index=np.arange(n), labels=labels, predictions=predictions,
                      classes=["a", "b", "c"], method="pca")


def _rings(ax):
    from matplotlib.collections import PathCollection

    # the misclassified marks: hollow circles (no face colour), one per misclassified sample
    return sum(len(c.get_offsets()) for c in ax.collections
               if isinstance(c, PathCollection) and len(c.get_facecolors()) == 0)


def test_misclassified_are_ringed_except_where_most_are_and_the_figure_says_so():
    from neuralatlas.plots.projection import RING_MAX_SHARE, projection_trails

    result = _epoch_projection({0: 0.9, 1: 0.2, 2: RING_MAX_SHARE})
    fig = projection_trails(result, "epochs", layer="fc")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [_rings(ax) for ax in panels] == [0, 12, 30]      # 90 % wrong: none; 20 %: 12 of 60; 50 %: 30
    [legend] = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["a", "b", "c", "misclassified"]
    note = legend.get_title().get_text()
    assert "epoch 0 (90 % misclassified)" in note and "epoch 1" not in note and "epoch 2" not in note


def test_no_ring_entry_or_note_when_nothing_is_ringed_or_left_out():
    from neuralatlas.plots.projection import projection_trails

    fig = projection_trails(_epoch_projection({0: 0.0, 1: 0.0}), "epochs", layer="fc")
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c"]
    assert legend.get_title().get_text() == ""


def test_the_bundled_overlay_takes_half_the_column_beside_its_key():
    from neuralatlas.plots.projection import BUNDLE_SHARE, projection_epoch_evolution

    result = _epoch_projection({0: 0.9, 1: 0.2, 2: 0.1, 3: 0.0})
    fig = projection_epoch_evolution(result, "fc", bundle=True)
    fig.draw_without_rendering()
    overlay = next(ax for ax in fig.axes if ax.get_title().startswith("trails of every sample, bundled"))
    assert "epoch 0 (dark) → epoch 3 (bright)" in overlay.get_title()
    share = overlay.get_position().width
    assert share == pytest.approx(BUNDLE_SHARE, abs=0.08)             # of the figure's width
    [key] = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert [t.get_text() for t in key.get_legend().get_texts()] == ["a", "b", "c", "misclassified"]
    assert key.get_position().x0 >= overlay.get_position().x1 - 1e-6  # beside it, to the right
    assert any("epoch 0 (90 % misclassified)" in t.get_text() for t in key.texts)


def test_many_classes_keep_legends_inside_the_figure():
    """40 classes: a legend below the figure in as many columns as its width holds (not 20
    columns past both edges, nor 20 rows beside the bundle)."""
    from neuralatlas.analysis.projection import Projection
    from neuralatlas.plots.projection import projection_epoch_evolution, projection_scatter

    n, k = 200, 40
    rng = np.random.default_rng(2)
    labels = np.arange(n) % k
    coords = {("fc", e): rng.normal(size=(n, 2)) for e in range(3)}
    result = Projection(coords, rows=np.arange(n), index=np.arange(n), labels=labels,
                        classes=[f"class {i}" for i in range(k)], method="pca")
    for fig in (projection_scatter(result, "fc", epoch=2), projection_epoch_evolution(result, "fc", bundle=True)):
        fig.draw_without_rendering()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert len(legends) == 1 and legends[0] in fig.legends          # below the figure, not on an axes
        box, page = legends[0].get_window_extent(), fig.bbox
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, (box, page)
        assert 2 <= legends[0]._ncols <= 10
