"""The architecture step: the model's graph (SVG, JSON), its summary table and the layer-cost figure.

Writes ``RUN_DIR/results/architecture/`` (graph, summary table, ``summary.json``) and
``RUN_DIR/figures/architecture/`` (``architecture_costs``, and ``architecture.png`` with Graphviz).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError
from neuralatlas.steps._common import (
    callable_module,
    checked_params,
    save,
    write_summary,
)

NAME = "architecture"


def _compute(run_dir: Path, model: Any, *, input_shape: Sequence[int] | None = None,
             rankdir: str = "TB", out: Path | None = None, depth: int | str | None = None,
             layout: str = "auto", input_dtype: str | None = None,
             example_input: Any = None) -> tuple[Any, dict[str, Any]]:
    from neuralatlas.capture.foreign import is_foreign

    if is_foreign(model):
        import numpy as np

        from neuralatlas.architecture.foreign import foreign_summary, save_architecture

        if example_input is None and not input_shape:
            raise AnalysisError("The architecture of a Flax/Keras model needs input_shape or example_input.")
        example = example_input if example_input is not None else np.zeros((2, *(input_shape or ())), np.float32)
        summary = save_architecture(run_dir, model, example)
        save(
            _layer_costs_figure(foreign_summary(model, example), None), Path(run_dir) / "figures" / NAME / "layer_costs"
        )
        return None, write_summary(Path(run_dir) / "results" / NAME, summary)
    from neuralatlas.architecture import architecture as build_graph
    from neuralatlas.architecture import dot_available

    graph = build_graph(model, example_input, input_shape=tuple(input_shape) if input_shape else None,
                        input_dtype=input_dtype)
    target = out or Path(run_dir) / "results" / NAME
    graph.save(target, depth=depth, layout=layout)
    if rankdir != "TB":
        graph.render(target / f"architecture_{rankdir}.svg", rankdir=rankdir)
    figures_dir = Path(run_dir) / "figures" / NAME if out is None else target
    table = graph.summary()
    # a big model's bars per block: the drawing's depth, else the deepest with at most 40 bars
    save(_layer_costs_figure(table, depth), figures_dir / "layer_costs")
    if dot_available():
        graph.to_png(figures_dir / "architecture.png", rankdir=rankdir)
    frame = table.table if hasattr(table, "table") else None
    summary = {"method": graph.method, "graphviz": dot_available(),
               "layers": len(frame) if frame is not None else None,
               # the table's own totals: its macs column holds containers' sums beside their leaves
               "total_params": int(table.total_params), "total_macs": int(table.total_macs)}
    return graph, write_summary(target, summary) if out is None else summary


def step(run_dir: Path, model: Any, **params: Any) -> Any:
    """The model's graph and tables saved into the run folder.

    Returns the :class:`ArchitectureGraph` (``None`` for a Flax or Keras model, whose layer
    table comes from a traced call, no graph).

    Parameters are those of :func:`_compute`: ``input_shape``, ``rankdir`` (``"TB"``/``"LR"``),
    ``out`` (another folder), ``depth`` (an int or ``"auto"``) and ``layout`` (``"auto"``,
    ``"tall"``, ``"wide"``; see :meth:`ArchitectureGraph.view`), ``input_dtype`` (``"long"``
    feeds token ids) and ``example_input``.
    """
    return _compute(run_dir, model, **params)[0]


def _layer_costs_figure(table: Any, depth: int | str | None) -> Any:
    from neuralatlas.plots import architecture_costs

    frame = getattr(table, "table", None)
    costs_depth = depth if isinstance(depth, int) else (_costs_depth(frame) if frame is not None else None)
    return architecture_costs(table, depth=costs_depth)


def _costs_depth(frame: Any, max_bars: int = 40) -> int | None:
    """``None`` when the costly leaves fit ``max_bars`` bars, else the deepest depth that does."""
    if not {"params_total", "macs", "is_leaf", "name"} <= set(getattr(frame, "columns", ())):
        return None
    costly = (frame.params_total > 0) | (frame.macs > 0)
    if int((frame.is_leaf & costly).sum()) <= max_bars:
        return None
    segments = frame.name.str.count(r"\.") + 1
    for d in range(int(segments.max()), 0, -1):
        frontier = (segments == d) | (frame.is_leaf & (segments < d))
        if int((frontier & costly).sum()) <= max_bars:
            return d
    return 1


def load(results_dir: Path) -> Any:
    """The :class:`ArchitectureGraph` the step saved (``graph.json``; a Flax/Keras run has none)."""
    from neuralatlas.architecture.graph import ArchitectureGraph

    if not (Path(results_dir) / "graph.json").is_file():
        raise FileNotFoundError(f"{results_dir} holds no graph.json (a Flax/Keras model's table has no graph)")
    return ArchitectureGraph.load(results_dir)


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None) -> int:
    """The layer-cost figure of a :class:`ModelSummary` (or of an :class:`ArchitectureGraph`'s)."""
    table = result.summary() if hasattr(result, "to_png") else result
    return save(_layer_costs_figure(table, None), Path(figures_dir) / "layer_costs", formats)


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: the input shape (or two real samples) from the run's data."""
    params = checked_params(NAME, _compute, params)
    if "input_shape" not in params and "example_input" not in params:
        data = ctx.capture_data
        if hasattr(data, "input_shape"):
            params["input_shape"] = data.input_shape
        else:  # the user's own data set: two real samples (dict inputs and token ids included)
            from neuralatlas.architecture.graph import example_from_dataset

            params["example_input"] = example_from_dataset(data)
    return _compute(ctx.run_dir, ctx.model, **params)[1]


callable_module(__name__, _compute)
