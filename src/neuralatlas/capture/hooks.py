"""Layer names, forward hooks that never leak, and a model left exactly as found."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from neuralatlas.errors import CaptureError, LayerError, close_matches

# How a layer's output is reduced at capture time. Channel-first maps ([B, C, ...]) reduce
# over every axis after the channel; token sequences ([B, T, D]) over the token axis.
SPATIAL_REDUCTIONS = ("mean", "max")
TOKEN_REDUCTIONS = ("token_mean", "token_max", "first_token", "last_token")
REDUCTIONS = SPATIAL_REDUCTIONS + TOKEN_REDUCTIONS


def layer_names(model: nn.Module) -> list[str]:
    """Every named sub-module of ``model`` in registration order (the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def match_layer_patterns(names: Sequence[str], patterns: str | Sequence[str], *,
                         owner: str = "the model") -> list[str]:
    """The names (in their given order) that match any of the glob ``patterns``.

    ``*`` and ``?`` match within one dotted segment (``layers.*`` is ``layers.0``, not
    ``layers.0.conv``), ``**`` across segments, ``[...]`` a character set. A pattern that
    matches nothing raises :class:`LayerError` listing the names that exist. Every
    framework's resolver uses this, so a pattern means the same for torch, Flax and Keras.
    """
    import re

    def compile_(pattern: str) -> re.Pattern[str]:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            ch = pattern[i]
            if ch == "*":
                out.append("[^.]*")
            elif ch == "?":
                out.append("[^.]")
            elif ch == "[" and "]" in pattern[i + 1:]:
                j = pattern.index("]", i + 1)
                body = pattern[i + 1:j]
                out.append("[" + ("^" + re.escape(body[1:]) if body.startswith("!") else re.escape(body)) + "]")
                i = j
            else:
                out.append(re.escape(ch))
            i += 1
        return re.compile("".join(out) + r"\Z")

    names = list(names)
    chosen: set[str] = set()
    for pattern in [patterns] if isinstance(patterns, str) else list(patterns):
        rx = compile_(pattern)
        hits = [n for n in names if rx.match(n)]
        if not hits:
            near = close_matches(pattern, names)
            near_txt = f" Close matches: {', '.join(near)}." if near else ""
            listing = ", ".join(names) if len(names) <= 60 else ", ".join(names[:60]) + ", ..."
            raise LayerError(f"No layer of {owner} matches {pattern!r}.{near_txt} Layers: {listing}")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def resolve_layers(model: nn.Module, patterns: str | Sequence[str] | None = None) -> list[str]:
    """Turn names and glob patterns into the model's layer names, in model order.

    ``None`` selects every leaf module (one without children). A name or pattern that
    matches nothing raises :class:`LayerError` listing the layers that exist.

    Examples
    --------
    >>> resolve_layers(model, ["fc*", "conv2"])       # doctest: +SKIP
    ['conv2', 'fc1', 'fc2']
    """
    modules = dict(model.named_modules())
    names = [n for n in modules if n]
    if patterns is None:
        return [n for n in names if not any(True for _ in modules[n].children())]
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            near = close_matches(pattern, names)
            near_txt = f" Close matches: {', '.join(near)}." if near else ""
            listing = ", ".join(names) if len(names) <= 60 else ", ".join(names[:60]) + ", ..."
            raise LayerError(
                f"No layer of {type(model).__name__} matches {pattern!r}.{near_txt}"
                f" Layers are named as model.named_modules() names them: {listing}"
            )
        chosen.update(hits)
    return [n for n in names if n in chosen]


def select_tensor(obj: Any, selector: int | str | Callable[[Any], torch.Tensor] | None = None,
                  what: str = "output") -> torch.Tensor:
    """Pick one tensor out of a module's or model's output.

    Tensors pass through; ``selector`` picks an element (int), a key or attribute (str), or is a
    function of the output. By default: the first tensor of a tuple/list, ``logits`` (or the
    first tensor) of a mapping or dataclass-like object.
    """
    if callable(selector):
        return selector(obj)
    if isinstance(obj, torch.Tensor) and selector is None:
        return obj
    if isinstance(obj, (tuple, list)):
        if isinstance(selector, int):
            return obj[selector]
        for item in obj:
            if isinstance(item, torch.Tensor):
                return item
    items: Mapping[str, Any] | None = None
    if isinstance(obj, Mapping):
        items = obj
    elif dataclasses.is_dataclass(obj):
        items = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif hasattr(obj, "__dict__"):
        items = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    if items is not None:
        if isinstance(selector, str):
            if selector not in items:
                raise CaptureError(f"The {what} has no field {selector!r}; fields: {list(items)}.")
            return items[selector]
        if "logits" in items and isinstance(items["logits"], torch.Tensor):
            return items["logits"]
        for value in items.values():
            if isinstance(value, torch.Tensor):
                return value
    raise CaptureError(
        f"Cannot find a tensor in the {what} of type {type(obj).__name__}; pass a selector"
        " (an index, a field name, or a function returning the tensor)."
    )


def replace_tensor(obj: Any, new: torch.Tensor, selector: int | str | None = None) -> Any:
    """Return ``obj`` with the tensor that :func:`select_tensor` picks replaced by ``new``."""
    if isinstance(obj, torch.Tensor):
        return new
    if isinstance(obj, (tuple, list)):
        idx = selector if isinstance(selector, int) else next(
            i for i, item in enumerate(obj) if isinstance(item, torch.Tensor))
        items = list(obj)
        items[idx] = new
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    return None  # other containers: leave the forward untouched


@contextlib.contextmanager
def preserved(model: nn.Module, restore_weights: bool = False) -> Iterator[nn.Module]:
    """Leave ``model`` as found: training flags, ``requires_grad``, device and (optionally) weights.

    Restores also when the body raises.
    """
    modes = {name: m.training for name, m in model.named_modules()}
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    first = next(model.parameters(), None)
    device = first.device if first is not None else None
    weights = ({k: v.detach().clone() for k, v in model.state_dict().items()}
               if restore_weights else None)
    try:
        yield model
    finally:
        now = next(model.parameters(), None)
        if device is not None and now is not None and now.device != device:
            model.to(device)
        if weights is not None:
            model.load_state_dict(weights)
        for name, m in model.named_modules():
            m.training = modes.get(name, m.training)
        for name, p in model.named_parameters():
            p.requires_grad_(grads.get(name, p.requires_grad))


class HookSet:
    """Forward hooks on named layers, registered on ``__enter__`` and always removed on exit.

    Subclasses say what a hook does in ``_hook(name)``.
    """

    model: nn.Module
    layers: list[str]
    _handles: list[Any]

    def _hook(self, name: str) -> Callable[..., Any]:
        raise NotImplementedError

    def __enter__(self):
        modules = dict(self.model.named_modules())
        for name in self.layers:
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


class Recorder(HookSet):
    """Forward hooks on named layers that keep each layer's output of the current forward."""

    def __init__(self, model: nn.Module, layers: Sequence[str], *,
                 keep_graph: bool = False,
                 layer_output: Mapping[str, int | str] | None = None,
                 repeated: str = "error",
                 sink: Callable[[str, torch.Tensor], None] | None = None):
        if repeated not in ("error", "first", "last"):
            raise CaptureError(f"repeated={repeated!r}; choose 'error', 'first' or 'last'.")
        self.model = model
        self.layers = list(layers)
        self.keep_graph = keep_graph
        self.layer_output = dict(layer_output or {})
        self.repeated = repeated
        # sink(layer, tensor) consumes an output inside the hook, before a later in-place op
        # can change it; without one, outputs are kept as detached copies.
        self.sink = sink
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self._handles: list[Any] = []

    def _selector(self, layer: str) -> int | str | None:
        for pattern, sel in self.layer_output.items():
            if fnmatch.fnmatchcase(layer, pattern):
                return sel
        return None

    def _hook(self, layer: str):
        def hook(module: nn.Module, args: Any, output: Any):
            self.calls[layer] = self.calls.get(layer, 0) + 1
            if self.calls[layer] > 1 and self.repeated == "first":
                return None
            tensor = select_tensor(output, self._selector(layer), what=f"output of layer {layer!r}")
            if self.keep_graph and not tensor.requires_grad and tensor.is_floating_point():
                # Nothing upstream is on the graph (integer inputs, frozen weights): start it here.
                tensor = tensor.detach().requires_grad_(True)
            if self.sink is not None:
                self.sink(layer, tensor)
            if self.keep_graph:
                self.outputs[layer] = tensor
            elif self.sink is None:
                self.outputs[layer] = tensor.detach().clone()
            if self.keep_graph:
                # Later in-place ops (ReLU(inplace=True)) would otherwise change the recorded
                # tensor and the meaning of its gradient; the network goes on with a copy.
                return replace_tensor(output, tensor.clone(), self._selector(layer))
            return None
        return hook

    def reset(self) -> None:
        self.outputs.clear()
        self.calls.clear()

    def check_calls(self) -> None:
        """Raise if a layer ran more than once in the last forward (a shared module)."""
        shared = {k: v for k, v in self.calls.items() if v > 1}
        if shared and self.repeated == "error":
            detail = ", ".join(f"{k!r} ran {v} times" for k, v in shared.items())
            raise CaptureError(
                f"Shared modules in one forward pass: {detail}. A single activation per sample is"
                " ambiguous; pass repeated='first' or repeated='last' to choose a call."
            )
        missing = [name for name in self.layers if name not in self.calls]
        if missing:
            raise CaptureError(
                f"Layers {missing} did not run in the forward pass (unused modules, or modules"
                " called through a functional path); choose layers that run."
            )



@contextlib.contextmanager
def hooks(model: nn.Module, layers: str | Sequence[str] | None = None,
          **kwargs: Any) -> Iterator[Recorder]:
    """Record the outputs of ``layers`` during forwards; hooks and mode restored on exit.

    Examples
    --------
    >>> with hooks(model, ["fc1"]) as recorded:          # doctest: +SKIP
    ...     model(x)
    >>> recorded.outputs["fc1"].shape
    """
    names = resolve_layers(model, layers)
    with preserved(model), Recorder(model, names, **kwargs) as rec:
        yield rec
