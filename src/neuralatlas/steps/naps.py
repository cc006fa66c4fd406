"""The NAPs step: NAPs and unit statistics of a run, with heat maps, per-group maps and statistics figures.

Writes ``RUN_DIR/results/naps/`` (:meth:`neuralatlas.analysis.naps.NAPs.save`) and
``RUN_DIR/figures/naps/`` (``unit_statistics``, ``<layer>_heatmap``, ``<layer>_maps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError
from neuralatlas.steps._common import (
    callable_module,
    checked_params,
    dirs,
    file_stem,
    run_store,
    save,
    write_figure_settings,
)
from neuralatlas.vocabulary import Progress

NAME = "naps"
HEATMAPS = ("contrastive", "zscore", "raw")


def auto_alignment(store: Any, epoch: int | None = None) -> str | None:
    """``"gradient"`` when the store has gradients of every conv (``[C, H, W]``) layer, else ``None``.

    iNNtrospect aligns conv NAPs by gradient; without gradients, or with no conv layer,
    there is nothing to align.
    """
    conv = [n for n in store.layers if len(store.unit_shape(n)) == 3]
    if conv and all(store.has_gradients(n, epoch) for n in conv):
        return "gradient"
    return None


def step(run_dir: Path, *, by: str = "label", align: str | None = "auto",
         layers: Sequence[str] | None = None, epoch: int | None = None, figures: bool = True,
         heatmap: str = "contrastive", memory_limit: int | str | None = None, client: Any = None,
         progress: Progress = None) -> Any:
    """NAPs and unit statistics of a run, saved with their figures; returns the :class:`NAPs`.

    ``align="auto"`` (default) aligns conv layers by gradient when the store has their
    gradients (:func:`auto_alignment`). The heat maps show ``heatmap``: ``"contrastive"``
    NAPs (each group minus the mean of the others, iNNtrospect's contrast; default),
    ``"zscore"`` (the same, divided by the spread across groups) or ``"raw"`` class means,
    with units sorted by preferred group. Streamed in blocks that fit ``memory_limit``; on
    a dask cluster with ``client=``.
    """
    from neuralatlas.analysis.naps import naps as compute

    if heatmap not in HEATMAPS:
        raise AnalysisError(f"heatmap={heatmap!r}; choose 'contrastive', 'zscore' or 'raw'.")
    store = run_store(run_dir)
    if align == "auto":
        align = auto_alignment(store, epoch)
    result = compute(store, by=by, layers=layers or None, align=align, epoch=epoch,
                     memory_limit=memory_limit, client=client, progress=progress)
    results_dir, figures_dir = dirs(run_dir, NAME)
    result.save(results_dir)
    write_figure_settings(results_dir, heatmap=heatmap)
    if figures:
        draw(result, figures_dir, heatmap=heatmap)
    return result


def load(results_dir: Path) -> Any:
    """The :class:`NAPs` the step saved in ``results_dir``."""
    from neuralatlas.analysis.naps import NAPs

    return NAPs.load(results_dir)


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None, *,
            heatmap: str = "contrastive") -> int:
    """Every figure of a NAPs result into ``figures_dir``; returns the number of files written."""
    from neuralatlas.analysis.naps import contrastive_naps
    from neuralatlas.plots import naps_heatmap, naps_maps, naps_unit_statistics

    written = save(naps_unit_statistics(result), Path(figures_dir) / "unit_statistics", formats, layer="all")
    shown = result
    if heatmap != "raw" and len(result.groups) > 1:
        shown = contrastive_naps(result, normalize="zscore" if heatmap == "zscore" else None)
    for layer in result.layers:
        written += save(naps_heatmap(shown, layer), Path(figures_dir) / f"{file_stem(layer)}_heatmap", formats,
                        layer=layer)
        if result.values(layer).ndim == 4:
            written += save(naps_maps(result, layer), Path(figures_dir) / f"{file_stem(layer)}_maps", formats,
                            layer=layer)
    return written


draw = figures  # inside step(), ``figures`` is the keyword that turns the figures off


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: ``analyses.naps`` of one model; returns the summary."""
    params = checked_params(NAME, step, params)
    params.setdefault("client", getattr(ctx, "client", None))
    return step(ctx.run_dir, progress=reporter.progress, **params).summary()


def _legacy(run_dir: Path, **params: Any) -> tuple[Any, dict[str, Any]]:
    result = step(run_dir, **params)
    return result, result.summary()


callable_module(__name__, _legacy)
