"""Run-folder steps: one module per analysis, shared by its CLI command and by the pipeline.

Each module ``neuralatlas.steps.<analysis>`` has

* ``step(run_dir, **params) -> result`` — computes, saves the result (its ``save(directory)``)
  into ``RUN_DIR/results/<analysis>/`` and the figures into ``RUN_DIR/figures/<analysis>/``;
* ``figures(result, figures_dir, formats=None)`` — draws the figures of a result (saved or
  just computed); ``load(results_dir)`` reads back what ``step`` saved, so the LaTeX export
  redraws PDFs from the results;
* ``run(ctx, params, reporter) -> summary`` — the pipeline's adapter.

Figures are PNG unless the caller chooses otherwise with :func:`figure_formats`
(``neuralatlas run --pdf`` and ``report: {pdf: true}`` keep PDFs too). The analyses, their
order and their parameter checks are in :mod:`neuralatlas.steps.registry`.

The functions of the old ``neuralatlas.steps`` module keep working for one release:
``steps.naps(run_dir, ...)`` (and ``topomap``, ``projection``, ``architecture``,
``featurevis``) still return ``(result, summary)`` with a DeprecationWarning, and
``steps.run_naps`` … name the adapters (the root table :data:`neuralatlas._moved.MOVED`).
"""

from __future__ import annotations

import importlib
from typing import Any

from neuralatlas._moved import MOVED, resolve_moved
from neuralatlas.steps._common import (
    DEFAULT_FORMATS,
    checked_params,
    current_formats,
    figure_formats,
    file_stem,
    run_store,
)
from neuralatlas.steps.registry import ANALYSES, validate_params

MODULES = ("adversarial", "architecture", "attribution", "deepdream", "discriminative", "dream", "featurevis",
           "naps", "photo_attribution", "projection", "similarity", "topomap", "unit_cards")

# helpers that live in a step module and stay reachable from here: name -> (module, attribute)
_HELPERS = {"auto_alignment": ("naps", "auto_alignment"), "input_views": ("projection", "input_views")}

__all__ = ["ANALYSES", "DEFAULT_FORMATS", "MODULES", "checked_params", "current_formats", "figure_formats",
           "file_stem", "run_store", "validate_params"]


def __getattr__(name: str) -> Any:
    if name in MODULES:  # a step module, imported when first used
        return importlib.import_module(f"{__name__}.{name}")
    if name in _HELPERS:
        module, attr = _HELPERS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    if f"{__name__}:{name}" in MOVED:  # ``run_naps`` ... (0.2), with a DeprecationWarning
        return resolve_moved(f"{__name__}:{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
