"""ActivationStore: a run's activations, gradients and sample table in one zarr folder.

Layout (zarr v3, self-describing through its attributes)::

    acts.zarr/
      zarr.json                  attrs: layers, unit shapes, classes, epochs, capture settings,
                                 provenance (model class, package versions), format version
      samples/index, label, group, ...   one 1-D array per sample-table column
      acts/<layer>               [n_samples, *unit_shape]        (the model as captured)
      grads/<layer>              same shape, when gradients were captured
      prediction                 [n_samples] predicted class
      done                       [n_chunks] bool: which sample chunks are written (resume)
      epochs/<e>/acts/<layer>    the same, once per checkpoint epoch, for per-epoch captures
      epochs/<e>/grads/<layer>, epochs/<e>/prediction, epochs/<e>/done

Every array is chunked along samples only, with the same number of rows per chunk, so one
chunk of rows is the unit of work for capture (write, resume) and for streaming analyses.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import zarr

from neuralatlas.errors import LayerError, StoreCorruptError, StoreError, did_you_mean
from neuralatlas.store import integrity
from neuralatlas.store.locations import StoreURL, _slot, is_url  # noqa: F401  (re-exported: their old home)

FORMAT = "neuralatlas.activations/1"
# Uncompressed chunks write at page-cache speed; zarr's default zstd is ~10x slower here and
# activations (floats) compress poorly. A compressor stays available as an option.
DEFAULT_CHUNK_BYTES = 16 * 2**20
ARRAY_CONFIG = {"write_empty_chunks": True}  # skip zarr's per-chunk "all fill value?" scan
# Chunk files named ``c.<i>.0.0.0`` side by side in the array's folder, not ``c/<i>/0/0/0``:
# with zarr 3's default "/" every new chunk of a 4-d array needs three new folders, and
# creating folders cost 25-450 us each on this ext4 (``discard`` mount), ~770 mkdir calls and
# 0.1-0.5 s of a 20,000-sample capture with gradients. Plain zarr 3 (the key encoding is in
# each array's zarr.json); stores written with "/" before this change read the same.
CHUNK_KEY_ENCODING = {"name": "default", "separator": "."}


def writable(array: zarr.Array) -> zarr.Array:
    """``array`` with :data:`ARRAY_CONFIG`; every writer goes through this.

    zarr keeps run-time config out of the metadata, so an array reopened from its group would silently
    *delete* a chunk that becomes all fill value (all-zero activations, an all-zero label chunk) — which the
    integrity check then reads as a lost chunk.
    """
    return array.with_config(ARRAY_CONFIG)


def chunk_rows_for(bytes_per_row: int, batch_size: int, n_samples: int,
                   target_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk: a multiple of the batch size, about ``target_bytes`` for the widest row."""
    k = max(1, target_bytes // max(1, bytes_per_row * batch_size))
    rows = batch_size * k
    return int(max(1, min(rows, -(-n_samples // batch_size) * batch_size)))


def with_checksum(compressor: Any = None) -> list[Any]:
    """Bytes-to-bytes codecs of a store array: the compressor (if any), then zarr's crc32c checksum.

    The checksum goes last, so a flipped byte or a truncated chunk fails on read instead of passing.
    """
    from zarr.codecs import Crc32cCodec

    return [*([] if compressor is None else [compressor]), Crc32cCodec()]


def compressor_for(name: str | None):
    """The zarr codec for a compressor name: None (default, fastest), "lz4", "zstd"."""
    if name in (None, "none"):
        return None
    from zarr.codecs import BloscCodec

    if name in ("lz4", "zstd"):
        return BloscCodec(cname=name, clevel=1 if name == "lz4" else 3, shuffle="shuffle")
    raise StoreError(f"Unknown compressor {name!r}; choose None, 'lz4' or 'zstd'.")


class ActivationStore:
    """Activations (and gradients) of a model's layers over a data set, on disk.

    Open one with :meth:`open`, make one from any framework's arrays with :meth:`from_arrays`,
    or write one with :func:`neuralatlas.capture`.

    Examples
    --------
    >>> from neuralatlas import capture
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import mlp
    >>> train, test = digits()
    >>> _ = capture(mlp(), test.subset(slice(0, 32)), out="acts.zarr")
    >>> store = ActivationStore.open("acts.zarr")
    >>> store.layers
    ['flatten', 'fc1', 'relu1', 'fc2', 'relu2', 'out']
    >>> np.asarray(store.activations("fc1")).shape
    (32, 64)
    """

    def __init__(self, group: zarr.Group, path: Path | StoreURL):
        self._group = group
        self.path = path
        self._storage_options: dict[str, Any] = {}
        # layer arrays this object created or opened for writing: a capture asks for each
        # several times (prepare, then each fill), and every zarr open reads its metadata
        self._writing: dict[str, zarr.Array] = {}
        self._root: Path | None = None  # the local folder, found on first use (_local_root)
        self._root_known = False

    # ------------------------------------------------------------------ opening and making
    @classmethod
    def open(cls, path: str | Path, mode: str = "r", storage_options: Mapping[str, Any] | None = None,
             check: bool | None = None) -> ActivationStore:
        """Open an existing store folder; ``mode="a"`` to add to it.

        ``path`` may also be a URL zarr understands through fsspec (``s3://bucket/run/acts.zarr``,
        ``gs://...``, ``file:///...``; the protocol's fsspec package installed), with
        ``storage_options`` passed to it (credentials, endpoint). Such a store is read by the
        analyses, locally or on dask workers, like a folder.

        ``check`` (default: on in read mode, for local folders) checks that every chunk the
        done flags call written is on disk (a listing; no data is read), so a deleted chunk is
        an error rather than zeros. Damaged bytes are caught by the chunks' checksums on read.

        Raises
        ------
        StoreError
            No store there, or its creation was interrupted.
        StoreCorruptError
            A written chunk is missing, or a metadata file (``zarr.json``) is unreadable; the
            message names the layer, epoch, rows and file, and the fix.
        """
        if is_url(path):
            store = cls._open_url(str(path), mode, storage_options)
            if check:
                store.check_integrity().raise_if_bad()
            return store
        path = Path(path)
        if not (path / "zarr.json").exists():
            hint = ""
            if (path / "acts.zarr" / "zarr.json").exists():
                hint = f" It looks like a run folder: open {path / 'acts.zarr'} instead."
            raise StoreError(
                f"No activation store at {path} (no zarr.json there).{hint} Create one with"
                " neuralatlas.capture(model, data, out=...) or ActivationStore.from_arrays(...)."
            )
        try:
            group = zarr.open_group(str(path), mode=mode)
        except ValueError as err:  # json.JSONDecodeError and zarr's metadata errors
            raise StoreCorruptError(
                f"{path / 'zarr.json'} is unreadable ({err.__class__.__name__}: {err}): the store's"
                " metadata is damaged and its layout cannot be recovered from it. Fix: rerun the"
                " capture with overwrite=True, or restore the folder from a backup."
            ) from None
        except PermissionError as err:
            raise StoreError(f"Cannot open {path}: {err.strerror} ({err.filename}). Fix the folder's"
                             " permissions or copy the store somewhere readable.") from None
        _check_format(group, path)
        store = cls(group, path)
        if check if check is not None else mode == "r":
            store.check_integrity().raise_if_bad(_fix_target(path))
        return store

    @classmethod
    def _open_url(cls, url: str, mode: str, storage_options: Mapping[str, Any] | None) -> ActivationStore:
        try:
            group = zarr.open_group(url, mode=mode, storage_options=dict(storage_options or {}))
        except (FileNotFoundError, KeyError) as err:
            raise StoreError(f"No activation store at {url} ({err.__class__.__name__}: {err}).") from None
        except ImportError as err:
            raise StoreError(f"Opening {url} needs an fsspec implementation of its protocol: {err}."
                             " Install it (s3fs for s3://, gcsfs for gs://, adlfs for az://).") from None
        _check_format(group, url)
        store = cls(group, StoreURL(url))
        store._storage_options = dict(storage_options or {})
        return store

    @classmethod
    def locate(cls, location: Any) -> ActivationStore:
        """A store from a store, a store folder, a run folder holding ``acts.zarr``, or a URL.

        Raises
        ------
        StoreError
            When ``location`` is none of these.
        """
        if isinstance(location, ActivationStore):
            return location
        if is_url(location):
            return cls.open(str(location))
        if isinstance(location, (str, Path)):
            path = Path(location)
            return cls.open(path / "acts.zarr" if (path / "acts.zarr").is_dir() else path)
        raise StoreError(f"Expected an ActivationStore, the path of one (or of a run folder), or a URL;"
                         f" got {type(location).__name__}.")

    @classmethod
    def create(cls, path: str | Path, attrs: Mapping[str, Any], overwrite: bool = False) -> ActivationStore:
        """Start an empty store with the given root attributes (used by capture and importers)."""
        path = Path(path)
        if path.exists() and overwrite:
            shutil.rmtree(path)
        elif path.exists() and any(path.iterdir()):
            raise StoreError(f"{path} exists and is not empty; pass overwrite=True to replace it.")
        try:
            group = zarr.open_group(str(path), mode="w", attributes={"format": FORMAT, **_provenance(),
                                                                     **dict(attrs)})
        except PermissionError as err:
            raise StoreError(f"Cannot create {path}: {err.strerror} ({err.filename}). Choose an output"
                             " folder you can write to, or fix its permissions.") from None
        except OSError as err:
            import errno

            if err.errno != errno.EROFS:
                raise
            raise StoreError(f"Cannot create {path}: the file system is read-only ({err.filename})."
                             " Choose an output folder on a writable disk.") from None
        return cls(group, path)

    @classmethod
    def from_arrays(
        cls,
        path: str | Path,
        activations: Mapping[str, np.ndarray],
        labels: Sequence[int] | np.ndarray | None = None,
        groups: Sequence | np.ndarray | None = None,
        *,
        gradients: Mapping[str, np.ndarray] | None = None,
        predictions: Sequence[int] | np.ndarray | None = None,
        classes: Sequence[str] | None = None,
        index: Sequence[int] | np.ndarray | None = None,
        columns: Mapping[str, Sequence] | None = None,
        epoch_activations: Mapping[int, Mapping[str, np.ndarray]] | None = None,
        chunk_rows: int | None = None,
        overwrite: bool = False,
        attrs: Mapping[str, Any] | None = None,
    ) -> ActivationStore:
        """Write arrays from any framework (TensorFlow, JAX, numpy) into a store.

        Parameters
        ----------
        path : str or Path
            Folder of the new store.
        activations : mapping of layer name to array ``[n_samples, *unit_shape]``
            In model order (the mapping's order is kept). Channels-first for conv maps.
        labels, groups, predictions, index : array-like of length n_samples, optional
            The sample table; ``index`` defaults to ``0..n-1``.
        gradients : mapping of layer name to array, optional
            Same shapes as the activations.
        classes : sequence of str, optional
            Class names; default ``"0".."k-1"`` from the labels.
        columns : mapping of column name to array-like, optional
            Extra sample-table columns (e.g. ``{"source": [...]}``).
        epoch_activations : mapping of epoch to {layer: array}, optional
            Activations per training epoch, for the inter-epoch analyses.

        Returns
        -------
        ActivationStore
        """
        layers = list(activations)
        if not layers and not epoch_activations:
            raise StoreError("from_arrays needs at least one layer: activations={'layer': array}.")
        per_slot: dict[int | None, Mapping[str, np.ndarray]] = {}
        if layers:
            per_slot[None] = activations
        for e, acts in (epoch_activations or {}).items():
            per_slot[int(e)] = acts
            layers = layers or list(acts)
        first = next(iter(per_slot.values()))
        n = len(next(iter(first.values())))
        for slot, acts in per_slot.items():
            if list(acts) != layers:
                raise StoreError(f"epoch {slot} has layers {list(acts)} but the store has {layers}.")
            for name, a in acts.items():
                if len(a) != n:
                    raise StoreError(
                        f"layer {name!r} has {len(a)} samples but {layers[0]!r} has {n};"
                        " every array needs one row per sample."
                    )
        shapes = {name: list(np.shape(first[name])[1:]) for name in layers}
        for slot, acts in per_slot.items():
            for name, a in acts.items():
                if list(np.shape(a)[1:]) != shapes[name]:
                    raise StoreError(
                        f"layer {name!r} has unit shape {list(np.shape(a)[1:])} at epoch {slot}"
                        f" but {shapes[name]} elsewhere."
                    )
        if gradients is not None:
            for name, g in gradients.items():
                if name not in shapes:
                    raise LayerError(f"gradients for unknown layer {name!r}; layers: {layers}.")
                if list(np.shape(g)) != [n, *shapes[name]]:
                    raise StoreError(
                        f"gradients of {name!r} have shape {list(np.shape(g))},"
                        f" activations {[n, *shapes[name]]}: they must match."
                    )
        labels_arr = np.full(n, -1, np.int64) if labels is None else np.asarray(labels)
        # float labels with fractions are regression targets and stay floats (never truncated);
        # whole numbers are class indices, as before
        fractional = labels_arr.dtype.kind == "f" and not np.array_equal(labels_arr, np.round(labels_arr))
        labels_arr = labels_arr.astype(np.float64 if fractional else np.int64)
        if labels_arr.shape != (n,):
            raise StoreError(f"labels have shape {labels_arr.shape}, expected ({n},).")
        if classes is None and labels_arr.dtype.kind == "f":
            classes = []
        elif classes is None:
            k = int(labels_arr.max()) + 1 if n and labels_arr.max() >= 0 else 0
            classes = [str(i) for i in range(k)]
        bytes_per_row = max(int(np.prod(s, dtype=np.int64)) * 4 for s in shapes.values())
        rows = chunk_rows or chunk_rows_for(bytes_per_row, 1, n)
        store = cls.create(path, {
            "layers": layers, "unit_shapes": shapes, "classes": list(classes),
            "n_samples": n, "chunk_rows": rows,
            "epochs": sorted(e for e in per_slot if e is not None),
            "source": "arrays", **dict(attrs or {}),
        }, overwrite=overwrite)
        store.write_samples(index=np.arange(n) if index is None else index, label=labels_arr,
                            group=groups, columns=columns)
        store.plan_slots(list(per_slot))
        for slot, acts in per_slot.items():
            for name in layers:
                store._write_whole("acts", name, np.asarray(acts[name], np.float32), slot)
                if gradients is not None and name in gradients and slot == next(iter(per_slot)):
                    store._write_whole("grads", name, np.asarray(gradients[name], np.float32), slot)
            if predictions is not None:
                store._write_vector(_slot(slot) + "prediction", np.asarray(predictions, np.int64))
            store.flag_done(slot)
            store.mark_complete(slot)
        return store

    # ------------------------------------------------------------------ description
    @property
    def attrs(self) -> dict[str, Any]:
        """The store's root attributes (layers, shapes, capture settings, provenance)."""
        return dict(self._group.attrs)

    @property
    def layers(self) -> list[str]:
        """Layer names in model order, as ``model.named_modules()`` names them."""
        return list(self._group.attrs.get("layers", []))

    @property
    def epochs(self) -> list[int]:
        """Checkpoint epochs captured (empty when only the final model was captured)."""
        return [int(e) for e in self._group.attrs.get("epochs", [])]

    @property
    def classes(self) -> list[str]:
        """The class names (empty when the store has none)."""
        return list(self._group.attrs.get("classes", []))

    @property
    def n_samples(self) -> int:
        """The number of samples (rows)."""
        return int(self._group.attrs["n_samples"])

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk along the sample axis (the unit of streaming and resuming)."""
        return int(self._group.attrs["chunk_rows"])

    def unit_shape(self, layer: str) -> tuple[int, ...]:
        """Shape of one sample's activation of ``layer`` (e.g. ``(16, 8, 8)``)."""
        return tuple(self._group.attrs["unit_shapes"][self._check_layer(layer)])

    # ------------------------------------------------------------------ integrity
    def check_integrity(self, deep: bool = False) -> integrity.IntegrityReport:
        """Check that every chunk the done flags call written is there (and, ``deep``, intact).

        The cheap check lists chunk files (local folders; a URL store is only checked deep);
        the deep one reads every written chunk through its crc32c checksum. Nothing is changed.

        Returns
        -------
        IntegrityReport
            ``.ok``, ``.problems`` (kind, layer, epoch, rows, file of each bad chunk),
            ``.checksums`` (``"none"`` for a store written before checksums), ``.summary()``.
        """
        return integrity.check(self, deep=deep)

    def verify(self, deep: bool = False) -> integrity.IntegrityReport:
        """:meth:`check_integrity`, raising :class:`StoreCorruptError` when a chunk is bad."""
        return self.check_integrity(deep=deep).raise_if_bad(_fix_target(self.path))

    def invalidate(self, problems: Sequence[integrity.ChunkProblem]) -> int:
        """Mark the chunks of ``problems`` unwritten (their slots incomplete); return how many were marked.

        Running the same capture again then recomputes exactly those rows.

        A problem with a whole array (chunk -1) marks every chunk of its slot.
        """
        marked = 0
        for slot in dict.fromkeys(p.epoch for p in problems if not p.kind.startswith("samples/")):
            flags = self.done_flags(slot)
            chunks = {p.chunk for p in problems if p.epoch == slot and not p.kind.startswith("samples/")}
            targets = range(flags.shape[0]) if -1 in chunks else sorted(chunks)
            for c in targets:
                flags[c] = False
                marked += 1
            complete = dict(self._group.attrs.get("complete", {}))
            complete["final" if slot is None else str(slot)] = False
            self._set_attrs(complete=complete)
        return marked

    def has_gradients(self, layer: str, epoch: int | None = None) -> bool:
        """Whether the store has gradients of ``layer`` at ``epoch``."""
        return self._array_path("grads", self._check_layer(layer), self._resolve_epoch(epoch)) in self._group

    # ------------------------------------------------------------------ reading
    def activations(self, layer: str, epoch: int | None = None) -> zarr.Array:
        """Activations of ``layer`` ``[n_samples, *unit_shape]``; ``np.asarray`` reads them.

        ``epoch`` picks a checkpoint of a per-epoch capture; ``None`` gives the final model
        (the last epoch when only epochs were captured).
        """
        return self._read("acts", layer, epoch)

    def gradients(self, layer: str, epoch: int | None = None) -> zarr.Array:
        """Gradients of the capture target w.r.t. ``layer``'s output; same shape as activations."""
        return self._read("grads", layer, epoch)

    @property
    def samples(self) -> pd.DataFrame:
        """The sample table: index, label, group, prediction (+ user columns)."""
        return self.sample_table()

    def sample_table(self, epoch: int | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The sample table with the predictions of ``epoch`` (default: final model).

        ``columns`` reads only those (each column is a chunked array: on a large store,
        reading one instead of all saves a pass per column).
        """
        cols: dict[str, np.ndarray] = {}
        samples = self._group["samples"]
        for name in self._group.attrs.get("sample_columns", []):
            if columns is not None and name not in columns:
                continue
            values = samples[name][:]
            cols[name] = values.astype(object) if values.dtype.kind in "OUT" else values
        slot = _slot(self._resolve_epoch(epoch, strict=False))
        if slot + "prediction" in self._group and (columns is None or "prediction" in columns):
            cols["prediction"] = self._group[slot + "prediction"][:]
        frame = pd.DataFrame(cols)
        classes = self.classes  # one attribute read, not one per row
        if "label" in frame and classes and frame["label"].dtype.kind in "iu":
            names = np.asarray([*classes, ""], dtype=object)
            labels = frame["label"].to_numpy()
            frame["label_name"] = names[np.where((labels >= 0) & (labels < len(classes)), labels, len(classes))]
        return frame

    def iter_chunks(self, layer: str, kind: str = "acts", epoch: int | None = None,
                    rows: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """Stream ``(row_slice, block)`` pairs over the sample axis, chunk-aligned.

        ``rows`` (a multiple of the chunk size is fastest) bounds the memory of one block.
        """
        arr = self._read(kind, layer, epoch)
        step = rows or self.chunk_rows
        for start in range(0, arr.shape[0], step):
            sl = slice(start, min(start + step, arr.shape[0]))
            yield sl, read_rows(arr, sl)

    def read(self, layer: str, rows: slice | None = None, kind: str = "acts", epoch: int | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (default: all) of ``layer``'s activations (``kind="grads"``: gradients).

        The same values as ``np.asarray(store.activations(layer)[rows])``, read whole chunk
        by whole chunk straight into the result (or ``out``), checksums checked, without
        zarr's per-chunk overhead (see :mod:`neuralatlas.store.chunkio`).
        """
        return read_rows(self._read(kind, layer, epoch), rows if rows is not None else slice(None), out)

    def nbytes(self) -> int:
        """Bytes on disk (in the object store, for a URL)."""
        if isinstance(self.path, StoreURL):
            import fsspec

            fs, root = fsspec.core.url_to_fs(str(self.path), **self._storage_options)
            return int(fs.du(root))
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def summary(self) -> pd.DataFrame:
        """One row per layer: unit shape, units, gradients captured."""
        rows = []
        for layer in self.layers:
            shape = self.unit_shape(layer)
            rows.append({"layer": layer, "unit_shape": shape, "units": int(np.prod(shape)),
                         "gradients": self.has_gradients(layer) if self.is_complete() else None})
        return pd.DataFrame(rows)

    def is_complete(self, epoch: int | None = None) -> bool:
        """Whether the capture finished: of ``epoch`` (``"final"`` for the final model), or of all."""
        complete = self._group.attrs.get("complete", {})
        if epoch is None:
            return bool(complete) and all(complete.values())
        return bool(complete.get(str(epoch), False))

    # ------------------------------------------------------------------ writing (capture, importers)
    def write_samples(self, index, label, group=None, columns: Mapping[str, Sequence] | None = None) -> None:
        """Write the sample table (overwrites earlier columns of the same names)."""
        label = np.asarray(label)
        # float labels are regression targets: kept as floats, never truncated to classes
        label = label.astype(np.float64 if label.dtype.kind == "f" else np.int64)
        table: dict[str, np.ndarray] = {"index": np.asarray(index, np.int64), "label": label}
        if group is not None:
            table["group"] = _as_column(group)
        for name, values in (columns or {}).items():
            table[name] = _as_column(values)
        n = self.n_samples
        for name, values in table.items():
            if values.shape != (n,):
                raise StoreError(f"sample column {name!r} has shape {values.shape}, expected ({n},).")
            self._write_vector(f"samples/{name}", values)
        names = list(dict.fromkeys([*self._group.attrs.get("sample_columns", []), *table]))
        self._set_attrs(sample_columns=names)

    def create_layer_array(self, kind: str, layer: str, epoch: int | None, dtype: str = "float32",
                           compressor: str | None = None) -> zarr.Array:
        """Create (or return the existing) array for ``layer`` with the store's chunking."""
        path = self._array_path(kind, layer, epoch)
        if path in self._writing:
            return self._writing[path]
        if self._has(path):
            return self.activations_array(kind, layer, epoch)
        shape = (self.n_samples, *self.unit_shape(layer))
        self._writing[path] = self._create_array(
            path, shape=shape, chunks=(self.chunk_rows, *shape[1:]), dtype=dtype,
            compressors=with_checksum(compressor_for(compressor)), fill_value=0,
        )
        return self._writing[path]

    def activations_array(self, kind: str, layer: str, epoch: int | None) -> zarr.Array:
        """The array of ``layer`` for writing, complete or not (capture's writers use it)."""
        return self._writable(self._array_path(kind, layer, epoch))

    def done_flags(self, epoch: int | None, create: bool = False) -> zarr.Array:
        """One bool per sample chunk: written or not (each flag its own chunk, so writers never clash)."""
        path = _slot(epoch) + "done"
        if path in self._writing:
            return self._writing[path]
        if not self._has(path):
            if not create:
                raise StoreError(f"{self.path} has no capture progress for epoch {epoch}.")
            n_chunks = -(-self.n_samples // self.chunk_rows)
            self._writing[path] = self._create_array(path, shape=(n_chunks,), chunks=(1,), dtype=bool,
                                                     fill_value=False, compressors=with_checksum())
            return self._writing[path]
        return self._writable(path)

    def flag_done(self, epoch: int | None, chunks: Iterable[int] | None = None) -> None:
        """Set the done flags of ``chunks`` (default: every chunk) of ``epoch``, creating the flags if needed.

        Call it only after every array of those chunks is on disk: a flagged chunk is read as
        complete. Each flag file is written atomically, as a capture's writer sets them
        (:class:`~neuralatlas.store.chunkio.DoneFlags`), where zarr's ``done[:] = True`` costs
        an event-loop round trip per flag.
        """
        from neuralatlas.store.chunkio import DoneFlags

        done = self.done_flags(epoch, create=True)
        flags = DoneFlags(done)
        for c in range(done.shape[0]) if chunks is None else chunks:
            flags.set(c)

    def nonfinite_array(self, epoch: int | None, create: bool = False) -> zarr.Array | None:
        """``[n_samples, n_layers]`` bool: rows of each layer holding NaN/inf (written by capture).

        ``None`` when the store did not record it (written by an older version or an importer).
        """
        path = _slot(epoch) + "nonfinite"
        if path in self._writing or self._has(path):
            return self._writable(path)
        if not create:
            return None
        self._writing[path] = self._create_array(path, shape=(self.n_samples, len(self.layers)),
                                                 chunks=(self.chunk_rows, len(self.layers)), dtype=bool,
                                                 fill_value=False, compressors=with_checksum())
        return self._writing[path]

    def nonfinite_rows(self, epoch: int | None = None) -> dict[str, np.ndarray] | None:
        """Which samples hold NaN or inf values, per layer: ``{layer: bool [n_samples]}``.

        ``None`` when the store did not record it.
        """
        flags = self.nonfinite_array(self._resolve_epoch(epoch))
        if flags is None:
            return None
        values = np.asarray(read_rows(flags, slice(None)), bool)
        return {layer: values[:, j] for j, layer in enumerate(self.layers)}

    def plan_slots(self, epochs: Sequence[int | None]) -> None:
        """Record which slots (final model and/or epochs) a capture will write, all unfinished."""
        before = dict(self._group.attrs.get("complete", {}))
        complete = dict(before)
        for e in epochs:
            complete.setdefault("final" if e is None else str(e), False)
        if complete != before or "complete" not in self._group.attrs:  # each write is a zarr round trip
            self._set_attrs(complete=complete)

    def mark_complete(self, epoch: int | None) -> None:
        """Record that ``epoch`` (None: final) is completely captured."""
        complete = dict(self._group.attrs.get("complete", {}))
        complete["final" if epoch is None else str(epoch)] = True
        self._set_attrs(complete=complete)

    def prediction_array(self, epoch: int | None) -> zarr.Array:
        """The predictions array of ``epoch`` (None: final)."""
        path = _slot(epoch) + "prediction"
        if path not in self._writing and not self._has(path):
            self._writing[path] = self._create_array(path, shape=(self.n_samples,), chunks=(self.chunk_rows,),
                                                     dtype="int64", fill_value=-1, compressors=with_checksum())
        return self._writable(path)

    def sample_column(self, name: str) -> zarr.Array:
        """A column of the sample table, for writing (capture fills labels chunk by chunk)."""
        return self._writable(f"samples/{name}")

    def update_attrs(self, **attrs: Any) -> None:
        """Update the store's attributes."""
        self._set_attrs(**attrs)

    # ------------------------------------------------------------------ internals
    def _write_whole(self, kind: str, layer: str, values: np.ndarray, epoch: int | None) -> None:
        _write_rows(self.create_layer_array(kind, layer, epoch), values)

    def _write_vector(self, path: str, values: np.ndarray) -> None:
        self._writing.pop(path, None)  # replaced below: a cached handle would outlive it
        if self._has(path):
            del self._group[path]
        dtype = str if values.dtype.kind in "OUT" else values.dtype
        # sample-aligned chunks, so parallel writers of different chunks never share one
        rows = (self.chunk_rows if self._group.attrs.get("chunk_rows") else 0) or len(values)
        arr = self._create_array(path, shape=values.shape, chunks=(max(1, min(rows, len(values))),),
                                 dtype=dtype, compressors=with_checksum())
        if values.dtype.kind in "biuf":
            _write_rows(arr, values)  # chunk files directly where they qualify
        else:
            arr[:] = values

    # Metadata without zarr's event loop. Every zarr call from this thread is a round trip
    # into zarr's event-loop thread and, for a local folder, its file-IO thread pool (~2-4 ms
    # a call measured here, more under load); a capture made ~50 of them before its first
    # batch (0.15 s of a 0.5 s capture of 20,000 digits). For a zarr 3 group in a local
    # folder the same metadata is built with zarr's own classes and written as its file
    # (tests/store/test_direct_metadata.py compares the bytes with zarr's create_array).
    def _local_root(self) -> Path | None:
        """The folder of this store's group when it is a zarr 3 group in a local folder."""
        if not self._root_known:
            self._root_known = True
            try:
                from zarr.storage import LocalStore

                if isinstance(self._group.store, LocalStore) and self._group.metadata.zarr_format == 3:
                    base = Path(self._group.store.root)
                    self._root = base / self._group.path if self._group.path else base
            except (ImportError, AttributeError):  # pragma: no cover - another zarr major version
                self._root = None
        return self._root

    def _set_attrs(self, **attrs: Any) -> None:
        """``self._group.attrs.update(attrs)``: the group's ``zarr.json`` written directly where local.

        What zarr's ``update_attributes`` does (update the group's attribute dict in place,
        write its metadata document), with the file written here rather than through the
        event loop; the open group sees the new values, as after zarr's own update.
        """
        root = self._local_root()
        if root is None:
            self._group.attrs.update(attrs)
            return
        from zarr.core.buffer import default_buffer_prototype

        self._group.metadata.attributes.update(attrs)
        document = self._group.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"]
        _write_new_file(root / "zarr.json", document.to_bytes())

    def _has(self, path: str) -> bool:
        """``path in self._group``, as a file check where the group is a local zarr 3 folder."""
        root = self._local_root()
        if root is None:
            return path in self._group
        return (root / path / "zarr.json").is_file()

    def _writable(self, path: str) -> zarr.Array:
        """The array at ``path`` for writing (:func:`writable`), opened once per store object."""
        if path not in self._writing:
            root = self._local_root()
            opened = None if root is None else _open_local_array(self._group, root, path)
            self._writing[path] = opened if opened is not None else writable(self._group[path])
        return self._writing[path]

    def _create_array(self, path: str, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any,
                      fill_value: Any = None, compressors: Any = None) -> zarr.Array:
        """Create a new array at ``path`` with :data:`ARRAY_CONFIG`.

        The same metadata file (and parent group files) that ``self._group.create_array``
        writes, written directly where the group is a local zarr 3 folder; through zarr
        otherwise.
        """
        root = self._local_root()
        made = None if root is None else _create_local_array(
            self._group, root, path, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
            compressors=compressors)
        if made is not None:
            return made
        return self._group.create_array(path, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                                        compressors=compressors, config=ARRAY_CONFIG,
                                        chunk_key_encoding=cast(Any, CHUNK_KEY_ENCODING))

    def _array_path(self, kind: str, layer: str, epoch: int | None) -> str:
        return f"{_slot(epoch)}{kind}/{layer}"

    def _check_layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise LayerError(
                f"Layer {layer!r} is not in the store {self.path}.{did_you_mean(layer, self.layers)}"
                f" Layers stored: {', '.join(self.layers)}."
            )
        return layer

    def _resolve_epoch(self, epoch: int | None, strict: bool = True) -> int | None:
        if epoch is None:
            if "acts" in self._group or not self.epochs:
                return None
            return self.epochs[-1]
        if int(epoch) not in self.epochs:
            if not strict:
                return None
            have = ", ".join(map(str, self.epochs)) or "none (capture with checkpoints=RUN_DIR for per-epoch data)"
            raise StoreError(f"Epoch {epoch} is not in the store {self.path}; epochs captured: {have}.")
        return int(epoch)

    def _read(self, kind: str, layer: str, epoch: int | None) -> zarr.Array:
        layer = self._check_layer(layer)
        slot = self._resolve_epoch(epoch)
        key = "final" if slot is None else str(slot)
        if not self._group.attrs.get("complete", {}).get(key, False):
            done = self.done_flags(slot)[:] if _slot(slot) + "done" in self._group else np.zeros(0, bool)
            raise StoreError(
                f"The capture into {self.path} (epoch {slot}) did not finish: {int(done.sum())} of"
                f" {len(done)} chunks written. Run the same capture call again to resume it."
            )
        path = self._array_path(kind, layer, slot)
        if not self._has(path):
            what = "gradients" if kind == "grads" else "activations"
            raise StoreError(
                f"The store {self.path} holds no {what} of {layer!r}"
                + (" (capture with gradients=True to record them)." if kind == "grads" else ".")
            )
        root = self._local_root()
        # opened from its zarr.json where the store is a local folder: zarr's ``group[path]``
        # is two event-loop round trips (~7 ms of a 256 MiB read's ~60 ms, measured here)
        opened = None if root is None else _open_local_array(self._group, root, path)
        return CheckedArray(opened if opened is not None else self._group[path], self, kind, layer, slot, path)

    def __reduce__(self):
        # Pickles as its path: a dask worker reopens the store on shared storage rather than
        # receiving a copy of the zarr group's state. The chunk listing was checked where the
        # store was opened; each worker task would otherwise list it again.
        if isinstance(self.path, StoreURL):
            return (ActivationStore.open, (str(self.path), "r", self._storage_options, False))
        return (ActivationStore.open, (str(self.path.absolute()), "r", None, False))

    def __repr__(self) -> str:
        ep = f", epochs={self.epochs}" if self.epochs else ""
        return f"ActivationStore({str(self.path)!r}, n_samples={self.n_samples}, layers={self.layers}{ep})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{layer}</code></td><td>{tuple(self.unit_shape(layer))}</td></tr>"
            for layer in self.layers
        )
        ep = f" · epochs {self.epochs[0]}–{self.epochs[-1]}" if self.epochs else ""
        return (f"<div><b>ActivationStore</b> <code>{self.path}</code>: {self.n_samples} samples,"
                f" {len(self.layers)} layers{ep}<table><tr><th>layer</th><th>unit shape</th></tr>{rows}"
                "</table></div>")


class CheckedArray:
    """A store array as analyses read it: a zarr array whose read errors are named.

    Everything a ``zarr.Array`` offers (``shape``, ``dtype``, ``chunks``, slicing, ``oindex``,
    ``np.asarray``) works the same; a chunk that fails its checksum raises
    :class:`StoreCorruptError` naming the layer, epoch, rows and file instead of a bare
    ``ValueError`` from the codec.
    """

    def __init__(self, array: zarr.Array, store: ActivationStore, kind: str, layer: str,
                 epoch: int | None, path: str):
        self._array, self._store = array, store
        self._where = (kind, layer, epoch, path)

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self._guarded(lambda: self._array[selection], selection)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[...]
        return values if dtype is None else values.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self._array.shape[0]

    @property
    def oindex(self) -> _GuardedIndex:
        """Orthogonal indexing, checksums checked."""
        return _GuardedIndex(self, self._array.oindex)

    @property
    def vindex(self) -> _GuardedIndex:
        """Vectorised indexing, checksums checked."""
        return _GuardedIndex(self, self._array.vindex)

    @property
    def zarr_array(self) -> zarr.Array:
        """The underlying zarr array (reads through it are not translated)."""
        return self._array

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_array", "_store", "_where"):
            raise AttributeError(name)
        return getattr(self._array, name)

    def __reduce__(self):
        kind, layer, epoch, _ = self._where
        return (_reopen_array, (self._store, kind, layer, epoch))

    def __repr__(self) -> str:
        kind, layer, epoch, _ = self._where
        return f"<{kind} of {layer!r} (epoch {epoch}) {self._array.shape} {self._array.dtype}>"

    def _guarded(self, read: Any, selection: Any) -> np.ndarray:
        try:
            return read()
        except (ValueError, OSError) as err:
            kind, layer, epoch, path = self._where
            rows = _rows_of(selection, self._array.shape[0])
            problem = integrity.first_bad_chunk(self._store, kind, layer, epoch, path, rows)
            if problem is None:
                raise
            raise StoreCorruptError(
                f"A chunk of the store {self._store.path} is damaged: {problem.describe()}. Fix:"
                f" `neuralatlas verify --repair --deep {_fix_target(self._store.path)}` (recomputes"
                " exactly these rows), or run the same capture again with verify='deep'."
            ) from err


class _GuardedIndex:
    def __init__(self, owner: CheckedArray, indexer: Any):
        self._owner, self._indexer = owner, indexer

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self._owner._guarded(lambda: self._indexer[selection], selection)


def _reopen_array(store: ActivationStore, kind: str, layer: str, epoch: int | None) -> CheckedArray:
    return store._read(kind, layer, epoch)


def _rows_of(selection: Any, n: int) -> range:
    """The sample rows a selection touches (all of them when it cannot tell)."""
    first = selection[0] if isinstance(selection, tuple) and selection else selection
    if isinstance(first, slice):
        return range(*first.indices(n))
    if isinstance(first, (int, np.integer)):
        i = int(first) % n if n else 0
        return range(i, i + 1)
    try:
        arr = np.asarray(first)
    except (TypeError, ValueError):
        return range(n)
    if arr.dtype == bool and arr.shape == (n,):
        return np.flatnonzero(arr).tolist()  # type: ignore[return-value]
    if arr.dtype.kind in "iu":
        return sorted(set((arr.ravel() % max(n, 1)).tolist()))  # type: ignore[return-value]
    return range(n)


def _fix_target(path: Any) -> str:
    """What to name in a fix: the run folder when the store is a run folder's acts.zarr."""
    p = Path(str(path))
    return str(p.parent) if p.name == "acts.zarr" else str(p)


def _check_format(group: zarr.Group, where: Any) -> None:
    if not dict(group.attrs):
        raise StoreError(
            f"{where} was left half-created (its zarr.json has no attributes: the process making it"
            " was stopped in its first moments). Nothing was captured into it yet: run the capture"
            " again (it starts it afresh), or delete the folder."
        )
    if group.attrs.get("format") != FORMAT:
        raise StoreError(
            f"{where} is a zarr group but not a neuralatlas activation store"
            f" (format attribute {group.attrs.get('format')!r}, expected {FORMAT!r})."
        )


def _as_column(values: Sequence | np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "OU":
        arr = arr.astype(str)
    return arr


def _create_local_array(group: zarr.Group, root: Path, path: str, *, shape: tuple[int, ...],
                        chunks: tuple[int, ...], dtype: Any, fill_value: Any,
                        compressors: Any) -> zarr.Array | None:
    """The body of zarr's ``init_array`` for a new zarr 3 array in a local folder, synchronous.

    Builds the metadata with zarr's own parsers and classes (so its ``zarr.json`` is the one
    zarr writes) and writes it, and the ``zarr.json`` of every missing parent group, as files.
    ``None`` when zarr's internals are not the ones this was written against (then the caller
    goes through zarr).
    """
    try:
        from zarr.core.array import AsyncArray, _parse_chunk_encoding_v3, _parse_chunk_key_encoding
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.dtype import parse_dtype
        from zarr.core.group import GroupMetadata
    except ImportError:  # pragma: no cover - another zarr version
        return None
    target = root / path
    if (target / "zarr.json").exists():
        raise StoreError(f"{target} already holds an array; it cannot be created again.")
    zdtype = parse_dtype(dtype, zarr_format=3)
    array_array, array_bytes, bytes_bytes = _parse_chunk_encoding_v3(
        compressors=compressors, filters="auto", serializer="auto", dtype=zdtype)
    meta = AsyncArray._create_metadata_v3(
        shape=tuple(int(d) for d in shape), dtype=zdtype, fill_value=fill_value,
        chunk_shape=tuple(int(c) for c in chunks),
        chunk_key_encoding=_parse_chunk_key_encoding(cast(Any, CHUNK_KEY_ENCODING), zarr_format=3),
        codecs=(*array_array, array_bytes, *bytes_bytes), dimension_names=None, attributes=None)
    prototype = default_buffer_prototype()
    # parents first (zarr writes them with set_if_not_exists: an existing group is kept)
    parts = path.split("/")[:-1]
    group_bytes = GroupMetadata(zarr_format=3).to_buffer_dict(prototype)["zarr.json"].to_bytes()
    for i in range(len(parts)):
        folder = root.joinpath(*parts[:i + 1])
        if not (folder / "zarr.json").exists():
            _write_new_file(folder / "zarr.json", group_bytes)
    _write_new_file(target / "zarr.json", meta.to_buffer_dict(prototype)["zarr.json"].to_bytes())
    return _local_array(group, path, meta)


def _local_array(group: zarr.Group, path: str, meta: Any) -> zarr.Array:
    """The ``zarr.Array`` at ``path`` of ``group`` with metadata ``meta`` and :data:`ARRAY_CONFIG`."""
    from zarr.core.array import AsyncArray
    from zarr.core.array_spec import parse_array_config
    from zarr.storage import StorePath

    full = f"{group.path}/{path}" if group.path else path
    return zarr.Array(AsyncArray(metadata=meta, store_path=StorePath(group.store, full),
                                 config=parse_array_config(cast(Any, ARRAY_CONFIG))))


def _open_local_array(group: zarr.Group, root: Path, path: str) -> zarr.Array | None:
    """``writable(group[path])`` for a zarr 3 array in a local folder, its metadata read as a file.

    The metadata parsed by zarr's own class from the ``zarr.json`` zarr reads; ``None`` where
    that file is not a zarr 3 array's (or zarr's internals differ): the caller opens it
    through zarr, which names what is wrong.
    """
    try:
        from zarr.core.metadata import ArrayV3Metadata
    except ImportError:  # pragma: no cover - another zarr version
        return None
    try:
        document = json.loads((root / path / "zarr.json").read_bytes())
        if document.get("zarr_format") != 3 or document.get("node_type") != "array":
            return None
        meta = ArrayV3Metadata.from_dict(document)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return _local_array(group, path, meta)


def _write_rows(arr: zarr.Array, values: np.ndarray) -> None:
    """Write ``arr[:] = values`` for an array chunked along its first axis.

    Whole chunks are written as files from ``values``' memory
    (:class:`~neuralatlas.store.chunkio.ChunkFile`) where the array qualifies, through zarr
    otherwise.
    """
    from neuralatlas.store.chunkio import ChunkFile

    direct = ChunkFile.for_array(arr)
    if direct is None:
        arr[:] = values
        return
    values = np.asarray(values, direct.dtype)
    R = direct.chunk_rows
    for c, start in enumerate(range(0, len(values), R)):
        block = values[start:start + R]
        if len(block) == R and block.flags.c_contiguous:
            direct.write(c, block, overlap=True)  # the caller's memory, no copy; the caller waits
        else:  # the short last chunk (or a strided view): through a padded scratch chunk
            scratch = np.empty(direct.chunk_shape, direct.dtype)
            scratch[:len(block)] = block
            direct.write(c, direct.pad(c, scratch), overlap=True)


def _write_new_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole through a temporary file renamed over it, as zarr's local store does.

    A reader never sees a half-written metadata file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    """The versions of the packages a store records, read once per process.

    importlib's metadata lookup parses each package's METADATA file, ~4 ms apiece.
    """
    from importlib import metadata

    versions = []
    for pkg in ("neuralatlas", "numpy", "zarr", "torch"):
        try:
            versions.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            pass
    return tuple(versions)


def _provenance() -> dict[str, Any]:
    import platform

    return {"versions": dict(_package_versions()), "python": platform.python_version()}


def read_rows(array: zarr.Array, rows: slice, out: np.ndarray | None = None) -> np.ndarray:
    """``array[rows]`` as a numpy array.

    It uses direct chunk reads for contiguous rows where the array qualifies
    (:meth:`~neuralatlas.store.chunkio.ChunkFile.for_array`), zarr's own read otherwise.
    ``out`` must be C-contiguous, of the rows' shape and the array's dtype.
    """
    from neuralatlas.store.chunkio import ChunkFile

    start, stop, step = rows.indices(array.shape[0])
    if out is not None:
        wanted = (len(range(start, stop, step)), *array.shape[1:])
        if out.shape != wanted or out.dtype != np.dtype(array.dtype) or not out.flags.c_contiguous:
            raise StoreError(
                f"out= is a{'' if out.flags.c_contiguous else ' strided'} {out.shape} {out.dtype} array;"
                f" rows {start}:{stop} of this array need a C-contiguous {wanted} {np.dtype(array.dtype)}"
                f" one (np.empty({wanted}, {np.dtype(array.dtype).name!r})), or pass no out=."
            )
    # whole chunks are read for contiguous rows; a strided or reversed slice goes through zarr,
    # which reads only the chunks it touches (the direct read would return every row between)
    direct = ChunkFile.for_array(getattr(array, "zarr_array", array)) if step == 1 else None
    if direct is None:
        block = np.asarray(array[rows])
        if out is not None:
            out[...] = block
            return out
        return block
    if isinstance(array, CheckedArray):  # a damaged or missing chunk is named as zarr's reads name it
        direct.all_written = True  # a finished capture's array: a missing file is damage, not zeros
        return array._guarded(lambda: direct.read_rows(start, max(start, stop), out), rows)
    return direct.read_rows(start, max(start, stop), out)


PIECE_BYTES = 2**20
"""Bytes of one piece of :func:`read_pieces`: a piece stays in a core's L2 cache (measured
for NAPs on 4,096-unit rows: 1 MiB pieces 1.6x faster than whole 16 MiB chunks; 256 KiB
pieces lose the gain again to per-piece overhead)."""


def read_pieces(array: Any, rows: slice, *, piece_rows: int | None = None,
                buffers: int = 2) -> Iterator[tuple[slice, np.ndarray]]:
    """``array[rows]`` as consecutive ``(row_slice, piece)`` pairs of at most ``piece_rows`` rows.

    Each piece is read into one of ``buffers`` reused buffers (no allocation per piece), the
    view yielded is overwritten ``buffers`` pieces later: reduce it, or copy what you keep,
    before then. Direct chunk reads where the array qualifies (checksums checked, a damaged
    chunk named like :func:`read_rows` names it); otherwise one zarr read of the block, cut up.

    Parameters
    ----------
    array : zarr.Array or CheckedArray
    rows : slice
        Contiguous rows (step 1).
    piece_rows : int, optional
        Rows per piece; default about :data:`PIECE_BYTES` of rows (at least one row, at most
        one chunk).
    buffers : int
        Pieces in flight: 1 for a plain loop, 2 when the next is read ahead in a thread.
    """
    from neuralatlas.store.chunkio import ChunkFile

    start, stop, step = rows.indices(array.shape[0])
    if step != 1:  # the pieces are labelled by contiguous row slices
        raise StoreError(f"read_pieces reads contiguous rows; got the slice {rows} (step {step}). Read"
                         " strided rows with read_rows.")
    stop = max(start, stop)
    row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * np.dtype(array.dtype).itemsize
    chunk_rows = int(array.chunks[0]) if getattr(array, "chunks", None) else max(1, stop - start)
    if piece_rows is None:
        piece_rows = max(1, min(chunk_rows, PIECE_BYTES // max(1, row_bytes)))
    direct = ChunkFile.for_array(getattr(array, "zarr_array", array))
    if direct is None:
        block = read_rows(array, rows)
        for a in range(0, len(block), piece_rows):
            yield slice(start + a, start + min(a + piece_rows, len(block))), block[a:a + piece_rows]
        return
    shape = (int(piece_rows), *array.shape[1:])
    direct.all_written = isinstance(array, CheckedArray)  # as in read_rows: a missing file is damage
    pieces = direct.read_pieces(start, stop, [np.empty(shape, direct.dtype) for _ in range(max(1, buffers))])
    guarded = array._guarded if isinstance(array, CheckedArray) else (lambda read, _rows: read())
    done = object()
    while True:
        item = guarded(lambda: next(pieces, done), rows)  # a damaged chunk is named as zarr's reads name it
        if item is done:
            return
        first, piece = item
        yield slice(first, first + len(piece)), piece


def read_json(path: Path) -> Any:
    """The JSON content of ``path`` (a store's own metadata files, written by the store)."""
    return json.loads(Path(path).read_text())
