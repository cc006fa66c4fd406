"""The capture loop: stream layer activations (and gradients) of a data set into a store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas.capture.hooks import (REDUCTIONS, SPATIAL_REDUCTIONS, Recorder, preserved,
                                       resolve_layers, select_tensor)
from neuralatlas.capture.writer import ChunkWriter
from neuralatlas.errors import CaptureError, DataError, StoreError, StoreMismatchError
from neuralatlas.store.core import ActivationStore, chunk_rows_for

Target = str | int | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` picks CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CaptureError(f"device={str(device)!r} was asked for but CUDA is not available here;"
                           " pass device='cpu' or device=None to pick what exists.")
    return device


# ---------------------------------------------------------------------------- data sources
class _Source:
    """Batches of a data set by row range, whatever form the data came in."""

    n: int
    batch_size: int
    index: np.ndarray
    groups: np.ndarray | None = None
    classes: list[str] | None = None
    name: str = "data"

    def batches(self, start: int, stop: int) -> Iterator[tuple[Any, torch.Tensor]]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        return f"{self.name}:{self.n}"


class _ArraySource(_Source):
    def __init__(self, data: Any, batch_size: int):
        self.data, self.n, self.batch_size = data, len(data), batch_size
        self.index, self.groups, self.classes = data.index, data.groups, list(data.classes)
        self.name = data.name

    def batches(self, start: int, stop: int):
        for lo in range(start, stop, self.batch_size):
            hi = min(lo + self.batch_size, stop)
            yield torch.from_numpy(self.data.inputs[lo:hi]), torch.from_numpy(self.data.labels[lo:hi])

    def fingerprint(self) -> str:
        return f"{self.name}:{self.data.fingerprint()}"


class _DatasetSource(_Source):
    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int):
        self.dataset, self.n, self.batch_size = dataset, len(dataset), batch_size
        self.index = np.arange(self.n)
        self.name = type(dataset).__name__

    def batches(self, start: int, stop: int):
        subset = torch.utils.data.Subset(self.dataset, range(start, stop))
        for batch in torch.utils.data.DataLoader(subset, batch_size=self.batch_size, shuffle=False):
            yield _split_batch(batch)


class _LoaderSource(_Source):
    """A DataLoader can only be read in order: skipped rows are read but not computed."""

    def __init__(self, loader: torch.utils.data.DataLoader):
        if not isinstance(loader.sampler, torch.utils.data.SequentialSampler):
            raise DataError(
                "The DataLoader shuffles (or uses a custom sampler), so sample positions change"
                " from run to run; pass a DataLoader with shuffle=False so every row keeps its index."
            )
        if loader.batch_size is None:
            raise DataError("The DataLoader has no fixed batch_size (a batch_sampler was given);"
                            " pass a DataLoader with batch_size=... so chunks align with batches.")
        self.loader, self.batch_size = loader, loader.batch_size
        self.n = len(loader.dataset)
        self.index = np.arange(self.n)
        self.name = type(loader.dataset).__name__
        self._iter: Iterator | None = None
        self._pos = 0

    def batches(self, start: int, stop: int):
        if self._iter is None or self._pos > start:
            self._iter, self._pos = iter(self.loader), 0
        while self._pos < stop:
            inputs, labels = _split_batch(next(self._iter))
            size = len(labels)
            lo = self._pos
            self._pos += size
            if lo >= start:
                yield inputs, labels


def _split_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, labels = batch
        return inputs, torch.as_tensor(labels)
    raise DataError(
        f"Each batch must be an (inputs, labels) pair; got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        + ". Wrap the data so items are (inputs, label), where inputs are a tensor, tuple or dict."
    )


def as_source(data: Any, batch_size: int) -> _Source:
    """Wrap a neuralatlas data set, a torch Dataset of (inputs, label) or a DataLoader."""
    from neuralatlas.data.dataset import ArrayDataset

    if isinstance(data, ArrayDataset):
        return _ArraySource(data, batch_size)
    if isinstance(data, torch.utils.data.DataLoader):
        return _LoaderSource(data)
    if isinstance(data, torch.utils.data.IterableDataset):
        raise DataError("An IterableDataset has no length or stable positions; pass a map-style"
                        " Dataset or a DataLoader over one.")
    if isinstance(data, torch.utils.data.Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return _DatasetSource(data, batch_size)
    raise DataError(
        f"Cannot capture from data of type {type(data).__name__}; pass a neuralatlas data set"
        " (neuralatlas.data.digits()), a torch Dataset of (inputs, label) pairs, or a DataLoader."
    )


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def _require_input_grad(x: Any) -> Any:
    """Float inputs get requires_grad so every layer output is on the graph, weights frozen or not."""
    if isinstance(x, torch.Tensor):
        return x.detach().requires_grad_(True) if x.is_floating_point() else x
    if isinstance(x, Mapping):
        return {k: _require_input_grad(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_require_input_grad(v) for v in x)
    return x


def call_model(model: nn.Module, inputs: Any) -> Any:
    """Tensor → ``model(x)``; tuple → ``model(*x)``; dict → ``model(**x)`` (HuggingFace-style)."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _shape_of(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return str(list(x.shape))
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k}: {_shape_of(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(_shape_of(v) for v in x) + ")"
    return type(x).__name__


# ---------------------------------------------------------------------------- targets, reductions
def target_values(target: Target, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The scalar per sample whose gradient is captured."""
    if callable(target):
        return target(logits, labels)
    if target == "label":
        if labels.min() < 0:
            raise CaptureError("target='label' needs labels; this data has none (label -1).")
        return logits.gather(1, labels.view(-1, 1)).squeeze(1)
    if target == "prediction":
        return logits.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
    if target == "loss":
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    if isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < logits.shape[1]:
            raise CaptureError(f"target={target} is out of range: the model has {logits.shape[1]}"
                               f" outputs (0..{logits.shape[1] - 1}).")
        return logits[:, int(target)]
    raise CaptureError(f"Unknown target {target!r}; use 'label', 'prediction', 'loss', a class"
                       " index, or a function (logits, labels) -> per-sample values.")


def _reduction_for(layer: str, reduce: str | Mapping[str, str] | None) -> str | None:
    import fnmatch

    if reduce is None or isinstance(reduce, str):
        return reduce
    for pattern, mode in reduce.items():
        if fnmatch.fnmatchcase(layer, pattern):
            return mode
    return None


def apply_reduction(t: torch.Tensor, mode: str | None, mask: torch.Tensor | None) -> torch.Tensor:
    """Reduce one layer output per sample: spatial mean/max, or over tokens honouring a mask."""
    if mode is None or t.dim() <= 2:
        return t
    if mode in SPATIAL_REDUCTIONS:
        flat = t.flatten(2)
        return flat.mean(2) if mode == "mean" else flat.amax(2)
    if mode == "first_token":
        return t[:, 0]
    if mask is None:
        mask = torch.ones(t.shape[:2], device=t.device, dtype=t.dtype)
    mask = mask.to(t.dtype)
    if mode == "last_token":
        last = (mask.sum(1).long() - 1).clamp(min=0)
        return t[torch.arange(t.shape[0], device=t.device), last]
    m = mask.view(*mask.shape, *([1] * (t.dim() - 2)))
    if mode == "token_mean":
        return (t * m).sum(1) / m.sum(1).clamp(min=1)
    return t.masked_fill(m == 0, float("-inf")).amax(1)  # token_max


# ---------------------------------------------------------------------------- capture
def capture(
    model: nn.Module,
    data: Any,
    layers: str | Sequence[str] | None = None,
    out: str | Path = "acts.zarr",
    *,
    gradients: bool = False,
    target: Target = "label",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    reduce: str | Mapping[str, str] | None = None,
    output: int | str | Callable[[Any], torch.Tensor] | None = None,
    layer_output: Mapping[str, int | str] | None = None,
    repeated: str = "error",
    checkpoints: str | Path | Mapping[int, str | Path] | None = None,
    epochs: Sequence[int] | None = None,
    groups: Sequence | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    compressor: str | None = None,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    client: Any = None,
) -> ActivationStore:
    """Capture the activations (and gradients) of ``layers`` over ``data`` into a zarr store.

    Streams batch by batch to disk, so memory stays flat however large the data set is. A
    capture that was interrupted resumes when called again with the same arguments; a store
    written with other arguments is refused with the difference named.

    Parameters
    ----------
    model : torch.nn.Module
        Any module. It is left as found (hooks, mode, ``requires_grad``, weights, device).
    data : ArrayDataset, torch Dataset of ``(inputs, label)``, or DataLoader
        Inputs may be a tensor, a tuple (``model(*x)``) or a dict (``model(**x)``).
    layers : str or list of str, optional
        Names as ``model.named_modules()`` gives them; glob patterns allowed. Default: every
        leaf module.
    out : path
        The store folder (``.zarr``).
    gradients : bool
        Also record the gradient of ``target`` w.r.t. each layer's output, in the same pass.
    target : "label", "prediction", "loss", int or callable
        The per-sample scalar for gradients: the logit of the true label, of the predicted
        class, the cross-entropy loss, a class index, or ``f(logits, labels) -> [B]``.
    batch_size : int
        Samples per forward pass (a DataLoader's own batch size wins).
    device : str, optional
        ``None`` picks CUDA when available, else CPU.
    reduce : str or {pattern: str}, optional
        Reduce layer outputs at capture time: ``"mean"``/``"max"`` over spatial axes of
        channel-first maps; ``"token_mean"``, ``"token_max"``, ``"first_token"``,
        ``"last_token"`` over the token axis of ``[B, T, D]`` outputs, honouring an
        ``attention_mask`` in dict inputs.
    output : int, str or callable, optional
        Which tensor of the model's output holds the logits (default: the tensor itself, the
        first tensor of a tuple, ``.logits`` of a mapping or output object).
    layer_output : {pattern: int or str}, optional
        Which tensor of a layer's tuple/object output to record (default: the first).
    repeated : "error", "first" or "last"
        What to do with a module that runs more than once per forward (a shared module).
    checkpoints : run folder or {epoch: path}, optional
        Capture once per checkpoint (per-epoch capture for the inter-epoch analyses);
        ``epochs`` picks a subset.
    groups : array-like, optional
        A group column for the sample table (default: the data set's own groups).
    classes : list of str, optional
        Class names (default: the data set's).
    compressor : None, "lz4" or "zstd"
        Chunk compression; none is fastest.
    chunk_rows : int, optional
        Rows per chunk (default: a multiple of the batch size, ~16 MiB for the widest layer).
    overwrite : bool
        Replace an existing store at ``out`` instead of resuming it.
    progress : callable(done_rows, total_rows), optional
        Called after every chunk (the CLI draws a progress bar from it).
    client : dask.distributed.Client, optional
        Shard the data set across the cluster's workers: each writes its own chunks of the same
        store (no locks: chunks are disjoint), and a shard lost with a worker is recomputed.
        The store path must be on storage every worker sees (a network file system, or an
        object-store URL zarr understands). Needs ``neuralatlas[distributed]``.

    Returns
    -------
    ActivationStore

    Raises
    ------
    LayerError
        A layer name matches nothing (the message lists the layers that exist).
    CaptureError
        The model fails on the data's inputs, a layer runs more than once, shapes vary.
    StoreError
        ``out`` holds a store written with different arguments.

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import mlp
    >>> train, test = digits()
    >>> store = capture(mlp(), test, layers=["fc*"], out="/tmp/acts.zarr",
    ...                 gradients=True, overwrite=True)
    >>> store.activations("fc1").shape
    (450, 64)
    """
    source = as_source(data, batch_size)
    if client is not None and isinstance(source, _LoaderSource):
        raise DataError("A DataLoader cannot be split across workers; pass its dataset (a map-style"
                        " Dataset or a neuralatlas data set) and batch_size= instead.")
    if source.n == 0:
        raise DataError("The data set is empty; nothing to capture.")
    names = resolve_layers(model, layers)
    for name in names:
        mode = _reduction_for(name, reduce)
        if mode is not None and mode not in REDUCTIONS:
            raise CaptureError(f"reduce={mode!r} for layer {name!r} is not a reduction;"
                               f" choose one of {', '.join(REDUCTIONS)}.")
    dev = pick_device(device)
    slots: list[int | None] = [None]
    checkpoint_paths: dict[int, Path] = {}
    if checkpoints is not None:
        checkpoint_paths = _checkpoint_paths(checkpoints, epochs)
        slots = list(checkpoint_paths)

    with preserved(model, restore_weights=checkpoints is not None):
        model.to(dev).eval()
        if gradients:
            for p in model.parameters():
                p.requires_grad_(False)  # only activation gradients are wanted
        settings = {
            "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "layers": names,
            "gradients": bool(gradients),
            "target": target if isinstance(target, (str, int)) else getattr(target, "__name__", repr(target)),
            "reduce": reduce if not isinstance(reduce, Mapping) else dict(reduce),
            "output": output if isinstance(output, (str, int, type(None))) else getattr(output, "__name__", "callable"),
            "n_samples": source.n,
            "data": source.fingerprint(),
            "weights": (_weights_fingerprint(model) if checkpoints is None
                        else {str(e): _file_fingerprint(p) for e, p in checkpoint_paths.items()}),
        }
        run = _CaptureRun(model, source, names, dev, gradients, target, reduce, output,
                          layer_output, repeated)
        store = _open_or_create(Path(out), settings, overwrite, run, slots, groups, classes,
                                chunk_rows, compressor, checkpoint_paths)
        total = source.n * len(slots)
        done_rows = 0
        for slot in slots:
            if store.is_complete("final" if slot is None else slot):
                done_rows += source.n
                continue
            run.prepare(store, slot, compressor)
            if client is not None:
                done_rows = _fill_distributed(client, run, store, slot, checkpoint_paths.get(slot),
                                              device, progress, done_rows, total)
            else:
                if slot is not None:
                    _load_checkpoint(model, checkpoint_paths[slot], dev)
                done_rows = run.fill(store, slot, progress, done_rows, total)
            store.mark_complete(slot)
    if progress is not None:
        progress(total, total)
    return store


def _capture_shard(run: _CaptureRun, store_path: str, slot: int | None, checkpoint: Path | None,
                   device: Any, chunks: list[int]) -> list[int]:
    """One worker's share: load the slot's weights, write the given chunks, mark them done."""
    run.device = pick_device(device)
    run.model.to(run.device).eval()
    if checkpoint is not None:
        _load_checkpoint(run.model, checkpoint, run.device)
    store = ActivationStore.open(store_path, mode="a")
    run.fill(store, slot, None, 0, 0, chunks=chunks)
    return chunks


def _fill_distributed(client: Any, run: _CaptureRun, store: ActivationStore, slot: int | None,
                      checkpoint: Path | None, device: Any, progress: Progress | None,
                      done_rows: int, total: int) -> int:
    from distributed import as_completed

    pending = run.pending_chunks(store, slot)
    done_rows += (store.n_samples - sum(min(store.chunk_rows, store.n_samples - c * store.chunk_rows)
                                        for c in pending))
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    n_shards = min(len(pending), 4 * n_workers)  # a few shards per worker balance the load
    shards = [list(map(int, part)) for part in np.array_split(np.asarray(pending, int), n_shards) if len(part)]
    [remote_run] = client.scatter([run], broadcast=True)
    futures = [client.submit(_capture_shard, remote_run, str(store.path), slot, checkpoint, device, shard,
                             key=f"neuralatlas-capture-{store.path.name}-{slot}-{shard[0]}", pure=False)
               for shard in shards]
    for future in as_completed(futures):
        chunks = future.result()
        done_rows += sum(min(store.chunk_rows, store.n_samples - c * store.chunk_rows) for c in chunks)
        if progress is not None:
            progress(done_rows, total)
    if not store.done_flags(slot)[:].all():
        raise StoreError(f"Some chunks of {store.path} were not written by the workers; run the"
                         " same capture again to finish them.")
    return done_rows


def _open_or_create(out: Path, settings: dict[str, Any], overwrite: bool, run: _CaptureRun,
                    slots: list[int | None], groups: Any, classes: Sequence[str] | None,
                    chunk_rows: int | None, compressor: str | None,
                    checkpoint_paths: Mapping[int, Path]) -> ActivationStore:
    if out.exists() and not overwrite and (out / "zarr.json").exists():
        store = ActivationStore.open(out, mode="a")
        before = store.attrs.get("capture", {})
        if before != json.loads(json.dumps(settings)):
            diff = [f"{k}: store has {before.get(k)!r}, this call has {settings.get(k)!r}"
                    for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
            raise StoreMismatchError(
                f"{out} holds a capture made with other arguments ({'; '.join(diff)})."
                " Pass overwrite=True to replace it, or choose another out= path."
            )
        return store
    if out.exists() and not overwrite and any(out.iterdir()):
        raise StoreError(f"{out} exists and is not an activation store; choose another out= path"
                         " or pass overwrite=True to replace it.")
    if checkpoint_paths:
        _load_checkpoint(run.model, checkpoint_paths[slots[0]], run.device)
    shapes, bytes_per_row = run.probe()
    rows = chunk_rows or chunk_rows_for(bytes_per_row, run.source.batch_size, run.source.n)
    if rows % run.source.batch_size and isinstance(run.source, _LoaderSource):
        raise StoreError(f"chunk_rows={rows} must be a multiple of the DataLoader's batch size"
                         f" {run.source.batch_size}.")
    store = ActivationStore.create(out, {
        "layers": run.layers,
        "unit_shapes": {k: list(v) for k, v in shapes.items()},
        "layer_types": {k: type(m).__name__ for k, m in run.model.named_modules() if k in shapes},
        "classes": list(classes) if classes is not None else (run.source.classes or []),
        "n_samples": run.source.n,
        "chunk_rows": rows,
        "epochs": [s for s in slots if s is not None],
        "capture": settings,
        "source": "capture",
    }, overwrite=overwrite)
    store.plan_slots(slots)
    group_col = groups if groups is not None else run.source.groups
    store.write_samples(index=run.source.index, label=np.full(run.source.n, -1, np.int64),
                        group=group_col)
    return store


def _checkpoint_paths(checkpoints: str | Path | Mapping[int, str | Path],
                      epochs: Sequence[int] | None) -> dict[int, Path]:
    if isinstance(checkpoints, Mapping):
        found = {int(e): Path(p) for e, p in checkpoints.items()}
    else:
        from neuralatlas.zoo import list_checkpoints

        found = list_checkpoints(Path(checkpoints))
    if not found:
        raise StoreError(f"No checkpoints found in {checkpoints}; expected"
                         " checkpoints/epoch_000.pt ... as written by neuralatlas.zoo.train.")
    if epochs is not None:
        missing = [e for e in epochs if e not in found]
        if missing:
            raise StoreError(f"Epochs {missing} have no checkpoint; available: {sorted(found)}.")
        found = {e: found[e] for e in epochs}
    for e, p in found.items():
        if not p.exists():
            raise StoreError(f"Checkpoint of epoch {e} is missing: {p}.")
    return dict(sorted(found.items()))


def _load_checkpoint(model: nn.Module, path: Path, device: torch.device) -> None:
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state)


def _file_fingerprint(path: Path) -> str:
    """Content hash of a checkpoint (size and mtime for very large files), so a retrained run
    never passes for the one a store was captured from."""
    stat = path.stat()
    if stat.st_size > 256 * 2**20:
        return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{path.name}:{hashlib.sha1(path.read_bytes()).hexdigest()[:16]}"


def _weights_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data
                 if tensor.numel() else b"")
    return h.hexdigest()[:16]


def _report(writer: ChunkWriter, done_rows: int, total: int, progress: Progress | None) -> int:
    """Flag the chunks the writer finished since the last call and report them (rows on disk)."""
    for rows in writer.commit():
        done_rows += rows
        if progress is not None:
            progress(done_rows, total)
    return done_rows


class _CaptureRun:
    """One capture's moving parts: the model under hooks, the batch loop, chunk buffers."""

    def __init__(self, model, source, layers, device, gradients, target, reduce, output,
                 layer_output, repeated):
        self.model, self.source, self.layers, self.device = model, source, layers, device
        self.gradients, self.target, self.output = gradients, target, output
        self.modes = {name: _reduction_for(name, reduce) for name in layers}
        self.recorder = Recorder(model, layers, keep_graph=gradients, layer_output=layer_output,
                                 repeated=repeated, sink=self._sink)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.rows = slice(0, 0)
        self.mask: torch.Tensor | None = None

    # the sink runs inside each forward hook: reduce, check shape, copy into the chunk buffer
    def _sink(self, layer: str, tensor: torch.Tensor) -> None:
        value = apply_reduction(tensor.detach(), self.modes[layer], self.mask)
        if layer not in self.buffers:  # probing
            self.shapes[layer] = tuple(value.shape[1:])
            return
        if tuple(value.shape[1:]) != self.shapes[layer]:
            raise CaptureError(
                f"Layer {layer!r} gave unit shape {list(value.shape[1:])} in this batch but"
                f" {list(self.shapes[layer])} in the first; outputs of varying length need a"
                f" reduction at capture time, e.g. reduce={{{layer!r}: 'token_mean'}}."
            )
        # straight into the chunk buffer: no temporary per batch (device copy and cast in one)
        torch.from_numpy(self.buffers[layer][self.rows]).copy_(value)

    def _forward(self, inputs: Any, labels: torch.Tensor, probe: bool = False):
        x = _to_device(inputs, self.device)
        self.mask = x.get("attention_mask") if isinstance(x, Mapping) else None
        if self.gradients:
            x = _require_input_grad(x)
        self.recorder.reset()
        try:
            with torch.set_grad_enabled(self.gradients):
                out = call_model(self.model, x)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            if isinstance(err, CaptureError):
                raise
            raise CaptureError(
                f"{type(self.model).__name__} failed on a batch of inputs of shape {_shape_of(x)}:"
                f" {err}. Check that the data matches what the model expects (input shape,"
                " channels, dtype)."
            ) from err
        self.recorder.check_calls()
        logits = select_tensor(out, self.output, what="model output")
        if logits.dim() != 2:
            raise CaptureError(f"The model output selected as logits has shape {list(logits.shape)};"
                               " expected [batch, classes]. Pass output=... to pick the logits.")
        return logits

    def probe(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """One forward of the first batch to learn every layer's unit shape."""
        with self.recorder:
            inputs, labels = next(iter(self.source.batches(0, min(self.source.batch_size, self.source.n))))
            self._forward(inputs, labels, probe=True)
        shapes = {name: self.shapes[name] for name in self.layers}
        widest = max(int(np.prod(s, dtype=np.int64)) for s in shapes.values()) * 4
        return shapes, widest * (2 if self.gradients else 1)

    def prepare(self, store: ActivationStore, slot: int | None, compressor: str | None) -> None:
        """Create the slot's arrays (idempotent); done once, before any writer starts."""
        for name in self.layers:
            store.create_layer_array("acts", name, slot, compressor=compressor)
            if self.gradients:
                store.create_layer_array("grads", name, slot, compressor=compressor)
        store.prediction_array(slot)
        store.done_flags(slot, create=True)

    def pending_chunks(self, store: ActivationStore, slot: int | None) -> list[int]:
        return [int(c) for c in np.flatnonzero(~store.done_flags(slot)[:])]

    def fill(self, store: ActivationStore, slot: int | None, progress: Progress | None,
             done_rows: int, total: int, chunks: Sequence[int] | None = None) -> int:
        """Write the given (default: every unwritten) chunks of ``slot``; returns rows done so far.

        Chunks are disjoint regions of every array, so several processes may fill different
        chunks of one store at once without locks.
        """
        R, n = store.chunk_rows, store.n_samples
        self.shapes = {name: store.unit_shape(name) for name in self.layers}
        acts = {name: store.activations_array("acts", name, slot) for name in self.layers}
        grads = ({name: store.activations_array("grads", name, slot) for name in self.layers}
                 if self.gradients else {})
        preds_arr = store.prediction_array(slot)
        done = store.done_flags(slot)
        labels_arr = store._group["samples/label"]
        pending = set(self.pending_chunks(store, slot) if chunks is None else chunks)
        arrays: dict[Any, Any] = {("acts", name): a for name, a in acts.items()}
        arrays.update({("grads", name): a for name, a in grads.items()})
        arrays.update({"prediction": preds_arr, "label": labels_arr})
        # chunk buffers are allocated once (two sets) and reused; a thread writes one set while
        # the forward passes fill the other, and sets each chunk's done flag after its writes
        with ChunkWriter(arrays, done, R) as writer, self.recorder:
            for c in range(done.shape[0]):
                start, stop = c * R, min((c + 1) * R, n)
                if c not in pending:
                    done_rows += stop - start if chunks is None else 0
                    continue
                bufs = writer.acquire()
                self.buffers = {name: bufs[("acts", name)] for name in self.layers}
                grad_buffers = {name: bufs[("grads", name)] for name in grads}
                pred_buf, label_buf = bufs["prediction"], bufs["label"]
                lo = 0
                for inputs, labels in self.source.batches(start, stop):
                    hi = lo + len(labels)
                    self.rows = slice(lo, hi)
                    logits = self._forward(inputs, labels)
                    labels_dev = labels.to(self.device)
                    if self.gradients:
                        self._gradients(logits, labels_dev, grad_buffers, slice(lo, hi))
                    pred_buf[lo:hi] = logits.argmax(1).cpu().numpy()
                    label_buf[lo:hi] = labels.numpy()
                    lo = hi
                if lo != stop - start:
                    raise CaptureError(f"The data gave {lo} samples for rows {start}..{stop - 1};"
                                       f" expected {stop - start}. Its length must not change.")
                writer.submit(c, bufs, stop - start)
                done_rows = _report(writer, done_rows, total, progress)
            for rows in writer.close():
                done_rows += rows
                if progress is not None:
                    progress(done_rows, total)
        return done_rows

    def _gradients(self, logits, labels, buffers, rows) -> None:
        tensors = [self.recorder.outputs[name] for name in self.layers]
        no_graph = [name for name, t in zip(self.layers, tensors) if not t.requires_grad]
        if no_graph:
            raise CaptureError(
                f"Layers {no_graph} are not on the autograd graph (integer inputs and frozen"
                " weights?); gradients cannot be captured for them. Capture them with gradients=False."
            )
        scalar = target_values(self.target, logits, labels).sum()
        grads = torch.autograd.grad(scalar, tensors, allow_unused=True)
        for name, g, t in zip(self.layers, grads, tensors):
            g = torch.zeros_like(t) if g is None else g
            value = apply_reduction(g, self.modes[name], self.mask)
            torch.from_numpy(buffers[name][rows]).copy_(value)
