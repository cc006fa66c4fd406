"""Moved (since 0.2): the steps for a pretrained ImageNet model now live in :mod:`neuralatlas.steps`.

They are :mod:`neuralatlas.steps.unit_cards`, :mod:`neuralatlas.steps.photo_attribution` and
:mod:`neuralatlas.steps.deepdream`.

The old names keep working for one release, with a DeprecationWarning.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED = {"run_unit_cards": ("unit_cards", "run"), "unit_cards_step": ("unit_cards", "step"),
          "run_photo_attribution": ("photo_attribution", "run"), "run_deepdream": ("deepdream", "run")}

__all__ = list(_MOVED)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module, attr = _MOVED[name]
        warnings.warn(f"neuralatlas.photo_steps.{name} is deprecated since 0.2; use neuralatlas.steps.{module}.{attr}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f"neuralatlas.steps.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
