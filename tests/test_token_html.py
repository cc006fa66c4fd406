"""The token heat map's HTML below plots: one home for its rows and colours, a notebook view without figures.

The rows, merging and colours themselves are tested through their plots names in
tests/attribution/test_token_plots.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from neuralatlas import palette, token_html
from neuralatlas.attribution import Attribution

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_plots_reexport_the_one_implementation():
    import neuralatlas.plots as plots
    from neuralatlas.plots import attribution, style

    assert attribution.token_rows is token_html.token_rows
    assert attribution._token_scale is token_html.token_scale
    # the plots name is a figure-module function of its own (plots are named <analysis>_<what>, in
    # the module of their analysis) that hands every argument on
    res = Attribution("saliency", np.arange(6.0).reshape(2, 3, 1) - 2, tokens=np.array([["a", "b", "c"]] * 2),
                      labels=np.array([0, 1]), signed=True)
    kwargs = {"samples": [1], "merge": False, "classes": ["neg", "pos"], "vmax": 7.0}
    view = token_html.token_heatmap_html(res, **kwargs)
    assert plots.attribution_token_heatmap_html(res, **kwargs) == view
    assert "sample 1 · pos" in view and "sample 0" not in view and "colour scale -7 … +7" in view
    assert (style.DIVERGING, style.MAGNITUDE, style.SEQUENTIAL) == (palette.DIVERGING, palette.MAGNITUDE,
                                                                    palette.SEQUENTIAL)


def test_scale_is_the_largest_finite_score_and_neutral_when_all_are_zero():
    rows = [("s0", [("a", -3.0), ("b", 2.0)]), ("s1", [("c", float("nan")), ("d", 1.0)])]
    assert token_html.token_scale(rows, True, None) == (-3.0, 3.0)
    assert token_html.token_scale(rows, False, None) == (0.0, 3.0)
    assert token_html.token_scale(rows, True, 0.5) == (-0.5, 0.5)
    assert token_html.token_scale([("s", [("a", 0.0)])], True, None) == (-1.0, 1.0)
    assert token_html.token_scale([], False, None) == (0.0, 1.0)


def test_notebook_view_holds_the_first_four_sentences_of_the_heat_map():
    tokens = np.array([["[CLS]", f"w{i}", "[SEP]"] for i in range(6)])
    scores = np.arange(18, dtype=np.float64).reshape(6, 3, 1) - 8
    res = Attribution("integrated_gradients", scores, tokens=tokens, mask=np.ones((6, 3), np.int64), layer="emb")
    view = res._repr_html_()
    assert token_html.token_heatmap_html(res, samples=4) in view
    assert ">w3</span>" in view and ">w4</span>" not in view


def _fresh(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=120, check=False,
                            env={"PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().split("\n")


@pytest.mark.slow  # fresh interpreters
def test_the_notebook_view_imports_no_figure_module_and_plots_import_no_torch():
    assert _fresh("""
        import sys
        import numpy as np
        from neuralatlas.attribution import Attribution
        res = Attribution("saliency", np.ones((1, 2, 1)), tokens=np.array([["a", "b"]]), signed=False)
        assert ">b</span>" in res._repr_html_()
        print(sorted(m for m in sys.modules if m.startswith("neuralatlas.plots")))
    """) == ["[]"]
    # the heat map's home is below attribution, not inside it: importing plots stays light
    assert _fresh("""
        import sys
        import neuralatlas.plots
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith(("captum", "neuralatlas.attribution"))))
    """) == ["[]"]
