"""Small reference models, a registry of builders, and the training loop.

Layer names follow ``model.named_modules()`` (see :mod:`neuralatlas.zoo.models` for the
naming scheme); training writes the run folder described in CONTRIBUTING.md.
"""

from __future__ import annotations

from neuralatlas.zoo.errors import ModelError
from neuralatlas.zoo.models import cnn, mlp, vgg, vgg16
from neuralatlas.zoo.registry import BUILTIN_MODELS, build, layer_table
from neuralatlas.zoo.training import TrainResult, list_checkpoints, load_checkpoint, load_run, train

__all__ = [
    "BUILTIN_MODELS",
    "ModelError",
    "TrainResult",
    "build",
    "cnn",
    "layer_table",
    "list_checkpoints",
    "load_checkpoint",
    "load_run",
    "mlp",
    "train",
    "vgg",
    "vgg16",
]
