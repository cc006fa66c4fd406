"""The model's graph, with nodes named exactly as ``model.named_modules()`` names them.

Built with ``torch.fx`` (every module without children is kept as one node, so custom leaf
modules keep their names; functions such as the ``add`` of a residual connection become
nodes of their own). A model that fx cannot trace (data-dependent control flow, say) is
traced instead from one real forward: hooks on every leaf module record its call, and the
autograd graph between calls gives the edges, so residual branches still join where they
join. Shapes come from running the model once on the example input; a module called
twice (a shared module) gets one node per call, joined by a dashed "shared" edge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode

from neuralatlas.architecture.costs import COUNTED_FUNCTIONS, RULE_TYPES, function_macs, function_name, module_macs
from neuralatlas.architecture.nodes import Node, Shape, _shape_json, _unjson  # noqa: F401  (re-exported)
from neuralatlas.capture.hooks import preserved
from neuralatlas.capture.loop import call_model, pick_device
from neuralatlas.errors import AnalysisError, CaptureError
from neuralatlas.results import Result
from neuralatlas.vocabulary import renamed_parameter

_SPEC_ATTR = "_neuralatlas_spec"

def _shape_of(x: Any, batch: int | None) -> Shape:
    if isinstance(x, torch.Tensor):
        dims = tuple(int(s) for s in x.shape)
        # Per sample: drop the batch axis when the tensor carries it.
        return dims[1:] if batch is not None and dims and dims[0] == batch else dims
    if isinstance(x, (tuple, list)):
        shapes = [_shape_of(v, batch) for v in x]
        return shapes if any(s is not None for s in shapes) else None
    if isinstance(x, Mapping):
        shapes = [_shape_of(v, batch) for v in x.values()]
        return shapes if any(s is not None for s in shapes) else None
    if hasattr(x, "__dict__") and not isinstance(x, nn.Module):  # output objects (HF style)
        tensors = [v for v in vars(x).values() if isinstance(v, torch.Tensor)]
        return [_shape_of(t, batch) for t in tensors] or None
    return None


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def _batch_of(example: Any) -> int | None:
    ts = _tensors(example)
    return int(ts[0].shape[0]) if ts and ts[0].dim() > 0 else None


def _parent(name: str, names: set[str]) -> str:
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in names:
            return prefix
    return ""


def _is_leaf(module: nn.Module) -> bool:
    return not any(True for _ in module.children())


class _LeafTracer(fx.Tracer):
    """Keep every module without children as one node, so custom leaf modules keep their names."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _is_leaf(m) or super().is_leaf_module(m, module_qualified_name)


class _ShapeInterpreter(fx.Interpreter):
    """Runs the traced graph once, keeping each node's output shape and each call's MACs."""

    def __init__(self, gm: fx.GraphModule, batch: int | None):
        super().__init__(gm)
        self.batch = batch
        self.shapes: dict[str, Shape] = {}
        self.is_tensor: dict[str, bool] = {}
        self.macs: dict[str, int] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        self.shapes[n.name] = _shape_of(result, self.batch)
        self.is_tensor[n.name] = bool(_tensors(result))
        if n.op == "call_module":
            args, _ = self.fetch_args_kwargs_from_env(n)
            # a call_module node's target is the module's qualified name (fx types it str | Callable)
            self.macs[n.name] = module_macs(self.module.get_submodule(str(n.target)), args, result,
                                            self.batch or 1)
        elif n.op in ("call_function", "call_method") and function_name(n.target) in COUNTED_FUNCTIONS:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.macs[n.name] = function_macs(n.target, tuple(args), dict(kwargs), result, self.batch or 1)
        return result


#: Tokens of the example input of a Hugging Face text model when no input_shape is given.
HF_DEFAULT_TOKENS = 16


def _hf_input_name(model: nn.Module) -> str | None:
    from neuralatlas.zoo.hf import is_hf_model

    return str(getattr(model, "main_input_name", "input_ids")) if is_hf_model(model) else None


def _takes_ids(model: nn.Module) -> bool:
    """The first module the input meets is an embedding (looked up by integer ids)."""
    first = next((m for _, m in model.named_modules() if _is_leaf(m)), None)
    return isinstance(first, (nn.Embedding, nn.EmbeddingBag))


def _example(model: nn.Module, example_input: Any, input_shape: Sequence[int] | None,
             device: torch.device, input_dtype: torch.dtype | str | None = None) -> Any:
    if example_input is not None:
        return example_input
    hf_input = _hf_input_name(model)
    if input_shape is None:
        spec = getattr(model, _SPEC_ATTR, None) or {}
        if "input_shape" in spec.get("kwargs", {}):
            input_shape = spec["kwargs"]["input_shape"]
        elif spec.get("builder") == "vgg16":
            input_shape = (3, 224, 224)
        elif hf_input == "input_ids":
            input_shape = (HF_DEFAULT_TOKENS,)
        else:
            raise AnalysisError(
                f"No example input for {type(model).__name__}: pass example_input (a batch,"
                " e.g. torch.zeros(1, 3, 32, 32)) or input_shape=(3, 32, 32).")
    shape = (2, *(int(s) for s in input_shape))
    if input_dtype is not None:
        dtype = getattr(torch, input_dtype, None) if isinstance(input_dtype, str) else input_dtype
        if not isinstance(dtype, torch.dtype):
            raise AnalysisError(f"input_dtype={input_dtype!r} is not a torch dtype; use e.g. 'long' or 'float32'.")
    elif hf_input == "input_ids" or (hf_input is None and _takes_ids(model)):
        dtype = torch.long  # token ids for an embedding, never floats
    else:
        first = next((p for p in model.parameters() if p.is_floating_point()), None)
        dtype = first.dtype if first is not None else torch.float32
    x = torch.zeros(shape, dtype=dtype)
    if hf_input == "input_ids":
        return {"input_ids": x, "attention_mask": torch.ones(shape, dtype=torch.long)}
    if hf_input is not None:
        return {hf_input: x}
    return x


@renamed_parameter("n", "n_samples")
def example_from_dataset(data: Any, n_samples: int = 2) -> Any:
    """A batch of the first ``n_samples`` inputs of a data set of ``(inputs, label)`` items.

    It is collated as a DataLoader would (dict inputs stay dicts, integer ids stay integers).
    ``n`` is the old name of ``n_samples``.
    """
    from torch.utils.data import default_collate

    items = [data[i][0] for i in range(min(n_samples, len(data)))]
    if not items:
        raise AnalysisError("The data set is empty; pass input_shape or example_input for the architecture.")
    return default_collate(items)


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, Mapping):
        return {k: _to(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    return x


class _FunctionCounter(TorchFunctionMode):
    """Counts the MACs of tensor functions (matmuls, ``F.linear``, attention) where they run."""

    def __init__(self, calls: ModuleCalls):
        super().__init__()
        self.calls = calls

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if function_name(func) in COUNTED_FUNCTIONS:
            stack = self.calls.stack
            if not (stack and stack[-1][1]):  # inside a Linear/Conv/...: its own rule counts it
                owner = stack[-1][0] if stack else ""
                macs = function_macs(func, tuple(args), dict(kwargs), out, self.calls.batch or 1)
                self.calls.own_macs[owner] = self.calls.own_macs.get(owner, 0) + macs
        return out


class ModuleCalls:
    """Forward hooks on every named module that record its output shapes and its own MACs.

    Each call's output shape is kept in order, with the MACs each module does itself (``own_macs``: its rule
    for Linear/Conv/..., else the tensor functions its ``forward`` calls directly; ``""`` is the root's own
    forward).
    """

    def __init__(self, model: nn.Module, batch: int | None):
        self.model = model
        self.batch = batch
        self.shapes: dict[str, list[Shape]] = {}
        self.own_macs: dict[str, int] = {}
        self.stack: list[tuple[str, bool]] = []   # (module, counted by a module rule)
        self.handles: list[Any] = []
        self._mode: _FunctionCounter | None = None

    def __enter__(self) -> ModuleCalls:
        for name, m in self.model.named_modules():
            if name:
                self.handles.append(m.register_forward_pre_hook(self._pre(name)))
                self.handles.append(m.register_forward_hook(self._hook(name)))
        self._mode = _FunctionCounter(self)
        self._mode.__enter__()
        return self

    def _pre(self, name: str):
        def hook(module: nn.Module, args: Any) -> None:
            ruled = isinstance(module, RULE_TYPES) or bool(self.stack and self.stack[-1][1])
            self.stack.append((name, ruled))
        return hook

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            self.shapes.setdefault(name, []).append(_shape_of(out, self.batch))
            if self.stack and self.stack[-1][0] == name:
                _, ruled = self.stack.pop()
                if isinstance(module, RULE_TYPES) and not (self.stack and self.stack[-1][1]):
                    macs = module_macs(module, args, out, self.batch or 1)
                    self.own_macs[name] = self.own_macs.get(name, 0) + macs
        return hook

    def __exit__(self, *exc: Any) -> None:
        if self._mode is not None:
            self._mode.__exit__(*exc)
            self._mode = None
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.stack.clear()


def _module_rows(model: nn.Module, calls: Mapping[str, list[Shape]],
                 macs_by_module: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per named module (containers included), in ``named_modules()`` order.

    ``macs_by_module`` holds each module's own MACs; a row's ``macs`` adds its descendants'.
    """
    rows = []
    names = [n for n, _ in model.named_modules() if n]
    for name, m in model.named_modules():
        if not name:
            continue
        own = list(m.parameters(recurse=False))
        total = list({id(p): p for p in m.parameters()}.values())
        leaf = _is_leaf(m)
        macs = int(macs_by_module.get(name, 0))
        if not leaf:
            macs += int(sum(v for k, v in macs_by_module.items() if k.startswith(name + ".")))
        shapes = calls.get(name, [])
        rows.append({
            "name": name, "type": type(m).__name__, "depth": name.count("."),
            "parent": _parent(name, set(names)), "is_leaf": leaf,
            "output_shape": shapes[0] if shapes else None, "calls": len(shapes),
            "params": sum(p.numel() for p in own),
            "params_total": sum(p.numel() for p in total),
            "trainable": sum(p.numel() for p in own if p.requires_grad),
            "macs": macs,
        })
    return rows


def _fx_graph(
    model: nn.Module, example: Any, batch: int | None
) -> tuple[list[Node], list[tuple[str, str]], dict[str, int]]:
    graph = _LeafTracer().trace(model)
    gm = fx.GraphModule(model, graph)
    interp = _ShapeInterpreter(gm, batch)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if isinstance(example, Mapping):
        args = [example[n.target] for n in placeholders if n.target in example]
    elif isinstance(example, (tuple, list)):
        args = list(example)
    else:
        args = [example]
    interp.run(*args)
    modules = dict(model.named_modules())
    names = set(n for n in modules if n)
    counts: dict[str, int] = {}
    for n in graph.nodes:
        if n.op == "call_module":
            counts[n.target] = counts.get(n.target, 0) + 1
    seen: dict[str, int] = {}
    nodes: list[Node] = []
    kept: dict[str, str] = {}          # fx node name -> our node id
    macs_by_module: dict[str, int] = {}
    for n in graph.nodes:
        shape = interp.shapes.get(n.name)
        if n.op == "placeholder":
            if n.name not in interp.shapes:  # an unused optional argument
                continue
            nid = "input" if len(placeholders) == 1 else f"input:{n.target}"
            nodes.append(Node(nid, str(n.target), "input", "input", shape))
        elif n.op == "call_module":
            target = str(n.target)
            k = seen[target] = seen.get(target, 0) + 1
            nid = target if k == 1 else f"{target}#{k}"
            m = modules[target]
            macs = interp.macs.get(n.name, 0)
            macs_by_module[target] = macs_by_module.get(target, 0) + macs
            nodes.append(Node(nid, target, "module", type(m).__name__, shape,
                              sum(p.numel() for p in m.parameters()), macs, k, counts[target],
                              _parent(target, names)))
        elif n.op in ("call_function", "call_method"):
            if not interp.is_tensor.get(n.name, False):
                continue  # size(), getattr(): plumbing, not part of the picture
            fname = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
            stack = n.meta.get("nn_module_stack") or {}
            parent = ""
            for path in reversed([v[0] if isinstance(v, tuple) else k for k, v in stack.items()]):
                if path in names:
                    parent = path
                    break
            nid = n.name
            nodes.append(Node(nid, str(fname), "function", str(fname), shape, macs=interp.macs.get(n.name, 0),
                              parent=parent))
        elif n.op == "output":
            nodes.append(Node("output", "output", "output", "output", shape))
        else:
            continue  # get_attr: a parameter used directly; folded into its users
        kept[n.name] = nodes[-1].id

    def sources(n: fx.Node, visited: set[str]) -> list[str]:
        out: list[str] = []
        for a in n.all_input_nodes:
            if a.name in visited:
                continue
            visited.add(a.name)
            if a.name in kept:
                out.append(kept[a.name])
            elif interp.is_tensor.get(a.name, True):
                out += sources(a, visited)
            # else: x.size(0), a shape: it carries no data, so it draws no edge
        return out

    edges: list[tuple[str, str]] = []
    for n in graph.nodes:
        if n.name not in kept:
            continue
        for s in sources(n, set()):
            e = (s, kept[n.name])
            if e not in edges:
                edges.append(e)
    return nodes, edges, macs_by_module


def _hook_graph(
    model: nn.Module, example: Any, batch: int | None
) -> tuple[list[Node], list[tuple[str, str]], dict[str, int]]:
    """Trace by running: hooks on leaf modules, autograd links between their calls."""
    modules = [(n, m) for n, m in model.named_modules() if n and _is_leaf(m)]
    names = set(n for n, _ in model.named_modules() if n)
    example = _require_grad(example)
    input_ids = {id(t): "input" for t in _tensors(example)}
    producers: dict[Any, str] = {}
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    calls: dict[str, int] = {}
    pending: dict[int, list[str]] = {}   # id(module) -> the producers of its inputs
    macs_by_module: dict[str, int] = {}

    def walk(fn: Any) -> list[str]:
        found, stack, visited = [], [fn], set()
        while stack:
            f = stack.pop()
            if f is None or f in visited:
                continue
            visited.add(f)
            if f in producers:
                found.append(producers[f])
                continue
            var = getattr(f, "variable", None)  # AccumulateGrad of a leaf tensor
            if var is not None and id(var) in input_ids:
                found.append("input")
                continue
            stack.extend(nf for nf, _ in getattr(f, "next_functions", ()))
        return found

    def inputs_of(args: Any) -> list[str]:
        out: list[str] = []
        for t in _tensors(args):
            if t.grad_fn is not None:
                out += walk(t.grad_fn)
            elif id(t) in input_ids:
                out.append("input")
        return out

    def pre(name: str):
        def hook(module: nn.Module, args: Any, kwargs: Any = None) -> None:
            # Read before the call: an in-place module rewrites its input's grad_fn.
            pending[id(module)] = inputs_of((args, kwargs or {}))
        return hook

    def post(name: str):
        def hook(module: nn.Module, args: Any, kwargs: Any, out: Any = None) -> None:
            k = calls[name] = calls.get(name, 0) + 1
            nid = name if k == 1 else f"{name}#{k}"
            macs = module_macs(module, args, out, batch or 1)
            macs_by_module[name] = macs_by_module.get(name, 0) + macs
            nodes.append(Node(nid, name, "module", type(module).__name__, _shape_of(out, batch),
                              sum(p.numel() for p in module.parameters()), macs, k, 0, _parent(name, names)))
            for s in pending.pop(id(module), []):
                if (s, nid) not in edges:
                    edges.append((s, nid))
            for t in _tensors(out):
                if t.grad_fn is not None:
                    producers[t.grad_fn] = nid
        return hook

    handles = []
    try:
        for name, m in modules:
            handles.append(m.register_forward_pre_hook(pre(name), with_kwargs=True))
            handles.append(m.register_forward_hook(post(name), with_kwargs=True))
        with torch.enable_grad():
            out = call_model(model, example)
    finally:
        for h in handles:
            h.remove()
    for node in nodes:
        node.calls = calls[node.name]
    in_node = Node("input", "input", "input", "input", _shape_of(example, batch))
    out_node = Node("output", "output", "output", "output", _shape_of(out, batch))
    for s in inputs_of(out):
        if (s, "output") not in edges:
            edges.append((s, "output"))
    return [in_node, *nodes, out_node], edges, macs_by_module


def _require_grad(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().requires_grad_(True) if x.is_floating_point() else x
    if isinstance(x, Mapping):
        return {k: _require_grad(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_require_grad(v) for v in x)
    return x


@dataclass
class ArchitectureGraph(Result):
    """A model's graph: nodes named as ``named_modules()`` names them, edges, and a module table.

    Attributes
    ----------
    nodes : list of Node
    edges : list of (source id, target id)
    modules : list of dict
        One row per named module, containers included, in ``named_modules()`` order: name,
        type, depth, parent, is_leaf, output_shape (first call), calls, params (its own),
        params_total (with children), trainable, macs (per sample; containers sum their
        leaves).
    method : "fx" or "hooks"
        How the graph was traced (``"hooks"`` when torch.fx could not trace the model).
    model_type : str
    input_shape : shape of one sample of the example input
    fx_error : str or None
        Why torch.fx failed, when the hook-based tracing was used.
    total_macs : int
        Multiply-accumulates of one forward pass per sample: every module's own (Linear,
        Conv, ... by rule) and every counted tensor function (matmuls, attention) wherever it
        runs, the root's own ``forward`` included.

    Example
    -------
    >>> import torch
    >>> from neuralatlas.zoo import cnn
    >>> g = architecture(cnn(), torch.zeros(1, 1, 8, 8))
    >>> g.module_names[:3]
    ['conv1', 'relu1', 'pool1']
    >>> svg = g.to_svg()
    """

    nodes: list[Node]
    edges: list[tuple[str, str]]
    modules: list[dict[str, Any]]
    method: str = "fx"
    model_type: str = ""
    input_shape: Shape = None
    fx_error: str | None = None
    total_params: int = 0
    trainable_params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    total_macs: int | None = None

    kind = "architecture"

    @property
    def module_names(self) -> list[str]:
        """Every named module, exactly as ``model.named_modules()`` lists them."""
        return [r["name"] for r in self.modules]

    def node(self, node_id: str) -> Node:
        """The node with this id (a module name for a module's first call)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise AnalysisError(f"No node {node_id!r} in the graph; module nodes: "
                            f"{[n.id for n in self.nodes if n.kind == 'module']}.")

    def predecessors(self, node_id: str) -> list[str]:
        """Ids of the nodes with an edge into ``node_id``."""
        return [s for s, t in self.edges if t == node_id]

    def successors(self, node_id: str) -> list[str]:
        """Ids of the nodes ``node_id`` has an edge to."""
        return [t for s, t in self.edges if s == node_id]

    # -- summary and drawing (implemented beside, in table.py, collapse.py and render.py) ---
    def summary(self, depth: int | None = None, repeats: bool = False):
        """The torchinfo-like table: :class:`~neuralatlas.architecture.table.ModelSummary`.

        It is the result protocol's summary too: a dict of the headline numbers (strict
        JSON), that prints as the table and carries it as ``.table``. ``depth`` keeps rows of at
        most that many name segments; ``repeats=True`` shows a run
        of identical consecutive blocks as one row (numbers per block, ``×N``). Totals are
        always those of the whole model.
        """
        from neuralatlas.architecture.table import ModelSummary

        return ModelSummary.from_graph(self, depth=depth, repeats=repeats)

    def collapsed(self, depth: int | str | None = None, repeats: bool = True,
                  max_nodes: int = 40) -> ArchitectureGraph:
        """A readable view of a big graph (see :mod:`neuralatlas.architecture.collapse`).

        Parameters
        ----------
        depth : int, "auto" or None
            Merge modules nested deeper than ``depth`` name segments into their ancestor;
            ``"auto"``: the deepest depth that leaves at most ``max_nodes`` boxes; ``None``:
            no merging.
        repeats : bool
            Draw each run of identical consecutive blocks once, labelled ``×N``.
        """
        from neuralatlas.architecture.collapse import auto_depth, collapse_depth, collapse_repeats

        graph = collapse_repeats(self) if repeats else self
        if depth == "auto":
            depth = auto_depth(self, max_nodes)
        elif depth is not None and not isinstance(depth, int):
            raise AnalysisError(f"depth={depth!r}; pass an int >= 1, 'auto' or None.")
        return collapse_depth(graph, depth) if depth is not None else graph

    def to_dot(self, rankdir: str = "TB") -> str:
        """The graph in Graphviz's DOT language (clusters for containers)."""
        from neuralatlas.architecture.render import to_dot

        return to_dot(self, rankdir=rankdir)

    def to_svg(self, engine: str = "auto", rankdir: str = "TB", layout: str = "tall",
               width: int = 1400) -> str:
        """SVG text of the graph, drawn by Graphviz or by a built-in layout.

        Graphviz ``dot`` draws it with ``engine="dot"``, a simple built-in layered layout with ``"builtin"``;
        ``"auto"`` uses dot when it is installed.

        ``layout="wide"`` lays the graph out left to right in rows that wrap at ``width``
        pixels (built-in layout; with ``engine="dot"`` it is ``rankdir="LR"``, unwrapped), to
        use a page's width for a long chain of blocks.
        """
        from neuralatlas.architecture.render import to_svg

        return to_svg(self, engine=engine, rankdir=rankdir, layout=layout, width=width)

    def to_png(self, path: str | Path, rankdir: str = "TB", dpi: int = 150) -> Path:
        """Write a PNG drawn by Graphviz ``dot`` (needs the ``graphviz`` package)."""
        from neuralatlas.architecture.render import render_file

        return render_file(self, path, "png", rankdir=rankdir, dpi=dpi)

    def render(self, path: str | Path, rankdir: str = "TB") -> Path:
        """Write the drawing to ``path``; the suffix picks the format (.svg, .png, .pdf, .dot)."""
        from neuralatlas.architecture.render import render_file

        return render_file(self, path, Path(path).suffix.lstrip(".").lower() or "svg", rankdir=rankdir)

    def to_html(self, engine: str = "auto", depth: int | str | None = None, layout: str = "auto") -> str:
        """An HTML fragment: the SVG where clicking a layer copies its name to the clipboard.

        Drawn as :meth:`view` chooses (a big model collapsed to fit, wide), unless ``depth``
        or ``layout`` say otherwise.
        """
        from neuralatlas.architecture.render import to_html

        graph, chosen = self.view(depth, layout)
        return to_html(graph, engine=engine, layout=chosen)

    def _repr_html_(self) -> str:
        return self.to_html()  # names in the SVG are escaped by the renderer

    def to_frame(self, depth: int | None = None, repeats: bool = False) -> Any:
        """The module table (a DataFrame, one row per named module), as :meth:`summary` cuts it."""
        return self.summary(depth=depth, repeats=repeats).to_frame()

    def to_json(self) -> dict[str, Any]:
        """Nodes, edges and the module table as plain JSON-able data (for the report)."""
        return {
            "model_type": self.model_type, "method": self.method, "input_shape": _shape_json(self.input_shape),
            "fx_error": self.fx_error, "total_params": self.total_params,
            "trainable_params": self.trainable_params, "total_macs": self.total_macs,
            "nodes": [{**asdict(n), "output_shape": _shape_json(n.output_shape)} for n in self.nodes],
            "edges": [list(e) for e in self.edges],
            "modules": [{**r, "output_shape": _shape_json(r["output_shape"])} for r in self.modules],
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArchitectureGraph:
        """The graph from :meth:`to_json`'s output."""
        nodes = [Node(**{**n, "output_shape": _unjson(n["output_shape"])}) for n in data["nodes"]]
        modules = [{**r, "output_shape": _unjson(r["output_shape"])} for r in data["modules"]]
        return cls(nodes, [tuple(e) for e in data["edges"]], modules, data.get("method", "fx"),
                   data.get("model_type", ""), _unjson(data.get("input_shape")), data.get("fx_error"),
                   int(data.get("total_params", 0)), int(data.get("trainable_params", 0)),
                   extra=dict(data.get("extra") or {}), total_macs=data.get("total_macs"))

    def view(self, depth: int | str | None = None, layout: str = "auto",
             max_nodes: int = 40) -> tuple[ArchitectureGraph, str]:
        """The graph to draw and its layout: small graphs as they are.

        A graph of more than ``max_nodes`` boxes with its repeated blocks drawn once and, if
        still too big, merged to the deepest depth that fits (``depth`` forces one);
        ``layout="auto"`` is ``"wide"`` beyond 20 boxes, else ``"tall"``.
        """
        if depth is not None:
            graph = self.collapsed(depth=depth, max_nodes=max_nodes)
        elif len(self.nodes) > max_nodes:
            graph = self.collapsed()
            if len(graph.nodes) > max_nodes:
                graph = self.collapsed(depth="auto", max_nodes=max_nodes)
        else:
            graph = self
        if layout == "auto":
            layout = "wide" if len(graph.nodes) > 20 else "tall"
        return graph, layout

    def save(self, directory: str | os.PathLike[str], *, depth: int | str | None = None, layout: str = "auto",
             max_nodes: int = 40) -> Path:
        """Write the graph and its summaries into ``directory`` and return the directory.

        The files are ``graph.json`` (the full graph), ``summary.csv``, ``summary.txt`` and ``architecture.svg``
        (for a PNG, see :meth:`to_png`).

        The drawing is :meth:`view`'s: a big model's repeated blocks are drawn once (×N) and its
        nesting cut to fit ``max_nodes`` boxes, laid out to use the page width; ``summary.txt``
        then shows repeated blocks once too. The JSON and CSV always hold every module.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        written = [d / "graph.json", d / "summary.csv", d / "summary.txt", d / "architecture.svg"]
        self.write_json(written[0], self.to_json())
        summary = self.summary()
        summary.table.to_csv(written[1], index=False)
        graph, chosen = self.view(depth, layout, max_nodes)
        text = self.summary(repeats=True) if graph is not self else summary
        written[2].write_text(str(text) + "\n")
        written[3].write_text(graph.to_svg(layout=chosen))
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ArchitectureGraph:
        """Read ``graph.json`` written by :meth:`save`."""
        path = cls._required(directory, "graph.json", what="architecture graph",
                             fix="write one with architecture(model).save(dir)")
        return cls.from_json(cls.read_json(path))

    def __repr__(self) -> str:
        n_mod = sum(1 for n in self.nodes if n.kind == "module")
        return (f"ArchitectureGraph({self.model_type}, {n_mod} module calls, {len(self.edges)} edges,"
                f" params={self.total_params:,}, traced with {self.method})")


def architecture(
    model: nn.Module,
    example_input: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    method: str = "auto",
    device: str | torch.device | None = "cpu",
    input_dtype: torch.dtype | str | None = None,
) -> ArchitectureGraph:
    """The model's graph, with every layer named as capture and the figures name it.

    Parameters
    ----------
    model : torch.nn.Module
    example_input : tensor, tuple or dict, optional
        A batch the model accepts (tuple → ``model(*x)``, dict → ``model(**x)``). Default:
        zeros of ``input_shape`` (or the shape a zoo model was built for), batch 2.
    input_shape : (C, H, W) or (T,), optional
        One sample's shape when no ``example_input`` is given. Integer token ids (zeros of
        dtype long) are fed when the first module is an ``nn.Embedding``; a Hugging Face text
        model gets ``{"input_ids", "attention_mask"}`` (``HF_DEFAULT_TOKENS`` tokens by default).
    input_dtype : torch.dtype or str, optional
        The dtype of the zeros made from ``input_shape`` (``"long"`` for ids), overriding the
        choice above.
    method : "auto", "fx" or "hooks"
        ``"auto"`` tries torch.fx and falls back to hook-based tracing for models fx
        cannot trace; the others force one.
    device : str, optional
        Where to run the one forward pass (default CPU; ``None`` picks CUDA when present).

    Returns
    -------
    ArchitectureGraph
        ``.to_svg()``, ``.render(path)``, ``.summary()``, ``.to_html()``, ``.save(dir)``.

    Raises
    ------
    AnalysisError
        No example input can be made, or the model fails on it.

    Example
    -------
    >>> from neuralatlas.zoo import vgg
    >>> g = architecture(vgg((3, 32, 32)))
    >>> g.node("block1.conv1").output_shape
    (32, 32, 32)
    """
    if method not in ("auto", "fx", "hooks"):
        raise AnalysisError(f"method={method!r}; choose 'auto', 'fx' or 'hooks'.")
    try:
        dev = pick_device(device)
    except CaptureError as err:
        raise AnalysisError(str(err)) from None
    example = _to(_example(model, example_input, input_shape, dev, input_dtype), dev)
    batch = _batch_of(example)
    fx_error = None
    with preserved(model):
        model.eval()
        model.to(dev)
        with ModuleCalls(model, batch) as calls, torch.no_grad():
            try:
                out = call_model(model, example)
            except Exception as err:
                raise AnalysisError(
                    f"{type(model).__name__} failed on the example input of shape"
                    f" {_shape_of(example, None)}: {err}. Pass an example_input (or input_shape)"
                    " the model accepts.") from err
        del out
        built = None
        if method in ("auto", "fx"):
            try:
                with torch.no_grad():
                    built = _fx_graph(model, example, batch)
                used = "fx"
            except Exception as err:  # fx raises many types for untraceable code
                if method == "fx":
                    raise AnalysisError(f"torch.fx cannot trace {type(model).__name__}: {err}."
                                        " Use method='hooks' (or 'auto').") from err
                fx_error = f"{type(err).__name__}: {err}"
        if built is None:
            built = _hook_graph(model, example, batch)
            used = "hooks"
    nodes, edges, _ = built
    own = calls.own_macs  # one forward, every module's own MACs and the functions' (one source)
    for node in nodes:
        # a custom leaf doing its arithmetic with functions: the node carries what it did
        if node.kind == "module" and not node.macs and node.calls == 1 and own.get(node.name):
            node.macs = int(own[node.name])
    rows = _module_rows(model, calls.shapes, own)
    params = {id(p): p for p in model.parameters()}
    return ArchitectureGraph(
        nodes, edges, rows, used, type(model).__name__,
        _shape_of(example, batch), fx_error,
        int(sum(p.numel() for p in params.values())),
        int(sum(p.numel() for p in params.values() if p.requires_grad)),
        total_macs=int(sum(own.values())),
    )


def summary(model: nn.Module, example_input: Any = None, *,
            input_shape: Sequence[int] | None = None, device: str | torch.device | None = "cpu",
            input_dtype: torch.dtype | str | None = None, depth: int | None = None):
    """A torchinfo-like summary: output shapes, parameters and multiply-accumulates per layer.

    ``str(summary(model))`` is the text table; ``.table`` the DataFrame (``.to_frame()``).

    Example
    -------
    >>> from neuralatlas.zoo import cnn
    >>> s = summary(cnn())
    >>> int(s.table.loc[s.table.name == "conv1", "macs"].iloc[0])
    9216
    """
    graph = architecture(model, example_input, input_shape=input_shape, device=device, input_dtype=input_dtype)
    return graph.summary(depth=depth)

