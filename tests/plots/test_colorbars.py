"""Every colour bar says what its colour is (issue 15: "colourbars have no labels")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "result_examples" / "analyses.py"


def _examples():
    spec = importlib.util.spec_from_file_location("result_examples_for_colorbars", EXAMPLES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _colorbars(fig):
    # a colour bar's axes carries the Colorbar that drew it
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def _figure(name):
    from neuralatlas.plots.attribution import attribution_grid
    from neuralatlas.plots.featurevis import featurevis_dream, featurevis_feature_maps, featurevis_filters
    from neuralatlas.plots.naps import naps_heatmap
    from neuralatlas.plots.topomap import topomap_image

    ex = _examples()
    draw = {
        "topomap image": lambda: topomap_image(ex.topomaps(), ex.topomaps().layers[0], ex.topomaps().groups[0],
                                               colorbar=True),
        "dream": lambda: featurevis_dream(ex.dream()),
        "kernels": lambda: featurevis_filters(ex.filters()),
        "feature maps": lambda: featurevis_feature_maps(ex.feature_maps(), "conv2"),
        "attribution per column": lambda: attribution_grid([ex.attribution()], samples=2, scale="column"),
        "attribution shared": lambda: attribution_grid([ex.attribution()], samples=2, scale="shared"),
        "naps": lambda: naps_heatmap(ex.contrastive_naps(), ex.contrastive_naps().layers[0]),
    }
    return draw[name]()


@pytest.mark.parametrize("name", ["topomap image", "dream", "kernels", "feature maps", "attribution per column",
                                  "attribution shared", "naps"])
def test_every_colour_bar_has_a_label(name):
    fig = _figure(name)
    try:
        bars = _colorbars(fig)
        assert bars, f"{name}: no colour bar drawn"
        assert all(bar.ax.get_ylabel().strip() or bar.ax.get_xlabel().strip() for bar in bars), name
    finally:
        for f in plt.get_fignums():
            plt.close(f)


def test_the_topomap_overview_names_its_colour_in_the_title():
    from neuralatlas.plots.topomap import topomap_overview

    maps = _examples().topomaps()
    fig = topomap_overview(maps)
    assert "colour: mean activation − mean of the other groups" in fig._suptitle.get_text()
    plt.close(fig)
