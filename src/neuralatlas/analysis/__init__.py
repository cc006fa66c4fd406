"""Analyses on activation stores and arrays (numpy, scipy, scikit-learn; never torch).

A function named like its module (``naps``, ``similarity``) is not re-exported here: it would
hide the module (``import neuralatlas.analysis.naps`` would give the function). Use
``neuralatlas.naps`` or ``from neuralatlas.analysis.naps import naps``.
"""

from __future__ import annotations

from neuralatlas.analysis.discriminative import DiscriminativeNeurons, discriminative_neurons
from neuralatlas.analysis.naps import NAPs, UnitStatistics, align_by_gradient, contrastive_naps, unit_statistics
from neuralatlas.analysis.projection import NeuronProjection, Projection, neuron_projection, project
from neuralatlas.analysis.quality import continuity, neighborhood_hit, trustworthiness
from neuralatlas.analysis.similarity import (
    ProbeResult,
    SimilarityMatrix,
    SimilarityResult,
    cka_matrix,
    epoch_cka_matrix,
    linear_cka,
    linear_probes,
    rbf_cka,
    rsa,
    rsa_matrix,
)
from neuralatlas.analysis.topomap import TopomapLayout, Topomaps, layout_quality, topomaps, unit_profiles, unit_values

__all__ = [
    "DiscriminativeNeurons",
    "discriminative_neurons",
    "NAPs",
    "UnitStatistics",
    "align_by_gradient",
    "contrastive_naps",
    "unit_statistics",
    "NeuronProjection",
    "Projection",
    "neuron_projection",
    "project",
    "continuity",
    "neighborhood_hit",
    "trustworthiness",
    "SimilarityResult",
    "ProbeResult",
    "SimilarityMatrix",
    "cka_matrix",
    "epoch_cka_matrix",
    "linear_cka",
    "linear_probes",
    "rbf_cka",
    "rsa",
    "rsa_matrix",
    "TopomapLayout",
    "Topomaps",
    "layout_quality",
    "topomaps",
    "unit_profiles",
    "unit_values",
]
