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


def _pdf_font_names(path) -> set[str]:
    """The /BaseFont names a PDF embeds (subset prefixes such as ``ABCDEF+`` removed)."""
    import re

    data = path.read_bytes()
    return {name.split(b"+")[-1].decode() for name in re.findall(rb"/BaseFont\s*/([A-Za-z0-9+\-]+)", data)}


def test_paper_style_draws_in_computer_modern(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib import font_manager
    from matplotlib.text import Text

    from neuralatlas.plots.style import figure_style, save_figure

    before = dict(matplotlib.rcParams)
    with figure_style("paper") as rc:
        assert rc["mathtext.fontset"] == "cm"
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([-2, 1], [-1, 3])
        ax.set_title("neighbourhood hit")
        ax.set_xlabel("depth")
        save_figure(fig, tmp_path / "paper", formats=("pdf",))
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        fonts = {font_manager.findfont(t.get_fontproperties()).rsplit("/", 1)[-1] for t in texts}
        # tick labels are mathtext ("$\mathdefault{-2}$") so their minus is Computer Modern
        assert any(t.get_text().startswith("$") for t in ax.get_xticklabels())
        sizes = {t.get_fontsize() for t in texts}
    assert fonts == {"cmr10.ttf"}
    assert min(sizes) >= 8 and max(sizes) <= 9
    names = _pdf_font_names(tmp_path / "paper.pdf")
    assert "Cmr10" in names, names
    assert not any(n.startswith("DejaVuSans") for n in names), names
    # the rcParams come back on exit, and the report style draws in DejaVu Serif, no cmr10
    assert {k: matplotlib.rcParams[k] for k in ("font.family", "mathtext.fontset")} == \
        {k: before[k] for k in ("font.family", "mathtext.fontset")}
    with figure_style("report"):
        fig2, ax2 = plt.subplots(figsize=(3, 2))
        ax2.set_title("neighbourhood hit")
        save_figure(fig2, tmp_path / "report", formats=("pdf",))
    names = _pdf_font_names(tmp_path / "report.pdf")
    assert "Cmr10" not in names and any(n.startswith("DejaVuSerif") for n in names), names
    plt.close(fig)
    plt.close(fig2)


def test_figure_style_refuses_an_unknown_target():
    from neuralatlas.errors import NeuralAtlasError
    from neuralatlas.plots.style import figure_style

    with pytest.raises(NeuralAtlasError, match="paper"):
        with figure_style("poster"):
            pass
