"""Capture of models that are not torch modules: Flax (NNX, linen) and Keras 3.

The loop here is framework-neutral: it reads batches from the same data sources as the torch
loop (:func:`neuralatlas.capture.sources.as_source`), opens or resumes the store with the same
code (:mod:`neuralatlas.capture.store_open`), and writes the same chunks, done flags and sample
table. It imports nothing of the torch loop (:mod:`neuralatlas.capture.loop`), which hands Flax
and Keras models to :func:`capture_foreign`. What differs per framework lives in an
*adapter* (:mod:`neuralatlas.capture.flax_adapter`, :mod:`neuralatlas.capture.keras_adapter`):
it names the layers, loads a checkpoint, and turns one batch into the tapped layer outputs, their
gradients and the logits (numpy).

Layout: Flax and Keras keep conv maps channels-last (``[B, H, W, C]``). Every analysis of the
store reads conv maps channels-first (``[C, H, W]``, as torch keeps them: a NAP channel, a pooled
neuron, the gradient alignment), so by default (``layout="channels_first"``) outputs of rank >= 4
are stored transposed to ``[B, C, H, W]``; the store's ``layouts`` attribute records what each
layer was in the framework. ``layout="native"`` stores them as the framework gives them (then
the channel axis is the last one, and channel-wise analyses would read it wrongly).
Outputs of rank 3 (``[B, T, D]`` token sequences, 1-D conv maps) are stored as given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.capture.foreign_base import (  # noqa: F401 - the shared pieces, importable from here as before
    EXTRAS,
    LAYOUTS,
    Adapter,
    Runner,
    RunSpec,
    Tap,
    _is_from,
    call_indices,
    check_fits,
    flatten_tree,
    is_foreign,
    layout_of,
    load_params,
    pad_rows,
    pick,
    require,
    selector_for,
    stored_layout,
    to_numpy_tree,
    tree_fingerprint,
)
from neuralatlas.errors import CaptureError, DataError, StoreError


# ---------------------------------------------------------------------------- detection
def adapter_for(model: Any, *, batch_size: int = 256) -> Adapter | None:
    """The adapter of a Flax or Keras model, or None for anything else (torch goes its own way).

    Frameworks are recognised without importing them: a model can only be a Flax or Keras
    object if that package is already imported.
    """
    if isinstance(model, tuple) and len(model) == 2 and _is_from(model[0], "flax"):
        from neuralatlas.capture.flax_adapter import LinenAdapter

        return LinenAdapter(model[0], model[1])
    if _is_from(model, "flax"):
        from flax import nnx

        from neuralatlas.capture import flax_adapter

        if isinstance(model, nnx.Module):
            return flax_adapter.NNXAdapter(model)
        import flax.linen as nn

        if isinstance(model, nn.Module):
            if model.scope is not None:  # a bound module carries its variables
                return flax_adapter.LinenAdapter(model.clone(parent=None), model.variables)
            return flax_adapter.LinenAdapter(model, None)
    if _is_from(model, "keras"):
        from neuralatlas.capture.keras_adapter import KerasAdapter

        return KerasAdapter(model)
    return None


# ---------------------------------------------------------------------------- the loop
class _TypedNames:
    """``named_modules()`` for the store opener: layer name -> an object of its class name."""

    def __init__(self, types: Mapping[str, str]):
        self._types = dict(types)

    def named_modules(self):
        for name, tname in self._types.items():
            yield name, type(tname, (), {})()


class _ForeignRun:
    """A :class:`~neuralatlas.capture.store_open.StoreRun` (layers, source, probe) and the chunk writer."""

    def __init__(self, adapter: Adapter, source: Any, spec: RunSpec):
        self.adapter, self.source, self.spec = adapter, source, spec
        self.layers = list(spec.layers)
        self.model = _TypedNames(adapter.layer_types())
        self.device = None
        self._runner: Runner | None = None
        # what store_open.open_or_create and store_open.repair read of a run
        self.layouts: dict[str, str] = {}
        self.rows = "samples"
        self.n_rows = source.n
        self.row_batch = spec.batch_size
        self.label_dtype: type = np.int64
        self.has_prediction = False
        self.probed: tuple[dict[str, tuple[int, ...]], int] | None = None

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = self.adapter.runner(self.spec)
        return self._runner

    def first_batch(self) -> tuple[Any, np.ndarray]:
        inputs, labels = next(iter(self.source.batches(0, min(self.source.batch_size, self.source.n))))
        return to_numpy_tree(inputs), np.asarray(to_numpy_tree(labels))

    def probe(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """Unit shapes and layouts of the layers, the kind of labels and output (no compute for JAX)."""
        if self.probed is not None:
            return self.probed
        inputs, labels = self.first_batch()
        self.label_dtype = np.float64 if np.issubdtype(labels.dtype, np.floating) else np.int64
        if self.spec.gradients and self.label_dtype is np.float64 and self.spec.target in ("label", "loss"):
            raise CaptureError(f"target={self.spec.target!r} needs integer class labels; these labels are"
                               " floats (regression targets). Pass a function target=f(logits, labels).")
        shapes = self.runner.shapes(pad_rows(inputs, self.spec.batch_size), pad_rows(labels, self.spec.batch_size))
        native = getattr(self.runner, "layouts", {})
        self.layouts = {n: "flat" if len(s) <= 1 else native.get(n, "unknown") for n, s in shapes.items()}
        n_classes = int(getattr(self.runner, "n_classes", 0))
        classes = self.source.classes
        self.has_prediction = (n_classes >= 2 and self.label_dtype is np.int64 and labels.ndim == 1
                               and (not classes or n_classes == len(classes)))
        widest = max(int(np.prod(s, dtype=np.int64)) for s in shapes.values()) * 4
        self.probed = shapes, widest * (2 if self.spec.gradients else 1)
        return self.probed

    def write_sample_table(self, store: Any, groups: Any) -> None:
        group_col = groups if groups is not None else self.source.groups
        if group_col is not None and len(group_col) != self.source.n:
            raise DataError(f"groups= has {len(group_col)} values; the data has {self.source.n} samples.")
        fill = np.nan if self.label_dtype is np.float64 else -1
        store.write_samples(index=self.source.index, label=np.full(self.source.n, fill, self.label_dtype),
                            group=group_col)

    def prepare(self, store: Any, slot: int | None, compressor: str | None) -> None:
        for name in self.layers:
            store.create_layer_array("acts", name, slot, compressor=compressor)
            if self.spec.gradients:
                store.create_layer_array("grads", name, slot, compressor=compressor)
        if self.has_prediction:
            store.prediction_array(slot)
        store.nonfinite_array(slot, create=True)
        store.done_flags(slot, create=True)

    def fill(self, store: Any, slot: int | None, progress: Callable[[int, int], None] | None,
             done_rows: int, total: int) -> int:
        R, n = store.chunk_rows, store.n_samples
        acts = {name: store.activations_array("acts", name, slot) for name in self.layers}
        grads = ({name: store.activations_array("grads", name, slot) for name in self.layers}
                 if self.spec.gradients else {})
        from neuralatlas.capture.batch_ops import _nonfinite_rows

        preds_arr = store.prediction_array(slot) if self.has_prediction else None
        nonfinite = store.nonfinite_array(slot)
        done = store.done_flags(slot)
        flags = done[:]
        labels_arr = store.sample_column("label")
        shapes = {name: store.unit_shape(name) for name in self.layers}
        runner = self.runner
        for c in range(done.shape[0]):
            start, stop = c * R, min((c + 1) * R, n)
            if flags[c]:
                done_rows += stop - start
                continue
            a_buf = {k: np.empty((stop - start, *s), np.float32) for k, s in shapes.items()}
            g_buf = {k: np.empty((stop - start, *s), np.float32) for k, s in shapes.items()} if grads else {}
            pred_buf = np.empty(stop - start, np.int64)
            label_buf = np.empty(stop - start, self.label_dtype)
            lo = 0
            for inputs, labels in self.source.batches(start, stop):
                x, y = to_numpy_tree(inputs), np.asarray(to_numpy_tree(labels))
                m = len(y)
                hi = lo + m
                b_acts, b_grads, logits = runner(pad_rows(x, self.spec.batch_size), pad_rows(y, self.spec.batch_size))
                for k in self.layers:
                    value = b_acts[k][:m]
                    if value.shape[1:] != shapes[k]:
                        raise CaptureError(
                            f"Layer {k!r} gave unit shape {list(value.shape[1:])} in this batch but"
                            f" {list(shapes[k])} in the first; outputs of varying length need a"
                            f" reduction at capture time, e.g. reduce={{{k!r}: 'token_mean'}}.")
                    a_buf[k][lo:hi] = value
                    if grads:
                        g_buf[k][lo:hi] = b_grads[k][:m]
                if self.has_prediction:
                    pred_buf[lo:hi] = np.asarray(logits)[:m].argmax(1)
                label_buf[lo:hi] = y
                lo = hi
            if lo != stop - start:
                raise CaptureError(f"The data gave {lo} samples for rows {start}..{stop - 1};"
                                   f" expected {stop - start}. Its length must not change.")
            for name in self.layers:
                acts[name][start:stop] = a_buf[name]
                if grads:
                    grads[name][start:stop] = g_buf[name]
            if preds_arr is not None:
                preds_arr[start:stop] = pred_buf
            if nonfinite is not None:  # rows with NaN/inf per layer, for analyses to name
                nonfinite[start:stop] = _nonfinite_rows(a_buf, g_buf, self.layers, stop - start)
            labels_arr[start:stop] = label_buf
            done[c] = True  # last: a chunk counts only when everything of it is on disk
            done_rows += stop - start
            if progress is not None:
                progress(done_rows, total)
        return done_rows


def checkpoint_paths(checkpoints: str | Path | Mapping[int, str | Path],
                     epochs: Sequence[int] | None) -> dict[int, Path]:
    """``{epoch: path}`` of parameter checkpoints.

    They are given as a mapping, or as a folder (or run folder with a ``checkpoints/`` folder) of
    ``epoch_<e>.npz`` / ``epoch_<e>.msgpack`` files.
    """
    import re

    if isinstance(checkpoints, Mapping):
        found = {int(e): Path(p) for e, p in checkpoints.items()}
    else:
        folder = Path(checkpoints)
        if (folder / "checkpoints").is_dir():
            folder = folder / "checkpoints"
        found = {}
        for p in sorted(folder.glob("epoch_*")):
            m = re.fullmatch(r"epoch_(\d+)\.(npz|msgpack|weights\.npz)", p.name)
            if m:
                found[int(m.group(1))] = p
    if not found:
        raise StoreError(f"No parameter checkpoints found in {checkpoints}; expected epoch_000.npz"
                         " (or .msgpack) files, as neuralatlas.capture.flax_adapter.save_params writes.")
    from neuralatlas.capture.batch_ops import select_epochs

    return select_epochs(found, epochs)


def capture_foreign(
    model: Any,
    data: Any,
    layers: str | Sequence[str] | None = None,
    out: str | Path = "acts.zarr",
    *,
    gradients: bool = False,
    target: Any = "label",
    batch_size: int = 256,
    device: Any = None,
    reduce: str | Mapping[str, str] | None = None,
    output: Any = None,
    layer_output: Mapping[str, int | str] | None = None,
    repeated: str = "error",
    checkpoints: str | Path | Mapping[int, str | Path] | None = None,
    epochs: Sequence[int] | None = None,
    groups: Sequence | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    compressor: str | None = None,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
    layout: str = "channels_first",
) -> Any:
    """:func:`neuralatlas.capture` for a Flax or Keras model; ``neuralatlas.capture`` calls this.

    Same arguments, store and resume as for torch. ``model`` is an ``nnx.Module``, a linen
    ``(module, variables)`` pair (or a bound linen module, or an unbound one with
    ``checkpoints=``), a ``keras.Model``, or an :class:`Adapter`. ``layout`` says how conv maps
    are stored (see the module docstring; only reachable by calling this function directly).
    ``device`` is left to the framework (JAX and Keras place arrays themselves); ``client`` is
    not supported for these frameworks yet.

    Examples
    --------
    >>> store = neuralatlas.capture(nnx_model, test, layers=["conv*"], gradients=True,
    ...                             out="acts.zarr")                  # doctest: +SKIP
    """
    from neuralatlas.capture.batch_ops import reduction_for
    from neuralatlas.capture.fingerprints import callable_fingerprint, file_fingerprint
    from neuralatlas.capture.hooks import REDUCTIONS
    from neuralatlas.capture.sources import as_source
    from neuralatlas.capture.store_open import open_or_create
    from neuralatlas.errors import LayerError
    from neuralatlas.patterns import expand_layers
    from neuralatlas.store.safety import WriteGuard, report_nonfinite

    adapter = model if hasattr(model, "runner") and hasattr(model, "discover") else adapter_for(model)
    if adapter is None:
        raise CaptureError(f"Cannot capture a {type(model).__name__}: expected a torch module, an"
                           " nnx.Module, a linen (module, variables) pair or a keras.Model.")
    if client is not None:
        raise CaptureError("client= (distributed capture) is implemented for torch models only;"
                           " capture a Flax or Keras model without client=.")
    if layout not in LAYOUTS:
        raise CaptureError(f"layout={layout!r}; choose one of {', '.join(LAYOUTS)}.")
    if repeated not in ("error", "first", "last"):
        raise CaptureError(f"repeated={repeated!r}; choose 'error', 'first' or 'last'.")
    source = as_source(data, batch_size)
    if source.n == 0:
        raise DataError("The data set is empty; nothing to capture.")
    ckpts: dict[int, Path] = {}
    slots: list[int | None] = [None]
    if checkpoints is not None:
        ckpts = checkpoint_paths(checkpoints, epochs)
        slots = list(ckpts)
    first_inputs, _ = next(iter(source.batches(0, min(source.batch_size, source.n))))
    with contextlib.ExitStack() as stack:
        stack.enter_context(adapter.restore())
        adapter.discover(pad_rows(to_numpy_tree(first_inputs), source.batch_size))
        if ckpts:
            adapter.load_checkpoint(next(iter(ckpts.values())))  # also checks that the tree fits the module
        all_names = adapter.layer_names()
        try:
            names = (adapter.leaf_names() if layers is None
                     else [n for n, _ in expand_layers(all_names, layers, adapter.model_id)])
        except LayerError as err:  # the shared message speaks of torch's named_modules()
            raise LayerError(str(err.args[0]).replace("as model.named_modules() names them",
                                                      f"as {adapter.framework} names them")) from None
        modes = {name: reduction_for(name, reduce) for name in names}
        for name, mode in modes.items():
            if mode is not None and mode not in REDUCTIONS:
                raise CaptureError(f"reduce={mode!r} for layer {name!r} is not a reduction;"
                                   f" choose one of {', '.join(REDUCTIONS)}.")
        spec = RunSpec(tuple(names), bool(gradients), target, modes, layout, output,
                       dict(layer_output or {}), repeated, int(source.batch_size))
        settings = {
            "model": adapter.model_id,
            "framework": adapter.framework,
            "layers": names,
            "gradients": bool(gradients),
            "target": target if isinstance(target, (str, int)) else callable_fingerprint(target),
            "reduce": reduce if not isinstance(reduce, Mapping) else dict(reduce),
            "output": output if isinstance(output, (str, int, type(None))) else callable_fingerprint(output),
            "layout": layout,
            "n_samples": source.n,
            "data": source.fingerprint(),
            "weights": (adapter.fingerprint() if not ckpts
                        else {str(e): file_fingerprint(p) for e, p in ckpts.items()}),
        }
        run = _ForeignRun(adapter, source, spec)
        # one writer at a time; a full disk or a read-only folder is named
        guard = stack.enter_context(WriteGuard(Path(out), gradients=gradients))
        # the store opener needs only layers, source, probe() and model.named_modules() of a run
        store = open_or_create(Path(out), settings, overwrite, run, slots, groups, classes, chunk_rows)
        guard.store, guard.slots = store, slots
        if run.probed is None:  # a resumed store: learn the labels' and output's kind all the same
            run.probe()
        if "framework" not in store.attrs:
            store.update_attrs(framework=adapter.framework,
                               framework_layouts=getattr(run.runner, "framework_layouts", {}))
        total = source.n * len(slots)
        done_rows = 0
        for slot in slots:
            if store.is_complete("final" if slot is None else slot):  # type: ignore[arg-type]
                done_rows += source.n
                continue
            run.prepare(store, slot, compressor)
            if slot is not None:
                adapter.load_checkpoint(ckpts[int(slot)])  # runners read the weights per call: no recompile
            done_rows = run.fill(store, slot, progress, done_rows, total)
            store.mark_complete(slot)
        report_nonfinite(store)
    if progress is not None:
        progress(total, total)
    return store
