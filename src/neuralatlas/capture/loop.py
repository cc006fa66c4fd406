"""The capture loop: stream layer activations (and gradients) of a data set into a store."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas.capture.batch_ops import (  # noqa: F401  (re-exported: their old home)
    Target,
    _bad_rows,
    _nonfinite_rows,
    _takes_inputs,
    apply_reduction,
    reduction_for,
    select_epochs,
    target_values,
)
from neuralatlas.capture.fingerprints import callable_fingerprint, file_fingerprint
from neuralatlas.capture.hooks import (
    REDUCTIONS,
    SPATIAL_REDUCTIONS,
    Recorder,
    Selector,
    layout_of,
    match_pattern,
    parse_axes,
    preserved,
    resolve_layer_patterns,
    select_tensor,
)
from neuralatlas.capture.sources import ArraySource, DatasetSource, LoaderSource, Source, as_source, split_batch
from neuralatlas.capture.store_open import open_or_create
from neuralatlas.capture.writer import ChunkWriter, hand_over_rows
from neuralatlas.errors import CaptureError, DataError, StoreError
from neuralatlas.store.core import ActivationStore, read_rows
from neuralatlas.store.safety import WriteGuard, report_nonfinite

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
# The sources live in .sources; these names stay importable from here (attribution uses them).
_Source, _ArraySource, _DatasetSource, _LoaderSource = Source, ArraySource, DatasetSource, LoaderSource
_split_batch = split_batch


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


def _check_reduction(layer: str, module: nn.Module, shape: Sequence[int], layout: str,
                     mode: str | None, rows: str, mask_len: int | None) -> str:
    """Refuse a reduction that does not fit the layer's axes; returns the stored rows' layout."""
    kind = type(module).__name__
    if rows == "tokens":
        if layout != "sequence" or (mask_len is not None and shape[1] != mask_len):
            raise CaptureError(
                f"rows='tokens' makes one row per token, so every layer needs a [batch, tokens,"
                f" features] output over the inputs' {mask_len} tokens; layer {layer!r} ({kind})"
                f" gives {list(shape)} ({layout}). Leave it out of layers=, capture it into another"
                f" store with rows='samples', or say its axes with axes={{{layer!r}: 'sequence'}}."
            )
        return "flat" if len(shape) == 3 else layout
    if mode is None or len(shape) <= 2:
        return layout
    if mode in SPATIAL_REDUCTIONS:
        if layout == "sequence":
            raise CaptureError(
                f"reduce={mode!r} averages the spatial axes of a channel-first map [batch, channels,"
                f" ...], but layer {layer!r} ({kind}) gives {list(shape)} = [batch, tokens,"
                f" features], a sequence: that would mix features of each token. Use"
                f" reduce={{{layer!r}: 'token_mean'}} (or 'token_max', 'first_token', 'last_token'),"
                " or rows='tokens'."
            )
        if layout == "unknown":
            raise CaptureError(
                f"Layer {layer!r} ({kind}) gives a 3-D output {list(shape)}, and nothing says whether"
                f" it is [batch, channels, length] or [batch, tokens, features]; reduce={mode!r}"
                f" depends on it. Say so: axes={{{layer!r}: 'channels_first'}} (then 'mean'/'max'"
                " reduce the length) or 'sequence' (then use 'token_mean' etc.)."
            )
        return "flat"
    if layout == "channels_first":
        raise CaptureError(
            f"reduce={mode!r} reduces the token axis of [batch, tokens, features], but layer"
            f" {layer!r} ({kind}) gives {list(shape)}, a channel-first map. Use reduce='mean' or"
            f" 'max' for it, or axes={{{layer!r}: 'sequence'}} if its second axis really is tokens."
        )
    if len(shape) != 3:
        raise CaptureError(f"reduce={mode!r} needs a [batch, tokens, features] output; layer {layer!r}"
                           f" gives {list(shape)}.")
    if mask_len is not None and shape[1] != mask_len and mode != "first_token":
        raise CaptureError(
            f"Layer {layer!r} has {shape[1]} positions but the attention_mask {mask_len}; a masked"
            f" reduce={mode!r} cannot line them up. Capture it unreduced or with 'first_token'."
        )
    return "flat"


# ---------------------------------------------------------------------------- capture
@contextlib.contextmanager
def _old_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist before the capture out of the garbage collector's scans.

    A capture allocates enough (tensors, per-batch rows handed to the writer) to trigger full
    collections now and then, and a full collection walks every object of the process: 250 ms
    with torch and transformers imported (450,000 objects), against a 250 ms forward capture
    of 20,000 digits. ``gc.freeze`` moves the objects alive now to a generation the collector
    skips (an O(1) list splice); the capture's own garbage is still collected, and
    ``gc.unfreeze`` at the end gives the old objects back to the oldest generation. A process
    that froze objects itself (``gc.get_freeze_count() > 0``) is left as it is.
    """
    if not gc.isenabled() or gc.get_freeze_count() > 0:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_old_objects_frozen()  # a context manager made by contextmanager decorates: a fresh one per call
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
    output: Selector = None,
    layer_output: Mapping[str, Selector] | None = None,
    repeated: str = "error",
    rows: str = "samples",
    tokenizer: Any = None,
    axes: str | Mapping[str, str] | None = None,
    collate_fn: Callable[[list], Any] | None = None,
    data_id: str | None = None,
    checkpoints: str | Path | Mapping[int, str | Path] | None = None,
    epochs: Sequence[int] | None = None,
    groups: Sequence | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    compressor: str | None = None,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    client: Any = None,
    verify: str = "fast",
) -> ActivationStore:
    """Capture the activations (and gradients) of ``layers`` over ``data`` into a zarr store.

    Works on any ``nn.Module``: a classifier, a Hugging Face encoder or language model, a
    regression net, an autoencoder, a recurrent net, a model returning a dict. Streams batch
    by batch to disk, so memory stays flat however large the data set is. A capture that was
    interrupted resumes when called again with the same arguments; a store written with other
    arguments (another data content, another ``target``/``output`` function) is refused with
    the difference named. Nothing is guessed: where the axes of an output or the meaning of a
    target are not known, an error says what to pass.

    Parameters
    ----------
    model : torch.nn.Module
        Any module. It is left as found (hooks, mode, ``requires_grad``, weights, device).
        Flax (an ``nnx.Module``, a linen ``(module, variables)`` pair) and Keras 3 models go
        through :func:`neuralatlas.capture.foreign.capture_foreign` with the same arguments.
    data : ArrayDataset, torch Dataset, or DataLoader
        Items are ``(inputs, label)`` pairs, dicts of input tensors (a tokenizer's output; a
        ``labels``/``label`` entry is taken as the label) or bare input tensors (no label).
        Inputs may be a tensor, a tuple (``model(*x)``) or a dict (``model(**x)``). Labels may
        be integer classes or floats (regression targets, kept as floats). A DataLoader is
        read through its dataset in order with its ``collate_fn`` and batch size (its
        shuffling and ``drop_last`` are not used: every row keeps its index).
    layers : str or list of str, optional
        Names as ``model.named_modules()`` gives them, or glob patterns: ``*`` matches within
        one dotted segment, ``**`` across segments (``encoder.layer.*.output`` is the block
        outputs of a BERT, not ``encoder.layer.3.attention.output``). Kept in the order given,
        each pattern expanded in model order. A layer a pattern picked that does not run in
        the forward pass is skipped with a warning; one named exactly is an error. Default:
        every leaf module.
    out : path
        The store folder (``.zarr``).
    gradients : bool
        Also record the gradient of ``target`` w.r.t. each layer's output, in the same pass.
    target : "label", "prediction", "loss", int or callable
        The per-sample scalar for gradients. The names and class indices need class logits
        ``[batch, classes]``: the logit of the true label, of the predicted class, the
        cross-entropy loss, a class's logit (``0`` also picks a regression output). Any model:
        a function ``f(output, labels)`` or ``f(output, labels, inputs) -> [batch]``
        (reconstruction error, a language-model loss, the last real token's logit).
    batch_size : int
        Samples per forward pass (a DataLoader's own batch size wins).
    device : str, optional
        ``None`` picks CUDA when available, else CPU.
    reduce : str or {pattern: str}, optional
        Reduce layer outputs at capture time: ``"mean"``/``"max"`` over spatial axes of
        channel-first maps; ``"token_mean"``, ``"token_max"``, ``"first_token"``,
        ``"last_token"`` over the token axis of ``[B, T, D]`` outputs, honouring an
        ``attention_mask`` in dict inputs. A reduction that does not fit a layer's axes (a
        spatial mean of a token sequence) is an error naming the right one.
    output : int, str, tuple or callable, optional
        Which tensor of the model's output is "the output" (for predictions and targets).
        Default: the tensor itself, the first tensor of a tuple, the ``logits`` (else
        ``last_hidden_state``, else the only tensor) of a dict or output object; a dict of
        several other tensors is an error listing its keys.
    layer_output : {pattern: selector}, optional
        Which tensor of a layer's tuple/dict output to record: an index, a key, a nested
        selector (``(1, 0)`` is ``h_n`` of an LSTM's ``(out, (h_n, c_n))``, stored as
        ``[B, H]``, or ``[B, layers*directions, H]``) or a function. Default: the first tensor.
    repeated : "error", "first" or "last"
        What to do with a module that runs more than once per forward (a shared module).
    rows : "samples" or "tokens"
        ``"samples"`` (default): one row per sample. ``"tokens"``: one row per non-padding
        token of ``[B, T, D]`` layer outputs (padding removed by the inputs'
        ``attention_mask``); every layer must be such a sequence. The sample table then has
        ``sample`` (the sample's row), ``position`` (among its real tokens), ``token_id``
        and, with ``tokenizer=``, ``token`` (text); ``index``, ``label`` and ``group`` are the
        sample's.
    tokenizer : optional
        A Hugging Face tokenizer, for the ``token`` text column of token rows.
    axes : str or {pattern: str}, optional
        The axes of 3-D layer outputs where the module does not say: ``"sequence"``
        (``[B, T, D]``) or ``"channels_first"`` (``[B, C, L]``). Recorded per layer in the
        store's ``layouts`` attribute, which analyses check (gradient alignment).
    collate_fn : callable, optional
        For a plain Dataset of variable-length items: makes a batch of a list of items (e.g.
        a tokenizer's padding collator; default: the data set's own ``collate_fn`` attribute,
        as :func:`neuralatlas.data.text.topics` sets with ``padding="batch"``). Outputs whose
        length varies per batch then need a token reduction, ``rows="tokens"``, or padding to
        one length.
    data_id : str, optional
        A name for the data's content. By default a torch Dataset is identified by a hash of
        its items (all of them up to 2048, else 256 evenly spaced), so other data of the same
        length never resumes an old store; a data set with random transforms, or items that
        cannot be hashed, needs ``data_id=`` (change it whenever the data changes).
    checkpoints : run folder or {epoch: path}, optional
        Capture once per checkpoint (per-epoch capture for the inter-epoch analyses);
        ``epochs`` picks a subset.
    groups : array-like, optional
        A group column for the sample table, one value per sample (default: the data set's
        own groups).
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
    verify : "fast" or "deep"
        When resuming an existing store: ``"fast"`` lists its chunk files and recomputes the
        rows of any that are missing; ``"deep"`` also reads every written chunk through its
        checksum and recomputes the damaged ones.

    Returns
    -------
    ActivationStore
        The sample table has ``prediction`` only where the output is class logits
        (``[batch, classes]`` with integer labels, or as many outputs as ``classes``).

    Raises
    ------
    LayerError
        A layer name matches nothing (the message lists the layers that exist).
    CaptureError
        The model fails on the data's inputs, a layer runs more than once, shapes vary, a
        reduction or target does not fit the output, an output's axes are unknown.
    DataError
        The data cannot be read in order, batched, or fingerprinted.
    StoreError
        ``out`` holds a store written with different arguments, another capture is writing
        to it (:class:`~neuralatlas.errors.StoreLockedError`), the disk is full or read-only.

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import mlp
    >>> train, test = digits()
    >>> store = capture(mlp(), test, layers=["fc*"], out="/tmp/acts.zarr",
    ...                 gradients=True, overwrite=True)
    >>> store.activations("fc1").shape
    (450, 64)

    A Hugging Face encoder, one row per token of every block output::

        store = capture(bert, sentences, layers="encoder.layer.*.output", rows="tokens",
                        tokenizer=tokenizer, out="tokens.zarr")
    """
    from neuralatlas.capture.foreign import capture_foreign, is_foreign

    if is_foreign(model):  # Flax and Keras (even on the torch backend): the same loop, an adapter
        return _dispatch_foreign(capture_foreign, dict(locals()))
    source = as_source(data, batch_size, collate_fn, data_id)
    if source.n == 0:
        raise DataError("The data set is empty; nothing to capture.")
    if rows not in ("samples", "tokens"):
        raise CaptureError(f"rows={rows!r}; choose 'samples' (one row per sample) or 'tokens'"
                           " (one row per non-padding token of [B, T, D] outputs).")
    chosen = resolve_layer_patterns(model, layers)
    names = [name for name, _ in chosen]
    for name in names:
        mode = reduction_for(name, reduce)
        if mode is not None and mode not in REDUCTIONS:
            raise CaptureError(f"reduce={mode!r} for layer {name!r} is not a reduction;"
                               f" choose one of {', '.join(REDUCTIONS)}.")
        if mode is not None and rows == "tokens":
            raise CaptureError(f"rows='tokens' keeps every token, so reduce={mode!r} (layer {name!r})"
                               " does not apply; use rows='samples' for a reduced row per sample.")
    dev = pick_device(device)
    slots: list[int | None] = [None]
    checkpoint_paths: dict[int, Path] = {}
    if checkpoints is not None:
        checkpoint_paths = _checkpoint_paths(checkpoints, epochs)
        slots = list(checkpoint_paths)

    if verify not in ("fast", "deep"):
        raise CaptureError(f"verify={verify!r}; choose 'fast' (list chunk files) or 'deep' (read them).")
    guard = WriteGuard(Path(out), gradients=gradients)  # one writer; disk full/read-only named
    with preserved(model, restore_weights=checkpoints is not None), guard:
        model.to(dev).eval()
        if gradients:
            for p in model.parameters():
                p.requires_grad_(False)  # only activation gradients are wanted
        run = _CaptureRun(model, source, names, dev, gradients, target, reduce, output,
                          layer_output, repeated, rows=rows, axes=axes, tokenizer=tokenizer,
                          classes=classes, optional=[n for n, exact in chosen if not exact])
        run.probe()  # drops pattern-picked layers that never run, checks axes, targets, output
        settings = {
            "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "layers": run.layers,
            "gradients": bool(gradients),
            "target": target if isinstance(target, (str, int)) else callable_fingerprint(target),
            "reduce": reduce if not isinstance(reduce, Mapping) else dict(reduce),
            "output": _selector_setting(output),
            "n_samples": source.n,
            "data": source.fingerprint(),
            "weights": (_weights_fingerprint(model) if checkpoints is None
                        else {str(e): file_fingerprint(p) for e, p in checkpoint_paths.items()}),
        }
        # only where given, so stores made before these options resume unchanged
        if layer_output:
            settings["layer_output"] = {k: _selector_setting(v) for k, v in layer_output.items()}
        if rows != "samples":
            settings["rows"] = rows
        if axes is not None:
            settings["axes"] = axes if isinstance(axes, str) else dict(axes)
        # run.probe() above learnt shapes and layouts; each epoch's weights are loaded before its fill
        store = open_or_create(Path(out), settings, overwrite, run, slots, groups, classes, chunk_rows,
                               verify=verify)
        guard.store, guard.slots = store, slots
        total = run.n_rows * len(slots)
        done_rows = 0
        for slot in slots:
            if store.is_complete("final" if slot is None else slot):
                done_rows += run.n_rows
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
        report_nonfinite(store)
    if progress is not None:
        progress(total, total)
    return store


def _dispatch_foreign(capture_foreign: Callable[..., ActivationStore], arguments: dict[str, Any]) -> ActivationStore:
    """Hand a Flax/Keras capture to its adapter, refusing torch-only options it does not take."""
    import inspect

    accepted = set(inspect.signature(capture_foreign).parameters)
    defaults = {k: v.default for k, v in inspect.signature(capture).parameters.items()}
    unsupported = [k for k, v in arguments.items()
                   if k not in accepted and k in defaults and v is not defaults[k] and v != defaults[k]]
    if unsupported:
        raise CaptureError(f"{', '.join(unsupported)} {'is' if len(unsupported) == 1 else 'are'} not supported"
                           f" for a {type(arguments['model']).__name__} (Flax/Keras) model yet; leave"
                           f" {'it' if len(unsupported) == 1 else 'them'} at the default.")
    return capture_foreign(**{k: v for k, v in arguments.items() if k in accepted})


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
    import uuid

    # Keys unique to this call: a capture interrupted a moment ago may still have its futures
    # and its scattered run being forgotten by the scheduler under the same content-hashed
    # names, and a resume that reused them lost its dependencies ("lost dependencies").
    call = uuid.uuid4().hex[:8]
    [remote_run] = client.scatter([run], broadcast=True, hash=False)
    futures = [client.submit(_capture_shard, remote_run, str(store.path), slot, checkpoint, device, shard,
                             key=f"neuralatlas-capture-{store.path.name}-{slot}-{shard[0]}-{call}", pure=False)
               for shard in shards]
    try:
        for future in as_completed(futures):
            chunks = future.result()
            done_rows += sum(min(store.chunk_rows, store.n_samples - c * store.chunk_rows) for c in chunks)
            if progress is not None:
                progress(done_rows, total)
    except BaseException:
        client.cancel(futures)  # a stopped capture leaves no shards running behind it
        raise
    if not store.done_flags(slot)[:].all():
        raise StoreError(f"Some chunks of {store.path} were not written by the workers; run the"
                         " same capture again to finish them.")
    return done_rows


def _selector_setting(selector: Selector) -> Any:
    """A selector as the store records it: as it is, or a callable's fingerprint."""
    if callable(selector):
        return callable_fingerprint(selector)
    return list(selector) if isinstance(selector, tuple) else selector


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
    return select_epochs(found, epochs)


def _load_checkpoint(model: nn.Module, path: Path, device: torch.device) -> None:
    from neuralatlas.zoo.checkpoints import load_weights

    load_weights(model, path, map_location=device, what=f"Checkpoint {str(path)!r}")


def _weights_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data
                 if tensor.numel() else b"")
    return h.hexdigest()[:16]


def _token_mask(x: Any) -> torch.Tensor:
    """Which positions of a batch are real tokens: ``[B, T]`` bool."""
    if isinstance(x, Mapping):
        if "attention_mask" in x:
            return torch.as_tensor(x["attention_mask"]).bool()
        for key in ("input_ids", "inputs_embeds"):
            if key in x:
                ids = torch.as_tensor(x[key])
                return torch.ones(ids.shape[:2], dtype=torch.bool, device=ids.device)
    elif isinstance(x, torch.Tensor) and x.dim() in (2, 3):
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    raise CaptureError(
        f"rows='tokens' needs token inputs: a dict with input_ids (and an attention_mask where"
        f" there is padding), integer ids [batch, tokens] or a sequence [batch, tokens, features];"
        f" got {_shape_of(x)}."
    )


def _label_column(labels: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray | None:
    """The labels as a sample-table column (per token where ``mask`` is given), or None.

    Integer classes stay int64 and floats float64 (regression targets, never truncated);
    ``[B, 1]`` is squeezed; ``[B, T]`` labels (one per token) give per-token rows in token mode.
    """
    y = labels.detach().cpu()
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if mask is not None:
        m = mask.cpu()
        if y.dim() == 2 and tuple(y.shape) == tuple(m.shape):
            y = y[m]
        elif y.dim() == 1:
            y = y.repeat_interleave(m.sum(1))
        else:
            return None
    elif y.dim() != 1:
        return None
    return y.numpy().astype(np.float64 if y.is_floating_point() else np.int64)


def _report(writer: ChunkWriter, done_rows: int, total: int, progress: Progress | None) -> int:
    """Flag the chunks the writer finished since the last call and report them (rows on disk)."""
    for rows in writer.commit():
        done_rows += rows
        if progress is not None:
            progress(done_rows, total)
    return done_rows


class _CaptureRun:
    """One capture's moving parts: the model under hooks, the batch loop, chunk buffers.

    With ``rows="tokens"`` a first pass over the data counts each sample's real tokens
    (``offsets``: the first row of every sample); a chunk of token rows is then computed from
    the batches of the batch-size grid that overlap it, so a sample is always computed in the
    same batch and a resumed chunk is bitwise the one it replaces.
    """

    def __init__(self, model, source, layers, device, gradients, target, reduce, output,
                 layer_output, repeated, *, rows="samples", axes=None, tokenizer=None,
                 classes=None, optional=()):
        self.model, self.source, self.layers, self.device = model, source, list(layers), device
        self.gradients, self.target, self.output = gradients, target, output
        self.rows, self.tokenizer = rows, tokenizer
        self.classes = list(classes) if classes is not None else (source.classes or None)
        self.modes = {name: reduction_for(name, reduce) for name in self.layers}
        if axes is None:
            self.axes: dict[str, str] = {}
        else:
            given = {"**": axes} if isinstance(axes, str) else dict(axes)
            self.axes = {name: parse_axes(v, name) for name in self.layers
                         if (v := match_pattern(given, name)) is not None}
        self.recorder = Recorder(model, self.layers, keep_graph=gradients, layer_output=layer_output,
                                 repeated=repeated, sink=self._sink, optional=optional)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.layouts: dict[str, str] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.mask: torch.Tensor | None = None
        self.token_mask: torch.Tensor | None = None
        self.has_prediction = False
        self.label_dtype: type = np.int64
        self.n_rows = source.n
        self.row_batch = source.batch_size
        self.offsets: np.ndarray | None = None
        self._token_table: dict[str, np.ndarray] | None = None
        self._probed: tuple[dict[str, tuple[int, ...]], int] | None = None
        self._probing = False
        self._not_per_sample: dict[str, list[int]] = {}
        self._batch_n = 0
        self._src, self._dst = slice(0, 0), slice(0, 0)
        self._counts: np.ndarray | None = None
        # rows handed to the writer as they are (views of the layers' outputs), not copied
        # into chunk buffers: this batch's {key: tensor} and the tensors' version counters
        self._hand_over = False
        self._handed: dict[Any, torch.Tensor] = {}
        self._handed_versions: dict[Any, tuple[torch.Tensor, int]] = {}
        # layers whose recorded output a later in-place op changed (ReLU(inplace=True) after
        # it): their rows are copied in the hook from then on, as before the hand-over
        self._copy_in_hook: set[str] = set()
        # the probe's forward is the first batch's: its rows, kept for the fill so that batch
        # is not run twice ({layer: (rows, version)}, the output; see _probe_batch)
        self._probe_rows: dict[str, tuple[torch.Tensor, int]] = {}
        self._probe_out: torch.Tensor | None = None

    def __getstate__(self):
        # shipped to dask workers: the hooks' handles are per process, and the probe's rows
        # stay here (a worker computes its own chunks)
        state = dict(self.__dict__)
        state["buffers"] = {}
        state["_probe_rows"], state["_probe_out"] = {}, None
        return state

    # the sink runs inside each forward hook: reduce, check shape, copy into the chunk buffer
    def _sink(self, layer: str, tensor: torch.Tensor) -> None:
        if tensor.dim() == 0 or tensor.shape[0] != self._batch_n:
            if self._probing and layer in self.recorder.optional:
                # picked by a pattern (or as a leaf), not named: a broadcast output such as a
                # position embedding [1, T, D] has no row per sample; leave it out, say so
                self._not_per_sample[layer] = list(tensor.shape)
                return
            raise CaptureError(
                f"Layer {layer!r} gave an output of shape {list(tensor.shape)} whose first axis is not"
                f" the batch ({self._batch_n} samples). Pick a batch-first tensor with"
                f" layer_output={{{layer!r}: ...}} (an index, a key, a nested (i, j) selector or a"
                " function of the layer's output)."
            )
        if self._probing:
            self._learn(layer, tensor)
        value = self._rows_of(layer, tensor.detach())
        if self._probing:
            self.shapes[layer] = tuple(value.shape[1:])
            self._probe_rows[layer] = (value, value._version)
            return
        if tuple(value.shape[1:]) != self.shapes[layer]:
            raise CaptureError(
                f"Layer {layer!r} gave unit shape {list(value.shape[1:])} in this batch but"
                f" {list(self.shapes[layer])} in the first (the sequence length varies per batch,"
                " e.g. padded per batch by a collate_fn). Reduce it at capture time, e.g."
                f" reduce={{{layer!r}: 'token_mean'}}, capture rows='tokens', or pad every batch"
                " to one length (padding='max_length')."
            )
        if self._hand_over and layer not in self._copy_in_hook:
            self._handed[("acts", layer)] = value
            self._handed_versions[("acts", layer)] = (value, value._version)
            return
        self._place(self.buffers[layer], value.to("cpu", torch.float32).numpy())

    def _changed_in_place(self) -> list[str]:
        """Handed-over layers whose output an in-place op changed after the hook (this forward).

        They are copied in the hook from now on; the caller runs the batch again.
        """
        changed = [key[1] for key, (t, v) in self._handed_versions.items() if key[0] == "acts" and t._version != v]
        self._copy_in_hook.update(changed)
        return changed

    def _host_rows(self, value: torch.Tensor) -> np.ndarray:
        """The current batch's rows of the current chunk as a C-contiguous float32 array.

        A view of ``value`` where it is on the CPU in float32 already (no copy).
        """
        return value.to("cpu", torch.float32).contiguous().numpy()[self._src]

    def _learn(self, layer: str, tensor: torch.Tensor) -> None:
        """Probe: the layout of a layer's output, and whether its reduction fits it."""
        module = self.recorder_modules[layer]
        seq_len = int(self.mask.shape[1]) if self.mask is not None else None
        if self.rows == "tokens" and self.token_mask is not None:
            seq_len = int(self.token_mask.shape[1])
        shape = tuple(tensor.shape)
        layout = self.axes.get(layer) or layout_of(module, shape, seq_len)
        self.layouts[layer] = _check_reduction(layer, module, shape, layout, self.modes[layer],
                                               self.rows, seq_len)

    def _rows_of(self, layer: str, t: torch.Tensor) -> torch.Tensor:
        if self.rows == "tokens":
            return t[self.token_mask]
        return apply_reduction(t, self.modes[layer], self.mask)

    def _place(self, buffer: np.ndarray, values: np.ndarray, per_sample: bool = False) -> None:
        """Copy this batch's rows that fall in the current chunk into the chunk buffer."""
        if per_sample and self._counts is not None:
            values = np.repeat(values, self._counts, axis=0)
        buffer[self._dst] = values[self._src]

    def _forward(self, inputs: Any, labels: torch.Tensor):
        x = _to_device(inputs, self.device)
        self.mask = x.get("attention_mask") if isinstance(x, Mapping) else None
        self._batch_n = len(labels)
        if self.rows == "tokens":
            self.token_mask = _token_mask(x).to(self.device)
        given = x
        # each rerun below clones at least one more layer, so this ends within len(layers) + 2
        for _ in range(len(self.layers) + 2):
            x = _require_input_grad(given) if self.gradients else given
            self.recorder.reset()
            self._handed.clear()
            self._handed_versions.clear()
            try:
                with torch.set_grad_enabled(self.gradients):
                    out = call_model(self.model, x)
            except (RuntimeError, TypeError, ValueError, IndexError) as err:
                if isinstance(err, CaptureError):
                    raise
                if (self.gradients and isinstance(err, RuntimeError) and "in-place" in str(err)
                        and not self.recorder.clone.issuperset(self.layers)):
                    # autograd refused an in-place op on a recorded output (a view of the
                    # input, say) before mutated() could see it: copy every layer and rerun
                    self.recorder.clone.update(self.layers)
                    continue
                raise CaptureError(
                    f"{type(self.model).__name__} failed on a batch of inputs of shape {_shape_of(x)}:"
                    f" {err}. Check that the data matches what the model expects (input shape,"
                    " channels, dtype)."
                ) from err
            # with gradients, recorded outputs are not copied unless an in-place op changes
            # them; where one did, those layers are cloned from now on and the batch is run again
            if self.gradients and self.recorder.mutated():
                continue
            # rows handed over uncopied: an in-place op after a layer's hook changed them
            # (ReLU(inplace=True) after a convolution); copy those in the hook and rerun
            if not (self._hand_over and self._changed_in_place()):
                break
        else:  # pragma: no cover - every rerun clones more layers; a guard, not a path
            raise CaptureError("In-place ops kept changing recorded outputs after every layer was copied.")
        self.recorder.check_calls()
        return select_tensor(out, self.output, what="model output"), x

    def _probe_batch(self, n: int) -> torch.Tensor | None:
        """The probe's forward as this batch's (the data's first ``n`` rows), once; else ``None``.

        The probe ran the first batch of the data with the same weights, so the fill takes its
        rows rather than running the batch again (one forward fewer per capture: a 512-row
        batch of the digits CNN is ~2.5% of a 20,000-sample capture, a whole fifth of one of
        1,000 images in batches of 256). Not where a later in-place op changed a recorded
        output after its hook (its version moved): that batch runs again, as any other does.
        """
        rows, out = self._probe_rows, self._probe_out
        self._probe_rows, self._probe_out = {}, None
        changed = [layer for layer, (t, v) in rows.items() if t._version != v]
        if self._hand_over:
            self._copy_in_hook.update(changed)  # so the batch run instead needs no rerun
        if (out is None or len(out) != n or self.gradients or self.rows == "tokens" or changed
                or not set(self.layers) <= set(rows)):
            return None
        for layer in self.layers:
            value = rows[layer][0]
            if self._hand_over and layer not in self._copy_in_hook:
                self._handed[("acts", layer)] = value
                self._handed_versions[("acts", layer)] = (value, value._version)
            else:
                self._place(self.buffers[layer], value.to("cpu", torch.float32).numpy())
        return out

    def _is_class_logits(self, out: torch.Tensor, labels: torch.Tensor, inputs: Any) -> bool:
        """Whether the output is class logits, so that a prediction column means something."""
        if out.dim() != 2 or out.shape[1] < 2 or labels.is_floating_point() or labels.dim() != 1:
            return False
        if self.classes:
            return out.shape[1] == len(self.classes)
        if isinstance(inputs, torch.Tensor) and inputs.shape == out.shape:
            return False  # a reconstruction of the input (autoencoder), not one score per class
        valid = labels[labels >= 0]
        return valid.numel() == 0 or int(valid.max()) < out.shape[1]

    def probe(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """One forward of the first batch: every layer's unit shape and layout, the layers that run, the kind of output.

        The token rows' layout with ``rows="tokens"``.
        """
        if self._probed is not None:
            return self._probed
        modules = dict(self.model.named_modules())
        self.recorder_modules = {name: modules[name] for name in self.layers}
        inputs, labels = next(iter(self.source.batches(0, min(self.source.batch_size, self.source.n))))
        self._probing = True
        self._probe_rows.clear()
        try:
            with self.recorder:
                out, x = self._forward(inputs, labels)
                if self.gradients:
                    target_values(self.target, out, labels.to(self.device), x)
        finally:
            self._probing = False
        if self.gradients or self.rows == "tokens":
            self._probe_rows.clear()  # gradients need the graph; token rows come in other batches
        else:
            self._probe_out = out.detach()
        skipped = self.recorder.missing()
        if skipped:
            warnings.warn(f"Layers {skipped} (not named exactly) did not run in the forward pass of"
                          f" {type(self.model).__name__}; they are skipped.", stacklevel=3)
        if self._not_per_sample:
            shapes = ", ".join(f"{k!r} {v}" for k, v in self._not_per_sample.items())
            warnings.warn(f"Layers not named exactly give outputs without a row per sample ({shapes};"
                          f" the batch has {len(labels)}); they are skipped.", stacklevel=3)
        dropped = set(skipped) | set(self._not_per_sample)
        if dropped:
            self.layers = [n for n in self.layers if n not in dropped]
            self.recorder.layers = list(self.layers)
            if not self.layers:
                raise CaptureError(f"None of the layers picked can be captured: {sorted(dropped)} did not"
                                   " run or have no row per sample.")
        self.has_prediction = self._is_class_logits(out, labels, inputs)
        self.label_dtype = np.float64 if labels.is_floating_point() else np.int64
        if labels.dim() > 1 and not (labels.dim() == 2 and labels.shape[1] == 1) and self.rows != "tokens":
            warnings.warn(f"The labels have shape {list(labels.shape)} (not one per sample); they"
                          " are passed to target functions but not kept in the sample table.",
                          stacklevel=3)
        if self.rows == "tokens":
            self._plan_tokens()
        shapes = {name: self.shapes[name] for name in self.layers}
        widest = max(int(np.prod(s, dtype=np.int64)) for s in shapes.values()) * 4
        self._probed = shapes, widest * (2 if self.gradients else 1)
        return self._probed

    def _plan_tokens(self) -> None:
        """First pass over the data: real tokens per sample, and the token rows' table."""
        counts: list[np.ndarray] = []
        cols: dict[str, list[np.ndarray]] = {"position": [], "token_id": [], "label": []}
        has_ids, labelled = True, True
        for inputs, labels in self.source.batches(0, self.source.n):
            mask = _token_mask(inputs).cpu()
            counts.append(mask.sum(1).numpy())
            cols["position"].append((mask.long().cumsum(1) - 1)[mask].numpy())
            ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else (
                inputs if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point() else None)
            has_ids = has_ids and ids is not None
            if has_ids:
                cols["token_id"].append(torch.as_tensor(ids).cpu()[mask].numpy().astype(np.int64))
            y = _label_column(labels, mask)
            labelled = labelled and y is not None
            if labelled:
                cols["label"].append(y)
        counts_all = np.concatenate(counts).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts_all)])
        self.n_rows = int(self.offsets[-1])
        if self.n_rows == 0:
            raise DataError("rows='tokens' found no real token in the data (every attention_mask is 0).")
        self.row_batch = 1
        sample = np.repeat(np.arange(self.source.n), counts_all)
        table = {"sample": sample, "position": np.concatenate(cols["position"]).astype(np.int64)}
        if has_ids:
            table["token_id"] = np.concatenate(cols["token_id"])
            if self.tokenizer is not None:
                table["token"] = np.asarray(self.tokenizer.convert_ids_to_tokens(table["token_id"].tolist()),
                                            dtype=object)
        table["label"] = (np.concatenate(cols["label"]) if labelled
                          else np.full(self.n_rows, -1, np.int64))
        self._token_table = table

    def write_sample_table(self, store: ActivationStore, groups: Any) -> None:
        """The sample table of a new store: per sample, or per token row."""
        group_col = groups if groups is not None else self.source.groups
        if group_col is not None and len(group_col) != self.source.n:
            raise DataError(f"groups= has {len(group_col)} values; the data has {self.source.n} samples.")
        if self._token_table is None:
            fill = np.nan if self.label_dtype is np.float64 else -1
            store.write_samples(index=self.source.index, label=np.full(self.source.n, fill, self.label_dtype),
                                group=group_col)
            return
        table = dict(self._token_table)
        sample = table["sample"]
        store.write_samples(index=np.asarray(self.source.index)[sample], label=table.pop("label"),
                            group=None if group_col is None else np.asarray(group_col)[sample],
                            columns=table)

    def prepare(self, store: ActivationStore, slot: int | None, compressor: str | None) -> None:
        """Create the slot's arrays (idempotent); done once, before any writer starts."""
        for name in self.layers:
            store.create_layer_array("acts", name, slot, compressor=compressor)
            if self.gradients:
                store.create_layer_array("grads", name, slot, compressor=compressor)
        if self.has_prediction:
            store.prediction_array(slot)
        # recorded so the integrity check knows a missing prediction array is by design
        # (the output is not class logits), not a lost one
        if store.attrs.get("has_prediction") != bool(self.has_prediction):  # a new store has it already
            store.update_attrs(has_prediction=bool(self.has_prediction))
        store.nonfinite_array(slot, create=True)
        store.done_flags(slot, create=True)

    def pending_chunks(self, store: ActivationStore, slot: int | None) -> list[int]:
        return [int(c) for c in np.flatnonzero(~read_rows(store.done_flags(slot), slice(None)))]

    def _chunk_batches(self, start: int, stop: int) -> Iterator[tuple[Any, torch.Tensor]]:
        """The batches whose rows fall in ``start..stop``; sets where each batch's rows go."""
        bs = self.source.batch_size
        if self.offsets is None:
            lo = start
            for inputs, labels in self.source.batches(start, stop):
                hi = lo + len(labels)
                self._src, self._dst = slice(0, hi - lo), slice(lo - start, hi - start)
                lo = hi
                yield inputs, labels
            return
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        last = int(np.searchsorted(self.offsets, stop, side="left"))  # samples first..last-1
        b0 = first // bs * bs
        b1 = min(-(-last // bs) * bs, self.source.n)
        s = b0
        for inputs, labels in self.source.batches(b0, b1):
            e = s + len(labels)
            r_lo, r_hi = int(self.offsets[s]), int(self.offsets[e])
            lo, hi = max(r_lo, start), min(r_hi, stop)
            self._counts = np.diff(self.offsets[s:e + 1])
            self._src, self._dst = slice(lo - r_lo, hi - r_lo), slice(lo - start, hi - start)
            s = e
            if hi > lo:
                yield inputs, labels

    def fill(self, store: ActivationStore, slot: int | None, progress: Progress | None,
             done_rows: int, total: int, chunks: Sequence[int] | None = None) -> int:
        """Write the given (default: every unwritten) chunks of ``slot``; returns rows done so far.

        Chunks are disjoint regions of every array, so several processes may fill different
        chunks of one store at once without locks.
        """
        R, n = store.chunk_rows, store.n_samples
        if n != self.n_rows:
            raise CaptureError(f"The data gives {self.n_rows} rows but the store at {store.path} has {n};"
                               " the data changed since the store was made (pass overwrite=True).")
        self.shapes = {name: store.unit_shape(name) for name in self.layers}
        acts = {name: store.activations_array("acts", name, slot) for name in self.layers}
        grads = ({name: store.activations_array("grads", name, slot) for name in self.layers}
                 if self.gradients else {})
        preds_arr = store.prediction_array(slot) if self.has_prediction else None
        done = store.done_flags(slot)
        nonfinite = store.nonfinite_array(slot)
        # token rows: the table was written whole from the counting pass
        labels_arr = store.sample_column("label") if self.offsets is None else None
        pending = set(self.pending_chunks(store, slot) if chunks is None else chunks)
        arrays: dict[Any, Any] = {("acts", name): a for name, a in acts.items()}
        arrays.update({("grads", name): a for name, a in grads.items()})
        for key, arr in (("prediction", preds_arr), ("label", labels_arr), ("nonfinite", nonfinite)):
            if arr is not None:
                arrays[key] = arr
        # chunk buffers are allocated once (two sets) and reused; a thread writes one set while
        # the forward passes fill the other (capture/writer.py); a chunk's done flag is set only
        # after all of its arrays are written
        finish = finish_rows = None
        if nonfinite is not None:
            layers = list(self.layers)

            def finish_rows(bufs: dict[Any, np.ndarray], values: Mapping[Any, np.ndarray], a: int, b: int) -> None:
                # rows a..b with NaN/inf per layer, for analyses to name, in the writer's
                # thread: from the rows handed over as values, else from the buffers
                def rows(kind: str, k: str) -> np.ndarray:
                    got = values.get((kind, k))
                    return got if got is not None else bufs[(kind, k)][a:b]

                bufs["nonfinite"][a:b] = _nonfinite_rows({k: rows("acts", k) for k in layers},
                                                         {k: rows("grads", k) for k in grads}, layers, b - a)

            def finish(bufs: dict[Any, np.ndarray], m: int) -> None:  # a whole chunk from its buffers
                finish_rows(bufs, {}, 0, m)

        with ChunkWriter(arrays, done, R, finish=finish, computed=("nonfinite",),
                         finish_rows=finish_rows) as writer, self.recorder:
            # hand each batch's rows to the writer as they are (views of the layers' outputs)
            # rather than copying them into the chunk buffers: the copy was ~1/4 of a bare
            # forward of the digits CNN (benchmarks/capture.py)
            self._hand_over = hand_over_rows()
            for c in range(done.shape[0]):
                start, stop = c * R, min((c + 1) * R, n)
                if c not in pending:
                    done_rows += stop - start if chunks is None else 0
                    continue
                bufs = writer.acquire()
                self.buffers = {name: bufs[("acts", name)] for name in self.layers}
                grad_buffers = {name: bufs[("grads", name)] for name in grads}
                pred_buf, label_buf = bufs.get("prediction"), bufs.get("label")
                got = 0
                for inputs, labels in self._chunk_batches(start, stop):
                    # the first batch of the final model's chunk 0 is the probe's (same data, same weights)
                    reused = (self._probe_batch(len(labels)) if slot is None and start == 0
                              and self._dst.start == 0 else None)
                    out, x = (reused, inputs) if reused is not None else self._forward(inputs, labels)
                    labels_dev = labels.to(self.device)
                    if self.gradients:
                        self._gradients(out, labels_dev, x, grad_buffers)
                    if preds_arr is not None:
                        self._place(pred_buf, out.argmax(1).cpu().numpy(), per_sample=True)
                    if labels_arr is not None:
                        y = _label_column(labels)
                        self._place(label_buf, y if y is not None else np.full(len(labels), -1))
                    got += self._dst.stop - self._dst.start
                    # this batch's rows are final: a writer thread writes them while the next
                    # batches run, so the last chunk's write is not all left for the end
                    if self._hand_over:
                        values = {key: self._host_rows(t) for key, t in self._handed.items()}
                        writer.rows(c, bufs, self._dst.start, self._dst.stop, values=values,
                                    versions=list(self._handed_versions.values()))
                        self._handed.clear()
                        self._handed_versions.clear()
                    else:
                        writer.rows(c, bufs, self._dst.start, self._dst.stop)
                    # and the chunks the thread has finished are flagged now, not a chunk later
                    done_rows = _report(writer, done_rows, total, progress)
                if got != stop - start:
                    raise CaptureError(f"The data gave {got} rows for rows {start}..{stop - 1};"
                                       f" expected {stop - start}. Its length must not change.")
                writer.submit(c, bufs, stop - start)
                done_rows = _report(writer, done_rows, total, progress)
            for rows in writer.close():
                done_rows += rows
                if progress is not None:
                    progress(done_rows, total)
        return done_rows

    def _gradients(self, out, labels, inputs, buffers) -> None:
        tensors = [self.recorder.outputs[name] for name in self.layers]
        no_graph = [name for name, t in zip(self.layers, tensors, strict=True) if not t.requires_grad]
        if no_graph:
            raise CaptureError(
                f"Layers {no_graph} are not on the autograd graph (integer inputs and frozen"
                " weights?); gradients cannot be captured for them. Capture them with gradients=False."
            )
        scalar = target_values(self.target, out, labels, inputs).sum()
        changed = self.recorder.mutated()
        if changed:  # the target function changed a layer's output in place
            raise CaptureError(
                f"The target changed the outputs of layers {changed} in place, so their gradients"
                " would be those of other values. Make the target function work on copies"
                " (no in-place ops such as .relu_() or +=)."
            )
        grads = torch.autograd.grad(scalar, tensors, allow_unused=True)
        for name, g, t in zip(self.layers, grads, tensors, strict=True):
            g = torch.zeros_like(t) if g is None else g
            value = self._rows_of(name, self.recorder.batch_first(name, g))
            if self._hand_over:  # a new tensor of autograd's: nothing else changes it
                self._handed[("grads", name)] = value
            else:
                self._place(buffers[name], value.to("cpu", torch.float32).numpy())


