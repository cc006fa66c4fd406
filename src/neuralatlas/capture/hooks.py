"""Layer names, forward hooks that never leak, and a model left exactly as found."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from neuralatlas.errors import CaptureError

# re-exported: the one meaning of a layer pattern lives in neuralatlas.patterns
from neuralatlas.patterns import expand_layers, is_pattern, layer_matches, match_pattern  # noqa: F401

# How a layer's output is reduced at capture time. Channel-first maps ([B, C, ...]) reduce
# over every axis after the channel; token sequences ([B, T, D]) over the token axis.
SPATIAL_REDUCTIONS = ("mean", "max")
TOKEN_REDUCTIONS = ("token_mean", "token_max", "first_token", "last_token")
REDUCTIONS = SPATIAL_REDUCTIONS + TOKEN_REDUCTIONS


def layer_names(model: nn.Module) -> list[str]:
    """Every named sub-module of ``model`` in registration order (the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layers(model: nn.Module, patterns: str | Sequence[str] | None = None) -> list[str]:
    """Turn names and glob patterns into the model's layer names, in the order given.

    ``None`` selects every leaf module (one without children), in model order. In patterns
    ``*`` matches within one dotted segment and ``**`` across segments; each pattern expands
    in model order. A name or pattern that matches nothing raises :class:`LayerError` listing
    the layers that exist.

    Examples
    --------
    >>> resolve_layers(model, ["fc*", "conv2"])       # doctest: +SKIP
    ['fc1', 'fc2', 'conv2']
    >>> resolve_layers(bert, "encoder.layer.*.output")  # doctest: +SKIP
    ['encoder.layer.0.output', ..., 'encoder.layer.5.output']
    """
    return [name for name, _ in resolve_layer_patterns(model, patterns)]


def resolve_layer_patterns(model: nn.Module, patterns: str | Sequence[str] | None = None
                           ) -> list[tuple[str, bool]]:
    """As :func:`resolve_layers`, with whether each layer was named exactly (not by a pattern).

    A layer a pattern picked may be skipped when it does not run in the forward pass; one
    named exactly may not.
    """
    modules = dict(model.named_modules())
    names = [n for n in modules if n]
    if patterns is None:
        return [(n, False) for n in names if not any(True for _ in modules[n].children())]
    return expand_layers(names, patterns, type(model).__name__)


Selector = int | str | tuple | Callable[[Any], torch.Tensor] | None

# Fields a model or layer output object is known to lead with: class (or token) logits, then
# a Hugging Face encoder's hidden states. Any other mapping must have one tensor or be named.
_DEFAULT_FIELDS = ("logits", "last_hidden_state")


def _fields(obj: Any) -> Mapping[str, Any] | None:
    if isinstance(obj, Mapping):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "__dict__") and not isinstance(obj, (torch.Tensor, nn.Module)):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return None


def _pick(obj: Any, step: int | str, what: str) -> Any:
    if isinstance(obj, (tuple, list)) and isinstance(step, int):
        if not -len(obj) <= step < len(obj):
            raise CaptureError(f"The {what} is a {type(obj).__name__} of {len(obj)} elements;"
                               f" index {step} is out of range.")
        return obj[step]
    items = _fields(obj)
    if items is not None and isinstance(step, str):
        if step not in items:
            raise CaptureError(f"The {what} has no field {step!r}; fields: {list(items)}.")
        return items[step]
    raise CaptureError(f"Cannot pick {step!r} out of the {what} of type {type(obj).__name__};"
                       " use an index for tuples/lists and a field name for dicts/objects.")


def select_tensor(obj: Any, selector: Selector = None, what: str = "output") -> torch.Tensor:
    """Pick one tensor out of a module's or model's output.

    Tensors pass through; ``selector`` picks an element (int), a key or attribute (str), a
    nested element (a tuple of those: ``(1, 0)`` is ``h_n`` of an LSTM's
    ``(out, (h_n, c_n))``), or is a function of the output. By default: the first tensor of
    a tuple/list; of a mapping or output object its ``logits``, else its
    ``last_hidden_state``, else its only tensor.

    Raises
    ------
    CaptureError
        The selector does not apply, or a mapping holds several tensors and none of the
        known fields (the message lists the keys: pass ``output=`` / ``layer_output=``).
    """
    if callable(selector):
        picked = selector(obj)
        if not isinstance(picked, torch.Tensor):
            raise CaptureError(f"The selector function for the {what} returned"
                               f" {type(picked).__name__}, not a tensor.")
        return picked
    if isinstance(selector, tuple):
        for step in selector:
            obj = _pick(obj, step, what)
        if not isinstance(obj, torch.Tensor):
            raise CaptureError(f"The selector {selector!r} picks a {type(obj).__name__} out of the"
                               f" {what}, not a tensor; extend it to reach one.")
        return obj
    if selector is not None:
        return select_tensor(obj, (selector,), what)
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for item in obj:
            if isinstance(item, torch.Tensor):
                return item
    items = _fields(obj)
    if items is not None:
        for name in _DEFAULT_FIELDS:
            if isinstance(items.get(name), torch.Tensor):
                return items[name]
        tensors = [k for k, v in items.items() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return items[tensors[0]]
        if tensors:
            shapes = ", ".join(f"{k!r} {list(items[k].shape)}" for k in tensors)
            raise CaptureError(
                f"The {what} holds several tensors ({shapes}) and no 'logits' key, so which one"
                " is meant is not known. Name it: output='<key>' for the model's output,"
                " layer_output={'<layer>': '<key>'} for a layer's."
            )
    raise CaptureError(
        f"Cannot find a tensor in the {what} of type {type(obj).__name__}; pass a selector"
        " (an index, a field name, a tuple of those, or a function returning the tensor)."
    )


def replace_tensor(obj: Any, new: torch.Tensor, selector: Selector = None) -> Any:
    """Return ``obj`` with the tensor that :func:`select_tensor` picks replaced by ``new``.

    Tuples and lists are rebuilt (nested ones along a tuple selector); other containers
    return ``None``, which leaves the forward untouched.
    """
    if isinstance(obj, torch.Tensor):
        return new
    if callable(selector):
        return None  # a function's pick cannot be put back
    if isinstance(obj, (tuple, list)):
        steps = selector if isinstance(selector, tuple) else (selector,) if isinstance(selector, int) else ()
        if steps and not isinstance(steps[0], int):
            return None
        idx = steps[0] if steps else next(
            (i for i, item in enumerate(obj) if isinstance(item, torch.Tensor)), None)
        if idx is None:
            return None
        inner = new if len(steps) <= 1 else replace_tensor(obj[idx], new, tuple(steps[1:]))
        if inner is None:
            return None
        items = list(obj)
        items[idx] = inner
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    return None  # other containers: leave the forward untouched


def module_tree(model: nn.Module) -> tuple[list[nn.Module], list[nn.Parameter]]:
    """``(list(model.modules()), list(model.parameters()))`` in one walk, in the same order.

    The same modules and parameters, each once (shared ones at their first place), as torch's
    own iterators give; those build a dotted name per module and walk the tree once per
    iterator, a fixed ~30 us per call on a small CNN that an attribution of 64 digits
    (~1.2 ms) pays every time.
    """
    modules: list[nn.Module] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        m = stack.pop()
        if id(m) in seen:  # a module shared by two parents comes once, at its first place
            continue
        seen.add(id(m))
        modules.append(m)
        if m._modules:  # children pushed in reverse: popped in order (pre-order, as named_modules)
            stack.extend(reversed([c for c in m._modules.values() if c is not None]))
    # a dict keeps each shared parameter at its first place, as parameters() does
    params = list({id(p): p for m in modules for p in m._parameters.values() if p is not None}.values())
    return modules, params


class _Preserved:
    """The context manager of :func:`preserved`.

    ``modules`` and ``params`` are the model's, taken on entry (callers reuse them instead of
    walking the model again), ``modes`` and ``grads`` their ``training`` and ``requires_grad``
    flags as found (what a caller would otherwise read again, one attribute at a time).
    """

    def __init__(self, model: nn.Module, restore_weights: bool):
        self.model, self.restore_weights = model, restore_weights
        self.modules: list[nn.Module] = []
        self.params: list[nn.Parameter] = []
        self.modes: list[bool] = []
        self.grads: list[bool] = []

    def __enter__(self) -> nn.Module:
        model = self.model
        self.modules, self.params = module_tree(model)
        self.modes = [m.training for m in self.modules]
        self.grads = [p.requires_grad for p in self.params]
        self._device = self.params[0].device if self.params else None
        self._weights = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                         if self.restore_weights else None)
        return model

    def __exit__(self, *exc: Any) -> None:
        model = self.model
        # .to() moves parameters in place (the same objects) unless torch is told to replace them
        swapped = torch.__future__.get_overwrite_module_params_on_conversion()
        now = next(model.parameters(), None) if swapped or not self.params else self.params[0]
        if self._device is not None and now is not None and now.device != self._device:
            model.to(self._device)
        if self._weights is not None:
            model.load_state_dict(self._weights)
        # only what changed: Module.__setattr__ costs ~2 us a module, a fixed cost per call that
        # weighs on small models (attribution of 64 digits takes ~1 ms)
        for m, mode in zip(self.modules, self.modes, strict=True):
            if m.training != mode:
                m.training = mode
        for p, flag in zip(self.params, self.grads, strict=True):
            if p.requires_grad != flag:
                p.requires_grad_(flag)


def preserved(model: nn.Module, restore_weights: bool = False) -> _Preserved:
    """Leave ``model`` as found: training flags, ``requires_grad``, device and (optionally) weights.

    A context manager (``with preserved(model):``) that restores also when the body raises.
    Its ``modules`` and ``params`` hold the model's modules and parameters once entered.
    """
    return _Preserved(model, restore_weights)


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


# Evidence for the axes of a 3-D output [B, ?, ?]: modules that work on the channel axis
# after the batch ([B, C, L]) and modules whose features are on the last axis ([B, T, D]).
_CHANNELS_FIRST_1D = (nn.Conv1d, nn.ConvTranspose1d, nn.MaxPool1d, nn.AvgPool1d,
                      nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.BatchNorm1d,
                      nn.InstanceNorm1d, nn.LPPool1d, nn.Upsample)
_FEATURES_LAST = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.MultiheadAttention, nn.RNNBase,
                  nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
                  nn.TransformerDecoder, nn.Transformer, nn.RMSNorm)
LAYOUTS = ("flat", "channels_first", "sequence", "unknown")
_AXES_ALIASES = {"sequence": "sequence", "btd": "sequence", "tokens": "sequence",
                 "channels_first": "channels_first", "bcl": "channels_first", "bchw": "channels_first",
                 "bcdhw": "channels_first", "flat": "flat", "bd": "flat"}


def parse_axes(value: str, layer: str) -> str:
    """An ``axes=`` value as a layout name (``"sequence"``, ``"channels_first"``, ``"flat"``)."""
    layout = _AXES_ALIASES.get(str(value).lower())
    if layout is None:
        raise CaptureError(f"axes={value!r} for layer {layer!r} is not a layout; use 'sequence'"
                           " ([B, T, D], also 'BTD'), 'channels_first' ([B, C, ...], also 'BCL',"
                           " 'BCHW') or 'flat'.")
    return layout


def layout_of(module: nn.Module, shape: Sequence[int], seq_len: int | None = None) -> str:
    """The axes of one layer's (batch-first) output, from evidence only.

    ``[B, D]`` is flat and ``[B, C, H, W]`` (and 5-D) channel-first. A 3-D output is a
    sequence ``[B, T, D]`` when the module keeps features on the last axis (linear, norm,
    embedding, attention, recurrent, Hugging Face modules) or the inputs' ``attention_mask``
    has ``T`` positions while no channel-first module says otherwise; it is channel-first
    ``[B, C, L]`` for 1-D convolutions, pools and batch norms. Anything else is ``"unknown"``:
    the caller must be told (``axes=``) before any reduction over its axes.
    """
    if len(shape) <= 2:
        return "flat"
    if len(shape) == 4 and seq_len is not None and shape[2] == shape[3] == seq_len:
        return "unknown"  # attention weights [B, heads, T, T], not a feature map
    if len(shape) >= 4:
        return "channels_first"
    if isinstance(module, _CHANNELS_FIRST_1D):
        return "channels_first"
    if isinstance(module, _FEATURES_LAST) or type(module).__module__.startswith("transformers."):
        return "sequence"
    if seq_len is not None and shape[1] == seq_len:
        return "sequence"
    return "unknown"


class Recorder(HookSet):
    """Forward hooks on named layers that keep each layer's output of the current forward.

    Outputs are made batch-first where the module says how (an LSTM/GRU without
    ``batch_first``, its ``h_n``/``c_n`` states ``[layers*dirs, B, H]`` become
    ``[B, layers*dirs, H]``, or ``[B, H]`` for a single layer); :meth:`batch_first` applies
    the same to gradients. ``optional`` layers (picked by a pattern) may not run.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], *,
                 keep_graph: bool = False,
                 layer_output: Mapping[str, Selector] | None = None,
                 repeated: str = "error",
                 sink: Callable[[str, torch.Tensor], None] | None = None,
                 optional: Sequence[str] = ()):
        if repeated not in ("error", "first", "last"):
            raise CaptureError(f"repeated={repeated!r}; choose 'error', 'first' or 'last'.")
        self.model = model
        self.layers = list(layers)
        self.keep_graph = keep_graph
        self.layer_output = dict(layer_output or {})
        self.repeated = repeated
        self.optional = set(optional)
        # sink(layer, tensor) consumes an output inside the hook, before a later in-place op
        # can change it; without one, outputs are kept as detached copies.
        self.sink = sink
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        # keep_graph: layers whose output a later in-place op changes (found by
        # :meth:`mutated`); only those are cloned, so the common case costs no copy
        self.clone: set[str] = set()
        self._versions: dict[str, tuple[torch.Tensor, int]] = {}
        self._transposed: dict[str, tuple[bool, bool]] = {}
        self._handles: list[Any] = []

    def _selector(self, layer: str) -> Selector:
        return match_pattern(self.layer_output, layer)

    def batch_first(self, layer: str, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (an output of ``layer`` or its gradient) with the batch axis first."""
        swap, squeeze = self._transposed.get(layer, (False, False))
        if swap:
            tensor = tensor.transpose(0, 1)
        return tensor.squeeze(1) if squeeze else tensor

    def _note_layout(self, layer: str, module: nn.Module, output: Any, tensor: torch.Tensor) -> None:
        if not isinstance(module, nn.RNNBase) or not isinstance(output, tuple):
            return
        first = output[0]
        if isinstance(first, nn.utils.rnn.PackedSequence):
            raise CaptureError(f"Layer {layer!r} returns a PackedSequence; its tokens are not in"
                               " [B, T, H] order. Pad the sequence (pad_packed_sequence) in a wrapper"
                               " module and capture that, or select h_n with layer_output=(1, 0).")
        state = output[1] if len(output) > 1 else ()
        states = tuple(state) if isinstance(state, (tuple, list)) else (state,)
        if tensor is first:
            self._transposed[layer] = (not module.batch_first, False)
        elif any(tensor is s for s in states):  # h_n / c_n: [layers * directions, B, H], never batch-first
            self._transposed[layer] = (True, tensor.shape[0] == 1)

    def _hook(self, layer: str):
        def hook(module: nn.Module, args: Any, output: Any):
            self.calls[layer] = self.calls.get(layer, 0) + 1
            if self.calls[layer] > 1 and self.repeated == "first":
                return None
            selector = self._selector(layer)
            tensor = select_tensor(output, selector, what=f"output of layer {layer!r}")
            if not callable(selector):  # what a function returns is taken as it is
                self._note_layout(layer, module, output, tensor)
            started = False
            if self.keep_graph and not tensor.requires_grad and tensor.is_floating_point():
                # Nothing upstream is on the graph (integer inputs, frozen weights): start it here.
                tensor = tensor.detach().requires_grad_(True)
                started = True
            if self.sink is not None:
                self.sink(layer, self.batch_first(layer, tensor))
            if self.keep_graph:
                self.outputs[layer] = tensor
            elif self.sink is None:
                self.outputs[layer] = self.batch_first(layer, tensor).detach().clone()
            if self.keep_graph:
                # Later in-place ops (ReLU(inplace=True)) would change the recorded tensor and
                # the meaning of its gradient; for the layers where one does (seen through the
                # tensor's version counter, :meth:`mutated`) the network goes on with a copy.
                # A leaf started here is always copied: autograd refuses in-place ops on it.
                if started or layer in self.clone:
                    return replace_tensor(output, tensor.clone(), selector)
                self._versions[layer] = (tensor, tensor._version)
            return None
        return hook

    def mutated(self) -> list[str]:
        """Layers whose recorded output an in-place op changed after their hook ran in the last forward.

        Only layers with ``keep_graph`` are checked. They are cloned from now on, and the caller must run that
        forward again (its gradients would be those of the changed tensor).
        """
        changed = [layer for layer, (t, v) in self._versions.items() if t._version != v]
        self.clone.update(changed)
        return changed

    def reset(self) -> None:
        """Forget what was recorded (before the next forward)."""
        self.outputs.clear()
        self.calls.clear()
        self._versions.clear()

    def missing(self) -> list[str]:
        """Layers that did not run in the last forward."""
        return [name for name in self.layers if name not in self.calls]

    def check_calls(self) -> None:
        """Raise if a layer ran more than once in the last forward, or a layer named exactly did not run.

        A layer that runs more than once is a shared module, which gives no single activation per sample.
        """
        shared = {k: v for k, v in self.calls.items() if v > 1}
        if shared and self.repeated == "error":
            detail = ", ".join(f"{k!r} ran {v} times" for k, v in shared.items())
            raise CaptureError(
                f"Shared modules in one forward pass: {detail}. A single activation per sample is"
                " ambiguous; pass repeated='first' or repeated='last' to choose a call."
            )
        missing = [name for name in self.missing() if name not in self.optional]
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
    >>> import torch
    >>> from neuralatlas.zoo import mlp
    >>> model = mlp()
    >>> with hooks(model, ["fc1"]) as recorded:
    ...     _ = model(torch.zeros(4, 1, 8, 8))
    >>> recorded.outputs["fc1"].shape
    torch.Size([4, 64])
    """
    names = resolve_layers(model, layers)
    with preserved(model), Recorder(model, names, **kwargs) as rec:
        yield rec
