"""Importers for iNNtrospect's folder layout (Krug et al., HHAI 2023; TensorFlow).

iNNtrospect works over two folders:

* a **corpus**: ``corpus.csv`` without a header, one line per ``.npy`` batch of inputs,
  ``file, group[, label]`` (file paths relative to the csv);
* a **processed corpus** (its output): ``acts/layer000/<file>.npy`` ... one folder per layer
  output (the last one is the model output), ``grads/layerNNN/<file>.npy`` for all but the
  last, and ``group_name_to_files.json`` (group -> its batch files), ``group_name_to_index.json``.
  Arrays are channels-last (TensorFlow): ``[n, H, W, C]``.

:func:`import_innspect_output` turns a processed corpus into an :class:`ActivationStore`
(channels-first, streamed batch by batch, groups in the sample table), so every neuralatlas
analysis runs on what a TensorFlow user already computed. :func:`read_innspect_corpus` reads a
corpus as an :class:`ArrayDataset`, and :func:`import_innspect_corpus` captures a PyTorch model
over it. Neither needs TensorFlow; only the last needs torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neuralatlas.data.dataset import ArrayDataset
from neuralatlas.errors import DataError, StoreError
from neuralatlas.store.core import ActivationStore, chunk_rows_for

__all__ = ["import_innspect_output", "read_innspect_corpus"]

_HEADER_WORDS = {"file", "filename", "files", "path", "batch", "batch_file"}


def _read_corpus_csv(corpus_csv: str | Path) -> tuple[Path, list[str], list[str], list[int] | None]:
    """(folder, files, groups, labels or None) from an iNNtrospect corpus.csv."""
    path = Path(corpus_csv)
    if path.is_dir():
        path = path / "corpus.csv"
    if not path.exists():
        raise DataError(f"No iNNtrospect corpus at {path}: expected a corpus.csv with lines 'file, group[, label]'.")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if number == 1 and fields[0].lower() in _HEADER_WORDS:
            continue
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise DataError(f"{path}, line {number}: {line!r} is not 'file, group[, label]'.")
        rows.append((number, fields))
    if not rows:
        raise DataError(f"{path} lists no batches; write one line 'file, group[, label]' per .npy batch.")
    has_labels = all(len(f) > 2 and f[2] != "" for _, f in rows)
    labels = None
    if has_labels:
        labels = []
        for number, f in rows:
            try:
                labels.append(int(f[2]))
            except ValueError:
                raise DataError(f"{path}, line {number}: label {f[2]!r} is not an integer.") from None
    return path.parent, [f[0] for _, f in rows], [f[1] for _, f in rows], labels


def _to_channels_first(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 1) if a.ndim >= 3 else a


def read_innspect_corpus(corpus_csv: str | Path, *, channels_last: bool = True,
                         classes: Sequence[str] | None = None) -> ArrayDataset:
    """Read an iNNtrospect corpus (``corpus.csv`` + ``.npy`` batches) as an ArrayDataset.

    Parameters
    ----------
    corpus_csv : path
        The ``corpus.csv`` (or its folder). Lines ``file, group[, label]``, no header.
    channels_last : bool
        Inputs are ``[n, H, W, C]`` (TensorFlow); they are moved to ``[n, C, H, W]``.
    classes : list of str, optional
        Class names for the labels. Without a label column the group is the label and the
        group names are the classes.

    Returns
    -------
    ArrayDataset
        Samples in corpus order; ``groups`` holds each sample's group name.

    Example
    -------
    >>> data = read_innspect_corpus("mnist_corpus/corpus.csv")         # doctest: +SKIP
    >>> store = neuralatlas.capture(model, data, out="acts.zarr", gradients=True) # doctest: +SKIP
    """
    folder, files, groups, labels = _read_corpus_csv(corpus_csv)
    inputs, sample_groups, sample_labels = [], [], []
    group_names = sorted(set(groups))
    for i, (file, group) in enumerate(zip(files, groups, strict=True)):
        batch = _load_batch(folder / file)
        inputs.append(_to_channels_first(batch) if channels_last else batch)
        sample_groups.extend([group] * len(batch))
        label = labels[i] if labels is not None else group_names.index(group)
        sample_labels.extend([label] * len(batch))
    shapes = {a.shape[1:] for a in inputs}
    if len(shapes) > 1:
        raise DataError(f"The batches of {folder} have different sample shapes {sorted(shapes)}; they must match.")
    y = np.asarray(sample_labels, np.int64)
    if classes is None:
        classes = group_names if labels is None else [str(c) for c in range(int(y.max()) + 1)]
    return ArrayDataset(np.concatenate(inputs), y, list(classes), groups=np.asarray(sample_groups),
                        name=f"innspect:{folder}")


def _load_batch(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(f"Batch file {path} is missing (listed in the corpus); check the paths in corpus.csv.")
    try:
        arr = np.load(path, mmap_mode="r")
    except ValueError as err:
        raise DataError(f"{path} is not a .npy array ({err}).") from None
    if arr.ndim < 1:
        raise DataError(f"{path} holds a scalar; a batch needs a leading sample axis.")
    return arr


def _layer_folders(folder: Path) -> list[str]:
    acts = folder / "acts"
    if not acts.is_dir():
        raise StoreError(f"{folder} is not an iNNtrospect output folder: it has no acts/ folder"
                         " (expected acts/layer000/<batch>.npy and group_name_to_files.json).")
    names = sorted(p.name for p in acts.iterdir() if p.is_dir() and p.name.startswith("layer"))
    if not names:
        raise StoreError(f"{acts} holds no layerNNN folders.")
    return names


def import_innspect_output(folder: str | Path, out: str | Path, *,
                           layer_names: Sequence[str] | Mapping[str, str] | None = None,
                           corpus_csv: str | Path | None = None, channels_last: bool = True,
                           include_output: bool = True, chunk_rows: int | None = None,
                           overwrite: bool = False) -> ActivationStore:
    """Turn an iNNtrospect processed-corpus folder into an :class:`ActivationStore`.

    Parameters
    ----------
    folder : path
        Holds ``acts/layerNNN/*.npy``, ``grads/layerNNN/*.npy`` (optional) and
        ``group_name_to_files.json``.
    out : path
        The new store folder.
    layer_names : list or {"layer000": name}, optional
        Names for the layers (default ``layer000``, ``layer001``, ...), in folder order.
    corpus_csv : path, optional
        The corpus the folder was made from, for its label column; without it the group index
        is the label and the group names are the classes.
    channels_last : bool
        Arrays are ``[n, ..., C]`` (TensorFlow); they are stored channels-first.
    include_output : bool
        Keep the last layer folder (iNNtrospect's model output, which has no gradients); the
        predictions (its argmax) are recorded either way when it is 2-D.
    chunk_rows : int, optional
        Rows per store chunk.
    overwrite : bool
        Replace an existing store at ``out``.

    Returns
    -------
    ActivationStore
        Samples ordered by group (in ``group_name_to_index.json`` order), then by batch file
        as listed; the ``group`` column holds group names and ``batch_file`` the source file.

    Example
    -------
    >>> store = import_innspect_output("processed/MNIST_CNN", out="run/acts.zarr")  # doctest: +SKIP
    >>> naps(store, by="group").values("layer000").shape                        # doctest: +SKIP
    (10, 32, 26, 26)
    """
    folder = Path(folder)
    layer_dirs = _layer_folders(folder)
    group_file = folder / "group_name_to_files.json"
    if not group_file.exists():
        raise StoreError(f"{folder} has no group_name_to_files.json; iNNtrospect writes it with the activations.")
    group_to_files: dict[str, list[str]] = json.loads(group_file.read_text())
    index_file = folder / "group_name_to_index.json"
    if index_file.exists():
        order = json.loads(index_file.read_text())
        group_order = sorted(group_to_files, key=lambda g: int(order.get(g, len(order))))
    else:
        group_order = list(group_to_files)
    batches = [(g, f) for g in group_order for f in group_to_files[g]]
    if not batches:
        raise StoreError(f"{group_file} lists no batch files.")

    output_dir = layer_dirs[-1]
    kept = layer_dirs if include_output else layer_dirs[:-1]
    if isinstance(layer_names, Mapping):
        names = {d: str(layer_names.get(d, d)) for d in kept}
    elif layer_names is not None:
        if len(layer_names) != len(kept):
            raise StoreError(f"layer_names has {len(layer_names)} names but {folder} holds {len(kept)} layers"
                             f" ({', '.join(kept)}).")
        names = dict(zip(kept, map(str, layer_names), strict=True))
    else:
        names = {d: d for d in kept}

    # One look at the first file of every layer: shapes, and the batch sizes of layer000.
    sizes = [len(_load_batch(folder / "acts" / layer_dirs[0] / f)) for _, f in batches]
    n = int(sum(sizes))
    shapes = {}
    for d in kept:
        first = _load_batch(folder / "acts" / d / batches[0][1])
        shape = first.shape[1:]
        shapes[d] = list(shape[-1:] + shape[:-1]) if channels_last and len(shape) >= 2 else list(shape)
    has_grads = {d: (folder / "grads" / d / batches[0][1]).exists() for d in kept}

    labels: np.ndarray
    classes: list[str]
    if corpus_csv is not None:
        _, files, groups, csv_labels = _read_corpus_csv(corpus_csv)
        if csv_labels is None:
            raise DataError(f"{corpus_csv} has no label column; leave corpus_csv out to use the groups as labels.")
        by_file = dict(zip(files, csv_labels, strict=True))
        missing = [f for _, f in batches if f not in by_file]
        if missing:
            raise DataError(f"{corpus_csv} does not list {missing[0]!r} (and {len(missing) - 1} more) of {folder}.")
        labels = np.repeat([by_file[f] for _, f in batches], sizes).astype(np.int64)
        classes = [str(c) for c in range(int(labels.max()) + 1)]
    else:
        labels = np.repeat([group_order.index(g) for g, _ in batches], sizes).astype(np.int64)
        classes = list(group_order)
    groups = np.repeat([g for g, _ in batches], sizes)
    files = np.repeat([f for _, f in batches], sizes)

    bytes_per_row = max(int(np.prod(s)) * 4 for s in shapes.values())
    rows = chunk_rows or chunk_rows_for(bytes_per_row, 1, n)
    store = ActivationStore.create(out, {
        "layers": [names[d] for d in kept], "unit_shapes": {names[d]: shapes[d] for d in kept},
        "classes": classes, "n_samples": n, "chunk_rows": rows, "epochs": [],
        "source": "innspect", "innspect": {"folder": str(folder.resolve()), "layer_folders": kept,
                                           "channels_last": channels_last},
    }, overwrite=overwrite)
    store.write_samples(index=np.arange(n), label=labels, group=groups, columns={"batch_file": files})
    store.plan_slots([None])
    for d in kept:
        kinds = ["acts", "grads"] if has_grads[d] else ["acts"]
        for kind in kinds:
            _copy_layer(store, folder / kind / d, batches, sizes, names[d], kind, channels_last, rows)
    out_batches = [_load_batch(folder / "acts" / output_dir / f) for _, f in batches[:1]]
    if out_batches and out_batches[0].ndim == 2:
        predictions = np.concatenate([np.asarray(_load_batch(folder / "acts" / output_dir / f)).argmax(1)
                                      for _, f in batches])
        store._write_vector("prediction", predictions.astype(np.int64))
    store.flag_done(None)
    store.mark_complete(None)
    return store


def _copy_layer(store: ActivationStore, layer_dir: Path, batches: list[tuple[str, str]], sizes: list[int],
                layer: str, kind: str, channels_last: bool, rows: int) -> None:
    """Stream one layer's batch files into chunk-aligned writes (one chunk of memory)."""
    arr = store.create_layer_array(kind, layer, None)
    buffer = np.empty((rows, *arr.shape[1:]), np.float32)
    filled, start = 0, 0
    for (_, file), size in zip(batches, sizes, strict=True):
        batch = _load_batch(layer_dir / file)
        if len(batch) != size:
            raise StoreError(f"{layer_dir / file} has {len(batch)} samples but the same batch of the first"
                             f" layer has {size}; the folder is inconsistent.")
        batch = _to_channels_first(batch) if channels_last else batch
        if tuple(batch.shape[1:]) != tuple(arr.shape[1:]):
            raise StoreError(f"{layer_dir / file} has sample shape {tuple(batch.shape[1:])},"
                             f" expected {tuple(arr.shape[1:])} like the layer's first batch.")
        taken = 0
        while taken < size:
            k = min(rows - filled, size - taken)
            buffer[filled:filled + k] = batch[taken:taken + k]
            filled += k
            taken += k
            if filled == rows:
                arr[start:start + rows] = buffer
                start += rows
                filled = 0
    if filled:
        arr[start:start + filled] = buffer[:filled]
