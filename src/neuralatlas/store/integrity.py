"""Chunk integrity: every chunk a done flag claims is written exists and matches its checksum.

Arrays carry zarr's ``crc32c`` codec as their last bytes-to-bytes codec, so a flipped byte or
a truncated chunk fails on read instead of becoming a plausible number. A deleted chunk would
read as the fill value (zeros) without a word, so the done flags are checked against what is
on disk: the cheap check lists the chunk files (``os.stat`` per written chunk, no data read);
the deep check reads every written chunk through its checksum.

Problems are named by what a researcher recognises (kind, layer, epoch, rows) and by the file,
and :meth:`ActivationStore.invalidate` marks exactly those chunks unwritten so that a rerun of
the capture recomputes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neuralatlas.errors import StoreCorruptError

if TYPE_CHECKING:  # pragma: no cover
    from neuralatlas.store.core import ActivationStore

CHECKSUM_CODEC = "crc32c"


@dataclass(frozen=True)
class ChunkProblem:
    """One written chunk that is missing or damaged."""

    kind: str                 # "acts", "grads", "prediction", "samples/<column>", "metadata"
    layer: str | None
    epoch: int | None
    chunk: int                # index of the sample chunk (-1: the whole array)
    rows: tuple[int, int]     # [start, stop)
    problem: str              # "missing" or "corrupt"
    file: str
    detail: str = ""

    def describe(self) -> str:
        """The problem in one sentence: what is damaged where."""
        what = {"acts": "activations", "grads": "gradients"}.get(self.kind, self.kind)
        if self.layer is not None:
            what += f" of {self.layer!r}"
        when = "final model" if self.epoch is None else f"epoch {self.epoch}"
        rows = f"rows {self.rows[0]}–{self.rows[1] - 1}" if self.chunk >= 0 else "all rows"
        detail = f": {self.detail}" if self.detail else ""
        return f"{what} ({when}), {rows}: {self.problem} ({self.file}{detail})"


@dataclass
class IntegrityReport:
    """What :meth:`ActivationStore.check_integrity` found."""

    store: str
    deep: bool
    listed: bool              # whether chunk files were listed (local stores)
    arrays: int = 0
    checksummed: int = 0
    chunks_checked: int = 0
    problems: list[ChunkProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def checksums(self) -> str:
        """``"all"``, ``"none"`` (a store written before checksums) or ``"some"``."""
        if self.arrays and self.checksummed == self.arrays:
            return "all"
        return "none" if self.checksummed == 0 else "some"

    def summary(self) -> str:
        """What was checked and what was found, in one line."""
        how = "read through checksums" if self.deep else "listed"
        if not self.listed and not self.deep:
            how = "not listed (object-store URL: run a deep check to read them)"
        sums = {"all": "checksums on every array", "none": "no checksums (written by an older version)",
                "some": f"checksums on {self.checksummed} of {self.arrays} arrays"}[self.checksums]
        state = "OK" if self.ok else f"{len(self.problems)} bad chunk(s)"
        return f"{self.store}: {state}; {self.chunks_checked} written chunks {how}; {sums}."

    def message(self, fix_target: str | None = None) -> str:
        """The error text: what is bad, where, and how to mend it."""
        shown = "; ".join(p.describe() for p in self.problems[:4])
        more = f"; and {len(self.problems) - 4} more" if len(self.problems) > 4 else ""
        target = fix_target or self.store
        return (f"The store {self.store} is damaged: {shown}{more}. Nothing else in it is affected."
                f" Fix: `neuralatlas verify --repair {target}` (marks these rows unwritten and recomputes"
                " them), or run the same capture again (it recomputes missing chunks; pass"
                " verify='deep' to find damaged ones).")

    def raise_if_bad(self, fix_target: str | None = None) -> IntegrityReport:
        """The report itself when it found nothing, else :class:`StoreCorruptError` naming the problems."""
        if self.problems:
            raise StoreCorruptError(self.message(fix_target))
        return self


def _slots(store: ActivationStore) -> list[int | None]:
    complete = store._group.attrs.get("complete", {})
    slots: list[int | None] = []
    if "final" in complete:
        slots.append(None)
    slots += [int(k) for k in complete if k != "final"]
    for e in store.epochs:
        if e not in slots:
            slots.append(e)
    return slots


def _done(store: ActivationStore, slot: int | None) -> np.ndarray | None:
    from neuralatlas.store.locations import _slot

    if not _exists(store, _slot(slot) + "done"):
        return None
    return read_done(store, slot)


def read_done(store: ActivationStore, slot: int | None) -> np.ndarray:
    """The done flags of ``slot``; a damaged flag chunk reads as "not written" (it is redone)."""
    fast = _read_done_files(store, slot)
    if fast is not None:
        return fast
    arr = store.done_flags(slot)
    try:
        return np.asarray(arr[:], bool)
    except (ValueError, OSError):
        flags = np.zeros(arr.shape[0], bool)
        for c in range(arr.shape[0]):
            try:
                flags[c] = bool(arr[c])
            except (ValueError, OSError):
                flags[c] = False
        return flags


def _read_done_files(store: ActivationStore, slot: int | None) -> np.ndarray | None:
    """Local stores: the flags straight from their one-byte chunk files.

    zarr's per-call overhead (~10 ms per array on a busy machine) would dominate opening a store of many
    epochs. Only for the layout capture writes (one flag per chunk, bytes + optional crc32c); else ``None``.
    """
    from neuralatlas.store.locations import _slot

    root = _local_root(store)
    if root is None:
        return None
    folder = root / (_slot(slot) + "done")
    try:
        meta = json.loads((folder / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    names = [c.get("name") for c in meta.get("codecs", []) if isinstance(c, dict)]
    if (meta.get("data_type") != "bool" or meta["chunk_grid"]["configuration"]["chunk_shape"] != [1]
            or names not in (["bytes"], ["bytes", CHECKSUM_CODEC]) or meta.get("fill_value") is not False):
        return None
    checksum = names[-1] == CHECKSUM_CODEC
    flags = np.zeros(int(meta["shape"][0]), bool)
    for c in range(len(flags)):
        try:
            raw = (folder / _chunk_key(meta, c)).read_bytes()
        except FileNotFoundError:
            continue  # never written: the fill value, False
        if checksum:
            import google_crc32c

            if len(raw) != 5 or np.uint32(google_crc32c.value(raw[:1])).tobytes() != raw[1:]:
                continue  # damaged: counts as not written, so the chunk is redone
        flags[c] = raw[:1] != b"\x00"
    return flags


def _exists(store: ActivationStore, path: str) -> bool:
    return store._has(path)  # the store's own check: a file test in a local zarr 3 folder


def _local_root(store: ActivationStore) -> Path | None:
    from neuralatlas.store.locations import StoreURL

    return None if isinstance(store.path, StoreURL) else Path(store.path)


def _arrays(store: ActivationStore, slot: int | None) -> Iterator[tuple[str, str | None, str]]:
    """(kind, layer, path) of every chunked array a done flag vouches for."""
    from neuralatlas.store.locations import _slot

    capture = store._group.attrs.get("capture", {})
    want_grads = bool(capture.get("gradients")) if isinstance(capture, dict) else False
    for layer in store.layers:
        yield "acts", layer, f"{_slot(slot)}acts/{layer}"
        path = f"{_slot(slot)}grads/{layer}"
        if want_grads or _exists(store, path):
            yield "grads", layer, path
    path = _slot(slot) + "prediction"
    # a capture writes predictions only where the output is class logits (attr has_prediction;
    # stores from before that attr: expected where any slot has them)
    if (store._group.attrs.get("has_prediction") is True
            or any(_exists(store, _slot(s) + "prediction") for s in dict.fromkeys([slot, *_slots(store)]))):
        yield "prediction", None, path


def _metadata(store: ActivationStore, path: str) -> dict[str, Any]:
    root = _local_root(store)
    if root is not None:
        return json.loads((root / path / "zarr.json").read_text())
    return store._group[path].metadata.to_dict()


def has_checksum(meta: dict[str, Any]) -> bool:
    """Whether an array's metadata names the crc32c codec (also inside a sharding codec)."""
    def walk(codecs: Sequence[Any]) -> bool:
        for c in codecs or ():
            if isinstance(c, dict):
                if c.get("name") == CHECKSUM_CODEC:
                    return True
                if walk((c.get("configuration") or {}).get("codecs", ())):
                    return True
        return False

    return walk(meta.get("codecs", ()))


def _chunk_key(meta: dict[str, Any], outer: int) -> str:
    ndim = len(meta["shape"])
    enc = meta.get("chunk_key_encoding", {"name": "default"})
    sep = (enc.get("configuration") or {}).get("separator")
    idx = [str(outer)] + ["0"] * (ndim - 1)
    if enc.get("name") == "v2":
        return (sep or ".").join(idx)
    sep = sep or "/"
    return sep.join(["c", *idx])


def _missing_file(root: Path, path: str, meta: dict[str, Any], start: int, stop: int,
                  outer_rows: int) -> str | None:
    """The first chunk file of rows ``[start, stop)`` that does not exist, or None.

    zarr would read the fill value there, without a word.
    """
    for outer in range(start // outer_rows, (stop - 1) // outer_rows + 1):
        file = root / path / _chunk_key(meta, outer)
        if not os.path.isfile(file):
            return str(file)
    return None


def check(store: ActivationStore, deep: bool = False) -> IntegrityReport:
    """Check every written chunk of ``store``; see :meth:`ActivationStore.check_integrity`."""
    root = _local_root(store)
    report = IntegrityReport(str(store.path), deep=deep, listed=root is not None)
    R, n = store.chunk_rows, store.n_samples
    for slot in _slots(store):
        done = _done(store, slot)
        if done is None or not done.any():
            continue
        written = [int(c) for c in np.flatnonzero(done)]
        for kind, layer, path in _arrays(store, slot):
            _check_array(store, report, kind, layer, slot, path, written, R, n, deep, root)
    # the sample table is written whole at creation: every one of its chunks must be there
    all_chunks = list(range(-(-n // R))) if n else []
    for column in store._group.attrs.get("sample_columns", []):
        _check_array(store, report, f"samples/{column}", None, None, f"samples/{column}", all_chunks,
                     R, n, deep, root)
    return report


def _check_array(store: ActivationStore, report: IntegrityReport, kind: str, layer: str | None,
                 slot: int | None, path: str, written: list[int], R: int, n: int, deep: bool,
                 root: Path | None) -> None:
    file = str(root / path) if root is not None else f"{store.path}/{path}"
    try:
        meta = _metadata(store, path)
    except FileNotFoundError:
        report.problems.append(ChunkProblem(kind, layer, slot, -1, (0, n), "missing", file,
                                            "the whole array"))
        return
    except (ValueError, KeyError, OSError) as err:
        report.problems.append(ChunkProblem(kind, layer, slot, -1, (0, n), "corrupt",
                                            f"{file}/zarr.json", f"unreadable metadata ({err})"))
        return
    report.arrays += 1
    report.checksummed += has_checksum(meta)
    outer_rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
    report.chunks_checked += len(written)
    arr = None
    for c in written:
        start, stop = c * R, min((c + 1) * R, n)
        missing = None if root is None else _missing_file(root, path, meta, start, stop, outer_rows)
        if missing is not None:
            report.problems.append(ChunkProblem(kind, layer, slot, c, (start, stop), "missing", missing))
            continue
        if deep:
            if arr is None:
                arr = store._group[path]
            try:
                arr[start:stop]
            except Exception as err:  # a damaged chunk raises whatever its codec raises
                key = _chunk_key(meta, start // outer_rows)
                report.problems.append(ChunkProblem(kind, layer, slot, c, (start, stop), "corrupt",
                                                    f"{file}/{key}", _short(err)))


def _short(err: BaseException) -> str:
    text = str(err).split("\n")[0]
    return text if len(text) < 120 else text[:117] + "..."


def first_bad_chunk(store: ActivationStore, kind: str, layer: str | None, slot: int | None,
                    path: str, rows: range) -> ChunkProblem | None:
    """After a read failed: which chunk of ``rows`` is damaged (reads them one by one)."""
    arr = store._group[path]
    R, n = store.chunk_rows, store.n_samples
    root = _local_root(store)
    file = str(root / path) if root is not None else f"{store.path}/{path}"
    try:
        meta = _metadata(store, path)
        outer_rows = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
    except Exception:  # metadata unreadable: the array itself is the problem
        return ChunkProblem(kind, layer, slot, -1, (0, n), "corrupt", f"{file}/zarr.json")
    chunks = sorted({r // R for r in rows}) if len(rows) else []
    for c in chunks:
        start, stop = c * R, min((c + 1) * R, n)
        missing = None if root is None else _missing_file(root, path, meta, start, stop, outer_rows)
        if missing is not None:  # a chunk file gone, as check() finds it
            return ChunkProblem(kind, layer, slot, c, (start, stop), "missing", missing)
        try:
            arr[start:stop]
        except Exception as err:
            return ChunkProblem(kind, layer, slot, c, (start, stop), "corrupt",
                                f"{file}/{_chunk_key(meta, start // outer_rows)}", _short(err))
    return None
