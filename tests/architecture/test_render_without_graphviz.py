"""Without Graphviz the layer graph is still a vector PDF: the HTML view's layout drawn by matplotlib."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from neuralatlas.architecture import architecture


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.branch(h)          # a shortcut: two paths side by side
        return self.head(h.flatten(1))


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    """``dot`` hidden from PATH (an empty folder is the whole PATH)."""
    import shutil

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


def test_pdf_without_dot_is_the_builtin_layout_in_vector(no_dot, tmp_path):
    from matplotlib.patches import FancyBboxPatch, Rectangle

    from neuralatlas.architecture.render import _builtin_layout, builtin_figure

    graph = architecture(Residual(), torch.zeros(1, 3, 8, 8))
    pdf = graph.render(tmp_path / "graph.pdf")
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-"
    assert b"/Subtype /Image" not in data                # vector: no raster inside
    layout = _builtin_layout(graph)
    box = [float(v) for v in re.search(rb"/MediaBox \[\s*([\d. ]+)\]", data).group(1).split()]
    assert box[2] == pytest.approx(layout.width * 0.75, abs=0.5)    # 96 px to the inch, in pt
    assert box[3] == pytest.approx(layout.height * 0.75, abs=0.5)
    # the same boxes and names as the SVG the HTML view shows
    fig = builtin_figure(graph)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, (FancyBboxPatch, Rectangle))]
    assert len(boxes) >= len(graph.nodes)
    texts = {t.get_text() for t in ax.texts}
    svg = graph.to_svg(engine="builtin")
    for name in ("stem", "branch", "head"):
        assert any(t.startswith(name) for t in texts) and f'data-layer="{name}"' in svg
    assert min(t.get_fontsize() for t in ax.texts) >= 8
    # parallel branches sit side by side: the add's two inputs are on different columns
    xs = {n.name: x for n, x, _, _, _, _ in layout.boxes}
    ys = {n.name: y for n, _, y, _, _, _ in layout.boxes}
    assert ys["head"] > ys["branch"] > ys["stem"] and set(xs)


def test_latex_export_gets_the_graph_without_dot(no_dot, tmp_path):
    from neuralatlas.report.latex import _architecture_pdf

    class Out:
        results_dir = tmp_path / "results"

    graph = architecture(Residual(), torch.zeros(1, 3, 8, 8))
    graph.save(Out.results_dir)
    drawn = _architecture_pdf(Out, tmp_path / "figures" / "graph.pdf")
    assert drawn is not None and drawn.read_bytes()[:5] == b"%PDF-"
