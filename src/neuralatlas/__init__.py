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
