"""Feature visualisation: what a unit wants to see, DeepDream, filters and feature maps.

- :func:`visualize_feature` optimises images for an objective (activation maximisation),
  many units at once in one batch.
- :mod:`~neuralatlas.featurevis.objectives` builds objectives that add and weigh:
  ``channel("conv2", 5) - 0.5 * channel("conv2", 7)``.
- :mod:`~neuralatlas.featurevis.param` (Fourier / pixel images) and
  :mod:`~neuralatlas.featurevis.transforms` (jitter, pad, scale, rotate, blur).
- :func:`deepdream` on a given image; :func:`filters` (kernels); :func:`feature_maps`
  (from a store, no recomputation, or a model).
"""

from __future__ import annotations

from neuralatlas.featurevis import objectives, param, transforms
from neuralatlas.featurevis.dream import DreamResult, deepdream, octave_sizes
from neuralatlas.featurevis.kernels import Filters, conv_layers, filters
from neuralatlas.featurevis.maps import FeatureMaps, feature_maps
from neuralatlas.featurevis.objectives import Objective
from neuralatlas.featurevis.optimize import FeatureVisResult, visualize_feature

__all__ = ["DreamResult", "FeatureMaps", "FeatureVisResult", "Filters", "Objective", "conv_layers",
           "deepdream", "feature_maps", "filters", "objectives", "octave_sizes", "param", "transforms",
           "visualize_feature"]
