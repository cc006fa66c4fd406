"""Writing a store safely: one writer at a time, atomic creation, named disk faults, NaN counts.

- :class:`WriteGuard` holds the store's lock for a capture and turns a full or read-only disk
  into one error that names the folder, how much space the capture needs and how much is free.
- :func:`create_atomically` builds a new store in a folder beside ``out`` and renames it into
  place once its attributes and sample table are written, so a kill in the first moments of a
  capture never leaves a store that cannot resume.
- :func:`report_nonfinite` and :func:`warn_nonfinite` say which layers (and which groups of
  samples) hold NaN or inf values, at capture and in analyses.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from neuralatlas.errors import NeuralAtlasError, NonFiniteWarning, StoreError
from neuralatlas.store.core import read_rows
from neuralatlas.store.lock import StoreLock

if TYPE_CHECKING:  # pragma: no cover
    from neuralatlas.store.core import ActivationStore


class WriteGuard:
    """Context of one capture's writes into ``out``: its lock, and disk errors named.

    ``store`` and ``slots`` are set once the store is open, so that a full disk can be
    answered with the size of the whole capture.
    """

    def __init__(self, out: Path, gradients: bool = False):
        self.out = Path(out)
        self.gradients = bool(gradients)
        self.lock = StoreLock(self.out)
        self.store: ActivationStore | None = None
        self.slots: Sequence[int | None] = ()

    def __enter__(self) -> WriteGuard:
        self.lock.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.lock.release()
        if isinstance(err, OSError) and not isinstance(err, NeuralAtlasError):
            if err.errno == errno.ENOSPC:
                raise StoreError(self._disk_full(err)) from err
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                why = "the file system is read-only" if err.errno == errno.EROFS else err.strerror
                raise StoreError(
                    f"Cannot write {err.filename or self.out} ({why}). Choose an output folder you"
                    " can write to, or fix its permissions; run the same capture again to resume"
                    " (nothing written so far is lost)."
                ) from err

    def _disk_full(self, err: OSError) -> str:
        where = self.out.parent if not self.out.exists() else self.out
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            free = None
        need = remaining = None
        if self.store is not None:
            need, remaining = capture_bytes(self.store, self.slots, self.gradients)
        parts = [f"The disk is full while writing {err.filename or self.out}."]
        if need is not None:
            parts.append(f"This capture needs about {_mib(need)} in all ({_mib(remaining)} still to"
                         " write: layers × rows × float32" + (" × 2 for gradients" if self.gradients else "")
                         + f" × {max(1, len(self.slots))} epoch slot(s));")
        if free is not None:
            parts.append(f"{_mib(free)} are free there.")
        parts.append("Nothing written so far is lost: free some space (or capture to a larger disk)"
                     " and run the same capture again; it resumes where it stopped.")
        return " ".join(parts)


def capture_bytes(store: ActivationStore, slots: Sequence[int | None], gradients: bool) -> tuple[int, int]:
    """(total, still to write) bytes of a capture's arrays, from the layer shapes and rows."""
    n = store.n_samples
    per_row = sum(int(np.prod(store.unit_shape(layer), dtype=np.int64)) * 4 for layer in store.layers)
    per_row = per_row * (2 if gradients else 1) + 8 + len(store.layers)  # + prediction, NaN flags
    slots = list(slots) or [None]
    total = per_row * n * len(slots)
    remaining = 0
    for slot in slots:
        try:
            from neuralatlas.store.integrity import read_done

            done = read_done(store, slot)
            left = int((~done).sum()) * store.chunk_rows
        except StoreError:
            left = n
        remaining += per_row * min(n, left)
    return int(total), int(remaining)


def _mib(nbytes: int | None) -> str:
    if nbytes is None:
        return "?"
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------- creation
def create_atomically(out: Path, build: Callable[[Path], Any], replace: bool = False) -> None:
    """Build a store with ``build(path)`` in a folder beside ``out``, then rename it to ``out``.

    The caller holds ``out``'s lock, so leftovers of earlier creations that were killed
    (``.NAME.creating-PID``, ``.NAME.old-PID``) are removed first. With ``replace`` an existing
    ``out`` is moved aside and removed only after the new store is in place.
    """
    out = Path(out)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"Cannot create the folder {parent} ({err.strerror}). Choose an output"
                         " folder you can write to.") from None
    for leftover in [*parent.glob(f".{out.name}.creating-*"), *parent.glob(f".{out.name}.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = parent / f".{out.name}.creating-{os.getpid()}"
    try:
        build(tmp)
        _touch_hook("created")
        if out.exists():
            if not replace and any(out.iterdir()):
                raise StoreError(f"{out} appeared while its store was being made; run again.")
            old = parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _touch_hook(moment: str) -> None:
    """Test-only: ``NEURALATLAS_TEST_PAUSE=moment:FILE`` touches FILE at ``moment`` and waits.

    A fault test can then kill the process exactly there. Costs one environment lookup.
    """
    spec = os.environ.get("NEURALATLAS_TEST_PAUSE")
    if not spec or not spec.startswith(moment + ":"):
        return
    import time

    Path(spec.split(":", 1)[1]).touch()
    time.sleep(60)


def half_created(out: Path) -> bool:
    """Whether ``out`` is a store whose creation was stopped before its sample table was written.

    Such a store was left by an earlier version that created stores in place: nothing in it is worth keeping.
    """
    from neuralatlas.store.core import FORMAT

    meta_file = Path(out) / "zarr.json"
    if not meta_file.is_file():
        return False
    try:
        attrs = json.loads(meta_file.read_text()).get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        return False  # unreadable: not ours to judge (opening it names the damaged file)
    if "sample_columns" in attrs:
        return False
    if attrs:
        return attrs.get("format") == FORMAT and attrs.get("source") == "capture"
    # no attributes at all: the very first write of zarr.open_group(mode="w"); only the
    # sample table can have followed
    return {p.name for p in Path(out).iterdir()} <= {"zarr.json", "samples"}


# ---------------------------------------------------------------------------- non-finite values
def report_nonfinite(store: ActivationStore) -> dict[str, dict[str, int]]:
    """After a capture: record how many rows of each layer hold NaN/inf, and warn when any do.

    The counts go to ``attrs["nonfinite_rows"]``. Returns ``{slot: {layer: rows}}`` of the affected ones.
    """
    found: dict[str, dict[str, int]] = {}
    for slot in [None, *store.epochs]:
        flags = store.nonfinite_array(slot)
        if flags is None:
            continue
        counts = np.asarray(read_rows(flags, slice(None))).sum(0)  # direct: no zarr event loop
        bad = {layer: int(k) for layer, k in zip(store.layers, counts, strict=True) if k}
        if bad:
            found["final" if slot is None else str(slot)] = bad
    store.update_attrs(nonfinite_rows=found)
    if found:
        first = next(iter(found.values()))
        layers = ", ".join(f"{layer} ({k} rows)" for layer, k in list(first.items())[:6])
        warnings.warn(
            f"{store.path}: NaN or inf values in the activations or gradients of {len(first)} layer(s)"
            f" ({layers}{', ...' if len(first) > 6 else ''}; slots {', '.join(found)}). Means, NAPs"
            " and similarities over them are not finite: check the inputs (NaN in the data?) or the"
            " model's numerics; store.nonfinite_rows() tells which samples.",
            NonFiniteWarning, stacklevel=3)
    return found


def warn_nonfinite(store: ActivationStore, layers: Sequence[str], epoch: int | None = None,
                   analysis: str = "This analysis", by: str | None = None,
                   groups: np.ndarray | None = None) -> None:
    """Warn when ``layers`` of ``store`` hold NaN/inf.

    The warning names the layers and (``by`` / ``groups``) the groups of samples they are in. Silent for
    stores that did not record it.
    """
    try:
        masks = store.nonfinite_rows(epoch)
    except NeuralAtlasError:
        return
    if not masks:
        return
    hit = {layer: masks[layer] for layer in layers if layer in masks and masks[layer].any()}
    if not hit:
        return
    rows = np.logical_or.reduce(list(hit.values()))
    where = ""
    if groups is None and by is not None:
        try:
            groups = store.sample_table(columns=[by])[by].to_numpy()
        except (KeyError, NeuralAtlasError):
            groups = None
    if groups is not None and len(groups) == len(rows):
        names = sorted({str(g) for g in np.asarray(groups)[rows]})
        where = f" in group(s) {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}"
    layer_text = ", ".join(f"{layer} ({int(m.sum())} rows)" for layer, m in hit.items())
    warnings.warn(f"{analysis}: NaN or inf values in {layer_text}{where} of {store.path}; results"
                  " over those rows (and groups) are not finite.", NonFiniteWarning, stacklevel=3)
