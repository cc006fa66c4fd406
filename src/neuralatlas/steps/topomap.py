"""The topomap step: topographic activation maps of a run for one layout method (or all, compared).

Writes ``RUN_DIR/results/topomap/<layout>/`` (:meth:`Topomaps.save`), ``quality.json`` and
``summary.json``, and ``RUN_DIR/figures/topomap/<layout>/`` (overview, per-layer layouts,
optionally one PDF per layer and group) plus ``quality_<layer>`` when layouts are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError
from neuralatlas.patterns import layer_matches
from neuralatlas.results import write_json
from neuralatlas.steps._common import (
    callable_module,
    checked_params,
    dirs,
    file_stem,
    run_store,
    save,
    write_figure_settings,
    write_summary,
)
from neuralatlas.vocabulary import Progress

NAME = "topomap"


def step(run_dir: Path, *, layout: str = "umap", contrastive: bool = False, weight_by_size: bool = False,
         zscore: bool = False, groups: Sequence[str] | None = None, by: str = "label",
         layers: Sequence[str] | None = None, seed: int = 0, resolution: int = 64,
         individual: bool = True, memory_limit: int | str | None = None, client: Any = None,
         progress: Progress = None, message: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Topographic maps of a run's NAPs; returns ``{layout: Topomaps}``.

    NAPs are read from ``results/naps`` when they cover the request, else computed and saved.
    ``individual`` also writes iNNtrospect's individual maps (one PDF per layer and group).
    """
    from neuralatlas.analysis.naps import NAPs, contrastive_naps
    from neuralatlas.analysis.naps import naps as compute_naps
    from neuralatlas.analysis.topomap import METHODS, topomaps
    from neuralatlas.plots import topomap_image, topomap_layout_quality

    methods = list(METHODS) if layout == "all" else [layout]
    if any(m not in METHODS for m in methods):
        raise AnalysisError(f"layout {layout!r} is not known; choose {', '.join(METHODS)} or all.")
    naps_dir = Path(run_dir) / "results" / "naps"
    source = NAPs.load(naps_dir) if (naps_dir / "naps.json").exists() else None
    covers = source is not None and all(any(layer_matches(x, p) for x in source.layers) for p in layers or [])
    if source is None or source.by != by or not covers:
        source = compute_naps(run_store(run_dir), by=by, layers=layers or None, memory_limit=memory_limit,
                              client=client, progress=progress)
        source.save(naps_dir)
    chosen = list(groups) if groups else None
    if contrastive:
        source = contrastive_naps(source, groups=chosen, weight_by_size=weight_by_size,
                                  normalize="zscore" if zscore else None)
        chosen = None
    results_root, figures_root = dirs(run_dir, NAME)
    found: dict[str, Any] = {}
    for method in methods:
        maps = topomaps(source, layers=layers or None, method=method, seed=seed, resolution=resolution,
                        progress=progress)
        maps.save(results_root / method)
        found[method] = maps
        figures(maps, figures_root / method, groups=chosen)
        if individual:  # iNNtrospect's individual maps: one vector file per layer and group, on request
            for layer in maps.layers:
                for group in chosen or maps.groups:
                    save(topomap_image(maps, layer, group), figures_root / method / file_stem(layer) / file_stem(group),
                         formats=("pdf",))
        for layer, why in maps.skipped.items():
            if message is not None:
                message(f"topomap skipped {layer}: {why}")
    quality = {m: maps.quality for m, maps in found.items()}
    write_json(results_root / "quality.json", quality, kind="topomap_quality")  # strict: NaN is null
    if len(methods) > 1:
        for layer in next(iter(quality.values())):
            per_method = {m: q[layer] for m, q in quality.items() if layer in q}
            save(topomap_layout_quality(per_method, title=f"{layer}: layout quality (Spearman)"),
                 figures_root / f"quality_{file_stem(layer)}")
    write_summary(results_root, summary(found, contrastive))
    write_figure_settings(results_root, groups=chosen)
    return found


def summary(found: dict[str, Any], contrastive: bool) -> dict[str, Any]:
    """What ``results/topomap/summary.json`` holds: the layouts and their quality per layer."""
    return {"contrastive": contrastive, "layouts": list(found),
            "quality": [{"layout": m, "layer": layer,
                         **{k: v if isinstance(v, str) else float(v) for k, v in q.items()}}
                        for m, maps in found.items() for layer, q in maps.quality.items()]}


def load(results_dir: Path) -> dict[str, Any]:
    """``{layout: Topomaps}`` of every layout the step saved in ``results_dir``."""
    from neuralatlas.analysis.topomap import Topomaps

    return {d.name: Topomaps.load(d) for d in sorted(Path(results_dir).iterdir())
            if d.is_dir() and any(d.iterdir())}


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None, *,
            groups: Sequence[str] | None = None) -> int:
    """The overview and per-layer layouts of one layout's :class:`Topomaps` (or of each, given a dict)."""
    from neuralatlas.plots import topomap_layout, topomap_overview

    if isinstance(result, dict):
        return sum(figures(maps, Path(figures_dir) / method, formats, groups=groups) for method, maps in result.items())
    written = save(topomap_overview(result, groups=list(groups) if groups else None),
                   Path(figures_dir) / "overview", formats, layer="all")
    for layer in result.layers:
        written += save(topomap_layout(result, layer), Path(figures_dir) / f"{file_stem(layer)}_layout", formats,
                        layer=layer)
    return written


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: SOM layout of contrastive NAPs by default, no individual maps."""
    params = {"layout": "som", "contrastive": True, "individual": False,
              "client": getattr(ctx, "client", None), **checked_params(NAME, step, params)}
    found = step(ctx.run_dir, progress=reporter.progress, message=reporter.message, **params)
    return summary(found, params["contrastive"])


def _legacy(run_dir: Path, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    found = step(run_dir, **params)
    return {m: maps.quality for m, maps in found.items()}, summary(found, params.get("contrastive", False))


callable_module(__name__, _legacy)
