"""Run-folder steps: compute an analysis from a run folder, save its results and figures there.

One function per analysis, shared by the CLI command of the same name and by the pipeline
(``neuralatlas run``), so both write the same files: ``RUN_DIR/results/<analysis>/`` (arrays,
JSON, ``summary.json``) and ``RUN_DIR/figures/<analysis>/`` (PNG + PDF). Each returns the
result object and its summary (a JSON-able dict).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError, ConfigError, did_you_mean
from neuralatlas.patterns import layer_matches

Progress = Callable[[int, int], None] | None


def file_stem(name: str) -> str:
    """A layer or group name as a safe file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def run_store(run_dir: Path):
    """The store of a run folder (RUN_DIR/acts.zarr), or RUN_DIR itself when it is a store."""
    from neuralatlas.store import ActivationStore

    return ActivationStore.locate(run_dir)


def _save(fig: Any, stem: Path, formats: Sequence[str] = ("png", "pdf"), layer: str | None = None) -> int:
    """Save and close ``fig``; ``layer`` (a layer, or "all") is recorded for the report's tag."""
    import matplotlib.pyplot as plt

    from neuralatlas.plots import save_figure

    written = len(save_figure(fig, stem, formats=formats, layer=layer))
    plt.close(fig)
    return written


def _dirs(run_dir: Path, name: str) -> tuple[Path, Path]:
    results, figures = Path(run_dir) / "results" / name, Path(run_dir) / "figures" / name
    results.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    return results, figures


def _write_summary(results: Path, summary: dict[str, Any]) -> dict[str, Any]:
    from neuralatlas.results import jsonable, write_json

    # strict JSON (NaN is null); other objects as text, as before
    write_json(results / "summary.json", jsonable(summary, default=str), kind=f"{results.name}_summary")
    return summary


# ---------------------------------------------------------------------------- NAPs, topomaps
def auto_alignment(store: Any, epoch: int | None = None) -> str | None:
    """``"gradient"`` when the store has gradients of every conv (``[C, H, W]``) layer, else ``None``.

    iNNtrospect aligns conv NAPs by gradient; without gradients, or with no conv layer,
    there is nothing to align.
    """
    conv = [n for n in store.layers if len(store.unit_shape(n)) == 3]
    if conv and all(store.has_gradients(n, epoch) for n in conv):
        return "gradient"
    return None


def naps(run_dir: Path, *, by: str = "label", align: str | None = "auto",
         layers: Sequence[str] | None = None, epoch: int | None = None, figures: bool = True,
         heatmap: str = "contrastive", memory_limit: int | str | None = None, client: Any = None,
         progress: Progress = None) -> tuple[Any, dict[str, Any]]:
    """NAPs and unit statistics of a run, with heat maps, per-group maps and statistics figures.

    ``align="auto"`` (default) aligns conv layers by gradient when the store has their
    gradients (:func:`auto_alignment`). The heat maps show ``heatmap``: ``"contrastive"``
    NAPs (each group minus the mean of the others, iNNtrospect's contrast; default),
    ``"zscore"`` (the same, divided by the spread across groups) or ``"raw"`` class means,
    with units sorted by preferred group. Streamed in blocks that fit ``memory_limit``; on
    a dask cluster with ``client=``.
    """
    from neuralatlas.analysis.naps import contrastive_naps
    from neuralatlas.analysis.naps import naps as compute
    from neuralatlas.plots import nap_heatmap, nap_maps, unit_statistics_figure

    if heatmap not in ("contrastive", "zscore", "raw"):
        raise AnalysisError(f"heatmap={heatmap!r}; choose 'contrastive', 'zscore' or 'raw'.")
    store = run_store(run_dir)
    if align == "auto":
        align = auto_alignment(store, epoch)
    result = compute(store, by=by, layers=layers or None, align=align, epoch=epoch,
                     memory_limit=memory_limit, client=client, progress=progress)
    results_dir, figures_dir = _dirs(run_dir, "naps")
    result.save(results_dir)
    if figures:
        _save(unit_statistics_figure(result), figures_dir / "unit_statistics", layer="all")
        shown = result
        if heatmap != "raw" and len(result.groups) > 1:
            shown = contrastive_naps(result, normalize="zscore" if heatmap == "zscore" else None)
        for layer in result.layers:
            _save(nap_heatmap(shown, layer), figures_dir / f"{file_stem(layer)}_heatmap", layer=layer)
            if result.values(layer).ndim == 4:
                _save(nap_maps(result, layer), figures_dir / f"{file_stem(layer)}_maps", layer=layer)
    return result, result.summary()


def topomap(run_dir: Path, *, layout: str = "umap", contrastive: bool = False, weight_by_size: bool = False,
            zscore: bool = False, groups: Sequence[str] | None = None, by: str = "label",
            layers: Sequence[str] | None = None, seed: int = 0, resolution: int = 64,
            individual: bool = True, memory_limit: int | str | None = None, client: Any = None,
            progress: Progress = None, message: Callable[[str], None] | None = None,
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Topographic activation maps of a run for one layout method (or ``"all"`` to compare).

    NAPs are read from ``results/naps`` when they cover the request, else computed and saved.
    Returns ``(quality per method and layer, summary)``.
    """
    from neuralatlas.analysis.naps import NAPs, contrastive_naps
    from neuralatlas.analysis.naps import naps as compute_naps
    from neuralatlas.analysis.topomap import METHODS, topomaps
    from neuralatlas.errors import AnalysisError
    from neuralatlas.plots import layout_quality_figure, topomap_image, topomap_layout, topomap_overview

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
    quality: dict[str, Any] = {}
    results_root, figures_root = _dirs(run_dir, "topomap")
    for method in methods:
        maps = topomaps(source, layers=layers or None, method=method, seed=seed, resolution=resolution,
                        progress=progress)
        maps.save(results_root / method)
        quality[method] = maps.quality
        figures_dir = figures_root / method
        _save(topomap_overview(maps, groups=chosen), figures_dir / "overview", layer="all")
        for layer in maps.layers:
            _save(topomap_layout(maps, layer), figures_dir / f"{file_stem(layer)}_layout", layer=layer)
            if individual:
                for group in chosen or maps.groups:
                    _save(topomap_image(maps, layer, group),
                          figures_dir / file_stem(layer) / file_stem(group), formats=("pdf",))
        for layer, why in maps.skipped.items():
            if message is not None:
                message(f"topomap skipped {layer}: {why}")
    from neuralatlas.results import write_json

    write_json(results_root / "quality.json", quality, kind="topomap_quality")  # strict: NaN is null
    if len(methods) > 1:
        for layer in next(iter(quality.values())):
            per_method = {m: q[layer] for m, q in quality.items() if layer in q}
            _save(layout_quality_figure(per_method, title=f"{layer}: layout quality (Spearman)"),
                  figures_root / f"quality_{file_stem(layer)}")
    summary = {"contrastive": contrastive, "layouts": methods,
               "quality": [{"layout": m, "layer": layer,
                            **{k: v if isinstance(v, str) else float(v) for k, v in q.items()}}
                           for m, per_layer in quality.items() for layer, q in per_layer.items()]}
    return quality, _write_summary(results_root, summary)


# ---------------------------------------------------------------------------- architecture, featurevis
def architecture(run_dir: Path, model: Any, *, input_shape: Sequence[int] | None = None,
                 rankdir: str = "TB", out: Path | None = None, depth: int | str | None = None,
                 layout: str = "auto", input_dtype: str | None = None,
                 example_input: Any = None) -> tuple[Any, dict[str, Any]]:
    """The model's graph (SVG, JSON), its summary table and the layer-cost figure.

    ``depth`` (an int or ``"auto"``) and ``layout`` (``"auto"``, ``"tall"``, ``"wide"``) choose
    the drawing (see :meth:`ArchitectureGraph.view`); ``input_dtype="long"`` feeds token ids.
    A Flax or Keras model gets its layer table from a traced call (no graph drawing)."""
    from neuralatlas.capture.foreign import is_foreign

    if is_foreign(model):
        import numpy as np

        from neuralatlas.architecture.foreign import save_architecture

        if example_input is None and not input_shape:
            raise AnalysisError("The architecture of a Flax/Keras model needs input_shape or example_input.")
        example = example_input if example_input is not None else np.zeros((2, *input_shape), np.float32)
        return None, save_architecture(run_dir, model, example)
    from neuralatlas.architecture import architecture as build_graph
    from neuralatlas.architecture import dot_available
    from neuralatlas.plots import layer_costs

    graph = build_graph(model, example_input, input_shape=tuple(input_shape) if input_shape else None,
                        input_dtype=input_dtype)
    target = out or Path(run_dir) / "results" / "architecture"
    graph.save(target, depth=depth, layout=layout)
    if rankdir != "TB":
        graph.render(target / f"architecture_{rankdir}.svg", rankdir=rankdir)
    figures = Path(run_dir) / "figures" / "architecture" if out is None else target
    table = graph.summary()
    # a big model's bars per block: the drawing's depth, else the deepest with at most 40 bars
    costs_depth = depth if isinstance(depth, int) else _costs_depth(table.table)
    _save(layer_costs(table, depth=costs_depth), figures / "layer_costs")
    if dot_available():
        graph.to_png(figures / "architecture.png", rankdir=rankdir)
    frame = table.table if hasattr(table, "table") else None
    summary = {"method": graph.method, "graphviz": dot_available(),
               "layers": int(len(frame)) if frame is not None else None}
    # the table's own totals: its macs column holds containers' sums beside their leaves
    summary["total_params"] = int(table.total_params)
    summary["total_macs"] = int(table.total_macs)
    return graph, _write_summary(target, summary) if out is None else summary


def _costs_depth(frame: Any, max_bars: int = 40) -> int | None:
    """``None`` when the costly leaves fit ``max_bars`` bars, else the deepest depth that does."""
    costly = (frame.params_total > 0) | (frame.macs > 0)
    if int((frame.is_leaf & costly).sum()) <= max_bars:
        return None
    segments = frame.name.str.count(r"\.") + 1
    for d in range(int(segments.max()), 0, -1):
        frontier = (segments == d) | (frame.is_leaf & (segments < d))
        if int((frontier & costly).sum()) <= max_bars:
            return d
    return 1


def featurevis(run_dir: Path, model: Any, *, layer: str | None = None, units: Sequence[int] | None = None,
               steps: int = 256, param: str = "fourier", lr: float | None = None, seed: int = 0,
               device: str | None = None, filters: bool = False, maps: int | None = None,
               maps_layers: Sequence[str] | None = None, data: Any = None,
               progress: Progress = None, message: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Activation maximisation of ``units`` of ``layer`` (default: every class logit) as one batch;
    optionally the layer's filters and the feature maps of sample ``maps`` from the run's store.

    With ``data``, every unit's value is also divided by the best it reaches on a real
    sample of ``data`` (``ratio_to_best_natural``; one line per unit through ``message``)."""
    from neuralatlas.featurevis import conv_layers, feature_maps, visualize_feature
    from neuralatlas.featurevis import filters as kernels
    from neuralatlas.featurevis import objectives as O
    from neuralatlas.featurevis.taps import default_input_shape, layer_width
    from neuralatlas.plots import feature_map_grid, filter_grid, objective_trace, optimized_images
    from neuralatlas.results import safe_name

    model.eval()
    shape = default_input_shape(model)
    chosen = list(units) if units is not None else list(range(layer_width(model, layer, shape)))
    objective = O.class_logit(chosen) if layer is None else O.channel(layer, chosen)
    name = "logits" if layer is None else layer
    results_dir, figures_dir = _dirs(run_dir, "featurevis")
    result = visualize_feature(model, objective, steps=steps, param=param, lr=lr, seed=seed,
                               device=device, progress=progress)
    result.save(results_dir / safe_name(name))
    _save(optimized_images(result), figures_dir / f"{file_stem(name)}_images")
    _save(objective_trace(result), figures_dir / f"{file_stem(name)}_trace")
    summary: dict[str, Any] = {"objective": name, "units": len(chosen),
                               "seconds": result.settings.get("seconds"), "device": result.settings.get("device"),
                               "mean_value": float(sum(map(float, result.values)) / max(1, len(result.values)))}
    if data is not None:
        from neuralatlas.featurevis.units import best_natural

        best = best_natural(model, objective, data)
        ratios = [float(v) / float(b) if b > 0 else float("nan") for v, b in zip(result.values, best)]
        summary["ratio_to_best_natural"] = [round(r, 3) for r in ratios]
        summary["min_ratio_to_best_natural"] = round(min(ratios), 3) if ratios else None
        for label, v, b, r in zip(result.labels, result.values, best, ratios):
            (message or print)(f"featurevis {label}: {float(v):.3g} = {r:.2f} x best natural sample ({float(b):.3g})")
    if filters:
        convs = conv_layers(model)
        if convs:
            f = kernels(model, layer if layer in convs else None)
            f.save(results_dir / f"filters_{safe_name(f.layer)}")
            _save(filter_grid(f), figures_dir / f"filters_{file_stem(f.layer)}")
            summary["filters"] = f.layer
    if maps is not None:
        fm = feature_maps(Path(run_dir), layers=maps_layers, sample=maps, data=data)
        fm.save(results_dir / f"feature_maps_{maps}")
        for lyr in fm.layers:
            _save(feature_map_grid(fm, lyr), figures_dir / f"feature_maps_{maps}_{file_stem(lyr)}")
        summary["feature_maps"] = {"sample": maps, "layers": list(fm.layers)}
    return result, _write_summary(results_dir, summary)


# ---------------------------------------------------------------------------- pipeline adapters
def checked_params(analysis: str, fn: Callable[..., Any], params: dict[str, Any],
                   internal: Sequence[str] = ("run_dir", "model", "progress", "message", "data")) -> dict[str, Any]:
    """Refuse parameters a step does not take, naming the valid ones (config typos fail fast)."""
    valid = [p for p in inspect.signature(fn).parameters if p not in internal]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ConfigError(f"analyses.{analysis}: unknown parameter {unknown[0]!r}."
                          f"{did_you_mean(unknown[0], valid)} Valid: {', '.join(valid)}.")
    return dict(params)


def run_naps(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    params = checked_params("naps", naps, params)
    params.setdefault("client", getattr(ctx, "client", None))
    return naps(ctx.run_dir, progress=reporter.progress, **params)[1]


def run_topomap(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    params = {"layout": "som", "contrastive": True, "individual": False,
              "client": getattr(ctx, "client", None), **checked_params("topomap", topomap, params)}
    return topomap(ctx.run_dir, progress=reporter.progress, message=reporter.message, **params)[1]


def run_architecture(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    params = checked_params("architecture", architecture, params)
    if "input_shape" not in params and "example_input" not in params:
        data = ctx.capture_data
        if hasattr(data, "input_shape"):
            params["input_shape"] = data.input_shape
        else:  # the user's own data set: two real samples (dict inputs and token ids included)
            from neuralatlas.architecture.graph import example_from_dataset

            params["example_input"] = example_from_dataset(data)
    return architecture(ctx.run_dir, ctx.model, **params)[1]


def run_featurevis(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Class-logit images, plus (conv models) the last conv layer's channels, filters, feature maps."""
    from neuralatlas.featurevis import conv_layers

    params = checked_params("featurevis", featurevis, params)
    summary: dict[str, Any] = {}
    logits_params = {k: v for k, v in params.items() if k not in ("layer", "units")}
    logits_params.setdefault("steps", 128)
    logits_params.setdefault("data", ctx.capture_data)
    summary["logits"] = featurevis(ctx.run_dir, ctx.model, progress=reporter.progress, message=reporter.message,
                                   **logits_params)[1]
    convs = conv_layers(ctx.model)
    layer = params.get("layer") or (convs[-1] if convs else None)
    if layer is not None:
        channel_params = {"steps": 128, "filters": bool(convs), "maps": 0, "data": ctx.capture_data, **params,
                          "layer": layer}
        summary["channels"] = featurevis(ctx.run_dir, ctx.model, progress=reporter.progress,
                                         message=reporter.message, **channel_params)[1]
    return _write_summary(ctx.results_dir("featurevis"), summary)


def run_similarity(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    from neuralatlas.analysis.similarity import run_similarity as step

    return step(ctx, params, reporter)


# ---------------------------------------------------------------------------- projections
def projection(run_dir: Path, *, layers: Sequence[str] | None = None, epochs: Any = None, method: str = "tsne",
               n: int | None = None, seed: int = 0, align: bool = True, bundle: bool = True,
               neurons: Sequence[str] | None = None, discriminative: str = "both", n_jobs: int | None = None,
               memory_limit: int | str | None = None, client: Any = None,
               progress: Progress = None, message: Callable[[str], None] | None = None,
               ) -> tuple[Any, dict[str, Any]]:
    """Projections of hidden activity with the evolution figures; for each layer in ``neurons``
    also the neuron projection and its discriminative maps (trees, ANOVA F or both).

    ``n=0`` means every sample: PCA projections, neuron correlations and ANOVA scores then
    stream over the store (``memory_limit``, ``client``)."""
    from neuralatlas.analysis.discriminative import discriminative_neurons
    from neuralatlas.analysis.projection import DEFAULT_N, neuron_projection, project
    from neuralatlas.errors import AnalysisError
    from neuralatlas.plots.discriminative import compare_projections, discriminative_map, importance_agreement_plot
    from neuralatlas.plots.projection import (inter_epoch_evolution, inter_layer_evolution, neuron_map,
                                              projection_quality, projection_scatter)

    if discriminative not in ("trees", "anova", "both"):
        raise AnalysisError(f"discriminative={discriminative!r} is not known; choose trees, anova or both.")
    store = run_store(run_dir)
    n = DEFAULT_N if n is None else (None if n == 0 else n)
    streaming = dict(memory_limit=memory_limit, client=client)
    result = project(store, layers=layers or None, epochs=epochs, method=method, n=n, align=align, seed=seed,
                     n_jobs=n_jobs, progress=progress, **streaming)
    results_dir, figures_dir = _dirs(run_dir, "projection")
    result.save(results_dir)
    ep = result.epochs
    if len(result.layers) > 1:
        for e in dict.fromkeys([ep[0], ep[-1]]):
            _save(inter_layer_evolution(result, epoch=e, bundle=bundle),
                  figures_dir / f"layers_{'final' if e is None else f'epoch{e}'}", layer="all")
    if len(ep) > 1:
        for layer in result.layers:
            _save(inter_epoch_evolution(result, layer, bundle=bundle), figures_dir / f"epochs_{file_stem(layer)}", layer=layer)
    if len(result.layers) == 1 and len(ep) == 1:
        _save(projection_scatter(result), figures_dir / file_stem(result.layers[0]))
    _save(projection_quality(result), figures_dir / "quality", layer="all")
    summary = _input_baseline(result.summary(), store, result.layers)
    methods = ["trees", "anova"] if discriminative == "both" else [discriminative]
    for layer in neurons or []:
        nproj = neuron_projection(store, layer, method=method, n=n, seed=seed, n_jobs=n_jobs, **streaming)
        nproj.save(results_dir / "neurons")
        found = {}
        for how in methods:
            found[how] = discriminative_neurons(store, layer, method=how, n_samples=n, seed=seed,
                                                n_jobs=-1 if n_jobs is None else n_jobs,
                                                **(streaming if how == "anova" else {}))
            found[how].save(results_dir / "neurons" / f"discriminative_{file_stem(layer)}_{how}")
        stem = file_stem(nproj.layer)
        _save(neuron_map(nproj, discriminative=found[methods[0]]), figures_dir / f"neurons_{stem}")
        for how, imp in found.items():
            _save(compare_projections(nproj, imp), figures_dir / f"compare_{stem}_{how}")
            _save(discriminative_map(nproj, imp), figures_dir / f"discriminative_{stem}_{how}")
        if len(found) == 2:
            agreement = found["trees"].agreement(found["anova"])
            _save(importance_agreement_plot(agreement), figures_dir / f"agreement_{stem}")
            summary.setdefault("neurons", {})[nproj.layer] = {
                "trees_vs_anova_spearman_mean": float(agreement.mean()),
                "trees_vs_anova_spearman_min": float(agreement.min())}
            if message is not None:
                message(f"{nproj.layer}: trees vs anova importances, Spearman per class"
                        f" {agreement.min():.2f}–{agreement.max():.2f} (mean {agreement.mean():.2f})")
    return result, _write_summary(results_dir, summary)


# Layers that only reshape the input (a leading flatten) are the raw input seen again.
_INPUT_VIEWS = ("Flatten", "Identity", "Unflatten", "Dropout", "Reshape")


def input_views(store: Any, layers: Sequence[str]) -> list[str]:
    """The leading layers that are the raw input seen again: identical activations at the
    first and last captured epoch, or (one epoch) a reshaping layer type before any other."""
    import numpy as np

    epochs = list(store.epochs)
    types = store.attrs.get("layer_types", {})
    views = []
    for layer in layers:
        if len(epochs) > 1:
            try:
                a = np.asarray(store.activations(layer, epochs[0])[:64])
                b = np.asarray(store.activations(layer, epochs[-1])[:64])
            except Exception:  # noqa: BLE001 - a layer not captured per epoch is no input view
                break
            if not np.array_equal(a, b):
                break
        elif types.get(layer) not in _INPUT_VIEWS:
            break
        views.append(layer)
    return views


def _input_baseline(summary: dict[str, Any], store: Any, layers: Sequence[str]) -> dict[str, Any]:
    """The summary's "best" layer among learned layers; the raw input's score as "input_baseline"."""
    views = input_views(store, layers)
    scores = [s for s in summary.get("scores", []) if isinstance(s.get("neighborhood_hit"), (int, float))]
    if not views or not scores:
        return summary
    learned = [s for s in scores if s["layer"] not in views]
    base = [s for s in scores if s["layer"] in views]
    if learned:
        best = max(learned, key=lambda s: s["neighborhood_hit"])
        summary["best"] = {"layer": best["layer"], "epoch": best.get("epoch"),
                           "neighborhood_hit": best["neighborhood_hit"]}
    top = max(base, key=lambda s: s["neighborhood_hit"])
    summary["input_baseline"] = {"layer": top["layer"], "neighborhood_hit": top["neighborhood_hit"],
                                 "note": "the raw input (reshaped), a baseline rather than a learned layer"}
    return summary


def run_projection(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Every layer over every epoch; the neurons of the last hidden layer by default.

    ``epochs`` takes what :func:`neuralatlas.project` takes, and ``"first-middle-last"``.
    """
    params = checked_params("projection", projection, params)
    if "neurons" not in params:
        store = ctx.store
        hidden = [name for name in store.layers[:-1] if len(store.unit_shape(name)) in (1, 3)]
        params["neurons"] = hidden[-1:]
    # every epoch of a per-epoch store; a store of the final model only (capture.per_epoch:
    # false, or a loaded checkpoint) has none, and the default follows rather than aborting
    params.setdefault("epochs", "all" if ctx.store.epochs else None)
    if params["epochs"] == "first-middle-last":
        epochs = ctx.store.epochs
        params["epochs"] = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]}) if epochs else None
    params.setdefault("client", getattr(ctx, "client", None))
    return projection(ctx.run_dir, progress=reporter.progress, message=reporter.message, **params)[1]


# ---------------------------------------------------------------------------- attribution, adversarial
_RUN_DATA = ("run_dir", "data", "data_path", "split", "progress")


def run_attribution(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Attribution maps of the captured split with sanity checks and deletion/insertion curves."""
    from neuralatlas.attribution.runfolder import attribute_run

    from neuralatlas.featurevis import conv_layers

    params = checked_params("attribution", attribute_run, params, internal=_RUN_DATA)
    params.setdefault("samples", ctx.run.capture.n)
    if "methods" not in params:  # Grad-CAM needs a conv layer
        convs = conv_layers(ctx.model)
        params["methods"] = ["saliency", "integrated_gradients"] + (["grad_cam"] if convs else ["gradient_x_input"])
    # the data the run loaded (its own loader, options, tokenizer) and the model it built or
    # loaded (a Hugging Face folder cannot be rebuilt from the run folder)
    return attribute_run(ctx.run_dir, data=ctx.data, split=ctx.capture_config.split, model=ctx.model,
                         progress=reporter.progress, **params)


def run_adversarial(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """FGSM/PGD success against eps, and a store of clean and adversarial activations."""
    from neuralatlas.adversarial.runfolder import attack_run

    params = checked_params("adversarial", attack_run, params, internal=_RUN_DATA)
    params.setdefault("samples", ctx.run.capture.n)
    return attack_run(ctx.run_dir, data=ctx.run.data.name, data_path=ctx.run.data.path,
                      split=ctx.run.capture.split, progress=reporter.progress, **params)


# ---------------------------------------------------------------------------- validation up front
def validate_params(analysis: str, params: dict[str, Any]) -> None:
    """The parameter check of a pipeline analysis on its own, so a run refuses a typo in any
    analysis before training or capturing (the same check its ``run_*`` step makes).

    Analyses registered as plain callables (not a step of this module) are not checked here.

    Raises
    ------
    ConfigError
    """
    if analysis == "similarity":
        from neuralatlas.analysis.similarity import _STEP_PARAMS

        unknown = sorted(set(params) - _STEP_PARAMS)
        if unknown:
            raise ConfigError(f"analyses.similarity: unknown parameter {unknown[0]!r}."
                              f"{did_you_mean(unknown[0], _STEP_PARAMS)} Valid: {', '.join(sorted(_STEP_PARAMS))}.")
        return
    if analysis in ("attribution", "adversarial"):
        if analysis == "attribution":
            from neuralatlas.attribution.runfolder import attribute_run as fn
        else:
            from neuralatlas.adversarial.runfolder import attack_run as fn
        checked_params(analysis, fn, params, internal=_RUN_DATA)
        return
    fn = {"naps": naps, "topomap": topomap, "architecture": architecture, "featurevis": featurevis,
          "projection": projection}.get(analysis)
    if fn is not None:
        checked_params(analysis, fn, params)
