"""The analyses a run knows, in the order the pipeline runs them, and their parameter checks.

Config validates ``analyses:`` against :data:`ANALYSES`, the pipeline runs them, the report
orders its sections by them and the LaTeX export redraws their figures through
:func:`step_module`. This module imports no step (each is imported when first used), no
pipeline and no report, so all of them can read it without an import circle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: name -> "module:function" of the pipeline adapter ``fn(ctx, params, reporter) -> summary``.
ANALYSES: dict[str, str | Callable[..., dict[str, Any]]] = {
    "architecture": "neuralatlas.steps.architecture:run",
    "naps": "neuralatlas.steps.naps:run",
    "topomap": "neuralatlas.steps.topomap:run",
    "projection": "neuralatlas.steps.projection:run",
    "similarity": "neuralatlas.steps.similarity:run",
    "featurevis": "neuralatlas.steps.featurevis:run",
    "attribution": "neuralatlas.steps.attribution:run",
    "adversarial": "neuralatlas.steps.adversarial:run",
    # for a pretrained ImageNet model (models[].kind: pretrained)
    "unit_cards": "neuralatlas.steps.unit_cards:run",
    "photo_attribution": "neuralatlas.steps.photo_attribution:run",
    "deepdream": "neuralatlas.steps.deepdream:run",
}

#: Folder names under ``results/`` whose step module can redraw the figures (``load`` + ``figures``).
STEP_MODULES: dict[str, str] = {
    **{name: spec.partition(":")[0] for name, spec in ANALYSES.items() if isinstance(spec, str)},
    "dream": "neuralatlas.steps.dream",
}


def step_module(analysis: str) -> ModuleType | None:
    """The step module of ``analysis`` (``None`` for an analysis no step of the package wrote)."""
    name = STEP_MODULES.get(analysis)
    return importlib.import_module(name) if name is not None else None


def resolve(analysis: str) -> Callable[..., dict[str, Any]]:
    """The pipeline adapter of ``analysis`` (a registered callable, or the function its spec names)."""
    fn = ANALYSES[analysis]
    if isinstance(fn, str):
        module, _, func = fn.partition(":")
        fn = getattr(importlib.import_module(module), func)
    return fn


def validate_params(analysis: str, params: dict[str, Any]) -> None:
    """The parameter check of a pipeline analysis on its own (the same check its adapter makes).

    With it, a run refuses a typo in any analysis before training or capturing.

    Analyses registered as plain callables (not a step of this package) are not checked here.

    Raises
    ------
    ConfigError
    """
    from neuralatlas.steps._common import checked_params, unknown_params

    if analysis == "similarity":
        from neuralatlas.steps.similarity import PARAMS

        unknown_params(analysis, params, PARAMS)
    elif analysis in ("attribution", "adversarial"):
        from neuralatlas.steps import adversarial, attribution

        fn: Callable[..., Any] = attribution.attribute_run if analysis == "attribution" else adversarial.attack_run
        checked_params(analysis, fn, params, internal=attribution._RUN_DATA)
    elif analysis in ("naps", "topomap"):
        module = step_module(analysis)
        checked_params(analysis, module.step, params)  # type: ignore[union-attr]
    elif analysis in ("architecture", "featurevis"):
        module = step_module(analysis)
        checked_params(analysis, module._compute, params)  # type: ignore[union-attr]
    elif analysis == "projection":
        from neuralatlas.steps.projection import _compute

        checked_params(analysis, _compute, {k: v for k, v in params.items() if k != "n"})
    elif analysis == "photo_attribution":
        from neuralatlas.steps.photo_attribution import PARAMS as PHOTO_PARAMS

        unknown_params(analysis, params, PHOTO_PARAMS)
