"""Turn an analysis' ``summary.json`` into a table, the same way for HTML and LaTeX.

Summaries are nested JSON of any shape. They are flattened into ``(key path, scalar)``
records; when every record names a layer of the model (``{"fc1": {"hit": 0.9}}``,
``{"neighborhood_hit": {"fc1": [0.8, 0.9]}}``), the table is pivoted to one row per layer,
so "neighbourhood hit per layer and epoch" reads as a layer × epoch grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Lists of scalars up to this length are spread into one column per element (per epoch,
# per class); longer ones are summarised so a table never grows without bound.
MAX_LIST = 24
# A pivot wider than this reads worse than the long form (layer, key, value).
MAX_COLUMNS = 14

Scalar = int | float | str | bool | None


@dataclass
class Table:
    """A rectangular table: column names, rows of cells, and the layer each row is about."""

    columns: list[str]
    rows: list[list[Scalar]]
    row_layers: list[str | None] = field(default_factory=list)
    title: str = ""

    def __post_init__(self) -> None:
        if not self.row_layers:
            self.row_layers = [None] * len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


# Column names of summary tables, as a reader would write them.
_WORDS = {"neighborhood_hit": "neighbourhood hit", "dead_fraction": "dead fraction",
          "always_on_fraction": "always on", "cka": "CKA", "rbf": "RBF", "rsa": "RSA", "auc": "AUC",
          "eps": "ε", "macs": "MACs", "n": "n"}


def readable_columns(columns: list[str], keep: Iterable[str] = ()) -> list[str]:
    """``layers · dead_fraction`` → ``dead fraction``: the last part of each key path, in words.

    A longer part of the path only where the last parts alone would repeat. Names in ``keep``
    (the model's layers) stay as they are: ``relu_fc1`` is a name, not two words.

    Example
    -------
    >>> readable_columns(["layer", "layers · dead_fraction", "layers · sparsity"])
    ['layer', 'dead fraction', 'sparsity']
    """
    parts = [[p.strip() for p in str(c).split("·")] for c in columns]

    kept = set(keep)

    def words(p: str) -> str:
        return p if p in kept else _WORDS.get(p, p.replace("_", " "))

    last = [words(p[-1]) for p in parts]
    return [f"{words(p[-2])}: {name}" if last.count(name) > 1 and len(p) > 1 else name
            for p, name in zip(parts, last, strict=True)]


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Scalar]]:
    """Nested dicts and lists as ``(path, scalar)`` records, in document order.

    Example
    -------
    >>> flatten({"fc1": {"hit": [0.5, 0.75]}, "k": 6})
    [(('fc1', 'hit', '0'), 0.5), (('fc1', 'hit', '1'), 0.75), (('k',), 6)]
    """
    if isinstance(value, Mapping):
        out: list[tuple[tuple[str, ...], Scalar]] = []
        for key, item in value.items():
            out.extend(flatten(item, (*prefix, str(key))))
        return out
    if isinstance(value, (list, tuple)):
        scalars = all(v is None or isinstance(v, (int, float, str, bool)) for v in value)
        if scalars and value and not any(isinstance(v, float) for v in value):
            # names, epochs, counts: one readable cell ("fc1, fc2"), not a column each
            return [(prefix, ", ".join("–" if v is None else str(v) for v in value))]
        if scalars and len(value) > MAX_LIST:
            numbers = [float(v) for v in value if is_number(v)]
            text = (f"{len(value)} values, {min(numbers):.4g} … {max(numbers):.4g}" if numbers
                    else f"{len(value)} values")
            return [(prefix, text)]
        out = []
        for i, item in enumerate(value):
            out.extend(flatten(item, (*prefix, str(i))))
        return out
    if isinstance(value, float) and not math.isfinite(value):
        return [(prefix, value)]
    if value is None or isinstance(value, (int, float, str, bool)):
        return [(prefix, value)]
    return [(prefix, str(value))]


def layer_in(path: Sequence[str], layers: Iterable[str]) -> int | None:
    """Position in ``path`` of the first element that names a layer, or None."""
    names = set(layers)
    for i, part in enumerate(path):
        if part in names:
            return i
    return None


#: Summary keys that hold prose, shown beside a block (``sections``) rather than as table rows.
PROSE_KEYS = frozenset({"captum_differences"})


def summary_table(summary: Mapping[str, Any], layers: Sequence[str] = (), title: str = "") -> list[Table]:
    """The tables that show ``summary``: a layer pivot when the data allow it, else key/value.

    Parameters
    ----------
    summary : mapping
        The parsed ``summary.json``.
    layers : sequence of str
        The model's layer names (store order); rows are tagged and ordered by them.
    title : str
        Caption of the tables.

    Returns
    -------
    list of Table
        At most two: the per-layer pivot (if any record names a layer) and the key/value
        table of the remaining records.

    Example
    -------
    >>> t = summary_table({"hit": {"fc1": [0.5, 0.7], "fc2": [0.6, 0.9]}}, ["fc1", "fc2"])[0]
    >>> t.columns, t.rows[1]
    (['layer', 'hit · 0', 'hit · 1'], ['fc2', 0.6, 0.9])
    """
    summary = {k: v for k, v in summary.items() if k not in PROSE_KEYS}  # HTML and LaTeX alike
    tables = [t for key, recs in _record_lists(summary) for t in records_tables(recs, layers, _join(title, key))]
    records = flatten(_without_record_lists(summary))
    layered: list[tuple[str, tuple[str, ...], Scalar]] = []
    plain: list[tuple[tuple[str, ...], Scalar]] = []
    for path, value in records:
        at = layer_in(path, layers)
        if at is None:
            plain.append((path, value))
        else:
            layered.append((path[at], path[:at] + path[at + 1:], value))
    if layered:
        tables.append(_pivot(layered, layers, title))
    if plain:
        tables.append(Table(["key", "value"], [[" · ".join(p) or "value", v] for p, v in plain],
                            title=title))
    return tables


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _record_lists(summary: Any, prefix: str = "") -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Top-level (or once nested) lists of dicts, e.g. ``"scores": [{"layer", "epoch", ...}]``."""
    found = []
    if isinstance(summary, Mapping):
        for key, value in summary.items():
            name = _join(prefix, str(key), sep=" · ")
            if _is_records(value):
                found.append((name, value))
            elif isinstance(value, Mapping) and not prefix:
                found.extend(_record_lists(value, name))
    return found


def _without_record_lists(summary: Any, depth: int = 0) -> Any:
    if not isinstance(summary, Mapping) or depth > 1:
        return summary
    return {k: _without_record_lists(v, depth + 1) for k, v in summary.items() if not _is_records(v)}


def _join(a: str, b: str, sep: str = ": ") -> str:
    return f"{a}{sep}{b}" if a and b else (a or b)


def records_tables(records: Sequence[Mapping[str, Any]], layers: Sequence[str] = (), title: str = "") -> list[Table]:
    """Tables of a list of records (``[{"layer": "fc1", "epoch": 0, "neighborhood_hit": 0.8}, ...]``).

    With ``layer`` and several ``epoch`` values, each numeric column becomes its own
    layer × epoch grid (rows: layers in model order, columns: epochs); otherwise one table
    of the records as they are.

    Example
    -------
    >>> recs = [{"layer": "a", "epoch": e, "hit": e / 10} for e in (0, 1)]
    >>> t = records_tables(recs, ["a"])[0]
    >>> t.columns, t.rows
    (['layer', 'epoch 0', 'epoch 1'], [['a', 0.0, 0.1]])
    """
    columns = list(dict.fromkeys(k for r in records for k in r))
    rows_flat = [{k: _scalar(r.get(k)) for k in columns} for r in records]
    epochs = list(dict.fromkeys(r.get("epoch") for r in rows_flat)) if "epoch" in columns else []
    if "layer" in columns and len(epochs) > 1 and len(epochs) <= MAX_COLUMNS:
        metrics = [c for c in columns if c not in ("layer", "epoch")
                   and all(is_number(r[c]) or r[c] is None for r in rows_flat)]
        order = {name: i for i, name in enumerate(layers)}
        names = sorted(dict.fromkeys(str(r["layer"]) for r in rows_flat), key=lambda n: order.get(n, 1 << 30))
        epochs.sort(key=lambda e: (e is None, e if isinstance(e, (int, float)) else 0))
        tables = []
        once: dict[Any, list[tuple[str, dict[tuple[str, Any], Scalar]]]] = {}
        for metric in metrics:
            cells = {(str(r["layer"]), r.get("epoch")): r[metric] for r in rows_flat}
            have = [e for e in epochs if any(cells.get((name, e)) is not None for name in names)]
            if len(have) == 1:  # e.g. the spread over seeds, of the last epoch only: no grid of dashes
                once.setdefault(have[0], []).append((metric, cells))
                continue
            heads = ["epoch " + ("final" if e is None else str(e)) for e in epochs]
            body = [[name, *(cells.get((name, e)) for e in epochs)] for name in names]
            tables.append(Table(["layer", *heads], body, list(names), _join(title, metric.replace("_", " "))))
        for e, items in once.items():  # the metrics of one epoch side by side, one table
            body = [[name, *(cells.get((name, e)) for _, cells in items)] for name in names]
            at = "final model" if e is None else f"epoch {e}"
            tables.append(Table(["layer", *(m for m, _ in items)], body, list(names),
                                _join(title, f"{', '.join(m.replace('_', ' ') for m, _ in items)} ({at} only)")))
        if tables:
            return tables
    row_layers = [str(r["layer"]) if "layer" in r and r["layer"] is not None else None for r in rows_flat]
    return [Table(columns, [[r[c] for c in columns] for r in rows_flat], row_layers, title)]


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    records = flatten(value)
    return "; ".join(f"{' · '.join(p)}={format_number(v)}" for p, v in records)


def _pivot(records: list[tuple[str, tuple[str, ...], Scalar]], layers: Sequence[str], title: str) -> Table:
    columns = list(dict.fromkeys(" · ".join(rest) or "value" for _, rest, _ in records))
    order = {name: i for i, name in enumerate(layers)}
    row_names = sorted(dict.fromkeys(layer for layer, _, _ in records), key=lambda n: order.get(n, 1 << 30))
    if len(columns) > MAX_COLUMNS:
        rows = [[layer, " · ".join(rest) or "value", value] for layer, rest, value in records]
        rows.sort(key=lambda r: order.get(str(r[0]), 1 << 30))
        return Table(["layer", "key", "value"], rows, [str(r[0]) for r in rows], title)
    cells: dict[tuple[str, str], Scalar] = {}
    for layer, rest, value in records:
        cells[(layer, " · ".join(rest) or "value")] = value
    rows = [[layer, *(cells.get((layer, c)) for c in columns)] for layer in row_names]
    return Table(["layer", *columns], rows, list(row_names), title)


def format_number(value: Scalar) -> str:
    """A cell as text: integers exactly, floats to 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)
