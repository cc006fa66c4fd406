"""Moved: the similarity step is :mod:`neuralatlas.steps.similarity` (since 0.2).

``run_similarity`` and ``save_figures`` keep working from here (and from
``neuralatlas.analysis.similarity``) for one release, with a DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = {"run_similarity": "legacy_run_similarity", "save_figures": "save_figures", "_STEP_PARAMS": "PARAMS"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        if not name.startswith("_"):
            new = "run" if name == "run_similarity" else "figures"
            warnings.warn(f"neuralatlas.analysis.similarity.{name} is deprecated since 0.2; use "
                          f"neuralatlas.steps.similarity.{new}", DeprecationWarning, stacklevel=2)
        from neuralatlas.steps import similarity as moved  # deprecated shim: upward import, until 0.3

        return getattr(moved, _MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
