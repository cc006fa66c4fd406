"""The one data-access layer of the analyses: stores, layers, epochs, sample subsets and pooling.

Every analysis that reads activations (NAPs, similarity, projection, discriminative
neurons, topomaps, feature maps of a store) opens its input, picks layers and epochs,
draws a subset of samples and pools conv maps through these functions, so the rules are
written once:

* **store** — :func:`open_store` takes a :data:`~neuralatlas.vocabulary.StoreLike`: an
  :class:`~neuralatlas.store.ActivationStore`, the path of one, a run folder holding
  ``acts.zarr``, or a URL.
* **layers** — :func:`resolve_layers`: ``None`` is every layer in the store's order; a
  list keeps the order the user gave (``["fc2", "fc1"]`` stays so); names or patterns
  (:mod:`neuralatlas.patterns`: ``*`` within a dotted segment, ``**`` across); ``[]`` is
  an error naming the fix, never an empty result.
* **epochs** — :func:`resolve_epochs`: a *selection* (``None`` the final model, an int, a
  list of ints, ``"all"``, ``"last"``), checked against what was captured.
* **subsets** — :func:`subset_rows`: ``n_samples=None`` is every sample; an ``int`` is
  exactly that many (more than there are is an error); :class:`AtMost` ``(k)`` is up to
  ``k`` (every sample of a smaller store) — the honest form of a default such as
  :data:`DEFAULT_N_SAMPLES`, which a typed ``2000`` is not. Subsets are class-stratified
  and seeded (:func:`stratified_subset`), or uniform (:func:`random_subset`).
* **pooling** — :func:`check_pool` and :func:`flatten`: ``None`` flattens each sample,
  ``"mean"``/``"max"`` pool channels-first conv maps over their spatial axes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from neuralatlas.analysis.streaming import flatten_samples
from neuralatlas.errors import AnalysisError, ConfigError, StoreError, did_you_mean
from neuralatlas.patterns import select_layers
from neuralatlas.vocabulary import ALL_WORDS, Layers

if TYPE_CHECKING:
    from neuralatlas.store import ActivationStore

__all__ = [
    "DEFAULT_N_SAMPLES",
    "INPUT",
    "POOLS",
    "ActivationSource",
    "ArraySource",
    "AtMost",
    "captured_epochs",
    "StoreSource",
    "check_pool",
    "flatten",
    "group_codes",
    "open_source",
    "open_store",
    "random_subset",
    "resolve_epochs",
    "resolve_layers",
    "resolve_sample_count",
    "stratified_subset",
    "subset_rows",
]

POOLS = (None, "mean", "max")
INPUT = "input"
"""The name of the raw-input pseudo-layer (``inputs=`` of the projections)."""


# ------------------------------------------------------------------------------ stores
def open_store(store: Any, what: str = "store") -> ActivationStore:
    """An :class:`~neuralatlas.store.ActivationStore` from a store, a store or run folder, or a URL.

    Raises
    ------
    AnalysisError
        When ``store`` is none of these (the message names ``what`` it was meant to be).
    """
    from neuralatlas.store import ActivationStore

    if isinstance(store, ActivationStore):
        return store
    if isinstance(store, (str, os.PathLike)):
        return ActivationStore.locate(os.fspath(store))
    raise AnalysisError(f"{what} must be an ActivationStore or the path of one (or of a run folder);"
                        f" got {type(store).__name__}.")


# ------------------------------------------------------------------------------ layers
def resolve_layers(source: Any, layers: Layers, *, where: str | None = None,
                   listed_as: str = "Layers stored") -> list[str]:
    """The layers a selection names, by the one rule of the package.

    Parameters
    ----------
    source : ActivationStore, result with ``.layers``, or sequence of str
        What holds the layers, in its own order.
    layers : str, sequence of str, or None
        ``None``: every layer, in ``source``'s order. A name or pattern, or a list of them:
        in the order given (each pattern expands in ``source``'s order; repeats kept once).
    where : str, optional
        What ``source`` is, for messages (default: ``"the store PATH"`` for a store).
    listed_as : str
        How the message introduces the list of layers there are.

    Returns
    -------
    list of str

    Raises
    ------
    LayerError
        ``layers=[]``, or a name or pattern that matches no layer (listing what exists).

    Examples
    --------
    >>> resolve_layers(["fc1", "relu1", "fc2"], ["fc2", "fc1"])
    ['fc2', 'fc1']
    >>> resolve_layers(["fc1", "relu1", "fc2"], None)
    ['fc1', 'relu1', 'fc2']
    """
    if isinstance(source, (list, tuple)):
        names = list(source)
        where = where or "the layers given"
    else:
        names = list(source.layers)
        if where is None:
            path = getattr(source, "path", None)
            where = f"the store {path}" if path is not None else f"this {type(source).__name__}"
    return select_layers(names, layers, where, listed_as=listed_as)


# ------------------------------------------------------------------------------ epochs
def resolve_epochs(available: Sequence[int], epochs: Any, *, where: str, final: int | None = None
                   ) -> list[int | None]:
    """A selection of captured epochs as a list (``None`` stands for the final model).

    Parameters
    ----------
    available : sequence of int
        The epochs captured (empty for a store of the final model only).
    epochs : None, int, sequence of int, "all" or "last"
        ``None``: the final model (``[final]``). ``"all"``: every epoch captured.
        ``"last"``: the last epoch captured.
    where : str
        What holds the epochs, for messages.
    final : int or None
        What ``None`` resolves to (the store's final epoch, or None).

    Raises
    ------
    StoreError
        Epochs asked of a store without per-epoch activations, or epochs not captured.
    AnalysisError
        A selection that is none of the forms above (e.g. ``True``).
    """
    if epochs is None:
        return [final]
    return list(captured_epochs(available, epochs, where=where))


def captured_epochs(available: Sequence[int], epochs: Any, *, where: str) -> list[int]:
    """:func:`resolve_epochs` for a selection that is not ``None``: captured epoch numbers only.

    Raises
    ------
    StoreError, AnalysisError
        As :func:`resolve_epochs`.
    """
    available = [int(e) for e in available]
    if isinstance(epochs, str):
        word = epochs.strip().lower()
        if word not in ("all", "last"):
            raise AnalysisError(f"epochs={epochs!r} is not understood; pass None (the final model), 'all', 'last',"
                                " an int or a list of ints.")
        wanted = list(available) if word == "all" else available[-1:]
    elif isinstance(epochs, (bool, np.bool_)):
        raise AnalysisError(f"epochs={epochs!r} is a yes/no; epochs is a selection: pass None (the final model),"
                            " 'all', 'last', an int or a list of ints.")
    elif isinstance(epochs, (int, np.integer)):
        wanted = [int(epochs)]
    else:
        wanted = [int(e) for e in epochs]
    if not available:
        raise StoreError(
            f"{where} has no per-epoch activations, so epochs={epochs!r} cannot be used."
            " Capture with checkpoints=RUN_DIR (as `neuralatlas capture RUN_DIR` does for a trained"
            " run) to record every epoch, or pass epochs=None for the final model."
        )
    missing = [e for e in wanted if e not in available]
    if missing or not wanted:
        raise StoreError(f"Epoch(s) {missing or wanted} not in {where}; epochs captured:"
                         f" {', '.join(map(str, available))}.")
    return wanted


# ------------------------------------------------------------------------------ subsets
@dataclass(frozen=True)
class AtMost:
    """A sample count meaning "up to ``count``": every sample when there are fewer.

    A plain ``int`` means exactly that many (asking for more than there are is an error);
    ``AtMost(2000)`` is the default of the projections, so ``project(store)`` works on a
    450-sample store too. Unlike the old ``int`` subclass it replaces, it does not compare
    equal to ``2000``: a default and a typed number can be told apart by anyone.

    Examples
    --------
    >>> AtMost(2000).of(450), AtMost(2000).of(10_000)
    (450, 2000)
    """

    count: int

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, (int, np.integer)) or self.count < 1:
            raise ConfigError(f"AtMost({self.count!r}): give a positive number of samples.")

    def of(self, total: int) -> int:
        """The count for ``total`` samples: ``min(count, total)``."""
        return min(int(self.count), int(total))

    def __repr__(self) -> str:
        return f"AtMost({int(self.count)})"


DEFAULT_N_SAMPLES = AtMost(2000)
"""The default subset of the projections and discriminative neurons: up to 2,000 samples."""


def resolve_sample_count(n_samples: Any, total: int, *, where: str, name: str = "n_samples") -> int:
    """How many of ``total`` samples ``n_samples`` asks for (the one rule; see the module notes).

    Raises
    ------
    ConfigError
        ``0``, a negative or non-integer count.
    AnalysisError
        An ``int`` larger than ``total``.
    """
    if isinstance(n_samples, AtMost):
        return n_samples.of(total)
    if n_samples is None or (isinstance(n_samples, str) and n_samples.strip().lower() in ALL_WORDS):
        return int(total)
    from neuralatlas.vocabulary import resolve_n_samples

    count = resolve_n_samples(n_samples, name=name)
    assert count is not None  # the all-words were handled above
    if count > total:
        raise AnalysisError(f"n={count} samples asked for, but {where} holds only {total}. Pass {name}<={total},"
                            f" {name}=AtMost({count}) for up to {count}, or {name}=None for all of them.")
    return count


def stratified_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of ``n`` samples drawn per class in proportion to the class sizes.

    Every class gets its share (largest remainders break the rounding); the same labels,
    ``n`` and ``seed`` always give the same positions, so a subset drawn once serves every
    layer and epoch.

    Example
    -------
    >>> stratified_subset(np.repeat([0, 1], [80, 20]), 10, seed=0).size
    10
    """
    labels = np.asarray(labels).reshape(-1)
    total = len(labels)
    if not 0 < n <= total:
        raise AnalysisError(f"n={n} samples cannot be drawn from {total}; choose 1 <= n <= {total}.")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (n / total)
    take = np.floor(quota).astype(np.int64)
    short = n - int(take.sum())
    if short:
        # the classes whose share lost the most to rounding get the leftover samples
        order = np.lexsort((rng.random(len(classes)), -(quota - take)))
        take[order[:short]] += 1
    # one random key per sample; the lowest keys inside each class are taken (no per-class loop)
    keys = rng.random(total)
    order = np.lexsort((keys, inverse))                    # grouped by class, random within
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(total, np.int64)
    rank[order] = np.arange(total) - np.repeat(starts, counts)
    return np.flatnonzero(rank < take[inverse])


def random_subset(n: int, m: int, seed: int) -> np.ndarray:
    """Sorted positions of ``m`` of ``n`` samples, uniform without replacement (all when ``m >= n``)."""
    if m >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def subset_rows(labels: np.ndarray, n_samples: Any, seed: int, *, where: str) -> np.ndarray:
    """Positions of the class-stratified, seeded subset that ``n_samples`` asks for.

    Every sample (in order) when the count covers them all, so ``None`` and a count equal to
    the total give the same rows.

    Examples
    --------
    >>> subset_rows(np.zeros(5), None, 0, where="x").tolist()
    [0, 1, 2, 3, 4]
    >>> len(subset_rows(np.repeat([0, 1], 50), AtMost(2000), 0, where="x"))
    100
    """
    labels = np.asarray(labels).reshape(-1)
    count = resolve_sample_count(n_samples, len(labels), where=where)
    if count >= len(labels):
        return np.arange(len(labels))
    return stratified_subset(labels, count, seed)


# ------------------------------------------------------------------------------ grouping (by=)
def _named_values(values: np.ndarray, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Sorted unique values and their display names (class names for class indices)."""
    uniq = np.unique(values)
    if names is not None and uniq.dtype.kind in "iu":
        shown = [names[int(v)] if 0 <= int(v) < len(names) else str(v) for v in uniq]
    else:
        shown = [str(v) for v in uniq]
    return uniq, shown


def group_codes(table: pd.DataFrame, by: str | Sequence | np.ndarray, groups: Sequence | None = None,
                classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], str]:
    """Group index of every sample (-1: in no chosen group), the group names, and the grouping's name.

    ``by`` is a sample-table column, ``"correct"`` (label == prediction: "correct"/"wrong"), or
    an array with one value per sample. Label and prediction values of -1 (unlabelled) belong
    to no group. ``groups`` picks and orders groups (by name or value).
    """
    n = len(table)
    names_source: Sequence[str] | None = None
    if isinstance(by, str):
        name = by
        if by == "correct":
            missing = [c for c in ("label", "prediction") if c not in table]
            if missing:
                raise AnalysisError(f"by='correct' needs the columns label and prediction; the sample table"
                                    f" has no {', '.join(missing)} (capture the model to record predictions).")
            ok = np.asarray(table["label"]) == np.asarray(table["prediction"])
            values = np.where(ok, "correct", "wrong").astype(object)
            valid = (np.asarray(table["label"]) >= 0) & (np.asarray(table["prediction"]) >= 0)
            values = np.where(valid, values, None)
        elif by in table:
            values = np.asarray(table[by])
            if by == "label":
                class_labels(values, "the sample table")  # regression targets make no groups
            if by in ("label", "prediction"):
                names_source = classes
        else:
            columns = [c for c in table.columns if c != "label_name"] + ["correct"]
            raise AnalysisError(f"Cannot group by {by!r}: the sample table has no such column."
                                f"{did_you_mean(by, columns)} Columns: {', '.join(columns)}"
                                " (or pass an array with one value per sample).")
    else:
        name = "custom"
        values = np.asarray(by)
        if values.shape != (n,):
            raise AnalysisError(f"by= has shape {values.shape}; a grouping array needs one value per sample ({n},).")
    valid = ~pd.isna(values) if values.dtype == object else np.ones(n, bool)
    if name in ("label", "prediction"):
        valid &= values.astype(np.int64) >= 0
    if values.dtype == object:
        values = np.where(valid, values, "").astype(str)
    if not valid.any():
        raise AnalysisError(f"No sample has a value in {name!r} (all unlabelled); group by another column.")
    uniq, shown = _named_values(values[valid], names_source)
    position = np.searchsorted(uniq, values)
    position = np.clip(position, 0, len(uniq) - 1)
    codes = np.where(valid & (uniq[position] == values), position, -1)
    if groups is not None:
        wanted = list(dict.fromkeys(groups))
        order = []
        for g in wanted:
            hit = [i for i, (u, s) in enumerate(zip(uniq, shown, strict=True)) if s == str(g) or str(u) == str(g)]
            if not hit:
                raise AnalysisError(f"Group {g!r} has no samples in {name!r}.{did_you_mean(str(g), shown)}"
                                    f" Groups with samples: {', '.join(shown)}.")
            order.append(hit[0])
        remap = np.full(len(uniq), -1, np.int64)
        remap[order] = np.arange(len(order))
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        shown = [shown[i] for i in order]
    return codes.astype(np.int64), shown, name


# ------------------------------------------------------------------------------ activation sources
def class_labels(values: Any, where: str) -> np.ndarray:
    """Labels as int64 class indices; float labels with fractional values are an error, not truncated.

    Examples
    --------
    >>> class_labels(np.array([0.0, 2.0]), where="x").tolist()
    [0, 2]
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        finite = values[~np.isnan(values)]
        if not np.array_equal(finite, np.round(finite)):
            # int64 would truncate regression targets into plausible class indices
            raise AnalysisError(
                f"The labels of {where} are floats (regression targets), not classes; scores per class"
                " (neighbourhood hit, stratified subsets, class importances) would treat each value as"
                " a class. Pass by= (labels= where there is no by=, and for arrays) a sample-table column or an"
                " array of classes, e.g."
                " by=pd.qcut(store.samples['label'], 4, labels=False)."
            )
        values = np.where(np.isnan(values), -1, values)
    return np.asarray(values, np.int64).reshape(-1)


class ActivationSource:
    """Activations by (layer, epoch) from a store or from arrays, plus the sample table.

    Layers, epochs and subsets are resolved by the module's one set of rules.
    """

    layers: list[str]
    epochs: list[int]
    n_samples: int
    labels: np.ndarray
    index: np.ndarray
    classes: list[str]
    where: str

    def read(self, layer: str, epoch: int | None, rows: np.ndarray) -> np.ndarray:
        """Activations of ``rows`` of ``layer`` at ``epoch``, as ``[len(rows), ...]``."""
        raise NotImplementedError

    def predictions(self, epoch: int | None) -> np.ndarray | None:
        """Predicted classes at ``epoch``, or None when the source has none."""
        return None

    def epoch_invariant(self, layer: str) -> bool:
        """Whether ``layer`` is the same at every epoch (the raw input)."""
        return False

    # -------------------------------------------------------------- validation
    def resolve_layers(self, layers: str | Sequence[str] | None) -> list[str]:
        """``layers`` resolved against the available layers (the vocabulary's one ordering rule)."""
        # "available", not "stored": the raw-input pseudo-layer may be among them
        return resolve_layers(self.layers, layers, where=self.where, listed_as="Layers available")

    def resolve_epochs(self, epochs: int | str | Sequence[int] | None) -> list[int | None]:
        """``epochs`` resolved against the source's epochs (None: the final model)."""
        return resolve_epochs(self.epochs, epochs, where=self.where, final=self.final_epoch())

    def final_epoch(self) -> int | None:
        """The epoch that None stands for, or None when there are no epochs."""
        return None

    def subset(self, n_samples: Any, seed: int) -> np.ndarray:
        """The class-stratified, seeded rows ``n_samples`` asks for (None: all; AtMost(k): up to k)."""
        return subset_rows(self.labels, n_samples, seed, where=self.where)


class StoreSource(ActivationSource):
    """An :class:`~neuralatlas.store.ActivationStore` read by (layer, epoch).

    ``inputs`` add the ``"input"`` pseudo-layer.
    ``by`` names a sample-table column to colour and stratify by instead of ``label``;
    ``labels`` (one class per sample) replaces the store's labels, checked as they are.
    """

    def __init__(self, store: Any, inputs: np.ndarray | None = None,
                 by: str | Sequence | np.ndarray | None = None, labels: Any = None):
        self.store = store
        self.where = f"the store {store.path}"
        self.layers = list(store.layers)
        self.inputs = None
        if inputs is not None:
            self.inputs = np.asarray(inputs)
            if len(self.inputs) != store.n_samples:
                raise AnalysisError(
                    f"inputs has {len(self.inputs)} rows but the store holds {store.n_samples} samples;"
                    " pass the raw inputs of exactly the captured samples, in the same order."
                )
            if INPUT in self.layers:
                raise AnalysisError(f"The store already has a layer named {INPUT!r}; do not pass inputs= too.")
            self.layers = [INPUT, *self.layers]
        self.epochs = list(store.epochs)
        self.n_samples = store.n_samples
        table = store.samples
        self.index = np.asarray(table["index"], np.int64) if "index" in table else np.arange(self.n_samples)
        if by is not None:  # colour (and stratify) by any sample-table column: token, position, ...
            self.labels, self.classes, _ = group_codes(table, by)
        elif labels is not None:  # the caller's classes: fractional floats refused, -1 stays "no label"
            self.labels = class_labels(labels, "the labels= array")
            if len(self.labels) != self.n_samples:
                raise AnalysisError(f"labels= has {len(self.labels)} values but the store holds {self.n_samples}"
                                    " samples; pass one class per captured sample, in the store's order.")
            self.classes = [str(c) for c in np.unique(self.labels[self.labels >= 0])]
        else:
            self.labels = (class_labels(table["label"], self.where) if "label" in table
                           else np.full(self.n_samples, -1))
            self.classes = list(store.classes) or [str(c) for c in np.unique(self.labels[self.labels >= 0])]

    def final_epoch(self) -> int | None:
        """The epoch that None stands for: the store's last complete one."""
        return self.store._resolve_epoch(None)

    def epoch_invariant(self, layer: str) -> bool:
        """Whether ``layer`` is the raw-input pseudo-layer (the same at every epoch)."""
        return layer == INPUT and self.inputs is not None

    def read(self, layer: str, epoch: int | None, rows: np.ndarray) -> np.ndarray:
        """Activations of ``rows`` of ``layer`` at ``epoch`` read from the store."""
        if self.epoch_invariant(layer):
            return self.inputs[rows]
        arr = self.store.activations(layer, epoch)
        if len(rows) == arr.shape[0] and np.array_equal(rows, np.arange(len(rows))):
            return np.asarray(arr[:])
        return np.asarray(arr.oindex[rows])   # reads only the chunks that hold the rows

    def predictions(self, epoch: int | None) -> np.ndarray | None:
        """The store's predicted classes at ``epoch``, or None when it has none."""
        table = self.store.sample_table(epoch)
        return np.asarray(table["prediction"], np.int64) if "prediction" in table else None


class ArraySource(ActivationSource):
    """``{layer: array [n_samples, ...]}`` in memory, with the labels (and predictions) given."""

    def __init__(self, arrays: Mapping[str, np.ndarray], labels: Any, predictions: Any = None,
                 classes: Sequence[str] | None = None, inputs: np.ndarray | None = None):
        self.where = "the arrays given"
        data = {str(k): np.asarray(v) for k, v in arrays.items()}
        if inputs is not None:
            data = {INPUT: np.asarray(inputs), **data}
        if not data:
            raise AnalysisError("No arrays given; pass {layer: array [n_samples, ...]}.")
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) != 1:
            raise AnalysisError(f"The arrays have different numbers of samples: {lengths}; one row per sample in each.")
        self.data = data
        self.layers = list(data)
        self.epochs = []
        self.n_samples = next(iter(lengths.values()))
        if labels is None:
            raise AnalysisError("Arrays need labels=[...] (one class per sample) for the subset and the scores.")
        self.labels = class_labels(labels, self.where)
        if len(self.labels) != self.n_samples:
            raise AnalysisError(f"{len(self.labels)} labels for {self.n_samples} samples; give one per sample.")
        self.index = np.arange(self.n_samples)
        self._pred = None if predictions is None else np.asarray(predictions, np.int64).reshape(-1)
        n_classes = int(self.labels.max()) + 1 if self.n_samples else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]

    def read(self, layer: str, epoch: int | None, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` of the array of ``layer`` (arrays have no epochs)."""
        return self.data[layer][rows]

    def predictions(self, epoch: int | None) -> np.ndarray | None:
        """The predictions given with the arrays, or None."""
        return self._pred


def open_source(data: Any, *, labels: Any = None, predictions: Any = None, classes: Sequence[str] | None = None,
                inputs: np.ndarray | None = None,
                by: str | Sequence | np.ndarray | None = None) -> ActivationSource:
    """An :class:`ActivationSource` for a store, a run folder, ``{layer: array}`` or one array.

    Parameters
    ----------
    data : ActivationStore, path, mapping of arrays, ndarray, or ActivationSource
    labels : array, optional
        Arrays: one class per sample (required). A store: an array here (one class per
        sample) groups by it instead of the store's labels, as ``by=`` does.
    by : str or array, optional
        A store: the sample-table column that groups (colours, stratifies) the samples
        instead of ``label`` (``"token"``, ``"position"``, ``"group"`` …). A string given as
        ``labels`` is read as ``by`` (the old spelling).
    predictions, classes : optional
        Arrays: the predicted classes and the class names.
    inputs : array, optional
        The raw inputs of the samples, read as the ``"input"`` pseudo-layer.

    Raises
    ------
    AnalysisError
        For data of another type, arrays of different lengths, or arrays without labels.
    """
    from neuralatlas.store import ActivationStore

    if isinstance(data, ActivationSource):
        return data
    if isinstance(data, (str, os.PathLike)):
        data = open_store(data, "data")
    if isinstance(data, ActivationStore):
        if by is None and isinstance(labels, str):
            by, labels = labels, None  # a string is the old spelling of by=
        if by is not None and labels is not None:
            raise AnalysisError("Both by= and labels= were given; they both say how samples are grouped."
                                " Pass one of them.")
        # an array (one class per sample) is used, not dropped for the store's own labels
        return StoreSource(data, inputs=inputs, by=by, labels=labels)
    if by is not None:
        raise AnalysisError(f"by={by!r} names a sample-table column, which arrays do not have; pass labels= "
                            "(one group per sample) with arrays.")
    if isinstance(data, Mapping):
        return ArraySource(data, labels, predictions, classes, inputs)
    if isinstance(data, np.ndarray):
        return ArraySource({"activations": data}, labels, predictions, classes, inputs)
    raise AnalysisError(
        f"Cannot read activations from a {type(data).__name__}; pass an ActivationStore, a run folder,"
        " a {layer: array} mapping (with labels=) or one array [n_samples, ...] (with labels=)."
    )


# ------------------------------------------------------------------------------ pooling
def check_pool(pool: str | None) -> str | None:
    """``pool`` when it is one of :data:`POOLS`, else an error naming the choices."""
    if pool not in POOLS:
        raise AnalysisError(f"pool={pool!r} is not known; choose None (flatten), 'mean' or 'max'"
                            " (over the spatial axes of channels-first conv maps).")
    return pool


def flatten(block: Any, pool: str | None) -> np.ndarray:
    """Rows as float32 feature vectors: flattened, or one value per channel for ``[n, C, *spatial]``."""
    return flatten_samples(np.asarray(block, np.float32), check_pool(pool))
