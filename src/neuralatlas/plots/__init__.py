"""Figures: pure functions ``(result, *, ax=None, ...) -> matplotlib Figure``; no computing, no I/O.

One module per analysis; the figure functions are re-exported here.
"""

from __future__ import annotations

from neuralatlas.plots.style import class_colors, figure_style, save_figure, symmetric_limits
from neuralatlas.plots.featurevis import (dream_comparison, feature_map_grid, filter_grid, objective_trace,
                                         optimized_images, unit_card_figure)
from neuralatlas.plots.architecture import layer_costs
from neuralatlas.plots.naps import nap_heatmap, nap_maps, unit_statistics_figure
from neuralatlas.plots.topomap import layout_quality_figure, topomap_image, topomap_layout, topomap_overview
from neuralatlas.plots.similarity import plot_epoch_similarity, plot_probes, plot_similarity_matrix, similarity_figures
from neuralatlas.plots.projection import inter_epoch_evolution, inter_layer_evolution, neuron_map, projection_quality, projection_scatter, projection_sequence, trail_image
from neuralatlas.plots.discriminative import compare_projections, discriminative_map, importance_agreement_plot
from neuralatlas.plots.toy import decision_regions, neuron_heatmaps
from neuralatlas.plots.attribution import attribution_grid, faithfulness_curves, sanity_curves, sanity_maps
from neuralatlas.plots.attribution import token_heatmap, token_heatmap_html
from neuralatlas.plots.adversarial import adversarial_grid, robustness_plot

__all__ = ["class_colors", "figure_style", "save_figure", "symmetric_limits"]
__all__ += ["dream_comparison", "feature_map_grid", "filter_grid", "objective_trace", "optimized_images",
            "unit_card_figure"]
__all__ += ["layer_costs"]
__all__ += ["nap_heatmap", "nap_maps", "unit_statistics_figure", "layout_quality_figure", "topomap_image", "topomap_layout", "topomap_overview"]
__all__ += ["plot_epoch_similarity", "plot_probes", "plot_similarity_matrix", "similarity_figures"]
__all__ += ["inter_epoch_evolution", "inter_layer_evolution", "neuron_map", "projection_quality", "projection_scatter", "projection_sequence", "trail_image"]
__all__ += ["compare_projections", "discriminative_map", "importance_agreement_plot"]
__all__ += ["decision_regions", "neuron_heatmaps"]
__all__ += ["attribution_grid", "faithfulness_curves", "sanity_curves", "sanity_maps", "adversarial_grid", "robustness_plot"]
__all__ += ["token_heatmap", "token_heatmap_html"]
