"""The architecture section draws each graph in a pan/zoom viewport, vector, inline."""

from __future__ import annotations

import base64
import re

from neuralatlas import steps
from neuralatlas.report import write_report
from neuralatlas.zoo import cnn


def test_graph_sits_in_a_pan_zoom_viewport(tmp_path):
    steps.architecture(tmp_path / "m", cnn())
    text = write_report(tmp_path / "m", tmp_path / "r.html").read_text()
    figures = re.findall(r'<figure class="na-panzoom".*?</figure>', text, flags=re.S)
    assert len(figures) == 1  # one drawing (architecture.svg), not also as a plain figure
    fig = figures[0]
    for zoom in ("0.8", "1.25", "fit", "1"):
        assert f'data-zoom="{zoom}"' in fig
    uri = re.search(r'<div class="na-pz-view"><img src="data:image/svg\+xml;base64,([^"]+)"', fig).group(1)
    svg = base64.b64decode(uri).decode()
    # the real drawing, its layers named (built-in renderer: data-layer; Graphviz: node text)
    assert 'data-layer="conv1"' in svg or re.search(r">\s*conv1\s*<", svg)
    assert ".na-panzoom .na-pz-view { overflow: auto;" in text and "ctrlKey" in text
