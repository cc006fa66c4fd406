"""Figures: pure functions ``(result, *, ax=None, ...) -> matplotlib Figure``; no computing, no I/O.

One module per analysis; the figure functions are re-exported here, named
``<analysis>_<what>`` (issue 14's vocabulary: ``naps_heatmap``, ``projection_trails``,
``similarity_matrix``). The names before that rule (``nap_heatmap``, ``plot_probes``, ...)
still work for one release and warn (DeprecationWarning) when called from outside the package;
:data:`RENAMED` maps each old name to its new one.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any

from neuralatlas.plots.adversarial import adversarial_grid, adversarial_robustness
from neuralatlas.plots.architecture import architecture_costs
from neuralatlas.plots.attribution import (
    attribution_faithfulness,
    attribution_grid,
    attribution_photo_grid,
    attribution_sanity_curves,
    attribution_sanity_maps,
    attribution_token_heatmap,
    attribution_token_heatmap_html,
)
from neuralatlas.plots.discriminative import discriminative_agreement, discriminative_compare, discriminative_map
from neuralatlas.plots.featurevis import (
    featurevis_dream,
    featurevis_feature_maps,
    featurevis_filters,
    featurevis_images,
    featurevis_trace,
    featurevis_unit_card,
)
from neuralatlas.plots.naps import naps_heatmap, naps_maps, naps_unit_statistics
from neuralatlas.plots.projection import (
    projection_epoch_evolution,
    projection_layer_evolution,
    projection_neuron_map,
    projection_quality,
    projection_scatter,
    projection_sequence,
    projection_trail_image,
    projection_trails,
)
from neuralatlas.plots.similarity import similarity_epochs, similarity_figures, similarity_matrix, similarity_probes
from neuralatlas.plots.style import class_colors, figure_style, save_figure, symmetric_limits
from neuralatlas.plots.topomap import topomap_image, topomap_layout, topomap_layout_quality, topomap_overview
from neuralatlas.plots.toy import toy_decision_regions, toy_neuron_heatmaps

# old name -> new name (the old names warn when called from outside neuralatlas)
RENAMED: dict[str, str] = {
    "optimized_images": "featurevis_images",
    "objective_trace": "featurevis_trace",
    "dream_comparison": "featurevis_dream",
    "filter_grid": "featurevis_filters",
    "feature_map_grid": "featurevis_feature_maps",
    "unit_card_figure": "featurevis_unit_card",
    "layer_costs": "architecture_costs",
    "nap_heatmap": "naps_heatmap",
    "nap_maps": "naps_maps",
    "unit_statistics_figure": "naps_unit_statistics",
    "layout_quality_figure": "topomap_layout_quality",
    "plot_similarity_matrix": "similarity_matrix",
    "plot_epoch_similarity": "similarity_epochs",
    "plot_probes": "similarity_probes",
    "trail_image": "projection_trail_image",
    "inter_layer_evolution": "projection_layer_evolution",
    "inter_epoch_evolution": "projection_epoch_evolution",
    "neuron_map": "projection_neuron_map",
    "compare_projections": "discriminative_compare",
    "importance_agreement_plot": "discriminative_agreement",
    "neuron_heatmaps": "toy_neuron_heatmaps",
    "decision_regions": "toy_decision_regions",
    "sanity_curves": "attribution_sanity_curves",
    "sanity_maps": "attribution_sanity_maps",
    "faithfulness_curves": "attribution_faithfulness",
    "token_heatmap": "attribution_token_heatmap",
    "token_heatmap_html": "attribution_token_heatmap_html",
    "photo_attribution_grid": "attribution_photo_grid",
    "robustness_plot": "adversarial_robustness",
}


def _deprecated(old: str, new: str) -> Callable[..., Any]:
    target = globals()[new]

    @functools.wraps(target)
    def alias(*args: Any, **kwargs: Any) -> Any:
        # the package's own modules still call some old names; only a user's call warns
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if not caller.startswith("neuralatlas."):
            warnings.warn(f"neuralatlas.plots.{old} is now neuralatlas.plots.{new} (figure functions are"
                          " named <analysis>_<what>); the old name goes in the next release.",
                          DeprecationWarning, stacklevel=2)
        return target(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated name of :func:`{new}` (warns when called).\n\n" + (target.__doc__ or "")
    return alias


for _old, _new in RENAMED.items():
    globals()[_old] = _deprecated(_old, _new)
del _old, _new

__all__ = [
    "RENAMED",
    "class_colors",
    "figure_style",
    "save_figure",
    "symmetric_limits",
    "featurevis_dream",
    "featurevis_feature_maps",
    "featurevis_filters",
    "featurevis_images",
    "featurevis_trace",
    "featurevis_unit_card",
    "architecture_costs",
    "naps_heatmap",
    "naps_maps",
    "naps_unit_statistics",
    "topomap_image",
    "topomap_layout",
    "topomap_layout_quality",
    "topomap_overview",
    "similarity_epochs",
    "similarity_figures",
    "similarity_matrix",
    "similarity_probes",
    "projection_epoch_evolution",
    "projection_layer_evolution",
    "projection_neuron_map",
    "projection_quality",
    "projection_scatter",
    "projection_sequence",
    "projection_trail_image",
    "projection_trails",
    "discriminative_agreement",
    "discriminative_compare",
    "discriminative_map",
    "toy_decision_regions",
    "toy_neuron_heatmaps",
    "attribution_faithfulness",
    "attribution_grid",
    "attribution_photo_grid",
    "attribution_sanity_curves",
    "attribution_sanity_maps",
    "attribution_token_heatmap",
    "attribution_token_heatmap_html",
    "adversarial_grid",
    "adversarial_robustness",
]
