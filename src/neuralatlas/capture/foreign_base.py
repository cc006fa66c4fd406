"""What the Flax and Keras capture adapters share with the framework-neutral loop.

The loop is :mod:`neuralatlas.capture.foreign`; shared here are the adapter protocol, taps, layouts and
parameter trees.

It imports no adapter, so the adapters and the loop both import it without an import circle
(the loop picks the adapter, :func:`neuralatlas.capture.foreign.adapter_for`).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from neuralatlas.errors import CaptureError, ModelError, StoreError

LAYOUTS = ("channels_first", "native")

#: what to install for each framework
EXTRAS = {"flax": "neuralatlas[jax]", "jax": "neuralatlas[jax]", "keras": "neuralatlas[keras]"}


def require(module: str) -> Any:
    """Import ``module`` or raise :class:`ModelError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS.get(module.split(".")[0], "the package")
        raise ModelError(f"{module} is not installed ({err}); install it with"
                         f" pip install '{extra}'.") from None


# ---------------------------------------------------------------------------- the adapter protocol
class Adapter(Protocol):
    """What the neutral loop needs of a framework."""

    framework: str                       # "flax.nnx", "flax.linen", "keras:jax", "keras:torch"
    model_id: str                        # module.qualname of the model class

    def discover(self, inputs: Any) -> None:
        """Trace one batch: layer names, order, types."""
    def layer_names(self) -> list[str]:
        """Every tappable layer, in call order."""
    def leaf_names(self) -> list[str]:
        """The layers with no tappable sub-layer."""
    def layer_types(self) -> dict[str, str]:
        """Layer name -> class name."""
    def fingerprint(self) -> str:
        """A content hash of the current weights."""
    def load_checkpoint(self, path: Path) -> None:
        """Use the weights of checkpoint ``path`` from now on."""
    def restore(self) -> contextlib.AbstractContextManager:
        """A context manager that leaves the model as it was found."""
    def runner(self, spec: RunSpec) -> Runner:
        """The runner that captures batches as ``spec`` asks."""


class Runner(Protocol):
    """What a framework adapter gives capture: layer shapes, and one batch's activations, gradients and logits."""

    def shapes(self, inputs: Any, labels: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Each captured layer's unit shape, from one batch."""
    def __call__(self, inputs: Any, labels: np.ndarray
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """Activations and gradients per layer, and the logits, of one batch."""


@dataclass(frozen=True)
class RunSpec:
    """What to tap and how: the same meaning for every adapter."""

    layers: tuple[str, ...]
    gradients: bool
    target: Any
    modes: Mapping[str, str | None]
    layout: str
    output: Any
    layer_output: Mapping[str, int | str]
    repeated: str
    batch_size: int


def layout_of(shape: Sequence[int], channels_last: bool, layout: str) -> tuple[int, ...] | None:
    """The axis permutation that stores an output of ``shape`` (batch first), or None."""
    if layout == "channels_first" and channels_last and len(shape) >= 4:
        return (0, len(shape) - 1, *range(1, len(shape) - 1))
    return None


def stored_layout(rank: int, channels_last: bool, transposed: bool) -> tuple[str, tuple[int, ...]]:
    """The layout name the store records for an output of ``rank``, and the axes a spatial mean uses.

    ``rank`` counts the batch axis; the axes are those a spatial reduction averages over, as stored.

    Names as the torch capture uses them (``store.attrs["layouts"]``, read by the analyses):
    ``"flat"``, ``"channels_first"``, ``"sequence"`` (``[B, T, D]``: positions, then features:
    also a channels-last 1-D conv map) and ``"channels_last"`` (maps kept as the framework
    gives them with ``layout="native"``; analyses treat those as not channel-first).
    """
    if rank <= 2:
        return "flat", ()
    if not channels_last:
        return "channels_first", tuple(range(2, rank))
    if rank == 3:
        return "sequence", (1,)
    if transposed:
        return "channels_first", tuple(range(2, rank))
    return "channels_last", tuple(range(1, rank - 1))


def selector_for(layer: str, layer_output: Mapping[str, int | str]) -> int | str | None:
    """The ``layer_output`` selector (index or key) whose pattern matches ``layer``, or None."""
    from neuralatlas.patterns import match_pattern

    return match_pattern(layer_output, layer)


def pick(obj: Any, selector: Any, what: str, is_array: Callable[[Any], bool]) -> tuple[Any, Callable[[Any], Any]]:
    """The array of ``obj`` that ``selector`` names and a function putting a replacement back.

    Arrays pass through; tuples/lists give their first array (or ``selector``-th element);
    mappings their ``logits`` (or ``selector`` key, else the first array).
    """
    if callable(selector):
        return selector(obj), lambda new: obj
    if is_array(obj) and selector is None:
        return obj, lambda new: new
    if isinstance(obj, (tuple, list)):
        idx = selector if isinstance(selector, int) else next(
            (i for i, v in enumerate(obj) if is_array(v)), None)
        if idx is not None and is_array(obj[idx]):
            def put(new, idx=idx):
                items = list(obj)
                items[idx] = new
                return type(obj)(items) if isinstance(obj, list) else tuple(items)
            return obj[idx], put
    if isinstance(obj, Mapping):
        key = selector if isinstance(selector, str) else (
            "logits" if "logits" in obj else next((k for k, v in obj.items() if is_array(v)), None))
        if key is not None and key in obj and is_array(obj[key]):
            return obj[key], lambda new, key=key: {**obj, key: new}
        if isinstance(selector, str):
            raise CaptureError(f"The {what} has no field {selector!r}; fields: {list(obj)}.")
    raise CaptureError(f"Cannot find an array in the {what} of type {type(obj).__name__}; pass a"
                       " selector (an index, a field name, or a function returning the array).")


class Tap:
    """Called around every layer call while a model runs.

    It records nesting, counts calls, and for the chosen layers records (and perturbs) the output.

    Adapters call :meth:`around` from their interception; the rest is framework-neutral.
    """

    def __init__(self, wanted: Sequence[str] = (), call_index: Mapping[str, int] | None = None,
                 perturb: Callable[[str, Any], Any] | None = None,
                 layer_output: Mapping[str, int | str] | None = None,
                 is_array: Callable[[Any], bool] = lambda x: hasattr(x, "shape")):
        self.wanted = set(wanted)
        self.call_index = dict(call_index or {})
        self.perturb = perturb
        self.layer_output = dict(layer_output or {})
        self.is_array = is_array
        self.order: list[str] = []       # first call of each layer, in call order
        self.parents: set[str] = set()   # layers during whose call another layer ran
        self.calls: dict[str, int] = {}
        self.outputs: dict[str, Any] = {}
        self._stack: list[str] = []

    def around(self, name: str, call: Callable[[], Any]) -> Any:
        """Call ``call`` (layer ``name``'s forward), recording its output and nesting."""
        if not name:
            return call()
        if self._stack:
            self.parents.update(self._stack)
        if name not in self.calls:
            self.order.append(name)
        k = self.calls.get(name, 0)
        self.calls[name] = k + 1
        self._stack.append(name)
        try:
            out = call()
        finally:
            self._stack.pop()
        if name not in self.wanted or k != self.call_index.get(name, 0):
            return out
        value, put = pick(out, selector_for(name, self.layer_output), f"output of layer {name!r}",
                          self.is_array)
        if self.perturb is not None:
            value = self.perturb(name, value)
            out = put(value)
        self.outputs[name] = value
        return out

    def leaves(self) -> list[str]:
        """The called layers with no called sub-layer."""
        return [n for n in self.order if n not in self.parents]


def call_indices(calls: Mapping[str, int], layers: Sequence[str], repeated: str) -> dict[str, int]:
    """Which call of each layer is recorded; raises for shared layers under ``repeated='error'``."""
    missing = [n for n in layers if n not in calls]
    if missing:
        raise CaptureError(f"Layers {missing} did not run in the forward pass (unused modules, or"
                           " modules called through a functional path); choose layers that run.")
    shared = {n: calls[n] for n in layers if calls[n] > 1}
    if shared and repeated == "error":
        detail = ", ".join(f"{k!r} ran {v} times" for k, v in shared.items())
        raise CaptureError(f"Shared modules in one forward pass: {detail}. A single activation per"
                           " sample is ambiguous; pass repeated='first' or repeated='last' to choose a call.")
    return {n: (calls[n] - 1 if repeated == "last" else 0) for n in layers}


def _is_from(obj: Any, package: str) -> bool:
    if package not in sys.modules:
        return False
    return any(getattr(c, "__module__", "").split(".")[0] == package for c in type(obj).__mro__)


def is_foreign(model: Any) -> bool:
    """Whether ``model`` is a Flax or Keras model (or a linen ``(module, variables)`` pair)."""
    if isinstance(model, tuple) and len(model) == 2:
        return _is_from(model[0], "flax")
    return _is_from(model, "flax") or _is_from(model, "keras")


# ---------------------------------------------------------------------------- arrays
def to_numpy_tree(x: Any) -> Any:
    """Batches from the data sources (torch tensors) as numpy, keeping tuples and dicts."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    if isinstance(x, Mapping):
        return {k: to_numpy_tree(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy_tree(v) for v in x)
    return np.asarray(x)


def pad_rows(x: Any, n: int) -> Any:
    """Pad every array of a batch to ``n`` rows by repeating the last row (one compiled shape)."""
    if isinstance(x, Mapping):
        return {k: pad_rows(v, n) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(pad_rows(v, n) for v in x)
    x = np.asarray(x)
    if len(x) >= n:
        return x
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def tree_fingerprint(leaves: Iterator[tuple[str, Any]]) -> str:
    """A SHA-1 over the names, shapes, dtypes and bytes of a parameter tree's leaves."""
    h = hashlib.sha1()
    for name, value in leaves:
        h.update(name.encode())
        arr = np.ascontiguousarray(np.asarray(value))
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.data if arr.size else b"")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- params checkpoints
def flatten_tree(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping of arrays as ``{"a/b/c": array}`` (keys in the tree's order)."""
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(flatten_tree(v, f"{prefix}{k}/"))
    elif isinstance(tree, (list, tuple)):
        for k, v in enumerate(tree):
            out.update(flatten_tree(v, f"{prefix}{k}/"))
    else:
        out[prefix[:-1]] = tree
    return out


def load_params(path: str | Path) -> dict[str, np.ndarray]:
    """A params checkpoint as ``{"a/b/c": array}``: ``.npz`` or flax ``.msgpack``."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if path.suffix == ".msgpack":
        from flax import serialization

        return {k: np.asarray(v) for k, v in flatten_tree(serialization.msgpack_restore(path.read_bytes())).items()}
    raise StoreError(f"Unknown checkpoint format {path.name}; use a .npz (keys 'a/b/c') or a"
                     " flax .msgpack file of the params tree.")


def check_fits(expected: Mapping[str, Any], given: Mapping[str, Any], where: Path | str) -> None:
    """Raise naming the first path where a checkpoint does not fit the module's tree."""
    for key, value in expected.items():
        if key not in given:
            raise StoreError(f"The params in {where} do not fit the module: {key!r} is missing"
                             f" (the module has {len(expected)} arrays, the checkpoint {len(given)}).")
        want, got = tuple(np.shape(value)), tuple(np.shape(given[key]))
        if want != got:
            raise StoreError(f"The params in {where} do not fit the module: {key!r} has shape"
                             f" {list(got)}, the module expects {list(want)}.")
    extra = [k for k in given if k not in expected]
    if extra:
        raise StoreError(f"The params in {where} do not fit the module: {extra[0]!r} is not a"
                         f" parameter of it ({len(extra)} unexpected arrays).")
