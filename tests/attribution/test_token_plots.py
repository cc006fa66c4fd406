"""The token heat map (figure and HTML): pieces merged with their scores summed, one centred scale, wrapping."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex

from neuralatlas.attribution import Attribution
from neuralatlas.errors import AnalysisError
from neuralatlas.plots import token_heatmap, token_heatmap_html
from neuralatlas.plots.attribution import token_rows
from neuralatlas.plots.style import DIVERGING, MAGNITUDE


def _result(tokens, scores, signed=True):
    tokens = np.array(tokens, dtype=str)
    mask = (tokens != "").astype(np.int64)
    maps = np.asarray(scores, np.float64)[..., None] * np.array([0.25, 0.75])  # [n, T, 2], sums to the score
    return Attribution("integrated_gradients", maps * mask[..., None], signed=signed, tokens=tokens, mask=mask,
                       inputs=np.zeros(tokens.shape, np.int64), labels=np.array([1] * len(tokens)), layer="emb")


def test_wordpiece_pieces_merge_and_sum_and_padding_is_dropped():
    res = _result([["[CLS]", "play", "##ing", "foot", "##ball", "[SEP]", ""]],
                  [[0.5, 1.0, 2.0, -1.0, 0.5, 0.0, 9.0]])
    (caption, words), = token_rows(res, classes=["a", "b"])
    assert caption == "sample 0 · b"
    assert words == [("[CLS]", 0.5), ("playing", 3.0), ("football", -0.5), ("[SEP]", 0.0)]
    faithful = token_rows(res, merge=False)[0][1]
    assert [t for t, _ in faithful] == ["[CLS]", "play", "##ing", "foot", "##ball", "[SEP]"]
    assert sum(s for _, s in faithful) == pytest.approx(sum(s for _, s in words))  # merging keeps the total


def test_byte_level_bpe_markers():
    res = _result([["The", "Ġrain", "coat", "Ġis", "Ġwet", "<|endoftext|>"]], [[1, 2, 3, 4, 5, 6]])
    words = token_rows(res)[0][1]
    assert words == [("The", 1.0), ("raincoat", 5.0), ("is", 4.0), ("wet", 5.0), ("<|endoftext|>", 6.0)]


def test_figure_scale_colour_bar_and_wrapping():
    long = ["[CLS]"] + [f"word{i}" for i in range(30)] + ["[SEP]"]
    res = _result([long, ["[CLS]", "short", "[SEP]"] + [""] * 29],
                  [np.linspace(-2, 3, 32), np.r_[[0.1, -0.2, 0.3], np.zeros(29)]])
    fig = token_heatmap(res, wrap=40)
    ax = fig.axes[0]
    boxes = ax.patches
    assert len(boxes) == 32 + 3  # one box per token shown, none for padding
    lines = {round(b.get_y()) for b in boxes[:32]}
    assert len(lines) >= 5  # 32 words of 6-7 characters on lines of 40 characters
    assert max(b.get_x() + b.get_width() for b in boxes) <= 40.6
    bar = fig.axes[1]
    assert bar.get_ylabel() == "score per word"
    lo, hi = bar.get_ylim()
    assert lo == pytest.approx(-3.0) and hi == pytest.approx(3.0)  # symmetric: centred on 0
    cmap = matplotlib.pyplot.get_cmap(DIVERGING)
    # the box of score 0 is the colour map's centre
    zero = next(b for b, (t, s) in zip(boxes[32:], token_rows(res, samples=[1])[0][1], strict=True) if s == 0.1)
    assert to_hex(zero.get_facecolor()) == to_hex(cmap((0.1 + 3) / 6))
    matplotlib.pyplot.close(fig)
    unsigned = _result([["a", "b"]], [[0.0, 2.0]], signed=False)
    fig = token_heatmap(unsigned)
    assert fig.axes[1].get_ylim() == pytest.approx((0.0, 2.0))
    assert to_hex(fig.axes[0].patches[0].get_facecolor()) == to_hex(matplotlib.pyplot.get_cmap(MAGNITUDE)(0.0))
    matplotlib.pyplot.close(fig)


def test_html_is_escaped_coloured_and_titled():
    res = _result([["<b>", "&", "ok", ""]], [[-1.0, 0.0, 1.0, 0.0]])
    out = token_heatmap_html(res)
    assert "&lt;b&gt;" in out and "<b>" not in out and "&amp;" in out
    assert out.count("<span") == 3
    cmap = matplotlib.pyplot.get_cmap(DIVERGING)
    assert f"background:{to_hex(cmap(0.5))}" in out  # score 0 -> the centre colour
    assert f"background:{to_hex(cmap(1.0))}" in out and 'title="+1"' in out


def test_ids_without_tokens_need_a_tokenizer():
    res = Attribution("saliency", np.ones((1, 3, 2)), inputs=np.array([[1, 2, 3]]), signed=False)
    with pytest.raises(AnalysisError, match="tokenizer"):
        token_heatmap(res)

    class Tok:
        def convert_ids_to_tokens(self, ids):
            return [f"t{i}" for i in ids]

    assert [t for t, _ in token_rows(res, tokenizer=Tok())[0][1]] == ["t1", "t2", "t3"]


def test_notebook_view_of_text_attributions_shows_the_tokens():
    res = _result([["[CLS]", "hi", "[SEP]"]], [[0.0, 1.0, 0.0]])
    assert "na-tokens" in res._repr_html_() and ">hi</span>" in res._repr_html_()


def test_saved_heatmap_keeps_every_word_inside_its_box(tmp_path):
    # save_figure shrinks figures wider than the display width while text keeps its size:
    # the boxes (laid out in character cells) must still hold their words once saved
    from neuralatlas.plots import save_figure

    words = ["[CLS]"] + [("restaurant", "fragrant", "marathon", "a")[i % 4] for i in range(40)] + ["[SEP]"]
    res = _result([words], [np.linspace(-1, 1, len(words))])
    fig = token_heatmap(res)  # the default wrap
    save_figure(fig, tmp_path / "tokens", formats=("png",))
    assert fig.get_size_inches()[0] <= 6.5 + 1e-9
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_fontfamily() == ["monospace"]]
    assert len(texts) == len(ax.patches) == len(words)
    for text, box in zip(texts, ax.patches, strict=True):
        t, b = text.get_window_extent(renderer), box.get_window_extent(renderer)
        assert t.x0 >= b.x0 - 0.5 and t.x1 <= b.x1 + 0.5, text.get_text()
    matplotlib.pyplot.close(fig)
