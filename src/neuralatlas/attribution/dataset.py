"""Attribution maps of a whole data set, streamed into a store beside the activations.

The store has the activation store's format (:class:`~neuralatlas.store.ActivationStore`),
with one "layer" per method holding its maps ``[n_samples, *map_shape]`` and the same sample
index as the capture, so every streaming analysis (NAPs of attribution maps, projections) and
the report read it like activations. Per-sample extras (the target explained, completeness
errors) become sample-table columns. Work goes chunk by chunk; an interrupted run resumes
at the first unwritten chunk when called again with the same arguments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from torch import nn

from neuralatlas.attribution.methods import METHODS, attribute, resolve_method
from neuralatlas.capture.loop import as_source
from neuralatlas.errors import AnalysisError, StoreError
from neuralatlas.store.core import ActivationStore, chunk_rows_for

Progress = Callable[[int, int], None]
_EXTRAS = "attribution"  # zarr group of per-sample extras written chunk by chunk


def method_key(method: str, layer: str | None = None, neuron: tuple | None = None) -> str:
    """The store's name for a method's maps: ``integrated_gradients``, ``grad_cam@conv2``, ..."""
    key = resolve_method(method)
    if neuron is not None:
        unit = neuron[1]
        key += f"->{neuron[0]}:{'_'.join(map(str, unit)) if isinstance(unit, (tuple, list)) else unit}"
    elif layer is not None:
        key += f"@{layer}"
    return key


def attribute_dataset(
    model: nn.Module,
    data: Any,
    methods: str | Sequence[str] = ("saliency", "integrated_gradients"),
    out: str | Path = "attributions.zarr",
    *,
    target: str | int = "label",
    baseline: Any = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 64,
    chunk_rows: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ActivationStore:
    """Attribute every sample of ``data`` with each method and write the maps into a store.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (left as found).
    data : data set
        ``ArrayDataset``, torch ``Dataset`` of ``(input, label)`` or a ``DataLoader`` without
        shuffling: sample positions must be stable for the store to line up with the capture.
    methods : str or sequence of str
        Method names (see :data:`~neuralatlas.attribution.methods.METHODS`).
    out : path
        Folder of the store, e.g. ``RUN_DIR / "attributions.zarr"`` beside ``acts.zarr``.
    target, baseline : see :func:`~neuralatlas.attribution.attribute`
    options : mapping of method name to keyword arguments, optional
        Per-method options of :func:`attribute` (``{"integrated_gradients": {"n_steps": 64},
        "grad_cam": {"layer": "conv2"}}``).
    batch_size : int
        Samples per attribution call.
    chunk_rows : int, optional
        Rows per store chunk (the unit of resuming); default: a multiple of ``batch_size``
        of about 16 MiB for the widest map.
    overwrite : bool
        Replace an existing store at ``out`` instead of resuming it.
    progress : callable(done_rows, total_rows), optional
        Called after every chunk.

    Returns
    -------
    ActivationStore
        ``store.layers`` are the method keys; ``store.activations(key)`` the maps;
        ``store.samples`` has ``index``, ``label``, ``target`` and ``completeness_<key>``
        columns (methods with a completeness error).

    Raises
    ------
    StoreError
        ``out`` holds attributions made with other arguments, or is not a store.
    AnalysisError
        Unknown methods or options (from :func:`attribute`).

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> store = attribute_dataset(model, test.subset(slice(0, 32)), ["saliency", "ig"], out="attributions.zarr")
    >>> store.layers, store.activations("integrated_gradients").shape
    (['saliency', 'integrated_gradients'], (32, 1, 8, 8))
    """
    names = [resolve_method(m) for m in ([methods] if isinstance(methods, str) else methods)]
    if not names:
        raise AnalysisError("methods is empty; name at least one method, e.g. ['saliency'].")
    options = {resolve_method(k): dict(v) for k, v in (options or {}).items()}
    stray = [k for k in options if k not in names]
    if stray:
        raise AnalysisError(f"options given for {stray}, which are not among methods {names}.")
    keys = [method_key(m, options.get(m, {}).get("layer"), options.get(m, {}).get("neuron")) for m in names]
    if len(set(keys)) != len(keys):
        raise AnalysisError(f"methods {names} repeat; name each method once.")
    data = _fixed_width(data)
    source = as_source(data, batch_size)
    if source.n == 0:
        raise AnalysisError("The data set is empty; nothing to attribute.")
    settings = {
        "methods": keys, "target": target if isinstance(target, (str, int)) else "per-sample",
        "baseline": baseline if baseline is None or isinstance(baseline, (str, int, float)) else "array",
        "options": json.loads(json.dumps(options, default=repr)), "seed": int(seed),
        "n_samples": source.n, "data": source.fingerprint(), "weights": _weights_fingerprint(model),
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
    }
    out = Path(out)
    run = lambda lo, hi: _attribute_rows(model, data, source, names, keys, options, lo, hi,  # noqa: E731
                                         target, baseline, batch_size, device, seed)
    store = _open_or_create(out, settings, overwrite, source, keys, run, chunk_rows, batch_size)
    n, R = store.n_samples, store.chunk_rows
    maps = {key: store.create_layer_array("acts", key, None) for key in keys}
    extras = zarr.open_group(str(out), mode="a")
    done = store.done_flags(None, create=True)
    flags = done[:]
    done_rows = int(sum(min((c + 1) * R, n) - c * R for c in range(len(flags)) if flags[c]))
    for c in range(len(flags)):
        if flags[c]:
            continue
        lo, hi = c * R, min((c + 1) * R, n)
        results = run(lo, hi)
        for key, res in zip(keys, results, strict=True):
            maps[key][lo:hi] = res.maps
            if res.completeness is not None:
                _extra(extras, f"completeness/{key}", n, R, np.float32)[lo:hi] = res.completeness
        first = results[0]
        if first.targets is not None:
            _extra(extras, "target", n, R, np.int64)[lo:hi] = first.targets
        if first.labels is not None:
            _extra(extras, "label", n, R, np.int64)[lo:hi] = first.labels
        preds = [r.predictions for r in results if r.predictions is not None]
        if preds:
            store.prediction_array(None)[lo:hi] = preds[0]
        done[c] = True  # last: a chunk counts only when everything of it is on disk
        done_rows += hi - lo
        if progress is not None:
            progress(done_rows, n)
    if not store.is_complete("final"):
        _finish(store, extras, source, keys, n)
    if progress is not None:
        progress(n, n)
    return store


def _attribute_rows(model, data, source, names, keys, options, lo, hi, target, baseline, batch_size,
                    device, seed):
    inputs, labels = _rows_of(data, source, lo, hi)
    return [attribute(model, inputs, m, target=target, baseline=baseline, labels=labels, batch_size=batch_size,
                      device=device, seed=seed + lo, keep_inputs=False, **options.get(m, {}))
            for m in names]


def _fixed_width(data: Any) -> Any:
    """A TextDataset padded per batch, padded to one fixed width instead.

    The store's arrays need one shape, and every chunk must have the same token axis.
    """
    from neuralatlas.data.text import TextDataset

    if isinstance(data, TextDataset) and data.padding != "max_length" and data.tokenizer is not None:
        return data.with_padding("max_length")
    return data


def _rows_of(data: Any, source: Any, lo: int, hi: int) -> tuple[Any, np.ndarray | None]:
    """Rows ``lo:hi`` of the data as ``(inputs, labels)`` for :func:`attribute`.

    Inputs keep their dtype (token ids stay integers); dict batches are joined key by key.
    """
    from neuralatlas.data.dataset import ArrayDataset
    from neuralatlas.data.text import TextDataset

    if isinstance(data, (ArrayDataset, TextDataset)):
        return data.subset(slice(lo, hi)), None
    xs, ys = [], []
    for x, y in source.batches(lo, hi):
        xs.append({k: torch.as_tensor(v) for k, v in x.items()} if isinstance(x, Mapping) else torch.as_tensor(x))
        ys.append(torch.as_tensor(y))
    labels = torch.cat(ys).numpy().astype(np.int64)
    if isinstance(xs[0], Mapping):
        widths = {v.shape[1] for x in xs for v in x.values() if v.dim() >= 2}
        if len(widths) > 1:
            raise AnalysisError(f"The batches of this data set have token axes of different lengths {sorted(widths)};"
                                " a store needs one width. Pad every item to a fixed length (e.g. a TextDataset"
                                " with padding='max_length', or the tokenizer's padding='max_length').")
        inputs: Any = {k: torch.cat([x[k] for x in xs]) for k in xs[0]}
    else:
        inputs = torch.cat(xs)
    return inputs, (labels if len(labels) and labels.min() >= 0 else None)


def _open_or_create(out: Path, settings: dict, overwrite: bool, source: Any, keys: list[str],
                    run: Callable, chunk_rows: int | None, batch_size: int) -> ActivationStore:
    if out.exists() and not overwrite and (out / "zarr.json").exists():
        store = ActivationStore.open(out, mode="a")
        before = store.attrs.get("attribution")
        if before != json.loads(json.dumps(settings)):
            before = before or {}
            diff = [f"{k}: store has {before.get(k)!r}, this call has {settings.get(k)!r}"
                    for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
            raise StoreError(
                f"{out} holds attributions made with other arguments ({'; '.join(diff) or 'not an attribution store'})."
                " Pass overwrite=True to replace it, or choose another out= path."
            )
        return store
    if out.exists() and not overwrite and any(out.iterdir()):
        raise StoreError(f"{out} exists and is not an attribution store; choose another out= path"
                         " or pass overwrite=True to replace it.")
    # one small call learns each method's map shape (Grad-CAM and layer methods differ from the input)
    probe = run(0, min(2, source.n))
    shapes = {key: list(r.maps.shape[1:]) for key, r in zip(keys, probe, strict=True)}
    widest = max(int(np.prod(s)) for s in shapes.values()) * 4 * len(keys)
    rows = chunk_rows or chunk_rows_for(widest, batch_size, source.n)
    store = ActivationStore.create(out, {
        "layers": keys, "unit_shapes": shapes,
        "layer_types": {key: "attribution" for key in keys},
        "signed": {key: bool(r.signed) for key, r in zip(keys, probe, strict=True)},
        "classes": list(source.classes or []), "n_samples": source.n, "chunk_rows": int(rows),
        "epochs": [], "attribution": settings, "source": "attribution",
    }, overwrite=overwrite)
    store.plan_slots([None])
    store.write_samples(index=source.index, label=np.full(source.n, -1, np.int64), group=source.groups,
                        columns=text_columns(source))
    return store


def text_columns(source: Any) -> dict[str, np.ndarray]:
    """``{"text": [n]}`` when the data set carries its raw sentences (a ``TextDataset``).

    The report shows these sentences where it would show image thumbnails.
    """
    texts = getattr(getattr(source, "dataset", None), "texts", None)
    if texts is None or len(texts) != source.n:
        return {}
    return {"text": np.asarray([str(t) for t in texts], dtype=object)}


def _extra(group: zarr.Group, path: str, n: int, rows: int, dtype: Any) -> zarr.Array:
    full = f"{_EXTRAS}/{path}"
    if full in group:
        return group[full]
    fill = -1 if np.dtype(dtype).kind == "i" else np.nan
    return group.create_array(full, shape=(n,), chunks=(rows,), dtype=dtype, fill_value=fill)


def _finish(store: ActivationStore, extras: zarr.Group, source: Any, keys: list[str], n: int) -> None:
    """Copy the per-sample extras into the sample table once every chunk is written."""
    def read(path: str) -> np.ndarray | None:
        full = f"{_EXTRAS}/{path}"
        return extras[full][:] if full in extras else None

    labels = read("label")
    columns: dict[str, np.ndarray] = {}
    target = read("target")
    if target is not None:
        columns["target"] = target
    for key in keys:
        comp = read(f"completeness/{key}")
        if comp is not None:
            columns[f"completeness_{key}"] = comp
    store.write_samples(index=source.index, label=labels if labels is not None else np.full(n, -1, np.int64),
                        group=source.groups, columns={**text_columns(source), **columns})
    store.mark_complete(None)


def _weights_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        if tensor.numel():
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:16]


def signed_methods(store: ActivationStore) -> dict[str, bool]:
    """Which maps of an attribution store are signed (for colour maps)."""
    signed = store.attrs.get("signed", {})
    return {key: bool(signed.get(key, METHODS.get(key.split("@")[0].split("->")[0], METHODS["saliency"]).signed))
            for key in store.layers}
