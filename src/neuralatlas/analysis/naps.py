"""Neuron Activation Profiles (NAPs): the mean activation of every unit, per group of samples.

The method is iNNtrospect's (Krug, Ratul, Olson and Stober, "Visualizing Deep Neural Networks
with Topographic Activation Maps", HHAI 2023), run on the activation store:

* a **NAP** of a group is the mean of a layer's activations over the group's samples, kept in
  the layer's own shape ``[*unit_shape]``; groups come from any column of the sample table;
* **gradient alignment** (for layers with spatial or temporal axes): before averaging, each
  sample's map is shifted so that the position of its largest channel-averaged |gradient| sits
  in the centre (zeros shifted in at the edges), so that a feature found anywhere in the input
  adds up in one place;
* a **contrastive NAP** is a group's NAP minus the (optionally size-weighted) average NAP of a
  chosen set of groups: what sets the group apart.

One streaming pass over the store computes, per layer, the group sums and sums of squares (for
the per-group standard deviation) and the unit statistics (dead and always-on units, sparsity,
mean, min, max) in one fused kernel (:mod:`._kernels`; without numba a sparse one-hot product:
``np.add.at`` is ~25x slower, ``np.add.reduceat`` on sorted rows ~20x). The store is read in
~1 MiB pieces into two reused buffers (:func:`neuralatlas.store.core.read_pieces`), each
reduced while its read has left it in the CPU cache; the next piece is read in a thread
while the current one is reduced when a core is idle
(:func:`neuralatlas.analysis.streaming.prefetch_reads`).

Activations are channels-first (``[C, H, W]``, ``[C, T]``) as PyTorch and the store keep them.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from neuralatlas.analysis import _kernels
from neuralatlas.analysis.sources import _named_values, group_codes, resolve_layers  # noqa: F401
from neuralatlas.analysis.streaming import (
    BlockReduction,
    block_rows,
    flatten_samples,
    parse_memory_limit,
    pooled_shape,
    reduce_blocks,
)
from neuralatlas.errors import AnalysisError, LayerError, StoreError, did_you_mean
from neuralatlas.results import Result
from neuralatlas.store.core import read_pieces, read_rows
from neuralatlas.vocabulary import Progress

__all__ = ["NAPs", "UnitStatistics", "align_by_gradient", "contrastive_naps", "naps", "unit_statistics"]

FORMAT = "neuralatlas.naps/1"
# Rows of a block are reduced in slices of about this many bytes, small enough to stay in the
# CPU cache across the several passes each slice takes, large enough that the per-slice Python
# overhead stays small (measured: 2-4 MiB best, 16 MiB ~2x slower, 512 KiB ~1.6x slower).
_CACHE_BYTES = 2**21
# Empty the kernel's float32 scratch sums into float64 after every piece, not only every 256
# rows: a float32 run never spans two pieces (measured: carried across pieces, the streamed
# ANOVA left its 1e-6 tolerance by 2e-6). The sums still depend on where pieces start, as any
# blocked float sum does; the same pieces (thread or not) give the same bits.
FLUSH_EACH_PIECE = True


# ---------------------------------------------------------------------------- unit statistics
@dataclass
class UnitStatistics(Result):
    """How the units of one layer behave over all samples (from the NAP pass).

    A unit is one element of the layer's output (a channel at one position for conv maps).
    "Active" means a value above ``threshold`` (0: the ReLU convention).

    Attributes
    ----------
    layer : str
    unit_shape : tuple of int
    n_samples : int
    mean, min, max : array [*unit_shape]
        Over all samples.
    active_fraction : array [*unit_shape]
        Fraction of samples in which the unit is active.
    threshold : float
    """

    layer: str
    unit_shape: tuple[int, ...]
    n_samples: int
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    active_fraction: np.ndarray
    threshold: float = 0.0

    kind = "unit_statistics"

    @property
    def dead(self) -> np.ndarray:
        """Units never active on any sample ``[*unit_shape]`` (bool)."""
        return self.active_fraction == 0

    @property
    def always_on(self) -> np.ndarray:
        """Units active on every sample ``[*unit_shape]`` (bool)."""
        return self.active_fraction == 1

    @property
    def sparsity(self) -> float:
        """Fraction of (sample, unit) values that are not active."""
        return float(1.0 - self.active_fraction.mean()) if self.active_fraction.size else 0.0

    def channel_dead(self) -> np.ndarray | None:
        """Channels dead at every position ``[C]``, for layers with spatial axes (else None)."""
        if len(self.unit_shape) < 2:
            return None
        return self.dead.reshape(self.unit_shape[0], -1).all(1)

    def summary(self) -> dict[str, Any]:
        """Headline numbers: units, fractions of dead / always-on units, sparsity, value range."""
        out: dict[str, Any] = {
            "units": int(np.prod(self.unit_shape)),
            "dead_fraction": float(self.dead.mean()) if self.dead.size else 0.0,
            "always_on_fraction": float(self.always_on.mean()) if self.dead.size else 0.0,
            "sparsity": self.sparsity,
            "mean": float(self.mean.mean()) if self.mean.size else 0.0,
            "max": float(self.max.max()) if self.max.size else 0.0,
            "min": float(self.min.min()) if self.min.size else 0.0,
            "threshold": self.threshold,
        }
        dead_channels = self.channel_dead()
        if dead_channels is not None:
            out["channels"] = int(self.unit_shape[0])
            out["dead_channel_fraction"] = float(dead_channels.mean())
        return out

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``unit_statistics.json`` and ``statistics.npz`` into ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "statistics.npz", mean=self.mean, min=self.min, max=self.max,
                 active_fraction=self.active_fraction)
        self.write_json(directory / "unit_statistics.json",
                        {"layer": self.layer, "unit_shape": list(self.unit_shape), "n_samples": self.n_samples,
                         "threshold": self.threshold, "summary": self.summary()})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> UnitStatistics:
        """Read unit statistics written by :meth:`save`."""
        directory = Path(directory)
        meta_file = cls._required(directory, "unit_statistics.json", "statistics.npz", what="unit statistics",
                                  fix="write them with naps(store).statistics(layer).save(dir)")
        meta = cls.read_json(meta_file)
        with np.load(directory / "statistics.npz") as f:
            return cls(meta["layer"], tuple(meta["unit_shape"]), int(meta["n_samples"]), f["mean"], f["min"],
                       f["max"], f["active_fraction"], float(meta["threshold"]))


# ---------------------------------------------------------------------------- the result
class NAPs(Result):
    """Neuron Activation Profiles of some layers for some groups of samples.

    Made by :func:`naps` (or :func:`contrastive_naps`); saved with :meth:`save` and read back
    with :meth:`load`.

    Attributes
    ----------
    groups : list of str
        Group names, in the order of the first axis of :meth:`values`.
    counts : array [n_groups]
        Samples per group.
    layers : list of str
    by : str
        The grouping ("label", "prediction", "correct", a sample-table column, or "custom").
    aligned : list of str
        Layers whose activations were gradient-aligned before averaging.
    kind : str
        "naps", or "contrastive" for :func:`contrastive_naps` results.
    reference : dict
        For contrastive NAPs: the groups and weights of the subtracted average, normalisation.

    Examples
    --------
    >>> from neuralatlas import capture
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> store = capture(build("cnn", seed=0).eval(), test.subset(slice(0, 100)), out="acts.zarr",
    ...                 gradients=True, target="label")
    >>> result = naps(store, by="label")
    >>> result.values("conv2").shape                             # [n_groups, C, H, W]
    (10, 32, 4, 4)
    """

    kind = "naps"  # the format tag of the files; an instance's ``kind`` ("naps"/"contrastive") shadows it

    def __init__(self, groups: Sequence[str], counts: np.ndarray, values: Mapping[str, np.ndarray],
                 *, std: Mapping[str, np.ndarray] | None = None,
                 statistics: Mapping[str, UnitStatistics] | None = None, by: str = "custom",
                 aligned: Sequence[str] = (), kind: str = "naps", reference: Mapping[str, Any] | None = None,
                 epoch: int | None = None, source: str | None = None):
        self.groups = [str(g) for g in groups]
        self.counts = np.asarray(counts, dtype=np.int64)
        self._values = dict(values)
        self._std = dict(std or {})
        self._statistics = dict(statistics or {})
        self.by = by
        self.aligned = list(aligned)
        self.kind = kind
        self.reference = dict(reference or {})
        self.epoch = epoch
        self.source = source
        for layer, v in self._values.items():
            if v.shape[0] != len(self.groups):
                raise AnalysisError(f"NAPs of {layer!r} have {v.shape[0]} groups but {len(self.groups)} group names.")

    # ------------------------------------------------------------------ access
    @property
    def layers(self) -> list[str]:
        """The layers, in the order of the result."""
        return list(self._values)

    def _layer(self, layer: str) -> str:
        if layer not in self._values:
            raise LayerError(f"No NAPs of layer {layer!r}.{did_you_mean(layer, self.layers)}"
                             f" Layers computed: {', '.join(self.layers)}.")
        return layer

    def values(self, layer: str) -> np.ndarray:
        """Mean activation per group ``[n_groups, *unit_shape]`` (float32)."""
        return self._values[self._layer(layer)]

    def std(self, layer: str) -> np.ndarray:
        """Per-group standard deviation (population, ddof=0) ``[n_groups, *unit_shape]``."""
        self._layer(layer)
        if layer not in self._std:
            raise AnalysisError(f"No standard deviations for {layer!r}: compute NAPs with std=True"
                                + (" (contrastive NAPs carry none)." if self.kind == "contrastive" else "."))
        return self._std[layer]

    def statistics(self, layer: str) -> UnitStatistics:
        """Unit statistics of ``layer`` (dead / always-on units, sparsity, range)."""
        self._layer(layer)
        if layer not in self._statistics:
            raise AnalysisError(f"No unit statistics for {layer!r}: compute NAPs with statistics=True.")
        return self._statistics[layer]

    def unit_shape(self, layer: str) -> tuple[int, ...]:
        """The shape of one unit map of ``layer`` (without the group axis)."""
        return tuple(self.values(layer).shape[1:])

    def group_index(self, group: Any) -> int:
        """Position of a group (by name) in :attr:`groups`."""
        name = str(group)
        if name not in self.groups:
            raise AnalysisError(f"No group {name!r}.{did_you_mean(name, self.groups)}"
                                f" Groups: {', '.join(self.groups)}.")
        return self.groups.index(name)

    def summary(self) -> dict[str, Any]:
        """Headline numbers for ``summary.json`` and the report."""
        return {
            "kind": self.kind, "by": self.by, "groups": self.groups, "counts": self.counts.tolist(),
            "aligned": self.aligned, "epoch": self.epoch,
            "layers": {layer: {"unit_shape": list(self.unit_shape(layer)),
                               **(self._statistics[layer].summary() if layer in self._statistics else {})}
                       for layer in self.layers},
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: unit shape, aligned, and the unit statistics where computed."""
        rows = [{"layer": layer, "aligned": layer in self.aligned, **info}
                for layer, info in self.summary_json()["layers"].items()]
        return pd.DataFrame(rows).set_index("layer") if rows else pd.DataFrame()

    # ------------------------------------------------------------------ files
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``naps.json``, ``values.npz`` (+ ``std.npz``, ``statistics.npz``), ``summary.json``.

        Returns the directory. Arrays are keyed by layer position (layer names may hold any
        character); ``naps.json`` lists the layers in that order.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT, "kind": self.kind, "by": self.by, "groups": self.groups,
            "counts": self.counts.tolist(), "layers": self.layers, "aligned": self.aligned,
            "reference": self.reference, "epoch": self.epoch, "source": self.source,
            "std": [layer for layer in self.layers if layer in self._std],
            "statistics": {layer: {"threshold": s.threshold, "n_samples": s.n_samples}
                           for layer, s in self._statistics.items()},
        }
        keys = {layer: f"l{i}" for i, layer in enumerate(self.layers)}
        np.savez(directory / "values.npz", **{keys[k]: v for k, v in self._values.items()})
        if self._std:
            np.savez(directory / "std.npz", **{keys[k]: v for k, v in self._std.items()})
        if self._statistics:
            arrays = {}
            for layer, s in self._statistics.items():
                for field in ("mean", "min", "max", "active_fraction"):
                    arrays[f"{keys[layer]}_{field}"] = getattr(s, field)
            np.savez(directory / "statistics.npz", **arrays)
        self.write_json(directory / "naps.json", meta)
        self.write_summary(directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> NAPs:
        """Read NAPs written by :meth:`save`."""
        directory = Path(directory)
        fix = "compute them with neuralatlas.naps(store).save(dir) or `neuralatlas naps RUN_DIR`"
        meta_file = cls._required(directory, "naps.json", "values.npz", what="NAPs", fix=fix)
        meta = cls.read_json(meta_file)
        # the arrays naps.json says were saved beside it: one missing is an error, not "none computed"
        cls._required(directory, "values.npz", *(["std.npz"] if meta.get("std") else []),
                      *(["statistics.npz"] if meta.get("statistics") else []), what="NAPs", fix=fix)
        if meta.get("format") != FORMAT:
            raise StoreError(f"{meta_file} is not a NAPs file (format {meta.get('format')!r}, expected {FORMAT!r}).")
        layers = meta["layers"]
        keys = {layer: f"l{i}" for i, layer in enumerate(layers)}
        with np.load(directory / "values.npz") as f:
            values = {layer: f[keys[layer]] for layer in layers}
        std = {}
        if meta.get("std"):
            with np.load(directory / "std.npz") as f:
                std = {layer: f[keys[layer]] for layer in meta["std"]}
        stats = {}
        if meta.get("statistics"):
            with np.load(directory / "statistics.npz") as f:
                for layer, info in meta["statistics"].items():
                    k = keys[layer]
                    stats[layer] = UnitStatistics(
                        layer, tuple(values[layer].shape[1:]), int(info["n_samples"]),
                        f[f"{k}_mean"], f[f"{k}_min"], f[f"{k}_max"], f[f"{k}_active_fraction"],
                        float(info["threshold"]))
        return cls(meta["groups"], np.asarray(meta["counts"]), values, std=std, statistics=stats,
                   by=meta["by"], aligned=meta["aligned"], kind=meta["kind"], reference=meta["reference"],
                   epoch=meta.get("epoch"), source=meta.get("source"))

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        return (f"NAPs(kind={self.kind!r}, by={self.by!r}, groups={len(self.groups)},"
                f" layers={self.layers})")

    def _repr_html_(self) -> str:
        esc = html.escape  # layer and group names may hold any text
        rows = []
        for layer in self.layers:
            s = self._statistics.get(layer)
            extra = (f"<td>{s.summary()['dead_fraction']:.1%}</td><td>{s.sparsity:.1%}</td>" if s
                     else "<td></td><td></td>")
            rows.append(f"<tr><td><code>{esc(layer)}</code></td><td>{self.unit_shape(layer)}</td>"
                        f"<td>{'yes' if layer in self.aligned else ''}</td>{extra}</tr>")
        groups = esc(", ".join(f"{g} ({c})" for g, c in zip(self.groups, self.counts, strict=True)))
        return (f"<div><b>NAPs</b> ({esc(self.kind)}, by <code>{esc(self.by)}</code>): {groups}"
                "<table><tr><th>layer</th><th>unit shape</th><th>aligned</th><th>dead</th>"
                f"<th>sparsity</th></tr>{''.join(rows)}</table></div>")


# ---------------------------------------------------------------------------- alignment
def align_by_gradient(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Shift each sample so its point of largest channel-averaged |gradient| is in the centre.

    iNNtrospect's alignment, for channels-first maps ``[n, C, *spatial]`` (1 to 3 spatial or
    temporal axes): per sample, the position ``p`` of the maximum of ``mean_c |grad|`` moves
    to ``size // 2`` along every spatial axis; values shifted in from outside are zero (pad and
    crop). A sample whose map is constant (no position stands out) is left as it is.
    Vectorised over the batch: one block copy per distinct shift, never a loop per sample.

    Parameters
    ----------
    activations, gradients : array [n, C, *spatial]
        The same shape.

    Returns
    -------
    array [n, C, *spatial]
        The aligned activations (a new array).

    Raises
    ------
    AnalysisError
        Different shapes, or no spatial axis (``[n, units]``).

    Example
    -------
    >>> a = np.zeros((1, 1, 5)); a[0, 0, 4] = 1.0
    >>> align_by_gradient(a, a)[0, 0]
    array([0., 0., 1., 0., 0.])
    """
    acts = np.asarray(activations)
    grads = np.asarray(gradients)
    if acts.shape != grads.shape:
        raise AnalysisError(f"activations {acts.shape} and gradients {grads.shape} must have the same shape.")
    if acts.ndim < 3:
        raise AnalysisError(
            f"gradient alignment needs spatial or temporal axes ([n, C, H, W] or [n, C, T]); got"
            f" shape {acts.shape}. Use align=None for dense layers.")
    n, spatial = acts.shape[0], acts.shape[2:]
    saliency = np.abs(grads).mean(axis=1).reshape(n, -1)            # [n, prod(spatial)]
    constant = saliency.max(axis=1) == saliency.min(axis=1)
    peak = np.stack(np.unravel_index(saliency.argmax(axis=1), spatial), axis=1)
    shift = peak - np.asarray(spatial) // 2                           # out[j] = in[j + shift]
    shift[constant] = 0
    # Samples with the same shift move together: one block copy per distinct shift (at most
    # one per position), not a loop over samples; ~5x faster than a gather of every element.
    out = np.zeros_like(acts)
    distinct, which = np.unique(shift, axis=0, return_inverse=True)
    which = which.reshape(-1)
    order = np.argsort(which, kind="stable")
    bounds = np.cumsum(np.bincount(which, minlength=len(distinct)))[:-1]
    for move, rows in zip(distinct, np.split(order, bounds), strict=True):
        src = tuple(slice(k, size) if k >= 0 else slice(0, size + k) for k, size in zip(move, spatial, strict=True))
        dst = tuple(slice(0, size - k) if k >= 0 else slice(-k, size) for k, size in zip(move, spatial, strict=True))
        out[(rows, slice(None), *dst)] = acts[(rows, slice(None), *src)]
    return out


# ---------------------------------------------------------------------------- grouping
def _resolve_layers(available: Sequence[str], layers: str | Sequence[str] | None) -> list[str]:
    """Layers of ``available`` by the package's one rule (:func:`neuralatlas.analysis.sources.resolve_layers`)."""
    return resolve_layers(list(available), layers, where="the store")


# ---------------------------------------------------------------------------- streaming
def _choose_shift(x: np.ndarray) -> np.ndarray | None:
    """A per-unit shift for the sums of squares, or None when none is needed.

    E[x²] - E[x]² cancels badly when a unit's mean dwarfs its spread; then the sums go around
    a per-unit shift (the mean of ``x``, a first slice of the data). Decided once per layer,
    before streaming, so that every block and every dask worker uses the same shift.
    """
    mean, spread = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
    # float32-representable, so the numpy path (float32 blocks) subtracts exactly this shift
    return mean.astype(np.float32).astype(np.float64) if bool(np.any(np.abs(mean) > 30.0 * spread)) else None


class _Accumulator:
    """Per-layer running sums of one grouped reduction (float64 across blocks); mergeable."""

    def __init__(self, n_groups: int, n_units: int, std: bool, statistics: bool, partial: bool,
                 threshold: float, shift: np.ndarray | None = None):
        self.std, self.statistics, self.partial, self.threshold = std, statistics, partial, threshold
        self.s1 = np.zeros((n_groups, n_units))
        self.s2 = np.zeros((n_groups, n_units)) if std else None
        self.shift = shift
        self._fused = _kernels.grouped_moments is not None
        if statistics:
            self.mx = np.full(n_units, -np.inf, np.float32)
            self.mn = np.full(n_units, np.inf, np.float32)
            self.active = np.zeros(n_units, np.int64)
            # only when some rows are in no group; else the total follows from the group sums
            self.total = np.zeros(n_units) if partial else None
        self._buf: np.ndarray | None = None
        self._bool: np.ndarray | None = None
        self._scratch: tuple = ()
        self._kernel_args = self._fused_args() if self._fused else ()

    def _fused_args(self) -> tuple:
        """The kernel's arguments after the block and codes: accumulators, then its scratch.

        The scratch (float32 group sums of the last rows, int32 active counts) persists across
        calls, so that many small pieces cost no allocation; :meth:`flush` empties it.
        """
        n_groups, units = self.s1.shape
        none64, none32 = np.zeros(0), np.zeros(0, np.float32)
        stats = self.statistics
        n_local = n_groups if n_groups <= _kernels.LOCAL_GROUPS else 0
        shift = self.shift if self.shift is not None else np.zeros(units)
        # float32 sums take the shift in float32 (it is float32-representable: _choose_shift)
        shift = shift.astype(np.float32) if n_local else shift
        self._scratch = (np.zeros((n_local, units), np.float32),
                         np.zeros((n_local if self.std else 0, units), np.float32),
                         np.zeros(units, np.float32), np.zeros(units, np.int32), np.zeros(n_local, np.bool_),
                         np.zeros(1, np.int64))
        return (shift, self.s1,
                self.s2 if self.std else self.s1, self.mx if stats else none32, self.mn if stats else none32,
                self.active if stats else np.zeros(0, np.int64),
                self.total if stats and self.total is not None else none64,
                np.float32(self.threshold), self.std, stats, stats and self.total is not None, *self._scratch)

    def flush(self) -> None:
        """Move the kernel's scratch sums into the float64 accumulators (before reading them)."""
        if self._fused and self._kernel_args:
            args = self._kernel_args
            # flush_moments(s1, s2, active, total, l1, l2, lt, la, touched, state, do_std, do_stats, do_total)
            _kernels.flush_moments(args[1], args[2], args[5], args[6], *self._scratch, *args[8:11])

    def add(self, x: np.ndarray, codes: np.ndarray, raw: np.ndarray | None = None) -> None:
        """Reduce rows ``x`` [rows, units] (aligned values); statistics from ``raw`` (default x).

        With numba, one fused pass (:mod:`._kernels`) into sums that :meth:`flush` completes.
        Otherwise the rows are worked through in slices of about ``_CACHE_BYTES``: each slice
        takes all its passes (sums, squares, max, min, active count) while it sits in the CPU
        cache.
        """
        raw = x if raw is None else raw
        if self._fused:
            # As few Python-level numpy calls as possible: a call per ~1 MiB piece
            _kernels.moments_into(x, raw, codes, *self._kernel_args, FLUSH_EACH_PIECE)  # type: ignore[call-arg]  # numba Dispatcher
            return
        rows, units = x.shape
        one_pass = not (self.std or self.statistics)      # nothing to keep in cache for
        step = rows if one_pass else max(1, _CACHE_BYTES // max(1, units * x.itemsize))
        for lo in range(0, rows, step):
            hi = min(lo + step, rows)
            self._add_slice(x[lo:hi], _onehot(codes[lo:hi], self.s1.shape[0]), raw[lo:hi])

    def _add_slice(self, x: np.ndarray, onehot: sp.csr_matrix, raw: np.ndarray) -> None:
        rows = x.shape[0]
        if self._buf is None or self._buf.shape[0] < rows:
            self._buf = np.empty_like(x)
        if self.shift is not None:
            d = np.subtract(x, self.shift.astype(np.float32), out=self._buf[:rows])
            self.s1 += onehot @ d
        else:
            self.s1 += onehot @ x
            d = x
        if self.std:
            sq = np.multiply(d, d, out=self._buf[:rows])
            self.s2 += onehot @ sq
        if self.statistics:
            np.maximum(self.mx, raw.max(axis=0), out=self.mx)
            np.minimum(self.mn, raw.min(axis=0), out=self.mn)
            if self._bool is None or self._bool.shape[0] < rows:
                self._bool = np.empty(raw.shape, bool)
            hot = np.greater(raw, self.threshold, out=self._bool[:rows])
            # A narrow accumulator is ~6x faster than int64 here; uint16 holds 65,535 rows.
            self.active += hot.view(np.uint8).sum(axis=0, dtype=np.uint16 if rows < 2**16 else np.int64)
            if self.total is not None:
                self.total += raw.sum(axis=0)             # float32 within a slice, float64 across

    def merge(self, other: _Accumulator) -> _Accumulator:
        """Add the sums of ``other`` (disjoint rows, same shift) into this one."""
        self.flush()
        other.flush()
        self.s1 += other.s1
        if self.std:
            self.s2 += other.s2
        if self.statistics:
            np.maximum(self.mx, other.mx, out=self.mx)
            np.minimum(self.mn, other.mn, out=self.mn)
            self.active += other.active
            if self.total is not None and other.total is not None:
                self.total += other.total
            else:
                self.total = None
        return self

    def __getstate__(self) -> dict[str, Any]:
        # scratch buffers stay behind when a partial travels between dask workers (emptied first)
        self.flush()
        return {**self.__dict__, "_buf": None, "_bool": None, "_kernel_args": (), "_scratch": ()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fused = _kernels.grouped_moments is not None
        self._kernel_args = self._fused_args() if self._fused else ()

    def finish(self, counts: np.ndarray, n_samples: int, layer: str, unit_shape: tuple[int, ...]):
        """Means, standard deviations and unit statistics from the sums."""
        self.flush()
        c = counts[:, None].astype(np.float64)
        shift = 0.0 if self.shift is None else self.shift.astype(np.float64)
        centred = self.s1 / c
        mean = centred + shift
        std = None
        if self.std:
            var = np.maximum(self.s2 / c - centred ** 2, 0.0)
            std = np.sqrt(var).astype(np.float32).reshape(len(counts), *unit_shape)
        stats = None
        if self.statistics:
            total = self.total if self.total is not None else (self.s1.sum(0) + counts.sum() * shift)
            stats = UnitStatistics(
                layer, unit_shape, n_samples, (total / n_samples).astype(np.float32).reshape(unit_shape),
                self.mn.reshape(unit_shape), self.mx.reshape(unit_shape),
                (self.active / n_samples).reshape(unit_shape), self.threshold)
        return mean.astype(np.float32).reshape(len(counts), *unit_shape), std, stats


class _GroupedMoments(BlockReduction):
    """The NAP pass of one layer as a block reduction: group sums, squares, unit statistics.

    ``pool`` ("mean"/"max") first reduces conv maps over their spatial axes (a channel is then
    one unit); ``align`` shifts each sample by its gradient first (:func:`align_by_gradient`).
    """

    def __init__(self, store: Any, layer: str, epoch: int | None, codes: np.ndarray, n_groups: int, *,
                 step: int, std: bool, statistics: bool, threshold: float, align: bool = False,
                 pool: str | None = None):
        self.store, self.layer, self.epoch = store, layer, epoch
        self.codes, self.n_groups = np.ascontiguousarray(codes, np.int64), n_groups
        self.n, self.step = store.n_samples, step
        self.std, self.statistics, self.threshold = std, statistics, threshold
        self.align, self.pool = align, pool
        self.partial = bool((codes < 0).any())
        self.unit_shape = pooled_shape(store.unit_shape(layer), pool)
        self.n_units = int(np.prod(self.unit_shape))
        self.shift: np.ndarray | None = None
        self._arrays: tuple[Any, Any] | None = None

    def decide_shift(self) -> None:
        """Choose the shift from a first cache-sized slice of the data (one extra small read)."""
        if not self.std:
            return
        rows = min(self.n, max(2, _CACHE_BYTES // max(1, self.n_units * 4)))
        x, _ = self._values(self.read(slice(0, rows)))
        self.shift = _choose_shift(x)

    def start(self) -> _Accumulator:
        return _Accumulator(self.n_groups, self.n_units, self.std, self.statistics, self.partial,
                            self.threshold, self.shift)

    def _opened(self) -> tuple[Any, Any]:
        if self._arrays is None:  # opened once per process (~1 ms each time: metadata reads)
            self._arrays = (self.store.activations(self.layer, self.epoch),
                            self.store.gradients(self.layer, self.epoch) if self.align else None)
        return self._arrays

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray | None]:
        """Activations (and gradients, when aligning) of rows ``rows``."""
        acts, grads = self._opened()
        return read_rows(acts, rows), (read_rows(grads, rows) if grads is not None else None)

    def read_pieces(self, rows: slice, buffers: int = 1) -> Iterator[tuple[slice, Any]]:
        """Cache-sized pieces of the block; the whole block when aligning.

        Aligned, align_by_gradient's per-call cost outweighs the cache: measured 1 MiB pieces
        1.13x and 256 KiB 1.55x the time of whole 16 MiB chunks.
        """
        if self.align:
            yield rows, self.read(rows)
            return
        for piece, block in read_pieces(self._opened()[0], rows, buffers=buffers):
            yield piece, (block, None)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def _values(self, block: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray | None]:
        acts, grads = block
        raw = flatten_samples(acts, self.pool).astype(np.float32, copy=False)
        if grads is not None:
            aligned = flatten_samples(align_by_gradient(acts, grads), self.pool).astype(np.float32, copy=False)
            return aligned, raw
        return raw, None

    def add(self, acc: _Accumulator, rows: slice, block: Any) -> _Accumulator:
        x, raw = self._values(block)
        acc.add(x, self.codes[rows], raw)
        return acc

    def merge(self, a: _Accumulator, b: _Accumulator) -> _Accumulator:
        return a.merge(b)

    def bytes_per_row(self) -> int:
        """Working memory per row: the block being reduced, the next one read, zarr's buffer."""
        full = int(np.prod(self.store.unit_shape(self.layer))) * 4
        return full * (6 if self.align else 3) + self.n_units * 8

    def target_rows(self) -> int:
        """About 16 MiB blocks: measured best here (1.38x a plain read at 16 MiB, 1.6x at 64 MiB)."""
        return max(1, 16 * 2**20 // (int(np.prod(self.store.unit_shape(self.layer))) * 4))

    def fixed_bytes(self) -> int:
        return self.n_groups * self.n_units * 8 * (2 if self.std else 1) + self.n_units * 24


def _grouped_pass(store: Any, layer: str, codes: np.ndarray, n_groups: int, *, epoch: int | None,
                  std: bool, statistics: bool, threshold: float, align: bool, pool: str | None, budget: int,
                  rows: int | None) -> _GroupedMoments:
    """The NAP pass of one layer, its blocks sized for ``budget`` (bytes)."""
    reduction = _GroupedMoments(store, layer, epoch, codes, n_groups, step=1, std=std, statistics=statistics,
                                threshold=threshold, align=align, pool=pool)
    reduction.step = block_rows(store.n_samples, reduction.bytes_per_row(), budget, store.chunk_rows, rows,
                                fixed=reduction.fixed_bytes(), target_rows=reduction.target_rows(),
                                what=f"the NAPs of {layer!r}")
    return reduction


def _run_pass(reduction: _GroupedMoments, client: Any, progress: Progress | None, done: int = 0,
              total: int | None = None) -> _Accumulator:
    reduction.decide_shift()
    acc = reduce_blocks(reduction, client=client, progress=progress, done=done, total=total)
    acc.flush()  # its s1, s2, ... complete: callers read them directly (discriminative's ANOVA)
    return acc


def grouped_moments(store: Any, layer: str, codes: np.ndarray, n_groups: int, *, epoch: int | None = None,
                    std: bool = True, statistics: bool = False, threshold: float = 0.0, align: bool = False,
                    pool: str | None = None, memory_limit: int | str | None = None, rows: int | None = None,
                    client: Any = None, progress: Progress | None = None) -> _Accumulator:
    """Stream one layer into grouped sums (and squares, unit statistics): the NAP pass.

    Shared by :func:`naps` and the streamed ANOVA of :mod:`.discriminative`; returns the
    merged accumulator (its ``shift`` is the one the sums are taken about).
    """
    reduction = _grouped_pass(store, layer, codes, n_groups, epoch=epoch, std=std, statistics=statistics,
                              threshold=threshold, align=align, pool=pool,
                              budget=parse_memory_limit(memory_limit), rows=rows)
    return _run_pass(reduction, client, progress)


def _onehot(codes: np.ndarray, n_groups: int) -> sp.csr_matrix:
    """The ``[n_groups, rows]`` indicator matrix of a block, built directly in CSR form.

    Its product with the block is the grouped sum: one streaming pass over the block whatever
    the number of groups (a dense one-hot matmul costs n_groups passes' worth of arithmetic).
    """
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]
    indptr = np.zeros(n_groups + 1, np.int64)
    np.cumsum(np.bincount(codes[order], minlength=n_groups), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(order), np.float32), order, indptr), shape=(n_groups, len(codes)))


def _open(store: Any):
    from neuralatlas.store import ActivationStore

    if isinstance(store, ActivationStore):
        return store
    if isinstance(store, (str, Path)):
        return ActivationStore.locate(store)
    raise AnalysisError(f"naps needs an ActivationStore or the path of one; got {type(store).__name__}.")


def naps(
    store: Any,
    by: str | Sequence | np.ndarray = "label",
    layers: str | Sequence[str] | None = None,
    align: str | None = None,
    *,
    groups: Sequence | None = None,
    epoch: int | None = None,
    std: bool = True,
    statistics: bool = True,
    threshold: float = 0.0,
    rows: int | None = None,
    memory_limit: int | str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> NAPs:
    """Neuron Activation Profiles: per-group mean activation of every unit, streamed from a store.

    Parameters
    ----------
    store : ActivationStore or path
        A store (or its folder, or a run folder holding ``acts.zarr``).
    by : str or array
        The grouping: a sample-table column (``"label"``, ``"prediction"``, ``"group"``, a user
        column), ``"correct"`` (label == prediction), or one value per sample.
    layers : str or list of str, optional
        Layer names or glob patterns; default every layer.
    align : None or "gradient"
        ``"gradient"``: align each sample by its gradient before averaging
        (:func:`align_by_gradient`); needs gradients in the store. Layers with spatial axes
        are aligned, others averaged as they are; naming a dense layer outright is an error.
    groups : list, optional
        Which groups (names or values), in this order; default all present, sorted.
    epoch : int, optional
        Checkpoint epoch of a per-epoch store (default the final model).
    std, statistics : bool
        Also compute per-group standard deviations / unit statistics (same pass).
    threshold : float
        A unit is "active" above this value (unit statistics).
    rows : int, optional
        Rows per block read; default: as many whole chunks as ``memory_limit`` allows.
    memory_limit : int or str, optional
        Working memory for the pass (bytes, or ``"2GB"``); default a quarter of the free
        memory. The store is streamed in blocks that fit, whatever its size; the result is
        the same (to float rounding) for any block size.
    client : dask.distributed.Client, optional
        Run the pass on a dask cluster: each worker reduces a shard of the store's chunks
        (reading the store by its path, which must be on storage every worker reaches) and
        the partial sums are merged on the cluster.
    progress : callable(done, total), optional
        Called after each block (each shard on a cluster).

    Returns
    -------
    NAPs

    Raises
    ------
    AnalysisError
        Unknown grouping column, a requested group without samples, alignment of a layer
        without spatial axes or without gradients.
    LayerError
        A layer (pattern) the store does not hold.

    Example
    -------
    >>> from neuralatlas import capture
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> store = capture(build("cnn", seed=0).eval(), test.subset(slice(0, 100)), out="acts.zarr",
    ...                 gradients=True, target="label")
    >>> result = naps(store, by="label", layers="conv*", align="gradient")
    >>> result.values("conv2").shape, int(result.counts.sum()) == store.n_samples
    ((10, 32, 4, 4), True)
    """
    store = _open(store)
    chosen = resolve_layers(store, layers)
    if align not in (None, "gradient"):
        raise AnalysisError(f"align={align!r} is not a known alignment; use None or 'gradient'.")
    to_align: list[str] = []
    if align == "gradient":
        spatial = [layer for layer in chosen if len(store.unit_shape(layer)) >= 2]
        if layers is not None:
            # A layer named outright must be alignable; one a glob pattern happens to match is
            # simply averaged without alignment.
            named = {layers} if isinstance(layers, str) else set(layers)
            flat = [layer for layer in chosen if layer not in spatial and layer in named]
            if flat:
                raise AnalysisError(
                    f"Gradient alignment needs spatial or temporal axes, but {', '.join(map(repr, flat))} has unit"
                    f" shape {store.unit_shape(flat[0])}. Leave it out of layers=, or use align=None.")
        # A [T, D] token sequence (or a 3-D output whose axes capture could not tell) is not a
        # channel-first map: shifting it by its gradient would move features, not positions.
        # torch captures record a layout name per layer; Flax/Keras captures {"framework", "stored"}
        layouts = {k: v.get("stored", "channels_first") if isinstance(v, dict) else v
                   for k, v in store.attrs.get("layouts", {}).items()}
        not_maps = [layer for layer in spatial if layouts.get(layer, "channels_first") != "channels_first"]
        named_bad = [layer for layer in not_maps if layers is not None and layer in (
            {layers} if isinstance(layers, str) else set(layers))]
        if named_bad:
            layer = named_bad[0]
            raise AnalysisError(
                f"Gradient alignment shifts channel-first maps [C, *spatial], but {layer!r} has unit shape"
                f" {store.unit_shape(layer)} stored as {layouts[layer]!r} (a sequence is [tokens, features])."
                " Use align=None, or capture it with reduce='token_mean' (or rows='tokens').")
        to_align = [layer for layer in spatial if layer not in not_maps]
        lacking = [layer for layer in to_align if not store.has_gradients(layer, epoch)]
        if lacking:
            raise AnalysisError(f"align='gradient' needs gradients, but the store holds none for"
                                f" {', '.join(map(repr, lacking))}; capture with gradients=True.")
    needed = {"correct": ["label", "prediction"]}.get(by, [by]) if isinstance(by, str) else ["index"]
    available = {*store.attrs.get("sample_columns", []), "prediction"}
    # only the grouping's columns (a large store's table costs a read per column); the whole
    # table when the column is unknown, so that the error lists what there is
    table = store.sample_table(epoch, columns=needed if set(needed) <= available else None)
    codes, names, by_name = group_codes(table, by, groups, store.classes)
    n_groups = len(names)
    counts = np.bincount(codes[codes >= 0], minlength=n_groups)
    empty = [names[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise AnalysisError(f"Group(s) {', '.join(map(repr, empty))} have no samples; drop them from groups=.")
    from neuralatlas.store.safety import warn_nonfinite

    row_groups = np.asarray([*map(str, names), "(none)"], object)[np.where(codes >= 0, codes, n_groups)]
    warn_nonfinite(store, chosen, epoch, analysis="NAPs", groups=row_groups)
    n = store.n_samples
    budget = parse_memory_limit(memory_limit)
    # every layer's pass is planned first: one progress count over all their blocks
    passes = [_grouped_pass(store, layer, codes, n_groups, epoch=epoch, std=std, statistics=statistics,
                            threshold=threshold, align=layer in to_align, pool=None, budget=budget, rows=rows)
              for layer in chosen]
    total_blocks = sum(len(p.slices()) for p in passes)
    done_blocks = 0
    values: dict[str, np.ndarray] = {}
    stds: dict[str, np.ndarray] = {}
    stats: dict[str, UnitStatistics] = {}
    for layer, reduction in zip(chosen, passes, strict=True):
        acc = _run_pass(reduction, client, progress, done_blocks, total_blocks)
        done_blocks += len(reduction.slices())
        values[layer], s, u = acc.finish(counts, n, layer, reduction.unit_shape)
        if s is not None:
            stds[layer] = s
        if u is not None:
            stats[layer] = u
    return NAPs(names, counts, values, std=stds, statistics=stats, by=by_name, aligned=to_align,
                epoch=epoch, source=str(store.path))


def unit_statistics(store: Any, layers: str | Sequence[str] | None = None, *, epoch: int | None = None,
                    threshold: float = 0.0, memory_limit: int | str | None = None, client: Any = None,
                    progress: Progress | None = None) -> dict[str, UnitStatistics]:
    """Dead and always-on units, sparsity, mean/min/max of every unit of some layers.

    The same streaming pass as :func:`naps` (which returns these too, via
    :meth:`NAPs.statistics`), over all samples.

    Example
    -------
    >>> from neuralatlas import capture
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> store = capture(build("cnn", seed=0).eval(), test.subset(slice(0, 100)), out="acts.zarr",
    ...                 gradients=True, target="label")
    >>> stats = unit_statistics(store, "relu*")
    >>> sorted(stats), 0.0 <= stats["relu1"].summary()["dead_fraction"] <= 1.0
    (['relu1', 'relu2', 'relu_fc1'], True)
    """
    store = _open(store)
    everyone = np.zeros(store.n_samples, np.int64)
    result = naps(store, by=everyone, layers=layers, epoch=epoch, std=False, threshold=threshold,
                  memory_limit=memory_limit, client=client, progress=progress)
    return {layer: result.statistics(layer) for layer in result.layers}


# ---------------------------------------------------------------------------- contrast
def contrastive_naps(result: Any, groups: Sequence | None = None, weight_by_size: bool = False,
                     normalize: str | None = None, **naps_kwargs: Any) -> NAPs:
    """Each group's NAP minus the average NAP of a chosen set of groups (iNNtrospect's contrast).

    Parameters
    ----------
    result : NAPs, or an ActivationStore / path
        From :func:`naps`; or a store, whose NAPs are computed first with ``naps_kwargs``
        (``by=``, ``layers=``, ``memory_limit=``, ``client=``, ...): out of core, or on a
        dask cluster, like :func:`naps`.
    groups : list, optional
        The groups to contrast (names); default all. Only these are kept and averaged.
    weight_by_size : bool
        Weight the average by the groups' sample counts (default: every group alike).
    normalize : None or "zscore"
        ``"zscore"``: divide by the (same-weighted) standard deviation across the chosen
        groups, per unit, so layers and units of different scale compare; units that do not
        vary across groups get 0.

    Returns
    -------
    NAPs
        ``kind="contrastive"``; ``values(layer)`` sums to zero across groups with the weights
        in ``reference["weights"]``.

    Example
    -------
    >>> from neuralatlas import capture
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> store = capture(build("cnn", seed=0).eval(), test.subset(slice(0, 100)), out="acts.zarr",
    ...                 gradients=True, target="label")
    >>> c = contrastive_naps(naps(store), weight_by_size=True)
    >>> np.allclose(np.tensordot(c.reference["weights"], c.values("fc1"), 1), 0, atol=1e-5)
    True
    """
    if not isinstance(result, NAPs):
        from neuralatlas.store import ActivationStore

        if not isinstance(result, (ActivationStore, str, Path)):
            raise AnalysisError("contrastive_naps needs a NAPs result (from neuralatlas.naps) or a store;"
                                f" got {type(result).__name__}.")
        result = naps(result, **naps_kwargs)
    elif naps_kwargs:
        raise AnalysisError(f"{', '.join(naps_kwargs)}= apply when contrastive_naps computes the NAPs from a"
                            " store; these NAPs are already computed.")
    if result.kind == "contrastive":
        raise AnalysisError("These NAPs are already contrastive; pass the NAPs they came from.")
    if normalize not in (None, "zscore"):
        raise AnalysisError(f"normalize={normalize!r} is not known; use None or 'zscore'.")
    if groups is None:
        index = np.arange(len(result.groups))
    else:
        index = np.asarray([result.group_index(g) for g in dict.fromkeys(groups)], np.int64)
        if len(index) < 2:
            raise AnalysisError(f"Contrast needs at least two groups; got {list(groups)}.")
    counts = result.counts[index]
    weights = counts.astype(np.float64) if weight_by_size else np.ones(len(index))
    weights = weights / weights.sum()
    values = {}
    for layer in result.layers:
        v = result.values(layer)[index].astype(np.float64)
        w = weights.reshape(-1, *([1] * (v.ndim - 1)))
        mean = (w * v).sum(0)
        diff = v - mean
        if normalize == "zscore":
            spread = np.sqrt((w * diff ** 2).sum(0))
            diff = np.divide(diff, spread, out=np.zeros_like(diff), where=spread > 1e-12 * (1 + np.abs(mean)))
        values[layer] = diff.astype(np.float32)
    names = [result.groups[i] for i in index]
    reference = {"groups": names, "weights": weights.tolist(), "weight_by_size": weight_by_size,
                 "normalize": normalize}
    return NAPs(names, counts, values, statistics={k: v for k, v in result._statistics.items()},
                by=result.by, aligned=result.aligned, kind="contrastive", reference=reference,
                epoch=result.epoch, source=result.source)
