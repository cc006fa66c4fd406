"""Open, resume or create the store of a capture, and repair a resumed one: shared by every loop.

The torch loop (:mod:`.loop`) and the Flax/Keras loop (:mod:`.foreign`) write the same store
and resume it the same way, so both open it here. This module imports neither loop: the torch
loop hands Flax/Keras models to :mod:`.foreign`, and neither of them imports the other's
internals (no import cycle).

What a loop hands in is a *run* (:class:`StoreRun`): its layers, its data source, a ``probe()``
that learns the unit shapes, and a writer of the sample table.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from neuralatlas.errors import StoreError, StoreMismatchError
from neuralatlas.store.core import ActivationStore, chunk_rows_for
from neuralatlas.store.safety import create_atomically, half_created

__all__ = ["StoreRun", "open_or_create", "repair"]


class _Named(Protocol):
    def named_modules(self) -> Iterator[tuple[str, Any]]: ...


class StoreRun(Protocol):
    """What :func:`open_or_create` and :func:`repair` read of one capture run (read only).

    The torch loop's ``_CaptureRun`` and the Flax/Keras loop's ``_ForeignRun`` both are one.
    """

    @property
    def layers(self) -> list[str]:
        """The layers captured, in store order."""
        ...

    @property
    def source(self) -> Any:
        """The data (a :class:`~neuralatlas.capture.sources.Source`): ``n``, ``index``, ``groups``, ``classes``."""
        ...

    @property
    def model(self) -> _Named:
        """Layer name -> an object whose class name is recorded as the layer's type."""
        ...

    @property
    def rows(self) -> str:
        """``"samples"`` or ``"tokens"``."""
        ...

    @property
    def n_rows(self) -> int:
        """Rows of the store."""
        ...

    @property
    def row_batch(self) -> int:
        """Rows per forward pass (the chunk size is a multiple of it)."""
        ...

    @property
    def layouts(self) -> dict[str, str]:
        """The stored layout of every layer (known after ``probe()``)."""
        ...

    @property
    def has_prediction(self) -> bool:
        """Whether the output is class logits (known after ``probe()``)."""
        ...

    @property
    def label_dtype(self) -> type:
        """``np.int64`` (classes) or ``np.float64`` (regression targets)."""
        ...

    def probe(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """Unit shapes of the layers and the bytes of one row (cached after the first call)."""
        ...

    def write_sample_table(self, store: ActivationStore, groups: Any) -> None:
        """Write the sample table of a new (or a repaired) store."""
        ...


def open_or_create(out: Path, settings: dict[str, Any], overwrite: bool, run: StoreRun,
                   slots: list[int | None], groups: Any, classes: Sequence[str] | None,
                   chunk_rows: int | None, *, verify: str = "fast") -> ActivationStore:
    """The store at ``out``: resumed when it was made with the same ``settings``, else created.

    Parameters
    ----------
    out : Path
        The store folder.
    settings : dict
        Everything that decides the store's numbers (model, layers, data fingerprint, weights,
        target, ...), recorded in its ``capture`` attribute; a resume needs the same.
    overwrite : bool
        Replace whatever is at ``out``. A store stopped before its sample table was written is
        replaced without it (nothing in it to keep).
    run : StoreRun
        The capture run (layers, data, probe, sample table). Its probe needs no particular
        weights (it learns shapes, layouts and the kind of output), so a capture per
        checkpoint loads each epoch's weights only when it fills that epoch.
    slots : list of int or None
        The epochs captured (``[None]``: the model as it is).
    groups, classes : optional
        The sample table's group column and the class names (default: the data's own).
    chunk_rows : int, optional
        Rows per chunk (default: :func:`~neuralatlas.store.core.chunk_rows_for`).
    verify : "fast" or "deep"
        How a resumed store is checked before its missing (``deep``: damaged) chunks are
        recomputed, see :func:`repair`.

    Returns
    -------
    ActivationStore
        Opened for appending.

    Raises
    ------
    StoreMismatchError
        ``out`` holds a capture made with other settings (the differences are named).
    StoreError
        ``out`` exists and is not an activation store.
    """
    if not overwrite and half_created(out):
        overwrite = True  # stopped before its sample table was written: nothing in it to keep
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
        repair(store, run, slots, groups, deep=verify == "deep")
        return store
    if out.exists() and not overwrite and any(out.iterdir()):
        raise StoreError(f"{out} exists and is not an activation store; choose another out= path"
                         " or pass overwrite=True to replace it.")
    shapes, bytes_per_row = run.probe()
    rows = chunk_rows or chunk_rows_for(bytes_per_row, run.row_batch, run.n_rows)
    attrs = {
        "layers": run.layers,
        "unit_shapes": {k: list(v) for k, v in shapes.items()},
        "layer_types": {k: type(m).__name__ for k, m in run.model.named_modules() if k in shapes},
        "classes": list(classes) if classes is not None else (run.source.classes or []),
        "n_samples": run.n_rows,
        "chunk_rows": rows,
        "rows": run.rows,
        "layouts": run.layouts,
        "has_prediction": run.has_prediction,
        "epochs": [s for s in slots if s is not None],
        "capture": settings,
        "source": "capture",
    }

    def build(path: Path) -> None:
        store = ActivationStore.create(path, attrs)
        store.plan_slots(slots)
        run.write_sample_table(store, groups)

    # Built in a folder beside `out` and renamed into place once its attributes and sample
    # table are written: a kill in these first moments leaves no half-made store at `out`.
    create_atomically(out, build, replace=overwrite)
    return ActivationStore.open(out, mode="a")


def repair(store: ActivationStore, run: StoreRun, slots: list[int | None], groups: Any,
           deep: bool) -> None:
    """Before resuming, mark chunks that are marked written but are missing as unwritten.

    With ``deep``, damaged chunks are marked too, so this capture recomputes exactly those rows.

    Raises
    ------
    StoreError
        A sample column capture cannot rebuild is missing or damaged.
    """
    report = store.check_integrity(deep=deep)
    if report.ok:
        return
    rows: list[Any] = []
    for p in report.problems:
        if p.kind.startswith("samples/") and run.rows == "tokens":
            # token rows: the whole table (labels too) comes from the counting pass
            run.write_sample_table(store, groups)
        elif p.kind == "samples/label":
            # labels are rewritten with each chunk: recomputing the chunk in the first slot mends them
            rows.append(type(p)("acts", p.layer, slots[0], p.chunk, p.rows, p.problem, p.file))
        elif p.kind in ("samples/index", "samples/group"):
            group_col = groups if groups is not None else run.source.groups
            fill = np.nan if run.label_dtype is np.float64 else -1
            store.write_samples(index=run.source.index, label=store.sample_column("label")[:]
                                if "samples/label" not in {q.kind for q in report.problems}
                                else np.full(store.n_samples, fill, run.label_dtype), group=group_col)
        elif p.kind.startswith("samples/"):
            raise StoreError(f"{report.message()} The sample column {p.kind[8:]!r} cannot be rebuilt"
                             " by capture: pass it again through from_arrays, or capture with"
                             " overwrite=True.")
        else:
            rows.append(p)
    marked = store.invalidate(rows)
    # stacklevel 3: repair <- open_or_create <- the capture function the user called
    warnings.warn(f"{store.path}: recomputing {marked} chunk(s) marked written but "
                  f"{'missing or damaged' if deep else 'missing'}: "
                  + "; ".join(p.describe() for p in report.problems[:4])
                  + ("; ..." if len(report.problems) > 4 else ""), stacklevel=3)
