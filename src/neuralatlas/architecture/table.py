"""The summary table (like torchinfo): output shapes, parameters and MACs per layer."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from neuralatlas.results import Result

if TYPE_CHECKING:
    from neuralatlas.architecture.graph import ArchitectureGraph

COLUMNS = ["name", "type", "depth", "parent", "is_leaf", "output_shape", "calls", "params",
           "params_total", "trainable", "macs"]


def format_shape(shape: Any) -> str:
    """``(16, 8, 8)`` → ``[16, 8, 8]``; several outputs joined; ``-`` when unknown."""
    if shape is None:
        return "-"
    if isinstance(shape, tuple):
        return "[" + ", ".join(str(s) for s in shape) + "]"
    if isinstance(shape, list):
        return ", ".join(format_shape(s) for s in shape)
    return str(shape)


def _count(n: int) -> str:
    return f"{n:,}" if n else "--"


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


class ModelSummary(Result, dict):
    """Per-layer output shapes, parameters and multiply-accumulates.

    ``str(summary)`` is the text table; :attr:`table` (also :meth:`to_frame`) the DataFrame.
    As a dict it holds the headline numbers (model type, totals, input shape, rows): it is
    what :meth:`ArchitectureGraph.summary` returns, so that summary is strict JSON as the
    result protocol asks, and still the torchinfo-like table people print.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per named module in ``named_modules()`` order, with the columns of
        :data:`COLUMNS`: ``params`` are the module's own parameters (the column sums to the
        total), ``params_total`` include its children, ``macs`` are per sample (containers:
        the sum of their leaves; a shared module: all its calls).
    total_params, trainable_params : int
    total_macs : int
        Multiply-accumulates of one forward pass, per sample.
    input_shape : shape of one input sample
    model_type : str
    """

    kind = "model_summary"
    # the per-layer table is data here, so it hides the mixin's deprecated table() alias of to_frame()
    table: pd.DataFrame  # type: ignore[assignment]

    def __init__(self, table: pd.DataFrame, total_params: int, trainable_params: int, total_macs: int,
                 input_shape: Any = None, model_type: str = ""):
        self.table = table
        self.total_params, self.trainable_params, self.total_macs = total_params, trainable_params, total_macs
        self.input_shape, self.model_type = input_shape, model_type
        dict.__init__(self, model_type=model_type, total_params=int(total_params),
                      trainable_params=int(trainable_params), total_macs=int(total_macs),
                      input_shape=format_shape(input_shape), layers=int(len(table)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSummary) and self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    def summary(self) -> dict[str, Any]:
        """The headline numbers (this dict, as a plain dict)."""
        return dict(self)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model_summary.json`` (totals and every row) and ``summary.txt`` into ``directory``; return it."""
        from neuralatlas.architecture.nodes import _shape_json

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        rows = [{**r, "output_shape": _shape_json(r["output_shape"])} for r in self.table.to_dict(orient="records")]
        self.write_json(d / "model_summary.json", {
            "summary": self.summary(), "columns": list(self.table.columns), "rows": rows,
            "total_params": self.total_params, "trainable_params": self.trainable_params,
            "total_macs": self.total_macs, "input_shape": _shape_json(self.input_shape),
            "model_type": self.model_type})
        (d / "summary.txt").write_text(str(self) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ModelSummary:
        """Read what :meth:`save` wrote."""
        from neuralatlas.architecture.nodes import _unjson

        meta = cls.read_json(cls._required(directory, "model_summary.json", what="model summary",
                                           fix="write one with summary(model).save(dir)"))
        rows = [{**r, "output_shape": _unjson(r["output_shape"])} for r in meta["rows"]]
        table = pd.DataFrame(rows, columns=meta["columns"])
        return cls(table, meta["total_params"], meta["trainable_params"], meta["total_macs"],
                   _unjson(meta["input_shape"]), meta["model_type"])

    @classmethod
    def from_graph(cls, graph: ArchitectureGraph, depth: int | None = None,
                   repeats: bool = False) -> ModelSummary:
        """The table of ``graph``; ``depth`` and ``repeats`` as :meth:`ArchitectureGraph.summary`."""
        table = pd.DataFrame(graph.modules, columns=COLUMNS)
        if repeats:
            from neuralatlas.architecture.collapse import _inside, _span, repeated_runs

            runs = repeated_runs(graph)
            hidden = [b for run in runs for b in run[1:]]
            keep = [not any(_inside(n, b) for b in hidden) for n in table.name]
            counts = {run[0]: len(run) for run in runs}
            table = table[keep].reset_index(drop=True)
            table["repeat"] = [counts.get(n, 1) for n in table.name]
            spans = {run[0]: _span(run) for run in runs}
            table["name"] = [spans.get(n, n) for n in table.name]
        if depth is not None:
            if int(depth) < 1:
                from neuralatlas.errors import AnalysisError

                raise AnalysisError(f"depth={depth!r}; pass an int >= 1 (1: top-level modules only).")
            table = table[table.depth < int(depth)].reset_index(drop=True)
        macs = (int(graph.total_macs) if graph.total_macs is not None  # graphs saved before it existed:
                else int(sum(r["macs"] for r in graph.modules if r["is_leaf"])))
        return cls(table, graph.total_params, graph.trainable_params, macs, graph.input_shape,
                   graph.model_type)

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame (a copy)."""
        return self.table.copy()

    def __str__(self) -> str:
        rows = [("Layer (type)", "Output shape", "Param #", "MACs")]
        for r in self.table.itertuples(index=False):
            indent = "  " * int(r.depth)
            shared = f" x{r.calls}" if r.calls > 1 else ""
            if int(getattr(r, "repeat", 1)) > 1:
                shared += f" ×{int(r.repeat)} (per block)"
            params = r.params if r.is_leaf else r.params_total
            rows.append((f"{indent}{r.name} ({r.type}){shared}", format_shape(r.output_shape),
                         _count(int(params)), _count(int(r.macs))))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        line = "=" * (sum(widths) + 6)

        def fmt(row: tuple[str, ...]) -> str:
            return (f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}"
                    f"  {row[3]:>{widths[3]}}")

        body = [line, fmt(rows[0]), line, *(fmt(r) for r in rows[1:]), line]
        body += [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Multiply-accumulates per sample: {self.total_macs:,} ({_human(self.total_macs)})",
            f"Input shape (one sample): {format_shape(self.input_shape)}",
            f"Params size: {self.total_params * 4 / 2**20:.2f} MB (float32)",
            line,
        ]
        return "\n".join(body)

    def _repr_html_(self) -> str:
        frame = self.table.assign(output_shape=self.table.output_shape.map(format_shape))
        return (frame.to_html(index=False, escape=True)  # layer names may hold any text
                + f"<p>{html.escape(self.model_type)}: {self.total_params:,} parameters,"
                f" {self.total_macs:,} MACs per sample</p>")

    def __repr__(self) -> str:
        return str(self)
