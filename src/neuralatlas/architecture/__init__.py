"""The model's architecture: its graph (named as ``named_modules()`` names layers) and summary.

``neuralatlas.architecture(model, example_input)`` returns an
:class:`~neuralatlas.architecture.graph.ArchitectureGraph` (``.to_svg()``, ``.render()``,
``.summary()``, ``.to_html()``); ``neuralatlas.summary(model)`` the torchinfo-like table.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from neuralatlas.architecture.costs import module_macs
from neuralatlas.architecture.graph import ArchitectureGraph, Node, architecture, summary
from neuralatlas.architecture.render import GraphvizMissing, builtin_svg, dot_available, to_dot
from neuralatlas.architecture.table import ModelSummary, format_shape

__all__ = ["ArchitectureGraph", "GraphvizMissing", "ModelSummary", "Node", "architecture",
           "builtin_svg", "dot_available", "format_shape", "module_macs", "summary", "to_dot"]


class _CallableModule(types.ModuleType):
    """Lets ``neuralatlas.architecture(model)`` work also after this package was imported.

    Importing the package binds the attribute ``neuralatlas.architecture`` to this module,
    shadowing the lazily exported function of the same name; calling the module calls it.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> ArchitectureGraph:
        return architecture(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
