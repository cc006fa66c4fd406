"""Small reference models, a registry of builders, and the training loop.

Layer names follow ``model.named_modules()`` (see :mod:`neuralatlas.zoo.models` for the
naming scheme); training writes the run folder described in CONTRIBUTING.md.
"""

from __future__ import annotations

from neuralatlas.zoo.efficientnet import ModelCard, efficientnet_lite0, imagenet_classes, model_card
from neuralatlas.zoo.errors import ModelError
from neuralatlas.zoo.models import cnn, mlp, vgg, vgg16
from neuralatlas.zoo.registry import BUILTIN_MODELS, PRETRAINED_MODELS, build, layer_table
from neuralatlas.zoo.training import TrainResult, list_checkpoints, load_checkpoint, load_run, train

__all__ = [
    "BUILTIN_MODELS",
    "ModelCard",
    "ModelError",
    "PRETRAINED_MODELS",
    "TrainResult",
    "build",
    "cnn",
    "efficientnet_lite0",
    "imagenet_classes",
    "layer_table",
    "list_checkpoints",
    "load_checkpoint",
    "load_run",
    "mlp",
    "model_card",
    "train",
    "vgg",
    "vgg16",
]
