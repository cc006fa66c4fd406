"""Flax models for capture: NNX modules and linen modules with their variables.

Layer names are the framework's own: NNX attribute paths joined by dots (``conv1``,
``layers.0``, ``block.linear``), linen module paths (``Conv_0``, ``Block_0.Dense_1``). Every
layer call goes through a tap: linen's ``nn.intercept_methods``; for NNX, a copy of the
model is merged inside the traced function and each sub-module's class swapped for a
subclass whose ``__call__`` goes through the tap (the user's model is never touched).

Parameter checkpoints (per-epoch capture) are ``.npz`` files keyed by ``/``-joined paths or
flax msgpack files of the tree, as :func:`save_params` writes them.

Examples
--------
>>> from flax import nnx                                           # doctest: +SKIP
>>> store = neuralatlas.capture(model, test, layers=["conv*", "head"], gradients=True) # doctest: +SKIP
>>> store = neuralatlas.capture((linen_module, variables), test, out="acts.zarr") # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.capture.foreign_base import (
    RunSpec,
    Tap,
    check_fits,
    flatten_tree,
    load_params,
    require,
    tree_fingerprint,
)
from neuralatlas.errors import CaptureError, ModelError

jax = require("jax")
require("flax")
import flax.linen as nn  # noqa: E402  (after require(), which names the extra when flax is missing)
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402


# ---------------------------------------------------------------------------- params trees
def _rebuild(template: Any, flat: Mapping[str, Any], prefix: str = "") -> Any:
    if isinstance(template, Mapping):
        return {k: _rebuild(v, flat, f"{prefix}{k}/") for k, v in template.items()}
    return jnp.asarray(flat[prefix[:-1]])


def save_params(path: str | Path, params: Any) -> Path:
    """Write a params checkpoint: an NNX module (its weights), a linen variables dict, or a tree.

    ``.npz`` (default) stores ``/``-joined paths; ``.msgpack`` the flax serialisation.
    Name files ``epoch_000.npz``, ``epoch_001.npz`` ... for per-epoch capture.
    """
    path = Path(path)
    if isinstance(params, nnx.Module):
        weights = nnx.split(params, nnx.RngState, ...)[-1]
        params = nnx.to_pure_dict(weights)
    flat = {k: np.asarray(v) for k, v in flatten_tree(params).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".msgpack":
        from flax import serialization

        path.write_bytes(serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, dict(params))))
    else:
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        np.savez(path, **flat)  # type: ignore[arg-type]
    return path


# ---------------------------------------------------------------------------- calling convention
def call(fn: Any, inputs: Any) -> Any:
    """Call ``fn`` with ``inputs`` as keywords (a mapping), positional arguments (a tuple or list) or one argument."""
    if isinstance(inputs, Mapping):
        return fn(**inputs)
    if isinstance(inputs, (tuple, list)):
        return fn(*inputs)
    return fn(inputs)


def as_jax(inputs: Any) -> Any:
    """``inputs`` (an array or a pytree of arrays) as JAX arrays."""
    return jax.tree_util.tree_map(jnp.asarray, inputs)


_DISCOVERED: dict[Any, tuple[list[str], list[str], dict[str, str]]] = {}


class _FlaxBase:
    """What NNX and linen share: discovery, names, the JAX runner."""

    framework = "flax"
    model_id = ""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._leaves: list[str] = []
        self._types: dict[str, str] = {}

    def apply(self, weights: Any, inputs: Any, tap: Tap) -> Any:
        raise NotImplementedError

    def current(self) -> Any:
        raise NotImplementedError

    def discover(self, inputs: Any) -> None:
        from neuralatlas.capture.jax_ops import _shape_key

        key = (self.cache_key(), _shape_key(inputs))
        if key in _DISCOVERED:  # the same structure and input shapes: the same names
            self._order, self._leaves, types = _DISCOVERED[key]
            self._types.update(types)
            return
        self._discover(inputs)
        if len(_DISCOVERED) >= 8:
            _DISCOVERED.pop(next(iter(_DISCOVERED)))
        _DISCOVERED[key] = (list(self._order), list(self._leaves), dict(self._types))

    def cache_key(self) -> Any:
        raise NotImplementedError

    def _discover(self, inputs: Any) -> None:
        tap = Tap(is_array=lambda x: hasattr(x, "shape"))
        try:
            jax.eval_shape(lambda w, x: self.apply(w, x, tap), self.current(), as_jax(inputs))
        except (TypeError, ValueError, IndexError) as err:
            raise CaptureError(f"{self.model_id} failed on a batch of inputs"
                               f" {jax.tree_util.tree_map(np.shape, inputs)}: {err}. Check that the data"
                               " matches what the model expects (Flax convs are channels-last:"
                               " [N, H, W, C]).") from err
        self._order, self._leaves = list(tap.order), tap.leaves()

    def layer_names(self) -> list[str]:
        return list(self._order)

    def leaf_names(self) -> list[str]:
        return list(self._leaves)

    def layer_types(self) -> dict[str, str]:
        return {n: self._types.get(n, "Module") for n in self._order}

    def restore(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # weights are arguments; the user's objects are never changed

    def runner(self, spec: RunSpec) -> Any:
        from neuralatlas.capture.jax_ops import JaxRunner

        return _FlaxRunner(JaxRunner(self.apply, self.current, spec, channels_last=lambda n: True,
                                     cache_key=self.cache_key()))

    def logits_fn(self):
        """``f(weights, x) -> model output`` (for attribution), and the current weights."""
        return (lambda w, x: self.apply(w, x, Tap())), self.current()


class _FlaxRunner:
    def __init__(self, inner: Any):
        self.inner = inner

    @property
    def layouts(self) -> dict[str, Any]:
        return self.inner.layouts

    @property
    def framework_layouts(self) -> dict[str, str]:
        return self.inner.framework_layouts

    @property
    def n_classes(self) -> int:
        return self.inner.n_classes

    def shapes(self, inputs, labels):
        return self.inner.shapes(as_jax(inputs), labels)

    def __call__(self, inputs, labels):
        return self.inner(as_jax(inputs), labels)


# ---------------------------------------------------------------------------- NNX
_TAPPED: dict[type, type] = {}
_ACTIVE: list[tuple[Tap, dict[int, str]]] = []


def _tapped_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    tap, names = _ACTIVE[-1]
    parent = type(self).__mro__[1]
    return tap.around(names.get(id(self), ""), lambda: parent.__call__(self, *args, **kwargs))


def _tapped_class(cls: type) -> type:
    if cls not in _TAPPED:
        _TAPPED[cls] = type(cls)(cls.__name__, (cls,), {"__call__": _tapped_call,
                                                        "__module__": cls.__module__,
                                                        "__qualname__": cls.__qualname__})
    return _TAPPED[cls]


class NNXAdapter(_FlaxBase):
    """An ``nnx.Module``; its weights are split off once and passed to each jitted call."""

    framework = "flax.nnx"

    def __init__(self, model: Any):
        super().__init__()
        self.model = model
        self.model_id = f"{type(model).__module__}.{type(model).__qualname__}"
        split: Any = nnx.split(model, nnx.RngState, ...)
        self.graphdef, self.rngs, self.weights = split
        self._types = {".".join(map(str, p)): type(m).__name__ for p, m in nnx.iter_modules(model) if p}

    def current(self) -> Any:
        """The model's current state, passed to the jitted call rather than baked into it."""
        return self.rngs, self.weights  # both arguments of the jitted call, never baked in

    def cache_key(self) -> Any:
        """What identifies a compiled forward: the graph structure."""
        return ("nnx", self.graphdef)  # same structure, same compiled forward

    def apply(self, weights: Any, inputs: Any, tap: Tap) -> Any:
        """Run the model with ``weights`` on ``inputs``, each layer call going through ``tap``."""
        m = nnx.merge(self.graphdef, *weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if hasattr(m, "eval"):
                m.eval()  # dropout off, batch norm on running statistics (on this copy)
        names: dict[int, str] = {}
        for path, sub in list(nnx.iter_modules(m)):
            if path and type(sub).__call__ is not _tapped_call and callable(sub):
                names[id(sub)] = ".".join(map(str, path))
                sub.__class__ = _tapped_class(type(sub))
        _ACTIVE.append((tap, names))
        try:
            return call(m, inputs)
        finally:
            _ACTIVE.pop()

    def fingerprint(self) -> str:
        """A content hash of the current weights."""
        return tree_fingerprint(iter(flatten_tree(nnx.to_pure_dict(self.weights)).items()))

    def load_checkpoint(self, path: Path) -> None:
        """Use the weights of checkpoint ``path`` from now on (its tree must match the model's)."""
        template = nnx.to_pure_dict(self.weights)
        given = load_params(path)
        check_fits(flatten_tree(template), given, path)
        new = jax.tree_util.tree_map(lambda x: x, self.weights)
        nnx.replace_by_pure_dict(new, _rebuild(template, given))
        self.weights = new


# ---------------------------------------------------------------------------- linen
class LinenAdapter(_FlaxBase):
    """A linen ``Module`` with its variables (``{"params": ..., "batch_stats": ...}``)."""

    framework = "flax.linen"

    def __init__(self, module: Any, variables: Any):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ModelError(f"Expected (linen Module, variables); got a {type(module).__name__}.")
        self.module = module
        self.model_id = f"{type(module).__module__}.{type(module).__qualname__}"
        self.variables = None if variables is None else jax.tree_util.tree_map(jnp.asarray, dict(variables))
        self._template: Any = None

    def cache_key(self) -> Any:
        """What identifies a compiled forward: the module."""
        from neuralatlas.capture.jax_ops import Identity

        return ("linen", Identity(self.module))

    def current(self) -> Any:
        """The module's variables."""
        if self.variables is None:
            raise ModelError(f"The linen module {self.model_id} came without variables; pass"
                             " capture((module, variables), data, ...) or checkpoints=... .")
        return self.variables

    def discover(self, inputs: Any) -> None:
        """Trace one batch: layer names, order and types."""
        if self.variables is None:  # only checkpoints will give values: learn the tree's shapes
            self._template = jax.eval_shape(lambda x: call(lambda *a, **k: self.module.init(
                jax.random.key(0), *a, **k), x), as_jax(inputs))
            self.variables = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), self._template)
        super().discover(inputs)

    def apply(self, weights: Any, inputs: Any, tap: Tap) -> Any:
        """Run the module with ``weights`` on ``inputs``, each submodule call going through ``tap``."""
        def interceptor(next_fun, args, kwargs, context):
            if context.method_name != "__call__":
                return next_fun(*args, **kwargs)
            name = ".".join(map(str, context.module.path))
            self._types.setdefault(name, type(context.module).__name__)
            return tap.around(name, lambda: next_fun(*args, **kwargs))

        with nn.intercept_methods(interceptor):
            return call(lambda *a, **k: self.module.apply(weights, *a, **k), inputs)

    def fingerprint(self) -> str:
        """A content hash of the current variables."""
        return tree_fingerprint(iter(flatten_tree(self.current()).items()))

    def load_checkpoint(self, path: Path) -> None:
        """Use the variables of checkpoint ``path`` from now on (its tree must match the module's)."""
        template = flatten_tree(self.current())
        given = load_params(path)
        collections = {k.split("/")[0] for k in template}
        if given and not any(k.split("/")[0] in collections for k in given):
            given = {f"params/{k}": v for k, v in given.items()}  # a params-only tree
        if not any(k.split("/")[0] != "params" for k in given):
            template = {k: v for k, v in template.items() if k.startswith("params/")}
        check_fits(template, given, path)
        merged = {**flatten_tree(self.current()), **given}
        self.variables = _rebuild(self.current(), merged)
