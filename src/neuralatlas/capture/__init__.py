"""Capture: hooks on named layers, gradient targets, and the loop that streams into a store."""

from __future__ import annotations

from neuralatlas.capture.hooks import hooks, layer_names, preserved, resolve_layers, select_tensor
from neuralatlas.capture.loop import call_model, capture, pick_device, target_values

__all__ = ["call_model", "capture", "hooks", "layer_names", "pick_device", "preserved",
           "resolve_layers", "select_tensor", "target_values"]
