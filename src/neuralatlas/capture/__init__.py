"""Capture: hooks on named layers, gradient targets, and the loop that streams into a store."""

from __future__ import annotations

import sys
import types

from neuralatlas.capture.hooks import hooks, layer_names, preserved, resolve_layers, select_tensor
from neuralatlas.capture.loop import call_model, capture, pick_device, target_values

__all__ = ["call_model", "capture", "hooks", "layer_names", "pick_device", "preserved",
           "resolve_layers", "select_tensor", "target_values"]


class _CallablePackage(types.ModuleType):
    """``neuralatlas.capture`` names both this package and the function.

    Importing the package rebinds the name on ``neuralatlas``, so the package calls the function
    too.
    """

    def __call__(self, *args, **kwargs):
        return capture(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
