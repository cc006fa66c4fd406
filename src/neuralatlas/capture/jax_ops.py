"""The JAX side of capture: targets, reductions and the jit-compiled tapped forward.

Shared by the Flax adapters and Keras on the JAX backend. The forward gets a zero
perturbation added to each captured layer output; the gradient of the target with respect
to that perturbation is the gradient with respect to the layer's output, in the same pass
(no second model). One compile per batch shape; the loop pads the last batch so there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from neuralatlas.capture.foreign_base import (
    RunSpec,
    Tap,
    call_indices,
    layout_of,
    pick,
    stored_layout,
)
from neuralatlas.capture.hooks import SPATIAL_REDUCTIONS
from neuralatlas.errors import CaptureError


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array (JAX, numpy, or anything with ``shape`` and ``dtype``)."""
    return isinstance(x, (jax.Array, np.ndarray)) or (hasattr(x, "shape") and hasattr(x, "dtype"))


def target_values(target: Any, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The per-sample scalar whose gradient is captured (JAX twin of the torch function)."""
    if callable(target):
        return target(logits, labels)
    if target == "label":
        return jnp.take_along_axis(logits, labels[:, None], 1)[:, 0]
    if target == "prediction":
        idx = jax.lax.stop_gradient(jnp.argmax(logits, 1))
        return jnp.take_along_axis(logits, idx[:, None], 1)[:, 0]
    if target == "loss":
        return -jnp.take_along_axis(jax.nn.log_softmax(logits, 1), labels[:, None], 1)[:, 0]
    if isinstance(target, (int, np.integer)):
        return logits[:, int(target)]
    raise CaptureError(f"Unknown target {target!r}; use 'label', 'prediction', 'loss', a class"
                       " index, or a function (logits, labels) -> per-sample values.")


def check_target(target: Any, n_classes: int, labels: np.ndarray) -> None:
    """Host-side checks the traced function cannot make."""
    if target in ("label", "loss") and len(labels) and labels.min() < 0:
        raise CaptureError(f"target={target!r} needs labels; this data has none (label -1).")
    if target in ("label", "loss") and len(labels) and n_classes and int(labels.max()) >= n_classes:
        # jax indexing clamps/fills out of range instead of failing: a silent zero gradient
        raise CaptureError(
            f"target={target!r} picks each sample's label logit, but a label is {int(labels.max())} and the"
            f" model output has {n_classes} classes (0..{n_classes - 1}). The data's labels do not index this"
            " model's classes: pass target='prediction', a class index, or a function (logits, labels)."
        )
    if isinstance(target, (int, np.integer)) and not 0 <= int(target) < n_classes:
        raise CaptureError(f"target={target} is out of range: the model has {n_classes}"
                           f" outputs (0..{n_classes - 1}).")


def reduce(t: jax.Array, mode: str | None, mask: jax.Array | None, spatial: tuple[int, ...]) -> jax.Array:
    """Reduce one layer output per sample; the same meanings as the torch ``apply_reduction``."""
    if mode is None or t.ndim <= 2:
        return t
    if mode in SPATIAL_REDUCTIONS:
        return t.mean(spatial) if mode == "mean" else t.max(spatial)
    if mode == "first_token":
        if mask is None or mask.shape[1] != t.shape[1]:
            return t[:, 0]  # as torch: a layer with other positions than the mask's keeps position 0
        return t[jnp.arange(t.shape[0]), jnp.argmax(mask != 0, axis=1)]  # the first real token, as torch
    m = jnp.ones(t.shape[:2], t.dtype) if mask is None else mask.astype(t.dtype)
    if mode == "last_token":
        # the last 1 of the mask (left padding too), as the torch reduction
        positions = jnp.broadcast_to(jnp.arange(m.shape[1]), m.shape)
        last = jnp.clip(jnp.where(m != 0, positions, -1).max(1), 0)
        return t[jnp.arange(t.shape[0]), last]
    m = m.reshape(*m.shape, *([1] * (t.ndim - 2)))
    if mode == "token_mean":
        return (t * m).sum(1) / jnp.clip(m.sum(1), 1)
    return jnp.where(m == 0, -jnp.inf, t).max(1)  # token_max


Apply = Callable[[Any, Any, Tap], Any]

# Compiled tapped forwards of recent captures, so that capturing the same model again (another
# store, a benchmark's repeat) does not compile again: keyed by the model's structure, the
# capture settings and the input shapes. Weights are arguments, so any values fit.
_COMPILED: dict[Any, tuple[Any, dict[str, tuple[int, ...]], dict[str, Any], int]] = {}
_COMPILED_MAX = 8


class Identity:
    """A cache key part that is one object (held, so its id cannot be reused while cached)."""

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.obj is self.obj


def _spec_key(spec: RunSpec) -> Any:
    def freeze(v: Any) -> Any:
        if isinstance(v, Mapping):
            return tuple(sorted((str(k), freeze(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(freeze(x) for x in v)
        if isinstance(v, (str, int, float, bool, type(None))):
            return v
        return Identity(v)  # a callable target/selector: only the very same object matches

    return tuple(freeze(getattr(spec, f)) for f in spec.__dataclass_fields__)


def _shape_key(tree: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return str(treedef), tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x)))) for x in leaves)


class JaxRunner:
    """One batch in, numpy out: ``(acts, grads, logits)`` of the layers of ``spec``.

    ``apply(weights, inputs, tap)`` runs the model with every layer call going through
    ``tap.around``; ``weights()`` gives the weights to use now (they are a jit argument, so a
    new checkpoint does not recompile).
    """

    def __init__(self, apply: Apply, weights: Callable[[], Any], spec: RunSpec,
                 channels_last: Callable[[str], bool], cache_key: Any = None):
        self.apply, self.weights, self.spec = apply, weights, spec
        self.cache_key = cache_key
        self.channels_last = channels_last
        self.layouts: dict[str, str] = {}             # as stored (before reductions)
        self.framework_layouts: dict[str, str] = {}   # maps the framework keeps channels-last
        self._step: Any = None
        self._n_classes = 0

    def _tap(self, indices: Mapping[str, int], perts: Mapping[str, Any] | None) -> Tap:
        return Tap(self.spec.layers, indices,
                   perturb=None if perts is None else (lambda n, v: v + perts[n].astype(v.dtype)),
                   layer_output=self.spec.layer_output, is_array=is_array)

    def _build(self, inputs: Any, labels: np.ndarray) -> dict[str, tuple[int, ...]]:
        key = None
        if self.cache_key is not None:
            key = (self.cache_key, _spec_key(self.spec), _shape_key(inputs), _shape_key(self.weights()))
            if key in _COMPILED:
                self._step, shapes, (self.layouts, self.framework_layouts), self._n_classes = _COMPILED[key]
                return shapes
        shapes = self._compile(inputs, labels)
        if key is not None:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[key] = (self._step, shapes, (self.layouts, self.framework_layouts), self._n_classes)
        return shapes

    def _compile(self, inputs: Any, labels: np.ndarray) -> dict[str, tuple[int, ...]]:
        spec = self.spec
        counting = Tap(is_array=is_array)
        jax.eval_shape(lambda w, x: self.apply(w, x, counting), self.weights(), inputs)
        indices = call_indices(counting.calls, spec.layers, spec.repeated)

        def raw(w, x):
            tap = self._tap(indices, None)
            out = self.apply(w, x, tap)
            return {n: tap.outputs[n] for n in spec.layers}, pick(out, spec.output, "model output", is_array)[0]

        raw_shapes, logits_shape = jax.eval_shape(raw, self.weights(), inputs)
        if len(logits_shape.shape) != 2:
            raise CaptureError(f"The model output selected as logits has shape {list(logits_shape.shape)};"
                               " expected [batch, classes]. Pass output=... to pick the logits.")
        self._n_classes = int(logits_shape.shape[1])
        if spec.gradients:
            ints = [n for n, s in raw_shapes.items() if not jnp.issubdtype(s.dtype, jnp.floating)]
            if ints:
                raise CaptureError(f"Layers {ints} give integer outputs; gradients cannot be captured"
                                   " for them. Capture them with gradients=False.")
        perms = {n: layout_of(s.shape, self.channels_last(n), spec.layout) for n, s in raw_shapes.items()}
        spatial = {}
        for n, s in raw_shapes.items():
            self.layouts[n], spatial[n] = stored_layout(len(s.shape), self.channels_last(n), perms[n] is not None)
            if len(s.shape) >= 4 and self.channels_last(n):
                self.framework_layouts[n] = "channels_last"

        def post(n: str, v: jax.Array, mask: Any) -> jax.Array:
            if perms[n] is not None:
                v = jnp.transpose(v, perms[n])
            return reduce(v, spec.modes.get(n), mask, spatial[n]).astype(jnp.float32)

        def forward(w, x, y, perts):
            tap = self._tap(indices, perts)
            out = self.apply(w, x, tap)
            logits = pick(out, spec.output, "model output", is_array)[0]
            mask = x.get("attention_mask") if isinstance(x, Mapping) else None
            acts = {n: post(n, tap.outputs[n], mask) for n in spec.layers}
            score = target_values(spec.target, logits, y).sum() if spec.gradients else jnp.zeros(())
            return score, (acts, logits)

        def step(w, x, y):
            mask = x.get("attention_mask") if isinstance(x, Mapping) else None
            if not spec.gradients:
                _, (acts, logits) = forward(w, x, y, None)
                return acts, {}, logits
            perts = {n: jnp.zeros(s.shape, s.dtype) for n, s in raw_shapes.items()}
            (_, (acts, logits)), g = jax.value_and_grad(forward, argnums=3, has_aux=True)(w, x, y, perts)
            return acts, {n: post(n, g[n], mask) for n in spec.layers}, logits

        self._step = jax.jit(step)
        out_shapes = jax.eval_shape(self._step, self.weights(), inputs, jnp.asarray(labels, jnp.int32))
        return {n: tuple(int(d) for d in s.shape[1:]) for n, s in out_shapes[0].items()}

    def shapes(self, inputs: Any, labels: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each captured layer's unit shape, from one batch (compiles the step)."""
        return self._build(inputs, labels)

    @property
    def n_classes(self) -> int:
        """The number of classes of the model's output."""
        return self._n_classes

    def __call__(self, inputs: Any, labels: np.ndarray):
        """Activations and gradients per layer, and the logits, of one batch."""
        if self._step is None:
            self._build(inputs, labels)
        if self.spec.gradients:
            check_target(self.spec.target, self._n_classes, labels)
        acts, grads, logits = self._step(self.weights(), inputs, jnp.asarray(labels, jnp.int32))
        acts, grads, logits = jax.device_get((acts, grads, logits))
        return acts, grads, np.asarray(logits)
