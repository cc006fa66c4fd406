"""The pieces of an architecture graph: a node (one box of the drawing) and its shapes in JSON.

Below :mod:`.graph`, :mod:`.collapse`, :mod:`.render` and :mod:`.table`, which all read
them; keeping them here leaves no import cycle among those four.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Shape = Any  # tuple of ints for a tensor, a list of shapes for several tensors, None otherwise


@dataclass
class Node:
    """One box of the drawing.

    Attributes
    ----------
    id : str
        Unique in the graph: the module name, ``"name#2"`` for a module's second call,
        the fx name of a function node (``"add_1"``), ``"input"`` / ``"output"``.
    name : str
        The module name as ``named_modules()`` gives it (module nodes), else the operation.
    kind : str
        ``"input"``, ``"module"``, ``"function"`` or ``"output"``.
    type : str
        Module class name, or the function's name.
    output_shape : tuple or list or None
        One sample's output shape (no batch axis).
    n_params : int
        Parameters of the module (its own and its children's; 0 for functions).
    macs : int
        Multiply-accumulates of this call per sample.
    call, calls : int
        Which call of the module this node is (1-based), of how many.
    parent : str
        The innermost enclosing module ("" at the top), for grouping into clusters.
    repeat, span : int, str
        In a collapsed view (:meth:`ArchitectureGraph.collapsed`): how many identical
        consecutive blocks this node stands for, and their names (``"encoder.layer.0–5"``).
    """

    id: str
    name: str
    kind: str
    type: str
    output_shape: Shape = None
    n_params: int = 0
    macs: int = 0
    call: int = 1
    calls: int = 1
    parent: str = ""
    repeat: int = 1
    span: str = ""


def _shape_json(shape: Shape) -> Any:
    # a tuple is one output's shape, a list several outputs: JSON keeps them apart as {"t": [...]}
    if isinstance(shape, tuple):
        return {"t": list(shape)}
    if isinstance(shape, list):
        return [_shape_json(s) for s in shape]
    return shape


def _unjson(value: Any) -> Shape:
    if isinstance(value, dict) and "t" in value:
        return tuple(value["t"])
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value
