"""neuralatlas: what a neural network has learned inside.

The public face. Names resolve lazily so that ``import neuralatlas`` stays light and an
analysis-only user (arrays from TensorFlow or JAX in a store) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (extend here when a capability lands)
_EXPORTS: dict[str, str] = {
    "NeuralAtlasError": "neuralatlas.errors",
    "ArrayDataset": "neuralatlas.data.dataset",
    "ActivationStore": "neuralatlas.store",
    "capture": "neuralatlas.capture",
    "digits": "neuralatlas.data",
    "build": "neuralatlas.zoo",
    "train": "neuralatlas.zoo",
    "load_run": "neuralatlas.zoo",
    "visualize_feature": "neuralatlas.featurevis",
    "deepdream": "neuralatlas.featurevis",
    "objectives": "neuralatlas.featurevis",
    "architecture": "neuralatlas.architecture",
    "summary": "neuralatlas.architecture",
    "naps": "neuralatlas.analysis.naps",
    "contrastive_naps": "neuralatlas.analysis.naps",
    "unit_statistics": "neuralatlas.analysis.naps",
    "TopomapLayout": "neuralatlas.analysis.topomap",
    "topomaps": "neuralatlas.analysis.topomap",
    "import_innspect_output": "neuralatlas.store.innspect",
    "import_innspect_corpus": "neuralatlas.capture.innspect",
    "linear_cka": "neuralatlas.analysis.similarity",
    "cka_matrix": "neuralatlas.analysis.similarity",
    "rsa": "neuralatlas.analysis.similarity",
    "linear_probes": "neuralatlas.analysis.similarity",
    "similarity": "neuralatlas.analysis.similarity",
    "project": "neuralatlas.analysis.projection",
    "neuron_projection": "neuralatlas.analysis.projection",
    "Projection": "neuralatlas.analysis.projection",
    "discriminative_neurons": "neuralatlas.analysis.discriminative",
    "neighborhood_hit": "neuralatlas.analysis.quality",
    "trustworthiness": "neuralatlas.analysis.quality",
    "write_report": "neuralatlas.report",
    "export_latex": "neuralatlas.report",
    "toy_network": "neuralatlas.toy",
    "attribute": "neuralatlas.attribution",
    "attribute_dataset": "neuralatlas.attribution",
    "sanity_check": "neuralatlas.attribution",
    "deletion_curves": "neuralatlas.attribution",
    "Attribution": "neuralatlas.attribution",
    "attack": "neuralatlas.adversarial",
    "fgsm": "neuralatlas.adversarial",
    "pgd": "neuralatlas.adversarial",
    "robustness_curve": "neuralatlas.adversarial",
    "capture_adversarial": "neuralatlas.adversarial",
    "efficientnet_lite0": "neuralatlas.zoo",
    "photos": "neuralatlas.data.photos",
    "photo_patches": "neuralatlas.data.photos",
    "topics": "neuralatlas.data.text",
    "TextDataset": "neuralatlas.data.text",
    "unit_card": "neuralatlas.featurevis.units",
    "UnitCard": "neuralatlas.featurevis.units",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'neuralatlas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
