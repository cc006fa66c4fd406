"""Reading the tensors an objective needs out of a forward pass, with the model left as found.

Shared by activation maximisation and DeepDream: the model is put in eval mode with frozen
weights on the chosen device for the duration, hooks sit on exactly the layers the
objective reads, and a forward that only needs early layers stops after the last of them
(faster, and it lets DeepDream's small octaves through models whose dense head needs one
input size).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from neuralatlas.capture.hooks import HookSet, preserved, replace_tensor, resolve_layers, select_tensor
from neuralatlas.capture.loop import pick_device
from neuralatlas.errors import AnalysisError, CaptureError
from neuralatlas.featurevis.objectives import INPUT, OUTPUT

_SPEC_ATTR = "_neuralatlas_spec"  # where zoo models remember how they were built


class _StopForward(Exception):
    """Raised inside a hook once every needed layer has run; caught by :class:`Taps`."""


class Taps(HookSet):
    """Forward hooks on ``layers`` that keep each one's output *with* its graph.

    A module run more than once per forward (a shared module) is read at its first call.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], *, stop_early: bool,
                 output: int | str | Any = None):
        self.model = model
        self.layers = list(layers)
        self.stop_early = stop_early and bool(self.layers)
        self.output = output
        self.tensors: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, out: Any) -> Any:
            if name in self.tensors:
                return None
            tensor = select_tensor(out, what=f"output of layer {name!r}")
            self.tensors[name] = tensor
            if self.stop_early and all(n in self.tensors for n in self.layers):
                raise _StopForward
            if tensor.requires_grad:
                # An in-place op further on (ReLU(inplace=True)) would otherwise rewrite the
                # tensor the objective reads and break its gradient; the network goes on
                # with a copy.
                return replace_tensor(out, tensor.clone())
            return None
        return hook

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward of ``x``; the recorded tensors (and the model output under ``OUTPUT``)."""
        self.tensors = {}
        out = None
        try:
            out = self.model(x)
        except _StopForward:
            pass
        except Exception as err:
            raise AnalysisError(
                f"{type(self.model).__name__} failed on inputs of shape {tuple(x.shape)}: {err}."
                " Check input_shape (channels, height, width) and value_range; for DeepDream"
                " octaves smaller than the model accepts, raise min_size or use octaves=1.") from err
        missing = [n for n in self.layers if n not in self.tensors]
        if missing:
            raise AnalysisError(
                f"Layers {missing} did not run in the forward pass (unused modules, or modules"
                " called through a functional path); choose layers that run.")
        tensors = dict(self.tensors)
        if out is not None:
            tensors[OUTPUT] = select_tensor(out, self.output, what="model output")
        return tensors


@contextlib.contextmanager
def prepared(model: nn.Module, keys: Sequence[str] | frozenset[str],
             device: str | torch.device | None = None,
             output: int | str | Any = None) -> Iterator[tuple[Taps, torch.device, torch.dtype]]:
    """Eval mode, frozen weights, the model on ``device``, hooks on the objective's layers.

    Everything (mode, ``requires_grad``, device, hooks) is restored on exit, also on error.
    Frozen weights also mean their ``.grad`` is never touched.
    """
    try:
        dev = pick_device(device)
    except CaptureError as err:
        raise AnalysisError(str(err)) from None
    layers = [k for k in keys if k not in (OUTPUT, INPUT)]
    names = set(n for n, _ in model.named_modules() if n)
    for name in layers:
        if name not in names:
            resolve_layers(model, name)  # raises LayerError listing the layers that exist
    layers = [n for n, _ in model.named_modules() if n in set(layers)]  # model order
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = first.dtype if first is not None else torch.float32
    with preserved(model):
        model.eval()
        model.requires_grad_(False)
        model.to(dev)
        with Taps(model, layers, stop_early=OUTPUT not in keys, output=output) as taps:
            yield taps, dev, dtype


def default_input_shape(model: nn.Module) -> tuple[int, ...]:
    """The input shape a zoo model was built for; an error saying what to pass otherwise."""
    spec = getattr(model, _SPEC_ATTR, None) or {}
    kwargs = spec.get("kwargs", {})
    if "input_shape" in kwargs:
        return tuple(int(s) for s in kwargs["input_shape"])
    if spec.get("builder") == "vgg16":
        return (3, 224, 224)
    card = getattr(model, "card", None)
    if card is not None and hasattr(card, "input_shape"):  # a pretrained zoo model's ModelCard
        return tuple(card.input_shape)
    raise AnalysisError(
        f"No input shape known for {type(model).__name__}; pass input_shape=(channels, height,"
        " width), e.g. (3, 32, 32).")


def as_batch(image: Any, what: str = "image") -> torch.Tensor:
    """``[C, H, W]`` or ``[B, C, H, W]`` (numpy or torch) as a float ``[B, C, H, W]`` tensor."""
    t = torch.as_tensor(image)
    if not t.is_floating_point():
        t = t.float()
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[None]
    if t.dim() != 4:
        raise AnalysisError(f"The {what} must be [C, H, W] or [B, C, H, W], got shape {tuple(t.shape)}.")
    return t.detach().float()


def layer_width(model: nn.Module, layer: str | None, input_shape: Sequence[int]) -> int:
    """Channels (units) of ``layer``'s output, or the number of outputs when ``layer`` is None.

    One forward on zeros, the model left as found.

    Example
    -------
    >>> layer_width(cnn(), "conv2", (1, 8, 8))      # doctest: +SKIP
    32
    """
    keys = [OUTPUT] if layer is None else [layer]
    with prepared(model, keys, "cpu") as (taps, dev, dtype), torch.no_grad():
        tensors = taps.run(torch.zeros((1, *input_shape), dtype=dtype, device=dev))
    t = tensors[keys[0]]
    if t.dim() == 3:  # tokens [B, T, D]: features are the last axis
        return int(t.shape[-1])
    return int(t.shape[1]) if t.dim() > 1 else 1
