"""save_figure records the smallest font and the layer, and lifts text below 8 pt."""

from __future__ import annotations

import pytest


def test_save_figure_records_the_smallest_font_and_layer(tmp_path):
    import matplotlib.pyplot as plt

    from neuralatlas.plots.style import META_FONT, META_LAYER, figure_meta, save_figure, text_sizes

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.set_title("title", fontsize=11)
    ax.set_xlabel("x", fontsize=9)
    ax.tick_params(labelsize=8.5)
    save_figure(fig, tmp_path / "f", formats=("png", "svg"), layer="fc1")
    assert min(text_sizes(fig)) == pytest.approx(8.5)
    for suffix in (".png", ".svg"):
        meta = figure_meta(tmp_path / f"f{suffix}")
        assert float(meta[META_FONT]) == pytest.approx(8.5), suffix
        assert meta[META_LAYER] == "fc1"
    plt.close(fig)


def test_text_below_the_minimum_is_enlarged(tmp_path):
    import matplotlib.pyplot as plt

    from neuralatlas.plots.style import META_FONT, figure_meta, save_figure

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("tiny", fontsize=5)
    ax.tick_params(labelsize=4)
    save_figure(fig, tmp_path / "f", formats=("png",))
    assert ax.title.get_fontsize() == 8.0
    assert float(figure_meta(tmp_path / "f.png")[META_FONT]) == pytest.approx(8.0)
    ax.set_title("tiny", fontsize=5)   # the ticks were lifted to 8 pt by the first save
    save_figure(fig, tmp_path / "g", formats=("png",), min_font=None)   # sizes kept when asked
    assert float(figure_meta(tmp_path / "g.png")[META_FONT]) == pytest.approx(5.0)
    assert ax.title.get_fontsize() == 5.0
    plt.close(fig)
