"""Keras 3 models for capture: Sequential, functional and subclassed, on the JAX or torch backend.

Layer names are Keras' own (``layer.name``); a layer inside a nested model or layer is
``outer.inner``. Every layer's ``call`` is wrapped (an instance attribute, removed again on
exit) so that one mechanism serves all three kinds of model, records activations and adds the
zero perturbation whose gradient is the gradient w.r.t. the layer's output, in one pass. On
the JAX backend the tapped forward is ``model.stateless_call`` under ``jax.jit`` (the weights
are arguments); on the torch backend it runs eagerly and torch autograd gives the gradients.

Checkpoints for per-epoch capture are ``.npz`` files keyed by ``variable.path``, as
:func:`save_weights` writes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.capture.foreign_base import (
    RunSpec,
    Tap,
    call_indices,
    check_fits,
    layout_of,
    load_params,
    pick,
    require,
    stored_layout,
    tree_fingerprint,
)
from neuralatlas.errors import CaptureError, ModelError

keras = require("keras")


def backend() -> str:
    """The backend Keras runs on (``"jax"`` or ``"torch"``)."""
    return keras.backend.backend()


def named_layers(model: Any) -> list[tuple[str, Any]]:
    """``(name, layer)`` of every layer below ``model``; nested ones as ``outer.inner``."""
    out: list[tuple[str, Any]] = []

    def walk(layer: Any, prefix: str) -> None:
        for child in layer._flatten_layers(include_self=False, recursive=False):
            if type(child).__name__ == "InputLayer":
                continue
            name = f"{prefix}{child.name}"
            out.append((name, child))
            walk(child, name + ".")

    walk(model, "")
    return out


def save_weights(path: str | Path, model: Any) -> Path:
    """Write a Keras model's variables as ``.npz`` keyed by ``variable.path`` (a checkpoint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{v.path: np.asarray(keras.ops.convert_to_numpy(v.value))  # type: ignore[arg-type]
                      for v in model.variables})
    return path


def load_model(path: str | Path) -> Any:
    """A ``.keras`` file as a Keras model (the CLI/config loads these like torch checkpoints)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"No Keras model at {path}.")
    return keras.saving.load_model(path, compile=False)


class KerasAdapter:
    """A Keras 3 model on the JAX or torch backend."""

    def __init__(self, model: Any):
        self.backend = backend()
        if self.backend not in ("jax", "torch"):
            raise ModelError(f"Keras runs on the {self.backend!r} backend; capture supports the 'jax'"
                             " and 'torch' backends (set KERAS_BACKEND=jax or torch before importing keras).")
        if not model.built:
            raise ModelError(f"The Keras model {model.name!r} is not built; call it once on a batch"
                             " (or give it an Input) so its layers and weights exist.")
        self.model = model
        self.framework = f"keras:{self.backend}"
        self.model_id = f"{type(model).__module__}.{type(model).__qualname__}"
        self.layers = named_layers(model)
        self._by_name = dict(self.layers)
        self._order: list[str] = [n for n, _ in self.layers]
        self._leaves: list[str] = []
        self._saved: list[Any] | None = None
        self._weights = self._read_weights()
        self.default_format = keras.config.image_data_format()

    # -------------------------------------------------------------- names and weights
    def _read_weights(self) -> tuple[list[Any], list[Any]]:
        return ([v.value for v in self.model.trainable_variables],
                [v.value for v in self.model.non_trainable_variables])

    def channels_last(self, name: str) -> bool:
        """Whether layer ``name`` lays its channels out last."""
        fmt = getattr(self._by_name.get(name), "data_format", None) or self.default_format
        return fmt != "channels_first"

    @contextlib.contextmanager
    def tapped(self, tap: Tap) -> Iterator[None]:
        """Every layer's ``call`` goes through ``tap`` inside the block; removed on exit."""
        wrapped = []
        try:
            for name, layer in self.layers:
                original = layer.call

                def call(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                    return tap.around(_name, lambda: _original(*args, **kwargs))

                object.__setattr__(layer, "call", call)
                wrapped.append(layer)
            yield
        finally:
            for layer in wrapped:
                layer.__dict__.pop("call", None)

    def _kwargs(self) -> dict[str, Any]:
        return {"training": False} if getattr(self.model, "_call_has_training_arg", False) else {}

    def discover(self, inputs: Any) -> None:
        """Trace one batch: layer names, order and types."""
        tap = Tap(is_array=lambda x: hasattr(x, "shape"))
        try:
            if self.backend == "jax":
                import jax

                jax.eval_shape(lambda w, x: self.apply_jax(w, x, tap), self._weights, inputs)
            else:
                import torch

                with torch.no_grad(), self.tapped(tap):
                    _call(self.model, _to_torch(inputs), self._kwargs())
        except (TypeError, ValueError, IndexError, RuntimeError) as err:
            raise CaptureError(f"{self.model_id} failed on a batch of inputs: {err}. Check that the"
                               " data matches what the model expects (Keras convs default to"
                               " channels-last: [N, H, W, C]).") from err
        called = set(tap.order)
        self._order = [n for n in tap.order if n in self._by_name] + [n for n, _ in self.layers if n not in called]
        self._leaves = [n for n in tap.leaves() if n in self._by_name]
        self._calls = dict(tap.calls)

    def layer_names(self) -> list[str]:
        """Every tappable layer, in call order."""
        return list(self._order)

    def leaf_names(self) -> list[str]:
        """The layers with no tappable sub-layer."""
        return list(self._leaves)

    def layer_types(self) -> dict[str, str]:
        """Layer name -> class name."""
        return {n: type(self._by_name[n]).__name__ for n in self._order}

    def fingerprint(self) -> str:
        """A content hash of the current weights."""
        return tree_fingerprint((v.path, keras.ops.convert_to_numpy(v.value)) for v in self.model.variables)

    @contextlib.contextmanager
    def restore(self) -> Iterator[None]:
        """Leave the model's weights as they were found."""
        try:
            yield
        finally:
            if self._saved is not None:  # the torch backend assigned checkpoint weights
                for v, value in zip(self.model.variables, self._saved, strict=True):
                    v.assign(value)
                self._saved = None

    def load_checkpoint(self, path: Path) -> None:
        """Use the weights of checkpoint ``path`` from now on (names and shapes must match)."""
        given = load_params(path)
        expected = {v.path: tuple(v.shape) for v in self.model.variables}
        check_fits({k: np.empty(s, np.uint8) for k, s in expected.items()}, given, path)
        if self.backend == "jax":
            import jax.numpy as jnp

            self._weights = ([jnp.asarray(given[v.path]) for v in self.model.trainable_variables],
                             [jnp.asarray(given[v.path]) for v in self.model.non_trainable_variables])
        else:
            if self._saved is None:
                self._saved = [keras.ops.convert_to_numpy(v.value) for v in self.model.variables]
            for v in self.model.variables:
                v.assign(given[v.path])

    # -------------------------------------------------------------- running
    def apply_jax(self, weights: Any, inputs: Any, tap: Tap) -> Any:
        """Run the model on the jax backend with ``weights``, each layer call going through ``tap``."""
        trainable, non_trainable = weights
        with self.tapped(tap):
            if isinstance(inputs, Mapping):
                out, _ = self.model.stateless_call(trainable, non_trainable, inputs, **self._kwargs())
            elif isinstance(inputs, (tuple, list)):
                out, _ = self.model.stateless_call(trainable, non_trainable, *inputs, **self._kwargs())
            else:
                out, _ = self.model.stateless_call(trainable, non_trainable, inputs, **self._kwargs())
        return out

    def runner(self, spec: RunSpec) -> Any:
        """The runner for this backend (jax or torch) that captures batches as ``spec`` asks."""
        if self.backend == "jax":
            from neuralatlas.capture.flax_adapter import _FlaxRunner
            from neuralatlas.capture.jax_ops import Identity, JaxRunner

            return _FlaxRunner(JaxRunner(self.apply_jax, lambda: self._weights, spec, self.channels_last,
                                         cache_key=("keras", Identity(self.model))))
        return _TorchKerasRunner(self, spec)

    def logits_fn(self):
        """``f(weights, x) -> model output`` (JAX backend, for attribution), and the weights."""
        return (lambda w, x: self.apply_jax(w, x, Tap())), self._weights


def _call(model: Any, inputs: Any, kwargs: Mapping[str, Any]) -> Any:
    if isinstance(inputs, (tuple, list)):
        return model(*inputs, **kwargs)
    return model(inputs, **kwargs)


def _to_torch(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _to_torch(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to_torch(v) for v in x)
    return keras.ops.convert_to_tensor(np.asarray(x))


class _TorchKerasRunner:
    """Keras on the torch backend: an eager tapped forward, gradients from torch autograd."""

    def __init__(self, adapter: KerasAdapter, spec: RunSpec):
        self.adapter, self.spec = adapter, spec
        self.layouts: dict[str, str] = {}
        self.framework_layouts: dict[str, str] = {}
        self.n_classes = 0
        self.indices = call_indices(adapter._calls, spec.layers, spec.repeated)

    def _forward(self, inputs: Any, labels: np.ndarray):
        import torch

        from neuralatlas.capture.batch_ops import apply_reduction, target_values

        spec, perts = self.spec, {}

        def perturb(name: str, value: Any) -> Any:
            if spec.gradients:
                if not value.is_floating_point():
                    raise CaptureError(f"Layer {name!r} gives integer outputs; gradients cannot be"
                                       " captured for it. Capture it with gradients=False.")
                perts[name] = torch.zeros_like(value, requires_grad=True)
                return value + perts[name]
            return value

        tap = Tap(spec.layers, self.indices, perturb=perturb, layer_output=spec.layer_output,
                  is_array=lambda x: isinstance(x, torch.Tensor))
        x = _to_torch(inputs)
        with torch.set_grad_enabled(spec.gradients), self.adapter.tapped(tap):
            out = _call(self.adapter.model, x, self.adapter._kwargs())
        logits = pick(out, spec.output, "model output", lambda v: isinstance(v, torch.Tensor))[0]
        self.n_classes = int(logits.shape[1]) if logits.dim() == 2 else 0
        if logits.dim() != 2:
            raise CaptureError(f"The model output selected as logits has shape {list(logits.shape)};"
                               " expected [batch, classes]. Pass output=... to pick the logits.")
        mask = x.get("attention_mask") if isinstance(x, Mapping) else None

        def post(name: str, t: Any) -> np.ndarray:
            last = self.adapter.channels_last(name)
            perm = layout_of(tuple(t.shape), last, spec.layout)
            self.layouts[name], spatial = stored_layout(t.dim(), last, perm is not None)
            if t.dim() >= 4 and last:
                self.framework_layouts[name] = "channels_last"
            if perm is not None:
                t = t.permute(*perm)
            t, mode = t.detach(), spec.modes.get(name)
            if mode in ("mean", "max") and spatial:
                t = t.mean(dim=spatial) if mode == "mean" else t.amax(dim=spatial)
            elif mode is not None:
                t = apply_reduction(t, mode, mask)
            return t.to("cpu", torch.float32).numpy()

        acts = {n: post(n, tap.outputs[n]) for n in spec.layers}
        grads: dict[str, np.ndarray] = {}
        if spec.gradients:
            y = torch.as_tensor(labels, device=logits.device)
            from neuralatlas.capture.jax_ops import check_target

            check_target(spec.target, logits.shape[1], labels)
            score = target_values(spec.target, logits, y).sum()
            names = list(spec.layers)
            g = torch.autograd.grad(score, [perts[n] for n in names], allow_unused=True)
            grads = {
                n: post(n, torch.zeros_like(perts[n]) if gi is None else gi) for n, gi in zip(names, g, strict=True)
            }
        return acts, grads, logits.detach().cpu().numpy()

    def shapes(self, inputs: Any, labels: np.ndarray) -> dict[str, tuple[int, ...]]:
        acts, _, _ = self._forward(inputs, labels)
        return {n: tuple(a.shape[1:]) for n, a in acts.items()}

    def __call__(self, inputs: Any, labels: np.ndarray):
        return self._forward(inputs, labels)
