"""Projections of hidden activity: samples and neurons as 2-D points (Rauber et al. 2017).

Rauber, Fadel, Falcão and Telea, "Visualizing the hidden activity of artificial neural
networks", IEEE TVCG 23(1), 2017, project the activations of a layer (one point per
sample) with t-SNE and follow the same samples from layer to layer and from epoch to
epoch. This module does that from an :class:`~neuralatlas.store.ActivationStore` (or from
plain arrays) for any model:

* :func:`project` embeds every requested (layer, epoch) of one seeded, class-stratified
  subset of samples, so a point can be followed through the network and through training.
  With ``align=True`` each embedding starts from the previous one in the sequence and is
  then rotated/reflected onto it (orthogonal Procrustes), so movement on screen is
  movement of the representation, not an arbitrary rotation of the picture.
* Every embedding is scored: neighbourhood hit (``k = 6``, as in the paper) and
  trustworthiness (:mod:`neuralatlas.analysis.quality`).
* :meth:`Projection.trails` turns a sequence into one smooth curve per sample (monotone
  cubic through its positions), optionally bundled with :func:`bundle_trails`, a vectorised
  kernel-density edge bundling (after Hurter, Ersoy and Telea 2012).
* :func:`neuron_projection` places the neurons of a layer (conv channels, spatially
  pooled) by the correlation of their activations over the samples.

t-SNE is openTSNE; its gradient method and settings are picked by size
(:func:`tsne_settings`): Barnes-Hut below a few thousand points, where openTSNE's FFT
interpolation has a large fixed cost, FFT above, exact neighbours (on a 100-component PCA
for layers wider than 1,024 units). ``benchmarks/projection.py`` measures the choice
against scikit-learn.
"""

from __future__ import annotations

from neuralatlas.analysis.projection.embedding import (
                                                       PCA_ABOVE,
                                                       PCA_COMPONENTS,
                                                       embed,
                                                       procrustes_align,
                                                       project,
                                                       streamed_pca,
                                                       tsne_settings,
                                                       tsne_threads,
)
from neuralatlas.analysis.projection.neurons import (
                                                       NEURON_METRICS,
                                                       classical_scaling,
                                                       correlation_factor,
                                                       correlation_profiles,
                                                       neuron_distance,
                                                       neuron_projection,
)

# private names other modules imported from here before the split; kept for them
from neuralatlas.analysis.projection.result import (  # noqa: F401,I001
                                                       Key,
                                                       NeuronProjection,
                                                       Projection,
                                                       _epoch,
                                                       _jsonable,
                                                       _safe,
)
from neuralatlas.analysis.projection.sources import (  # noqa: F401
                                                       DEFAULT_N,
                                                       INPUT,
                                                       METHODS,
                                                       _flatten,
                                                       _source,
                                                       layer_matrix,
                                                       stratified_subset,
)
from neuralatlas.analysis.projection.trails import bundle_trails, smooth_trails

__all__ = [
    "DEFAULT_N",
    "Key",
    "NEURON_METRICS",
    "PCA_ABOVE",
    "PCA_COMPONENTS",
    "INPUT",
    "METHODS",
    "NeuronProjection",
    "Projection",
    "bundle_trails",
    "classical_scaling",
    "correlation_factor",
    "correlation_profiles",
    "embed",
    "layer_matrix",
    "neuron_distance",
    "neuron_projection",
    "procrustes_align",
    "project",
    "smooth_trails",
    "stratified_subset",
    "streamed_pca",
    "tsne_settings",
    "tsne_threads",
]
