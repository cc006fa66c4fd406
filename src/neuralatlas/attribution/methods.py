"""One call for every common attribution method, with captum as the engine.

:func:`attribute` takes a model and inputs (a tensor, an array, or a data set), a method name
and a target, and returns an :class:`~neuralatlas.attribution.result.Attribution`. What it
adds to captum: one vocabulary for all methods, targets by label or prediction, baselines by
name, Grad-CAM upsampled to the input, neuron and channel attribution for every method,
integrated gradients that size their own batches and report completeness, errors that list
what is valid, and a model left exactly as found.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from captum._utils.gradient import compute_gradients
from torch import nn

from neuralatlas.attribution.integrated import (
    completeness,
    integrated_gradients,
    relative_error,
    rows_per_pass,
    structure,
    summed_gradients,
    target_scores,
)
from neuralatlas.attribution.result import Attribution
from neuralatlas.capture.fingerprints import positional_count
from neuralatlas.capture.foreign_base import is_foreign
from neuralatlas.capture.hooks import module_tree, preserved, replace_tensor, select_tensor
from neuralatlas.capture.loop import _to_device, as_source, call_model, pick_device
from neuralatlas.errors import AnalysisError, LayerError, did_you_mean
from neuralatlas.vocabulary import renamed_parameter

Target = str | int | Sequence[int] | np.ndarray | torch.Tensor
Neuron = tuple[str, int | Sequence[int]]


@dataclass(frozen=True)
class MethodSpec:
    """What a method is: signed or not, whether it needs a layer, a baseline, completeness."""

    name: str
    signed: bool
    about: str
    layer: str | None = None        # "conv": needs a spatial layer (CAM); "required": layer attribution only
    baseline: bool = False
    complete: bool = False          # attributions should sum to F(x) - F(baseline)
    layer_class: str | None = None  # captum class for layer attribution with this method


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec(
            "saliency", False, "|gradient| of the target (Simonyan et al. 2014)", layer_class="LayerGradientXActivation"
        ),
        MethodSpec("gradient_x_input", True, "gradient × input", layer_class="LayerGradientXActivation"),
        MethodSpec(
            "integrated_gradients",
            True,
            "path integral of gradients from a baseline (Sundararajan et al. 2017)",
            baseline=True,
            complete=True,
            layer_class="LayerIntegratedGradients",
        ),
        MethodSpec("smoothgrad", False, "saliency averaged over noisy copies (Smilkov et al. 2017)"),
        MethodSpec(
            "deeplift",
            True,
            "DeepLIFT rescale rule (Shrikumar et al. 2017)",
            baseline=True,
            complete=True,
            layer_class="LayerDeepLift",
        ),
        MethodSpec(
            "gradient_shap",
            True,
            "expected gradients from a baseline distribution (Lundberg & Lee 2017)",
            baseline=True,
            layer_class="LayerGradientShap",
        ),
        MethodSpec(
            "occlusion",
            True,
            "score drop when a sliding window is replaced by the baseline (Zeiler & Fergus 2014)",
            baseline=True,
        ),
        MethodSpec(
            "guided_backprop", True, "gradient with negative signals stopped at every ReLU (Springenberg et al. 2015)"
        ),
        MethodSpec("deconvolution", True, "deconvnet backward pass (Zeiler & Fergus 2014)"),
        MethodSpec(
            "grad_cam", False, "class activation map of a conv layer, upsampled (Selvaraju et al. 2017)", layer="conv"
        ),
        MethodSpec("guided_grad_cam", True, "Grad-CAM × guided backprop", layer="conv"),
        MethodSpec(
            "conductance",
            True,
            "layer conductance: flow of attribution through each unit (Dhamdhere et al. 2018)",
            baseline=True,
            layer="required",
            layer_class="LayerConductance",
        ),
    ]
}

ALIASES: dict[str, str] = {
    "ig": "integrated_gradients", "integrated_gradient": "integrated_gradients",
    "gradient": "saliency", "grad": "saliency", "vanilla_gradient": "saliency",
    "input_x_gradient": "gradient_x_input", "grad_x_input": "gradient_x_input",
    "gradient_times_input": "gradient_x_input", "gxi": "gradient_x_input",
    "smooth_grad": "smoothgrad", "deep_lift": "deeplift", "gradientshap": "gradient_shap",
    "shap": "gradient_shap", "gradcam": "grad_cam", "guided_gradcam": "guided_grad_cam",
    "layer_conductance": "conductance",
}

NOISE_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")

CAPTUM_DIFFERENCES: dict[str, str] = {
    "integrated_gradients": ("With integration='riemann_trapezoid' the trapezoid weights sum to 1 (captum's sum to"
                             " 1 − 1/n), so values are n/(n − 1) times captum's (50/49 at 50 steps); the default"
                             " Gauss–Legendre rule is captum's."),
    "smoothgrad": ("Averages |gradient| over noisy copies, as captum's NoiseTunnel over Saliency (abs=True);"
                   " Smilkov et al. (2017) average the signed gradient."),
    "saliency": ("One summed backward pass instead of captum's per-sample unbind: the same values for models"
                 " without cross-sample interaction (eval mode)."),
}
"""Where neuralatlas' attributions differ from captum's on purpose, by method (shown in the report)."""


def resolve_method(method: str) -> str:
    """Canonical name of ``method`` (aliases like ``"ig"`` allowed); unknown names raise."""
    if not isinstance(method, str):
        raise AnalysisError(f"method must be a name, got {type(method).__name__}; valid: {', '.join(METHODS)}.")
    key = method.strip().lower().replace("-", "_").replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise AnalysisError(
            f"Unknown attribution method {method!r}.{did_you_mean(key, list(METHODS) + list(ALIASES))}"
            f" Valid methods: {', '.join(METHODS)}."
        )
    return key


# ---------------------------------------------------------------------------- inputs
def _is_float(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())


class InputBatches:
    """Batches of inputs (and labels) from a tensor, an array, a dict of them, or any data set.

    Inputs stay as they are: integer token ids are never cast to float (a float id is no
    id, and its gradient means nothing). Dict inputs (``{"input_ids", "attention_mask"}``)
    are kept as dicts of tensors; :class:`_Layout` splits them into the tensor attributed
    and the tensors passed through. ``cast_integers=True`` restores the old cast for callers
    whose integer inputs are pixel values (the adversarial attacks).
    """

    def __init__(self, inputs: Any, labels: Any, batch_size: int, cast_integers: bool = False):
        self.batch_size = int(batch_size)
        self.cast_integers = bool(cast_integers)
        self.array: torch.Tensor | dict[str, torch.Tensor] | None = None
        self.classes: list[str] | None = None
        self.pad_token_id: int | None = None
        self.special_ids: list[int] | None = None
        self.tokenizer: Any = None
        self.labels: np.ndarray | None = None
        if isinstance(inputs, (torch.Tensor, np.ndarray)):  # the common case first: no imports, no ABC checks
            self._from_tensors(inputs, labels)
            return
        from neuralatlas.data.dataset import ArrayDataset
        from neuralatlas.data.text import TextDataset

        if isinstance(inputs, TextDataset):
            if labels is not None:
                raise AnalysisError("labels=... goes with tensor or array inputs; a data set brings its own labels.")
            # one width for every row (the longest of these sentences), so maps concatenate
            self.array = {k: torch.from_numpy(v) for k, v in inputs.encoded().items()}
            self.n, self.index, self.classes = len(inputs), np.asarray(inputs.index), list(inputs.classes)
            self.labels = np.asarray(inputs.labels, np.int64)
            self.tokenizer, self.pad_token_id = inputs.tokenizer, inputs.pad_token_id
            self.special_ids = [int(i) for i in getattr(inputs.tokenizer, "all_special_ids", []) or []]
            self.source = None
        elif _is_tensor_dict(inputs):
            self._from_tensors(inputs, labels)
            return
        else:
            if labels is not None:
                raise AnalysisError("labels=... goes with tensor or array inputs; a data set brings its own labels.")
            self.source = as_source(inputs, self.batch_size)
            self.n = self.source.n
            self.index = np.asarray(self.source.index)
            self.classes = self.source.classes
            self.labels = np.asarray(inputs.labels, np.int64) if isinstance(inputs, ArrayDataset) else None
            if isinstance(inputs, ArrayDataset):
                self.array = torch.from_numpy(inputs.inputs)
            tok = getattr(inputs, "tokenizer", None) or getattr(getattr(inputs, "dataset", None), "tokenizer", None)
            if tok is not None and getattr(tok, "pad_token_id", None) is not None:
                self.tokenizer, self.pad_token_id = tok, int(tok.pad_token_id)
                self.special_ids = [int(i) for i in getattr(tok, "all_special_ids", []) or []]
        if self.n == 0:
            raise AnalysisError("There are no inputs to attribute (0 samples).")

    def _from_tensors(self, inputs: Any, labels: Any) -> None:
        """Inputs held in memory: a tensor, an array, or a dict of them."""
        if isinstance(inputs, Mapping):
            x: Any = {str(k): torch.as_tensor(v) for k, v in inputs.items()}
            sizes = {k: len(v) for k, v in x.items() if v.dim()}
            if len(set(sizes.values())) != 1 or len(sizes) != len(x):
                raise AnalysisError(f"The tensors of the input dict have different numbers of rows {sizes};"
                                    " give every tensor one row per sample.")
            self.n = next(iter(sizes.values()))
        else:
            x = self._cast(inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(inputs))
            self.n = len(x)
        self.array = x
        self.index = np.arange(self.n)
        self.labels = _labels_of(labels, self.n)
        self.source = None
        if self.n == 0:
            raise AnalysisError("There are no inputs to attribute (0 samples).")

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() if self.cast_integers and not x.is_floating_point() else x

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[Any, torch.Tensor | None]]:
        """``(inputs, labels)`` batches of rows ``start`` to ``stop`` (labels None when there are none)."""
        stop = self.n if stop is None else stop
        if self.array is not None:
            for lo in range(start, stop, self.batch_size):
                hi = min(lo + self.batch_size, stop)
                y = None if self.labels is None else torch.from_numpy(self.labels[lo:hi])
                if isinstance(self.array, Mapping):
                    yield {k: v[lo:hi] for k, v in self.array.items()}, y
                else:
                    yield (self.array if lo == 0 and hi == self.n else self.array[lo:hi]), y
            return
        for x, y in self.source.batches(start, stop):
            if isinstance(x, Mapping) and _is_tensor_dict(x):
                x = {str(k): v for k, v in x.items()}
            elif not isinstance(x, torch.Tensor):
                raise AnalysisError("Attribution needs tensor inputs, or dicts of tensors such as"
                                    f" {{'input_ids', 'attention_mask'}}; this data set gives {type(x).__name__}.")
            else:
                x = self._cast(x)
            yield x, (y if y.numel() and y.min() >= 0 else None)

    def first(self) -> Any:
        """The inputs of the first one or two samples, e.g. to trace a model."""
        return self.head(2)[0]

    def head(self, k: int) -> tuple[Any, torch.Tensor | None]:
        """``(inputs, labels)`` of the first ``k`` samples at most.

        A data set without arrays gives its first batch of them, which may hold fewer.
        """
        k = min(self.n, k)
        if self.array is not None and not isinstance(self.array, Mapping):  # no generator to set up
            return self.array[:k], None if self.labels is None else torch.from_numpy(self.labels[:k])
        return next(self.batches(0, k))

    def mean(self) -> torch.Tensor | None:
        """The mean input, or None for non-float inputs (token ids)."""
        if not _is_float(self.array):
            return None
        return self.array.mean(0, keepdim=True)

    def value_range(self) -> tuple[float, float] | None:
        """The smallest and largest input value, or None for non-float inputs."""
        if not _is_float(self.array):
            return None
        return float(self.array.min()), float(self.array.max())


def _labels_of(labels: Any, n: int) -> np.ndarray | None:
    """``labels=`` of in-memory inputs as ``[n]`` int64 (None stays None); a wrong count raises."""
    if labels is None:
        return None
    out = np.asarray(labels, np.int64).reshape(-1)
    if len(out) != n:
        raise AnalysisError(f"labels has {len(out)} entries but the inputs hold {n} samples;"
                            " pass one label per sample.")
    return out


def _is_tensor_dict(x: Any) -> bool:
    return (isinstance(x, Mapping) and len(x) > 0
            and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in x.values()))


class _Layout:
    """How one batch of inputs becomes ``(attributed tensor, *passed-through tensors)``, and back.

    captum attributes positional ``inputs`` and passes ``additional_forward_args`` along
    (expanded with the inputs over integration steps and noise samples). A dict batch is
    split into the tensor attributed (``input_key``: default ``input_ids``, else
    ``inputs_embeds`` / ``pixel_values``, else its one floating tensor) and the rest
    (``attention_mask``, ``token_type_ids``, ...), passed through in a fixed order.
    """

    PREFERRED = ("input_ids", "inputs_embeds", "pixel_values", "input_values", "x")

    def __init__(self, sample: Any, input_key: str | None = None):
        self.keys: list[str] | None = None
        self.key: str | None = None
        if not isinstance(sample, Mapping):
            if input_key is not None:
                raise AnalysisError(f"input_key={input_key!r} picks a tensor of dict inputs; these inputs are one"
                                    " tensor. Drop input_key.")
            return
        keys = list(sample)
        if input_key is not None:
            if input_key not in sample:
                raise AnalysisError(f"input_key={input_key!r} is not a key of the inputs;"
                                    f" keys: {keys}.{did_you_mean(input_key, keys)}")
            key = input_key
        else:
            preferred = [k for k in self.PREFERRED if k in sample]
            floats = [k for k in keys if _is_float(torch.as_tensor(sample[k]))]
            if preferred:
                key = preferred[0]
            elif len(floats) == 1:
                key = floats[0]
            else:
                raise AnalysisError(f"Cannot tell which of the input tensors {keys} to attribute; pass"
                                    " input_key=... (the others are passed to the model unchanged).")
        self.key, self.keys = key, [k for k in keys if k != key]

    @property
    def n_extras(self) -> int:
        return len(self.keys or ())

    def split(self, x: Any) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if self.keys is None:
            return x, ()
        return x[self.key], tuple(x[k] for k in self.keys)

    def join(self, primary: torch.Tensor, extras: Sequence[torch.Tensor]) -> Any:
        if self.keys is None:
            return primary
        return {self.key: primary, **dict(zip(self.keys, extras, strict=True))}

    def mask(self, extras: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """The ``attention_mask`` among the passed-through tensors, if any."""
        if self.keys is None or "attention_mask" not in self.keys:
            return None
        return extras[self.keys.index("attention_mask")]


def select_output(out: Any, output: Any, inputs: Any) -> Any:
    """The model's output as ``output=`` asks: a key/index of it, or ``output(out[, inputs])``."""
    if callable(output):
        return output(out, inputs) if positional_count(output, 2) >= 2 else output(out)
    return select_tensor(out, output, what="model output")


# ---------------------------------------------------------------------------- model wrappers
class _Forward(nn.Module):
    """The model as captum sees it: ``forward(attributed, *passed_through[, labels]) -> [batch, k]``.

    Rebuilds the dict of inputs, calls the model, applies ``output=`` (a key, an index or a
    function that reduces the output to ``[batch, classes]`` scores) and, for a callable
    ``target=``, returns ``target(output, labels, inputs)`` as a ``[batch, 1]`` score.
    """

    def __init__(self, model: nn.Module, layout: _Layout, output: Any = None, target_fn: Callable | None = None):
        super().__init__()
        self.model, self.layout, self.output, self.target_fn = model, layout, output, target_fn

    def forward(self, primary: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        n = self.layout.n_extras
        inputs = self.layout.join(primary, rest[:n])
        out = call_model(self.model, inputs)
        if self.target_fn is None:
            return select_output(out, self.output, inputs)
        if self.output is not None:
            out = select_output(out, self.output, inputs)
        labels = rest[n] if len(rest) > n else None
        k = positional_count(self.target_fn, 3)
        value = self.target_fn(*(out, labels, inputs)[:max(1, k)])
        if not isinstance(value, torch.Tensor) or value.numel() != len(primary):
            shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise AnalysisError(f"target={getattr(self.target_fn, '__name__', 'function')} returned {shape} for a"
                                f" batch of {len(primary)}; a target function returns one score per sample,"
                                " shape [batch].")
        return value.reshape(len(primary), 1)


class _NeuronOutput(nn.Module):
    """The value of one unit (or one channel's mean) of a layer, as a ``[batch, 1]`` output.

    Any input-attribution method on this wrapper, with target 0, attributes that neuron:
    one mechanism for every method instead of captum's per-method neuron classes.
    """

    def __init__(self, model: nn.Module, layer: nn.Module, unit: tuple[int, ...], channel: bool):
        super().__init__()
        self.model, self.unit, self.channel = model, unit, channel
        self._layer = [layer]  # a list keeps it out of the module tree (it is inside model already)

    def forward(self, x: torch.Tensor, *extras: torch.Tensor) -> torch.Tensor:
        box: list[torch.Tensor] = []

        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            tensor = select_tensor(output, what="layer output")
            box.append(tensor)
            # an in-place op further on (ReLU(inplace=True)) must not change the kept value
            return replace_tensor(output, tensor.clone()) if tensor.requires_grad else None

        handle = self._layer[0].register_forward_hook(hook)
        try:
            self.model(x, *extras)
        finally:
            handle.remove()
        out = box[0]
        if self.channel:
            value = out[:, self.unit[0]].reshape(len(out), -1).mean(1)
        else:
            value = out[(slice(None), *self.unit)]
        return value.reshape(len(out), 1)


# ---------------------------------------------------------------------------- probing
# per model: (its structure when probed, {call key: probe result}); weak, so no model is kept alive
_PROBES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict[tuple, tuple]]] = weakref.WeakKeyDictionary()
_PROBES_PER_MODEL = 64  # call keys kept per model (a target function made anew per call is a new key)


def probe(model: nn.Module, sample: torch.Tensor, forward: Callable[..., torch.Tensor] | None = None,
          key: Any = None, extras: Sequence[torch.Tensor] = (), tree: tuple | None = None
          ) -> tuple[int, dict[str, tuple[int, ...]], dict[str, nn.Module]]:
    """``(n_outputs, output shape per named layer, modules by name)`` from a one-row forward.

    ``forward`` (default: the model) gives the logits from ``(sample, *extras)``. Cached per
    model, input shape, dtype, device and ``key`` (the output and target selectors), so
    repeated calls on small batches pay nothing; a model whose modules or parameter shapes
    changed since (see :func:`structure`) is probed again. ``tree`` is the model's
    ``(modules, params)`` when the caller has walked it already (default: walked here).
    """
    modules_now, params_now = tree if tree is not None else module_tree(model)
    now = structure(modules_now, params_now)
    cache_key = (sample.shape[1:], sample.dtype, sample.device.type, key,
                 tuple([(e.shape[1:], e.dtype) for e in extras]) if extras else ())
    entry = _PROBES.get(model)
    if entry is not None and entry[0] == now:
        cached = entry[1].get(cache_key)
        if cached is not None:
            return cached
    else:
        entry = None
    modules = {name: m for name, m in model.named_modules() if name}
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module, args, output):
            if name not in shapes:
                with contextlib.suppress(Exception):
                    shapes[name] = tuple(select_tensor(output).shape[1:])
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            out = (forward or model)(sample[:1], *(e[:1] for e in extras))
    except AnalysisError:
        raise
    except _MODEL_ERRORS as err:
        raise _model_failed(model, sample, extras, err) from err
    finally:
        for h in handles:
            h.remove()
    _check_scores(out)
    result = (int(out.shape[1]), shapes, modules)
    if entry is None or len(entry[1]) >= _PROBES_PER_MODEL:
        entry = _PROBES[model] = (now, {})
    entry[1][cache_key] = result
    return result


#: what a model raises on inputs it does not take (told as an AnalysisError naming the inputs)
_MODEL_ERRORS = (RuntimeError, TypeError, ValueError, IndexError, KeyError, AttributeError)


def _model_failed(model: nn.Module, sample: torch.Tensor, extras: Sequence[torch.Tensor],
                  err: Exception) -> AnalysisError:
    """The error to raise when ``model`` fails on ``sample`` (and ``extras``)."""
    return AnalysisError(f"{type(model).__name__} failed on inputs of shape {list(sample.shape)}"
                         f"{' with ' + str(len(extras)) + ' more input tensors' if extras else ''}:"
                         f" {type(err).__name__}: {err}. Check that the inputs match what the model expects"
                         " (and that output=/target= functions fit its output).")


def _check_scores(out: Any) -> None:
    """Refuse a model output that is not ``[batch, classes]`` scores, saying what would do."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AnalysisError(f"The model's output is {shape}; attribution needs [batch, classes] scores. Pass"
                            " output=... to pick them from a tuple or dict ('logits') or to compute them"
                            " (output=neuralatlas.attribution.last_token_logits for a causal LM), or a"
                            " function target=fn(output, labels, inputs) -> [batch] for any other model"
                            " (e.g. neuralatlas.attribution.cosine_to(reference) for an encoder).")


def _spatial_layers(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    return [name for name, s in shapes.items() if len(s) >= 3]


def _default_cam_layer(spatial: Sequence[str], modules: Mapping[str, nn.Module]) -> str:
    """The last convolution (Grad-CAM's choice in the paper), else the last spatial layer."""
    convs = [n for n in spatial if isinstance(modules[n], nn.modules.conv._ConvNd)]
    return (convs or list(spatial))[-1]


def _find_layer(name: str, modules: Mapping[str, nn.Module], model: nn.Module) -> nn.Module:
    if name not in modules:
        names = list(modules)
        listing = ", ".join(names[:60]) + (", ..." if len(names) > 60 else "")
        raise LayerError(f"No layer {name!r} in {type(model).__name__}.{did_you_mean(name, names)}"
                         f" Layers are named as model.named_modules() names them: {listing}.")
    return modules[name]


def _parse_neuron(neuron: Any, shapes: Mapping[str, tuple[int, ...]], modules: Mapping[str, nn.Module],
                  model: nn.Module) -> tuple[str, nn.Module, tuple[int, ...], bool]:
    if not (isinstance(neuron, (tuple, list)) and len(neuron) == 2 and isinstance(neuron[0], str)):
        raise AnalysisError(f"neuron={neuron!r} must be (layer_name, unit), e.g. ('fc1', 17) for a unit or"
                            " ('conv2', 5) for a channel of a conv layer.")
    name, unit = neuron
    layer = _find_layer(name, modules, model)
    if name not in shapes:
        raise AnalysisError(f"Layer {name!r} did not run in the forward pass; choose a layer that runs.")
    shape = shapes[name]
    if isinstance(unit, (int, np.integer)):
        unit_t, channel = (int(unit),), len(shape) >= 2
        size = shape[0]
        if not 0 <= unit_t[0] < size:
            what = "channels" if channel else "units"
            raise AnalysisError(f"neuron unit {unit} is out of range: layer {name!r} has {size} {what}"
                                f" (0..{size - 1}); its output shape is {list(shape)}.")
        return name, layer, unit_t, channel
    unit_t = tuple(int(u) for u in unit)
    if len(unit_t) != len(shape) or any(not 0 <= u < s for u, s in zip(unit_t, shape, strict=True)):
        raise AnalysisError(f"neuron unit {tuple(unit)} does not index layer {name!r} of output shape"
                            f" {list(shape)}; give one index per axis within it, or a channel number.")
    return name, layer, unit_t, False


# ---------------------------------------------------------------------------- targets and baselines
_INT64, _UINT64 = np.dtype(np.int64), np.dtype(np.uint64)


def _check_targets(target: Any, n_outputs: int, n: int, labels: np.ndarray | None,
                   from_source: bool = False) -> np.ndarray | str | int:
    """``target=`` checked against the model's ``n_outputs`` and the ``n`` samples.

    Returns ``"label"``, ``"prediction"``, an int, or a ``[n]`` int64 copy. ``labels`` are the
    inputs' (checked for ``"label"``); ``from_source``: a data set that may give labels batch
    by batch.
    """
    if isinstance(target, str):
        if target == "label":
            if labels is None and not from_source:
                raise AnalysisError("target='label' needs labels: pass labels=... with tensor inputs, a data set"
                                    " with labels, or target='prediction' (or a class index).")
            if labels is not None:
                _in_range(labels, n_outputs, "label")
            return "label"
        if target == "prediction":
            return "prediction"
        raise AnalysisError(f"Unknown target {target!r}; use 'label', 'prediction', a class index"
                            f" 0..{n_outputs - 1}, or one class index per sample.")
    if isinstance(target, (int, np.integer)):
        _in_range(np.array([target]), n_outputs, "target")
        return int(target)
    # a copy (astype): the result's targets must not share memory with the caller's array
    arr = (target if isinstance(target, np.ndarray) else
           np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)).astype(_INT64)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if len(arr) != n:
        raise AnalysisError(f"target has {len(arr)} entries but there are {n} samples;"
                            " give one class index per sample, or a single index.")
    _in_range(arr, n_outputs, "target")
    return arr


def _in_range(values: np.ndarray, n_outputs: int, what: str) -> None:
    if not len(values):
        return
    if values.dtype == _INT64:
        # one reduction: a negative id read as uint64 is above any class count
        if np.maximum.reduce(values.view(_UINT64)) < n_outputs:
            return
    elif values.min() >= 0 and values.max() < n_outputs:
        return
    bad = values[(values < 0) | (values >= n_outputs)]
    if len(bad):
        raise AnalysisError(f"{what} {int(bad[0])} is out of range: the model has {n_outputs} outputs"
                            f" (valid classes 0..{n_outputs - 1}).")


def _batch_targets(target: Any, forward: Callable, x: torch.Tensor, args: Sequence[torch.Tensor],
                   y: torch.Tensor | None, rows: slice, n_outputs: int) -> torch.Tensor:
    if isinstance(target, np.ndarray):
        t = torch.from_numpy(target[rows])
        return t if x.device.type == "cpu" else t.to(x.device)
    if isinstance(target, int):
        return torch.full((len(x),), target, dtype=torch.long, device=x.device)
    if target == "label":
        if y is None:
            raise AnalysisError("target='label' needs labels, but this data set has none;"
                                " use target='prediction' or a class index.")
        _in_range(y.cpu().numpy(), n_outputs, "label")
        return y.to(x.device)
    with torch.no_grad():
        return forward(x, *args).argmax(1)


BASELINE_TOKENS = ("pad", "pad_keep_special")


def _pad_id(source: InputBatches, model: nn.Module) -> int | None:
    if source.pad_token_id is not None:
        return int(source.pad_token_id)
    config = getattr(model, "config", None)
    pad = getattr(config, "pad_token_id", None)
    return None if pad is None else int(pad)


def _token_baseline(baseline: Any, x: torch.Tensor, mask: torch.Tensor | None, source: InputBatches,
                    model: nn.Module) -> torch.Tensor:
    """Baseline token ids ``[n, T]`` for integer inputs (layer attribution of an embedding).

    ``"pad"`` (the default): every real token replaced by the pad token. ``"pad_keep_special"``:
    the same, but special tokens ([CLS], [SEP], <s>, ...) kept, so only the words are
    explained. An int: that token id in place of every real token. Positions that the
    ``attention_mask`` marks as padding keep their input ids in every case, so they have
    the same embedding in input and baseline and get exactly zero attribution.
    """
    real = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.to(x.device) != 0
    if baseline is None or isinstance(baseline, str):
        key = "pad" if baseline is None else baseline.lower()
        if key not in BASELINE_TOKENS:
            raise AnalysisError(f"baseline={baseline!r} is not a baseline for token ids; use 'pad',"
                                " 'pad_keep_special', a token id, or an id tensor of the inputs' shape.")
        pad = _pad_id(source, model)
        if pad is None:
            raise AnalysisError("The pad-token baseline needs the pad id, but neither the data set's tokenizer"
                                f" nor {type(model).__name__}.config names one; pass baseline=<token id>"
                                " (e.g. tokenizer.eos_token_id for GPT-2) or a TextDataset with a tokenizer.")
        if key == "pad_keep_special":
            if not source.special_ids:
                raise AnalysisError("baseline='pad_keep_special' needs the tokenizer's special ids; pass a"
                                    " TextDataset with a tokenizer, or build the baseline ids yourself.")
            special = torch.as_tensor(source.special_ids, device=x.device)
            real = real & ~torch.isin(x, special)
        return torch.where(real, torch.full_like(x, pad), x)
    if isinstance(baseline, (int, np.integer)) and not isinstance(baseline, bool):
        return torch.where(real, torch.full_like(x, int(baseline)), x)
    b = torch.as_tensor(np.asarray(baseline) if not isinstance(baseline, torch.Tensor) else baseline)
    if b.is_floating_point():
        raise AnalysisError(f"baseline has dtype {b.dtype} but the inputs are token ids ({x.dtype}); give"
                            " baseline token ids (integers), 'pad' or 'pad_keep_special'.")
    b = b.to(x.device, x.dtype)
    if tuple(b.shape) == tuple(x.shape[1:]):
        b = b.unsqueeze(0)
    if b.dim() != x.dim() or len(b) not in (1, len(x)) or tuple(b.shape[1:]) != tuple(x.shape[1:]):
        raise AnalysisError(f"baseline ids of shape {list(b.shape)} do not fit inputs of shape {list(x.shape)};"
                            f" give {list(x.shape[1:])} or one row per sample.")
    return b.expand_as(x)


def _baseline(baseline: Any, x: torch.Tensor, method: str, inputs: InputBatches,
              gen: torch.Generator | None) -> torch.Tensor:
    """A baseline tensor for ``x`` (a distribution ``[k, ...]`` for GradientSHAP)."""
    shape = tuple(x.shape[1:])
    if baseline is None:
        if method == "gradient_shap":
            # SHAP's reference is the data distribution: a seeded draw from the batch itself
            k = min(len(x), 32)
            pick = torch.randperm(len(x), generator=gen)[:k].to(x.device)
            return x[pick]
        return torch.zeros((1, *shape), dtype=x.dtype, device=x.device)
    if isinstance(baseline, (int, float)):
        return torch.full((1, *shape), float(baseline), dtype=x.dtype, device=x.device)
    if isinstance(baseline, str):
        key = baseline.lower()
        if key in ("zero", "zeros", "black"):
            return torch.zeros((1, *shape), dtype=x.dtype, device=x.device)
        if key == "mean":
            mean = inputs.mean()
            return (mean if mean is not None else x.mean(0, keepdim=True)).to(x.device, x.dtype)
        if key == "blur":
            return _blur(x)
        if key in ("uniform", "noise"):
            lo, hi = inputs.value_range() or (float(x.min()), float(x.max()))
            noise = torch.rand((len(x), *shape), generator=gen).to(x.device, x.dtype)
            return lo + (hi - lo) * noise
        raise AnalysisError(f"baseline={baseline!r} is not a baseline name; use 'zeros', 'mean', 'blur',"
                            " 'uniform', a number, or an array of the input's shape.")
    b = torch.as_tensor(np.asarray(baseline) if not isinstance(baseline, torch.Tensor) else baseline)
    b = b.to(x.device, x.dtype)
    if tuple(b.shape) == shape:
        return b.unsqueeze(0)
    if b.dim() == len(shape) + 1 and tuple(b.shape[1:]) == shape:
        if len(b) in (1, len(x)) or method == "gradient_shap":
            return b
    raise AnalysisError(f"baseline of shape {list(b.shape)} does not fit inputs of shape {[len(x), *shape]};"
                        f" give {list(shape)}, [1, {', '.join(map(str, shape))}] or one per sample.")


def _blur(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4:
        return x.mean(tuple(range(1, x.dim())), keepdim=True).expand_as(x).clone()
    k = max(3, (min(x.shape[2:]) // 4) | 1)
    kernel = torch.ones(x.shape[1], 1, k, k, dtype=x.dtype, device=x.device) / (k * k)
    return torch.nn.functional.conv2d(x, kernel, padding=k // 2, groups=x.shape[1])


# ---------------------------------------------------------------------------- the engine
_SUMMABLE = {"IntegratedGradients", "InputXGradient", "Saliency", "GuidedBackprop", "Deconvolution"}


class _Engine:
    """One method on one (wrapped) model: ``run(x, target, baseline) -> (maps, extras)``."""

    def __init__(self, name: str, model: nn.Module, forward: nn.Module, layer: nn.Module | None,
                 layer_name: str | None, *, smooth: dict | None, n_steps: int, integration: str,
                 internal_batch_size: Any, tolerance: float | None, max_steps: int, n_draws: int,
                 window: Any, stride: Any, relu: bool, value_range: tuple[float, float] | None):
        self.name, self.model, self.forward, self.layer, self.layer_name = name, model, forward, layer, layer_name
        self.smooth, self.value_range = smooth, value_range
        self.n_steps, self.integration, self.ibs = int(n_steps), integration, internal_batch_size
        self.tolerance, self.max_steps = tolerance, int(max_steps)
        self.n_draws, self.window, self.stride, self.relu = int(n_draws), window, stride, relu
        self.params: dict[str, Any] = {}
        self.args: tuple[torch.Tensor, ...] = ()
        spec = METHODS[name]
        self.layer_attribution = layer is not None and spec.layer is None
        # saliency without noise tunnel or layer runs its own plain gradient (see run)
        self.direct = name == "saliency" and smooth is None and not self.layer_attribution
        # integrated gradients without a noise tunnel runs integrated_gradients (its own path
        # integral, or captum's layer IG made there): no captum object to build per call
        own_ig = name == "integrated_gradients" and smooth is None
        self.captum = None if self.direct or own_ig else self._captum(name, spec, forward, layer)
        # one backward root instead of one per row (see summed_gradients): same numbers, faster.
        # DeepLift differentiates a forward of its own making (no arguments): left to captum.
        for obj in (self.captum, getattr(self.captum, "guided_backprop", None)):
            if (type(obj).__name__ in _SUMMABLE and getattr(obj, "gradient_func", None) is compute_gradients):
                obj.gradient_func = summed_gradients

    @staticmethod
    def _captum(name: str, spec: MethodSpec, forward: nn.Module, layer: nn.Module | None) -> Any:
        import captum.attr as ca

        if layer is not None and spec.layer is None:  # layer attribution over a layer's units
            kwargs = {"multiply_by_inputs": False} if name == "saliency" else {}
            return getattr(ca, spec.layer_class)(forward, layer, **kwargs)
        if name == "grad_cam":
            return ca.LayerGradCam(forward, layer)
        if name == "guided_grad_cam":
            return ca.GuidedGradCam(forward, layer)
        if name == "conductance":
            return ca.LayerConductance(forward, layer)
        return {
            "saliency": ca.Saliency, "smoothgrad": ca.Saliency, "gradient_x_input": ca.InputXGradient,
            "integrated_gradients": ca.IntegratedGradients, "deeplift": ca.DeepLift,
            "gradient_shap": ca.GradientShap, "occlusion": ca.Occlusion,
            "guided_backprop": ca.GuidedBackprop, "deconvolution": ca.Deconvolution,
        }[name](forward)

    def _rows(self, x: torch.Tensor) -> int:
        return rows_per_pass(self.model, x[:1], self.forward, extras=self.args)

    def run(self, x: torch.Tensor, target: torch.Tensor | None, baseline: torch.Tensor,
            args: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor, dict]:
        """Maps of ``x`` for ``target``.

        ``args`` are passed through to the forward (captum's ``additional_forward_args``:
        attention masks, labels of a target function).
        """
        name = self.name
        self.args = tuple(args)
        extra: dict[str, Any] = {"additional_forward_args": self.args} if self.args else {}
        if self.smooth is not None:
            return self._noise_tunnel(x, target, baseline, extra), {}
        if self.direct:
            # |d target / d x| in one forward and backward: captum's Saliency gives the same
            # numbers but differentiates each sample's output separately (torch.unbind), a
            # fixed cost that doubles the time on small models; the logits come for free here.
            if torch.is_grad_enabled():  # the context manager costs a few us a call: only when needed
                grad, logits, target = _saliency(self.forward, x, target, self.args)
            else:
                with torch.enable_grad():
                    grad, logits, target = _saliency(self.forward, x, target, self.args)
            return grad, {"logits": logits, "targets": target}
        if name == "integrated_gradients":
            # input IG, and layer IG (an embedding layer for token ids) on the same path:
            # completeness, trapezoid correction, step doubling to a tolerance, batch sizing
            out = integrated_gradients(self.model, x, target, baseline, n_steps=self.n_steps,
                                       integration=self.integration, internal_batch_size=self.ibs,
                                       tolerance=self.tolerance, max_steps=self.max_steps, forward=self.forward,
                                       extras=self.args, layer=self.layer if self.layer_attribution else None)
            self.params["internal_batch_size"] = out.internal_batch_size
            return out.maps, {"delta": out.delta, "completeness": out.relative, "n_steps": out.n_steps,
                              "logits": out.logits}
        kwargs = {**self._kwargs(x, baseline), **extra}
        if name == "deeplift" and not self.layer_attribution:
            maps = self.captum.attribute(x, target=target, **kwargs)
            delta, rel, logits = completeness(self.forward, x, kwargs["baselines"], target, maps, extras=self.args)
            return maps, {"delta": delta, "completeness": rel, "logits": logits}
        if self.layer_attribution and name == "deeplift" or name == "conductance":
            maps, delta = self.captum.attribute(x, target=target, return_convergence_delta=True, **kwargs)
            scores, _ = target_scores(self.forward, x, target, extras=self.args)
            base_scores, _ = target_scores(self.forward, kwargs["baselines"].expand_as(x), target, extras=self.args)
            rel = relative_error(delta, scores - base_scores)
            return maps, {"delta": delta, "completeness": rel}
        maps = self.captum.attribute(x, target=target, **kwargs)
        if name == "saliency" and self.layer_attribution:
            maps = maps.abs()
        if name == "grad_cam":
            from captum.attr import LayerAttribution

            if maps.dim() == 4:
                maps = LayerAttribution.interpolate(maps, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return maps, {}

    def _kwargs(self, x: torch.Tensor, baseline: torch.Tensor) -> dict[str, Any]:
        name = self.name
        if name in ("integrated_gradients", "conductance"):
            kw: dict[str, Any] = {"baselines": baseline, "n_steps": self.n_steps, "method": self.integration}
            rows = self._rows(x)
            kw["internal_batch_size"] = max(len(x), (rows // len(x)) * len(x))
            if name == "conductance":
                kw["internal_batch_size"] = max(2 * len(x), kw["internal_batch_size"])
            return kw
        if name == "deeplift":
            return {"baselines": baseline.expand_as(x) if len(baseline) == 1 else baseline}
        if name == "gradient_shap":
            return {"baselines": baseline, "n_samples": self.n_draws}  # captum's own keyword
        if name == "occlusion":
            window, stride = self._window(x)
            ppe = max(1, self._rows(x) // len(x))
            self.params.update(window=list(window), stride=list(stride))
            return {"sliding_window_shapes": window, "strides": stride,
                    "baselines": baseline if baseline.numel() > 1 else float(baseline.flatten()[0]),
                    "perturbations_per_eval": ppe}
        if name == "grad_cam":
            return {"relu_attributions": bool(self.relu)}
        if name in ("saliency", "smoothgrad") and not self.layer_attribution:
            return {"abs": True}
        return {}

    def _window(self, x: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = tuple(x.shape[1:])
        spatial = shape[1:] if len(shape) >= 3 else shape
        if self.window is None:
            win = tuple(max(2, s // 8) if s >= 2 else 1 for s in spatial)
        else:
            win = (
                (int(self.window),) * len(spatial) if isinstance(self.window, (int, np.integer)) else tuple(self.window)
            )
        if self.stride is None:
            std = tuple(max(1, w // 2) for w in win)
        else:
            std = (
                (int(self.stride),) * len(spatial) if isinstance(self.stride, (int, np.integer)) else tuple(self.stride)
            )
        if len(win) != len(spatial) or any(w < 1 or w > s for w, s in zip(win, spatial, strict=True)):
            raise AnalysisError(f"occlusion window {win} does not fit inputs of shape {list(shape)};"
                                f" give {len(spatial)} sizes between 1 and {list(spatial)}.")
        if len(shape) >= 3:  # whole pixels: every channel at once
            return (shape[0], *win), (shape[0], *std)
        return win, std

    def _noise_tunnel(self, x: torch.Tensor, target: torch.Tensor | None, baseline: torch.Tensor,
                      extra: dict[str, Any]) -> torch.Tensor:
        from captum.attr import NoiseTunnel

        smooth = self.smooth
        lo, hi = self.value_range or (float(x.min()), float(x.max()))
        stdev = float(smooth["noise"]) * max(hi - lo, 1e-12)
        kwargs = self._kwargs(x, baseline)
        if self.name in ("integrated_gradients", "conductance"):
            per = 1  # the inner method batches its own steps
        else:
            per = max(1, min(int(smooth["draws"]), self._rows(x) // len(x)))
        tunnel = NoiseTunnel(self.captum)
        maps = tunnel.attribute(x, nt_type=smooth["kind"], nt_samples=int(smooth["draws"]),
                                nt_samples_batch_size=per, stdevs=stdev, target=target, **kwargs, **extra)
        if self.name == "grad_cam" and maps.dim() == 4:
            from captum.attr import LayerAttribution

            maps = LayerAttribution.interpolate(maps, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return maps


def _smooth_settings(smooth: Any, method: str) -> dict[str, Any] | None:
    if method == "smoothgrad" and not smooth:
        smooth = True
    if smooth is None or smooth is False:
        return None
    settings = {"draws": 25, "noise": 0.15, "kind": "smoothgrad"}
    if smooth is True:
        pass
    elif isinstance(smooth, (int, np.integer)):
        settings["draws"] = int(smooth)
    elif isinstance(smooth, Mapping):
        smooth = dict(smooth)
        if "samples" in smooth:  # the old key: samples are data samples everywhere else (the glossary)
            if "draws" in smooth:
                raise AnalysisError("smooth gives both 'samples' (deprecated) and 'draws'; give only 'draws'.")
            warnings.warn("smooth={'samples': ...} is deprecated since 0.2; use smooth={'draws': ...} (the"
                          " number of noisy copies; the old key goes in the next release)",
                          DeprecationWarning, stacklevel=3)
            smooth["draws"] = smooth.pop("samples")
        unknown = set(smooth) - set(settings)
        if unknown:
            raise AnalysisError(f"smooth has unknown keys {sorted(unknown)}; valid keys: draws, noise, kind.")
        settings.update(smooth)
    else:
        raise AnalysisError(f"smooth={smooth!r}: give True, a number of noisy copies, or"
                            " {'draws': 25, 'noise': 0.15, 'kind': 'smoothgrad'}.")
    if settings["kind"] not in NOISE_KINDS:
        raise AnalysisError(f"smooth kind {settings['kind']!r} is unknown; choose one of {', '.join(NOISE_KINDS)}.")
    if int(settings["draws"]) < 1 or not float(settings["noise"]) >= 0:
        raise AnalysisError(f"smooth needs draws >= 1 and noise >= 0; got {settings}.")
    return settings


@contextlib.contextmanager
def quiet_captum() -> Iterator[None]:
    """Silence captum's notices that say it did what we asked (input grads, hooks set and removed)."""
    with warnings.catch_warnings():
        for text in ("Input Tensor", "Setting forward, backward hooks", "Setting backward hooks",
                     "Internal batch size cannot be less"):
            warnings.filterwarnings("ignore", message=f".*{text}", category=UserWarning)
        yield


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global generators for the block, then restore both.

    captum draws SmoothGrad noise from torch's and GradientSHAP baselines from numpy's
    global generator; the caller's random state is left as it was.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            yield
    finally:
        np.random.set_state(state)


def _ready(model: nn.Module, keeper: Any, dev: torch.device) -> None:
    """Model on ``dev``, in eval mode, weights frozen (``keeper``, a :func:`preserved` entered, undoes it)."""
    params = keeper.params  # one walk of the model per call (it is a fixed cost on small models)
    if params and params[0].device != dev:
        model.to(dev)  # .to walks every tensor: skipped when the model is there already
    if any(keeper.modes):  # (the flags as found: no attribute read per module) eval() sets them anew
        model.eval()
    if any(keeper.grads):
        for p in params:
            if p.requires_grad:
                p.requires_grad_(False)  # input gradients only: weight gradients are never needed


def _saliency(forward: Callable[..., torch.Tensor], x: torch.Tensor, target: torch.Tensor | None,
              args: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(|d logits[target] / d x|, logits, target)`` in one forward and one backward.

    ``target`` None: the prediction, taken from this forward's logits (no forward of its own).
    The backward starts from the one-hot of the targets, which is what the gradient of
    ``logits.gather(1, target).sum()`` starts from (the same numbers) without those two ops
    on the graph, forward and backward (~2% of a batch of 64 digits).
    """
    xg = x.detach().requires_grad_(True)
    logits = forward(xg, *args)
    if target is None:
        target = logits.detach().argmax(1)
    return _abs_gradient(logits, xg, target), logits.detach(), target


def _abs_gradient(logits: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``|d logits[i, target[i]] / d x|``: the backward seeded with the targets' one-hot."""
    seed = torch.zeros_like(logits).scatter_(1, target.view(-1, 1), 1)
    (grad,) = torch.autograd.grad(logits, x, seed)
    return grad.abs_()  # in place: the gradient is this call's own tensor


_DEVICES: dict[tuple[type, Any], torch.device] = {}
#: saliency of a float tensor for a class takes :func:`_input_saliency` (False: the general path, for tests)
_DIRECT_SALIENCY = True


def _pick_device(device: str | torch.device | None) -> torch.device:
    """:func:`~neuralatlas.capture.loop.pick_device`, remembered per argument.

    A few values per process; a request that fails is asked again each time, so its error stays.
    """
    try:
        return _DEVICES[type(device), device]
    except KeyError:
        dev = _DEVICES[type(device), device] = pick_device(device)
        return dev
    except TypeError:  # not hashable
        return pick_device(device)


def _common_params(baseline: Any, target: Any, seed: int, batch_size: int) -> dict[str, Any]:
    """The settings every result records (``Attribution.params``), method's own ones aside."""
    return {"baseline": baseline if baseline is None or isinstance(baseline, (str, int, float)) else "array",
            "target": (target if isinstance(target, (str, int)) else
                       getattr(target, "__name__", "function") if callable(target) else "per-sample"),
            "seed": int(seed), "batch_size": int(batch_size)}


def _input_saliency(model: nn.Module, x: torch.Tensor, target: Any, baseline: Any, labels: Any,
                    batch_size: int, dev: torch.device, seed: int, keep_inputs: bool) -> Attribution:
    """:func:`attribute`'s saliency of a float tensor of inputs, for a class of a plain model.

    The same steps, checks, errors and result as the general path (tested equal to it), with
    only what this case needs: the general path's per-call set-up (input batches, layout,
    engine, per-batch bookkeeping) is most of what saliency costs beyond the model's own
    forward and backward on a small model (~0.1 ms of ~1.1 ms for 64 digits).
    """
    n = len(x)
    if n == 0:
        raise AnalysisError("There are no inputs to attribute (0 samples).")
    y_all = _labels_of(labels, n)
    maps, targets, predictions, kept = [], [], [], []
    on_cpu = dev.type == "cpu"
    spec: Any = None
    keeper = preserved(model)
    with keeper:
        _ready(model, keeper, dev)
        with contextlib.nullcontext() if torch.is_grad_enabled() else torch.enable_grad():
            for lo in range(0, n, batch_size):
                hi = min(lo + batch_size, n)
                whole = hi - lo == n
                xb = (x if whole else x[lo:hi]).to(dev, non_blocking=True)
                xg = xb.detach().requires_grad_(True)
                if spec is None:
                    # no probe: the first batch's forward says what the model gives (the class
                    # count the targets are checked against), before any backward
                    try:
                        logits = model(xg)
                    except (AnalysisError, torch.OutOfMemoryError):
                        raise
                    except _MODEL_ERRORS as err:
                        raise _model_failed(model, xb, (), err) from err
                    _check_scores(logits)
                    spec = _check_targets(target, int(logits.shape[1]), n, y_all)
                else:
                    logits = model(xg)
                if isinstance(spec, np.ndarray):
                    t: torch.Tensor | None = torch.from_numpy(spec if whole else spec[lo:hi])
                elif isinstance(spec, int):
                    t = torch.full((hi - lo,), spec, dtype=torch.long)
                elif spec == "label":
                    t = torch.from_numpy(y_all if whole else y_all[lo:hi])  # type: ignore[index]
                else:  # "prediction": from the saliency's own forward
                    t = None
                pred = logits.detach().argmax(1)
                if t is None:
                    t = pred
                elif not on_cpu:
                    t = t.to(dev)
                grad = _abs_gradient(logits, xg, t)
                if on_cpu:  # (.cpu() of a CPU tensor is itself, through the dispatcher: a few us a call)
                    maps.append(grad.numpy())
                    predictions.append(pred.numpy())
                else:
                    maps.append(grad.cpu().numpy())
                    predictions.append(pred.cpu().numpy())
                if isinstance(spec, np.ndarray):
                    targets.append(spec if whole else spec[lo:hi])
                else:
                    tn = t.numpy() if on_cpu else t.cpu().numpy()
                    targets.append(tn.copy() if t is pred else tn)  # not the predictions' memory
                if keep_inputs:
                    kept.append(xb.detach().cpu().numpy())
    return Attribution(
        method="saliency", maps=_concat_rows(maps), targets=_concat_rows(targets), signed=False,
        inputs=_concat_rows(kept) if keep_inputs else None, labels=y_all, predictions=_concat_rows(predictions),
        index=np.arange(n), params=_common_params(baseline, target, seed, batch_size),
    )


# ---------------------------------------------------------------------------- the public call
@renamed_parameter("n_samples", "n_draws")  # n_samples means data samples everywhere else
def attribute(
    model: nn.Module,
    inputs: Any,
    method: str = "integrated_gradients",
    target: Target = "label",
    baseline: Any = None,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    layer: str | None = None,
    neuron: Neuron | None = None,
    smooth: bool | int | Mapping[str, Any] | None = None,
    n_steps: int = 50,
    integration: str = "gausslegendre",
    internal_batch_size: int | str | None = "auto",
    tolerance: float | None = None,
    max_steps: int = 1024,
    n_draws: int = 20,
    window: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    relu: bool = True,
    batch_size: int = 64,
    output: int | str | Callable | None = None,
    input_key: str | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    keep_inputs: bool = True,
) -> Attribution:
    """Attribute a model's outputs to its inputs with one of the common methods.

    Parameters
    ----------
    model : torch.nn.Module
        Any model. A classifier returning ``[batch, classes]`` logits works as it is;
        ``output=`` picks or computes such scores from a tuple, dict or ``ModelOutput``, and
        ``target=`` may be a function of the output for models without classes (an encoder,
        a language model, a regression). Left as found: mode, ``requires_grad``, device, hooks.
    inputs : tensor, array, dict of them, or data set
        ``[n, ...]`` inputs (with ``labels=`` for ``target="label"``); a dict such as
        ``{"input_ids": [n, T], "attention_mask": [n, T]}`` (the model is called as
        ``model(**inputs)``); a neuralatlas ``ArrayDataset`` or ``TextDataset``; a torch
        ``Dataset`` of ``(input, label)`` or a ``DataLoader`` (inputs may be dicts). Of a dict,
        one tensor is attributed (``input_key``) and the others (attention mask, token
        types) are passed through unchanged, as captum's ``additional_forward_args``.
        Integer inputs (token ids) are never cast to float: they are explained through an
        embedding layer (``layer="embeddings.word_embeddings"``); gradient methods without a
        layer refuse them.
    method : str
        One of ``METHODS``: ``"saliency"``, ``"gradient_x_input"``, ``"integrated_gradients"``,
        ``"smoothgrad"``, ``"deeplift"``, ``"gradient_shap"``, ``"occlusion"``,
        ``"guided_backprop"``, ``"deconvolution"``, ``"grad_cam"``, ``"guided_grad_cam"``,
        ``"conductance"`` (aliases such as ``"ig"`` work).
    target : "label", "prediction", int, array of int, or callable
        The class whose score is explained, per sample (``"prediction"`` is fixed from the
        real input, so integrated gradients explain one class all along the path). A
        callable ``target(output, labels, inputs) -> [batch]`` (it may take only
        ``(output)`` or ``(output, labels)``) defines the explained score itself: it gets the
        model's output (after ``output=`` when given), the labels (``-1`` when there are
        none) and the inputs (the dict, with the attention mask), e.g.
        :func:`~neuralatlas.attribution.targets.cosine_to` for a sentence encoder. Ignored
        for neuron attribution.
    baseline : None, "zeros", "mean", "blur", "uniform", number or array
        Reference input for integrated gradients, DeepLift, GradientSHAP (a distribution
        ``[k, ...]``; default: up to 32 inputs of the batch), occlusion and conductance.
        Default: zeros. For token ids (layer attribution of an embedding): ``"pad"`` (the
        default; every real token becomes the pad token, the pad id taken from the data
        set's tokenizer or ``model.config.pad_token_id``), ``"pad_keep_special"`` ([CLS],
        [SEP], ... kept, only the words explained), a token id, or id tensors; positions
        the attention mask marks as padding always keep their ids, so they get exactly zero
        attribution.
    labels : array-like, optional
        Labels of tensor/array inputs.
    layer : str, optional
        For ``grad_cam`` / ``guided_grad_cam``: the conv layer (default: the last layer with a
        spatial output). For other methods: attribute to this layer's units instead of the
        input (captum's layer methods).
    neuron : (layer, unit), optional
        Attribute a neuron instead of a class: ``("fc1", 17)`` a unit of a dense layer,
        ``("conv2", 5)`` the mean of channel 5 of a conv layer, ``("conv2", (5, 2, 3))`` one
        position of it. Works with every input method.
    smooth : True, int or dict, optional
        Noise tunnel (SmoothGrad) over the method: ``{"draws": 25, "noise": 0.15, "kind":
        "smoothgrad"}`` (an int is the number of noisy copies, ``draws``); ``noise`` is a share
        of the inputs' value range. The old key ``samples`` works one release, with a warning.
    n_steps, integration, internal_batch_size, tolerance, max_steps
        Integrated gradients: steps, captum's approximation, rows per pass (``"auto"`` picks
        them from measured cost and free memory), the largest acceptable relative completeness
        error (steps are doubled for samples above it, up to ``max_steps``).
    n_draws : int
        GradientSHAP's random draws (baseline and noise) per input. (Was ``n_samples``, which
        still works for one release with a ``DeprecationWarning``: ``n_samples`` means data
        samples everywhere else.)
    window, stride : int or sequence, optional
        Occlusion window and stride over the spatial axes (default ~1/8 of the image, stride
        half the window); a window covers all channels of a pixel.
    relu : bool
        Grad-CAM keeps only positive evidence (as in the paper).
    batch_size : int
        Samples per call of the method.
    output : int, str or callable, optional
        Which part of the model's output holds the scores: an index or key (``"logits"``),
        or a function ``output(out[, inputs]) -> [batch, classes]`` such as
        :func:`~neuralatlas.attribution.targets.last_token_logits` (a causal LM's next-token
        logits at the last real position).
    input_key : str, optional
        The tensor of dict inputs to attribute (default ``"input_ids"``, ``"inputs_embeds"``
        or ``"pixel_values"`` when present, else the dict's one floating tensor).
    device : str, optional
        ``None`` picks CUDA when present.
    seed : int
        Seed of noise (SmoothGrad, GradientSHAP, random baselines).
    keep_inputs : bool
        Keep the inputs in the result (for figures and faithfulness curves).

    Returns
    -------
    Attribution

    Raises
    ------
    AnalysisError
        Unknown method, target out of range, missing labels, a conv-layer method given a
        layer without spatial output (the message lists the layers that would do), bad
        baselines or options.
    LayerError
        ``layer`` or ``neuron`` names no layer (the message lists the layers).

    Notes
    -----
    Where the numbers differ from captum's on purpose (also listed in
    ``CAPTUM_DIFFERENCES``, which the report shows):

    * ``integration="riemann_trapezoid"``: captum's trapezoid weights sum to ``1 − 1/n``
      instead of 1, so its attributions are ``(n − 1)/n`` of the integral; ours use the
      rule's own weights and come out ``n/(n − 1)`` times captum's (50/49 at 50 steps), with
      a correspondingly smaller completeness error. The default Gauss–Legendre rule is
      captum's, unchanged.
    * ``"smoothgrad"`` (and ``smooth=`` over saliency) averages ``|gradient|`` over the noisy
      copies, as captum's ``NoiseTunnel(Saliency())`` does with ``Saliency``'s default
      ``abs=True``; Smilkov et al. (2017) average the signed gradient. Use
      ``smooth={"kind": "smoothgrad"}`` over ``"gradient_x_input"`` for a signed variant.
    * Saliency on the input is one summed backward pass, not captum's per-sample unbind:
      the same numbers (models in eval mode, no cross-sample interaction such as
      batch-norm in training mode), faster on small models.

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> train, test = digits()
    >>> from neuralatlas.zoo import cnn
    >>> model = cnn()
    >>> ig = attribute(model, test.subset(slice(0, 64)), "integrated_gradients")
    >>> ig.maps.shape, ig.summary()["completeness_median"] < 0.05      # sum of map = F(x) - F(baseline)
    ((64, 1, 8, 8), True)
    >>> cam = attribute(model, test, "grad_cam", layer="conv2")                    # doctest: +SKIP
    >>> unit = attribute(model, test, "saliency", neuron=("fc1", 17))              # doctest: +SKIP

    Text: per-token scores of a classifier over a sentence encoder, and of a bare encoder
    or a causal language model with a target function:

    >>> train, test = neuralatlas.data.topics(tokenizer=tok)                         # doctest: +SKIP
    >>> ig = attribute(clf, test, "ig", layer="encoder.embeddings.word_embeddings")  # doctest: +SKIP
    >>> ig.token_scores.shape, ig.summary()["completeness_max"]                      # doctest: +SKIP
    ((64, 17), 0.003)
    >>> attribute(bert, test, "ig", layer="embeddings.word_embeddings",             # doctest: +SKIP
    ...           target=cosine_to(reference), output="last_hidden_state")
    >>> attribute(gpt2, batch, "ig", layer="transformer.wte", output=last_token_logits,  # doctest: +SKIP
    ...           target="prediction", baseline=tok.eos_token_id)
    """
    if is_foreign(model):  # Flax / Keras-on-JAX: jax.grad, the same Attribution result
        from neuralatlas.attribution.jax_methods import attribute_jax

        return attribute_jax(model, inputs, method, target, baseline, labels=labels, n_steps=n_steps,
                             batch_size=batch_size, output=output, keep_inputs=keep_inputs)
    name = resolve_method(method)
    spec = METHODS[name]
    smooth_cfg = _smooth_settings(smooth, name)
    if int(batch_size) < 1:
        raise AnalysisError(f"batch_size={batch_size} must be a positive number of samples.")
    if integration == "riemann_trapezoid" and (layer is not None and spec.layer is None
                                               and name != "integrated_gradients" or name == "conductance"):
        raise AnalysisError("integration='riemann_trapezoid' is for (layer) integrated gradients only (captum's"
                            " other layer methods weight it wrongly); use 'gausslegendre' (the default).")
    if (name == "saliency" and _DIRECT_SALIENCY and isinstance(inputs, torch.Tensor) and inputs.is_floating_point()
            and smooth_cfg is None and layer is None and neuron is None and output is None and input_key is None
            and not callable(target)):
        return _input_saliency(model, inputs, target, baseline, labels, int(batch_size), _pick_device(device),
                               seed, keep_inputs)
    source = InputBatches(inputs, labels, batch_size)
    dev = _pick_device(device)
    target_fn = target if callable(target) else None
    keeper = preserved(model)
    with keeper:
        _ready(model, keeper, dev)
        first_batch, first_y = source.head(2)
        layout = _Layout(first_batch, input_key)
        plain = layout.keys is None and output is None and target_fn is None
        logits_model: nn.Module = model if plain else _Forward(model, layout, output, target_fn)
        first, first_extras = layout.split(_to_device(first_batch, dev))
        if target_fn is not None:
            first_extras = (*first_extras, first_y.to(dev) if first_y is not None else
                            torch.full((len(first),), -1, dtype=torch.long, device=dev))
        _check_integer_inputs(name, first, layer, neuron, smooth_cfg, model, spec)
        n_outputs, shapes, modules = probe(model, first, logits_model,
                                           key=None if plain else (repr(output), repr(target_fn)),
                                           extras=first_extras, tree=(keeper.modules, keeper.params))
        layer_name, layer_module = _check_layer(name, spec, layer, neuron, shapes, modules, model)
        forward: nn.Module = logits_model
        neuron_info = None
        if neuron is not None:
            if spec.layer is not None:
                raise AnalysisError(f"{name} explains a class through a layer and cannot take neuron=...;"
                                    " use an input method (saliency, integrated_gradients, ...) for neurons.")
            n_name, n_layer, unit, channel = _parse_neuron(neuron, shapes, modules, model)
            forward = _NeuronOutput(logits_model, n_layer, unit, channel)
            neuron_info = (n_name, unit[0] if channel or len(unit) == 1 else unit)
            target_spec: Any = 0
        elif target_fn is not None:
            target_spec = 0  # the wrapper's one output is the function's value
        else:
            target_spec = _check_targets(target, n_outputs, source.n, source.labels, source.source is not None)
        engine = _Engine(name, model, forward, layer_module, layer_name, smooth=smooth_cfg, n_steps=n_steps,
                         integration=integration, internal_batch_size=internal_batch_size, tolerance=tolerance,
                         max_steps=max_steps, n_draws=n_draws, window=window, stride=stride, relu=relu,
                         value_range=source.value_range() if smooth_cfg is not None else None)
        gen = torch.Generator().manual_seed(int(seed)) if spec.baseline else None  # (baselines only)
        parts: dict[str, list[np.ndarray]] = {}
        start = 0
        random = (smooth_cfg is not None or name == "gradient_shap"
                  or isinstance(baseline, str) and baseline in ("uniform", "noise"))
        tokens = not _is_float(first)
        own_predictions = engine.direct and isinstance(target_spec, str) and target_spec == "prediction"
        with (_seeded(seed, dev) if random else contextlib.nullcontext()), \
                (contextlib.nullcontext() if engine.direct else quiet_captum()):
            for batch, y in source.batches():
                x, args = layout.split(_to_device(batch, dev))
                mask = layout.mask(args)
                if target_fn is not None:  # labels ride along (captum expands them with the inputs)
                    args = (*args, y.to(dev) if y is not None else torch.full((len(x),), -1, dtype=torch.long,
                                                                            device=dev))
                rows = slice(start, start + len(x))
                if own_predictions:
                    t = None  # the saliency's own forward gives them (one forward fewer)
                else:
                    t = _batch_targets(target_spec, forward, x, args, y, rows, n_outputs if neuron is None else 1)
                if not spec.baseline:
                    b = None
                elif tokens:
                    b = _token_baseline(baseline, x, mask, source, model)
                else:
                    b = _baseline(baseline, x, name, source, gen)
                maps, extras = engine.run(x, t, b, args)
                _append(parts, "maps", maps)
                if isinstance(target_spec, np.ndarray):  # already numpy (a copy of the caller's): no round trip
                    parts.setdefault("targets", []).append(target_spec[rows])
                else:
                    _append(parts, "targets", cast(torch.Tensor, extras.get("targets", t)))
                if keep_inputs:
                    _append(parts, "inputs", x)
                if mask is not None:
                    _append(parts, "mask", mask)
                if y is not None:
                    _append(parts, "labels", y)
                for key in ("delta", "completeness", "n_steps"):
                    if key in extras:
                        _append(parts, key, extras[key])
                if "logits" in extras and neuron is None and target_fn is None:
                    # argmax on the logits' device: [B] ids cross to the host, not [B, classes] floats
                    # (and bfloat16 logits, which numpy cannot hold, work)
                    _append(parts, "predictions", extras["logits"].argmax(1))
                start += len(x)
    arrays = {k: _concat_rows(v) for k, v in parts.items()}
    if name == "integrated_gradients" and tolerance is None:
        _warn_incomplete(arrays.get("completeness"), int(n_steps))
    if tokens and spec.baseline and baseline is None:
        baseline = "pad"
    params = {**_common_params(baseline, target, seed, batch_size), **engine.params}
    if layout.key is not None:
        params["input_key"] = layout.key
    if output is not None:
        params["output"] = output if isinstance(output, (str, int)) else getattr(output, "__name__", "function")
    if name in ("integrated_gradients", "conductance"):
        params.update(n_steps=int(n_steps), integration=integration, tolerance=tolerance)
    if smooth_cfg is not None:
        params["smooth"] = smooth_cfg
    if name == "gradient_shap":
        params["n_draws"] = int(n_draws)
    signed = spec.signed and not (smooth_cfg is not None and smooth_cfg["kind"] != "smoothgrad")
    if name == "saliency" and layer_name is None:
        signed = False
    return Attribution(
        method=name, maps=arrays["maps"],
        targets=None if neuron is not None or target_fn is not None else arrays["targets"], signed=signed,
        mask=arrays.get("mask"), tokens=_token_texts(source, arrays.get("inputs"), arrays.get("mask")),
        inputs=arrays.get("inputs"), labels=arrays.get("labels"), predictions=arrays.get("predictions"),
        index=source.index, delta=arrays.get("delta"), completeness=arrays.get("completeness"),
        n_steps=arrays.get("n_steps"), layer=layer_name if neuron is None else None, neuron=neuron_info,
        params=params,
    )


#: relative completeness error above which integrated gradients warn (with no tolerance=)
COMPLETENESS_WARN = 0.1


def _warn_incomplete(relative: np.ndarray | None, n_steps: int) -> None:
    """Warn when IG maps miss F(x) - F(baseline) by more than 10 %: too few steps for this model."""
    if relative is None:
        return
    rel = np.asarray(relative, np.float64)
    bad = np.isfinite(rel) & (rel > COMPLETENESS_WARN)
    if bad.any():
        # the maps are then not integrated gradients to any useful precision; the number is in
        # summary()["completeness_max"], but few read it before looking at the maps
        warnings.warn(
            f"integrated gradients with n_steps={n_steps}: the maps of {int(bad.sum())} of {rel.size} samples"
            f" miss F(x) - F(baseline) by more than {COMPLETENESS_WARN:.0%} (worst {float(rel[bad].max()):.0%})."
            " Raise n_steps, or pass tolerance=0.01 to double the steps until the error is below 1 %.",
            UserWarning, stacklevel=4,
        )


def _append(parts: dict[str, list[np.ndarray]], key: str, value: torch.Tensor) -> None:
    parts.setdefault(key, []).append(value.detach().cpu().numpy())  # .cpu(): no device string to parse


def _concat_rows(arrays: list[np.ndarray]) -> np.ndarray:
    """Batches joined along rows.

    Token axes of different lengths (per-batch padding) are padded with zeros (a mask of 0, an
    attribution of 0) to the longest.
    """
    if len(arrays) == 1:
        return arrays[0]
    if arrays[0].ndim >= 2 and len({a.shape[1] for a in arrays}) > 1:
        width = max(a.shape[1] for a in arrays)
        arrays = [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)) for a in arrays]
    return np.concatenate(arrays)


def _token_texts(source: InputBatches, ids: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray | None:
    """``[n, T]`` token strings of token-id inputs when the tokenizer is known ("" at padding)."""
    if source.tokenizer is None or ids is None or ids.ndim != 2 or ids.dtype.kind not in "iu":
        return None
    flat = source.tokenizer.convert_ids_to_tokens(ids.reshape(-1).tolist())
    out = np.array([str(t) for t in flat], dtype=str).reshape(ids.shape)
    if mask is not None:
        out = np.where(mask != 0, out, "")
    return out


def _check_integer_inputs(name: str, x: torch.Tensor, layer: str | None, neuron: Any, smooth: Any,
                          model: nn.Module, spec: MethodSpec) -> None:
    """Integer inputs (token ids) have no gradient: only layer attribution can explain them."""
    if _is_float(x):
        return
    embeddings = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    hint = (f" Attribute to the embedding layer instead: layer={embeddings[0]!r}"
            f"{' (embedding layers: ' + ', '.join(embeddings) + ')' if len(embeddings) > 1 else ''}."
            if embeddings else " If they are pixel values rather than ids, convert them to float first.")
    what = f"The inputs are integers ({x.dtype}, e.g. token ids)"
    if layer is None and spec.layer is None:
        raise AnalysisError(f"{what}: {name} needs gradients with respect to the inputs, and integer ids have"
                            " none (casting ids to float would explain a number that means nothing)." + hint)
    if neuron is not None:
        raise AnalysisError(f"{what}: neuron attribution to integer inputs has no gradient; use a layer method.")
    if smooth is not None or name in ("gradient_shap", "occlusion", "deeplift", "conductance"):
        raise AnalysisError(f"{what}: {name}{' with a noise tunnel' if smooth is not None else ''} perturbs the"
                            " inputs themselves, which ids do not allow. Use integrated_gradients, saliency or"
                            " gradient_x_input with layer=<an embedding layer>." + hint)


def _check_layer(name: str, spec: MethodSpec, layer: str | None, neuron: Any,
                 shapes: Mapping[str, tuple[int, ...]], modules: Mapping[str, nn.Module],
                 model: nn.Module) -> tuple[str | None, nn.Module | None]:
    if spec.layer == "conv":
        spatial = _spatial_layers(shapes)
        if layer is None:
            if not spatial:
                raise AnalysisError(f"{name} needs a convolutional layer, but no layer of {type(model).__name__}"
                                    " has a spatial output [batch, channels, height, width]; use an input method"
                                    " such as saliency or integrated_gradients.")
            layer = _default_cam_layer(spatial, modules)
        module = _find_layer(layer, modules, model)
        if layer not in spatial:
            shape = shapes.get(layer)
            raise AnalysisError(
                f"{name} needs a convolutional layer with output [batch, channels, height, width]; {layer!r}"
                f" ({type(module).__name__}) has output {[None, *shape] if shape else 'none'}."
                f" Layers that would do: {', '.join(spatial) or 'none'}."
            )
        return layer, module
    if spec.layer == "required" and layer is None:
        raise AnalysisError(f"{name} attributes to a layer's units; pass layer=... (one of {', '.join(shapes)}).")
    if layer is None:
        return None, None
    if neuron is not None:
        raise AnalysisError("Give either layer=... (attribution to a layer's units) or neuron=... (attribution"
                            " of one neuron to the input), not both.")
    if spec.layer_class is None and spec.layer is None:
        valid = [m for m, s in METHODS.items() if s.layer_class or s.layer]
        raise AnalysisError(f"{name} has no layer form; methods that take layer=...: {', '.join(valid)}.")
    return layer, _find_layer(layer, modules, model)
