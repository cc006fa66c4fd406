"""The featurevis step: activation maximisation of a layer's units (one batch), filters, feature maps.

Writes ``RUN_DIR/results/featurevis/<objective>/`` (:class:`FeatureVisResult`),
``filters_<layer>/``, ``feature_maps_<sample>/`` and ``summary.json``, and
``RUN_DIR/figures/featurevis/`` (``<objective>_images``, ``<objective>_trace``,
``filters_<layer>``, ``feature_maps_<sample>_<layer>``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.results import safe_name
from neuralatlas.steps._common import (
    callable_module,
    checked_params,
    dirs,
    file_stem,
    save,
    write_summary,
)
from neuralatlas.vocabulary import Progress

NAME = "featurevis"


def _compute(run_dir: Path, model: Any, *, layer: str | None = None, units: Sequence[int] | None = None,
             steps: int = 256, param: str = "fourier", lr: float | None = None, seed: int = 0,
             device: str | None = None, filters: bool = False, maps: int | None = None,
             maps_layers: Sequence[str] | None = None, data: Any = None,
             progress: Progress = None, message: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    from neuralatlas.featurevis import conv_layers, feature_maps, visualize_feature
    from neuralatlas.featurevis import filters as kernels
    from neuralatlas.featurevis import objectives as O
    from neuralatlas.featurevis.taps import default_input_shape, layer_width

    model.eval()
    shape = default_input_shape(model)
    chosen = list(units) if units is not None else list(range(layer_width(model, layer, shape)))
    objective = O.class_logit(chosen) if layer is None else O.channel(layer, chosen)
    name = "logits" if layer is None else layer
    results_dir, figures_dir = dirs(run_dir, NAME)
    result = visualize_feature(model, objective, steps=steps, param=param, lr=lr, seed=seed,
                               device=device, progress=progress)
    result.save(results_dir / safe_name(name))
    figures(result, figures_dir, name=name)
    summary: dict[str, Any] = {"objective": name, "units": len(chosen),
                               "seconds": result.settings.get("seconds"), "device": result.settings.get("device"),
                               "mean_value": float(sum(map(float, result.values)) / max(1, len(result.values)))}
    if data is not None:
        from neuralatlas.featurevis.units import best_natural

        best = best_natural(model, objective, data)
        ratios = [float(v) / float(b) if b > 0 else float("nan") for v, b in zip(result.values, best, strict=True)]
        summary["ratio_to_best_natural"] = [round(r, 3) for r in ratios]
        summary["min_ratio_to_best_natural"] = round(min(ratios), 3) if ratios else None
        for label, v, b, r in zip(result.labels, result.values, best, ratios, strict=True):
            (message or print)(f"featurevis {label}: {float(v):.3g} = {r:.2f} x best natural sample ({float(b):.3g})")
    if filters:
        convs = conv_layers(model)
        if convs:
            f = kernels(model, layer if layer in convs else None)
            f.save(results_dir / f"filters_{safe_name(f.layer)}")
            figures(f, figures_dir)
            summary["filters"] = f.layer
    if maps is not None:
        fm = feature_maps(Path(run_dir), layers=maps_layers, sample=maps, data=data)
        fm.save(results_dir / f"feature_maps_{maps}")
        figures(fm, figures_dir, sample=maps)
        summary["feature_maps"] = {"sample": maps, "layers": list(fm.layers)}
    return result, write_summary(results_dir, summary)


def step(run_dir: Path, model: Any, **params: Any) -> Any:
    """Activation maximisation of ``units`` of ``layer`` (default: every class logit) as one batch.

    Optionally the layer's filters and the feature maps of sample ``maps`` from the run's store.
    Returns the :class:`FeatureVisResult`.

    With ``data``, every unit's value is also divided by the best it reaches on a real
    sample of ``data`` (``ratio_to_best_natural``; one line per unit through ``message``).
    Parameters: ``layer, units, steps, param, lr, seed, device, filters, maps, maps_layers,
    data, progress, message``.
    """
    return _compute(run_dir, model, **params)[0]


def load(results_dir: Path) -> dict[str, Any]:
    """``{folder: result}`` of every result the step saved in ``results_dir`` (images, filters, feature maps)."""
    from neuralatlas.featurevis.kernels import Filters
    from neuralatlas.featurevis.maps import FeatureMaps
    from neuralatlas.featurevis.optimize import FeatureVisResult

    found: dict[str, Any] = {}
    for d in sorted(p for p in Path(results_dir).iterdir() if p.is_dir()):
        cls = Filters if d.name.startswith("filters_") else FeatureMaps if d.name.startswith("feature_maps_") \
            else FeatureVisResult
        found[d.name] = cls.load(d)
    return found


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None, *,
            name: str | None = None, sample: int | None = None) -> int:
    """The figures of one featurevis result (or of each in :func:`load`'s dict).

    They are the images and trace (file names from ``name``, the objective: ``logits`` or the layer), the
    filter grid and the feature maps.
    """
    from neuralatlas.featurevis.kernels import Filters
    from neuralatlas.featurevis.maps import FeatureMaps
    from neuralatlas.plots import (
        featurevis_feature_maps,
        featurevis_filters,
        featurevis_images,
        featurevis_trace,
    )

    figures_dir = Path(figures_dir)
    if isinstance(result, dict):
        return sum(figures(r, figures_dir, formats, name=key) for key, r in result.items())
    if isinstance(result, Filters):
        return save(featurevis_filters(result), figures_dir / f"filters_{file_stem(result.layer)}", formats)
    if isinstance(result, FeatureMaps):
        index = sample if sample is not None else getattr(result, "sample", 0)
        return sum(
            save(featurevis_feature_maps(result, lyr), figures_dir / f"feature_maps_{index}_{file_stem(lyr)}", formats)
            for lyr in result.layers
        )
    name = name or "logits"
    return (save(featurevis_images(result), figures_dir / f"{file_stem(name)}_images", formats)
            + save(featurevis_trace(result), figures_dir / f"{file_stem(name)}_trace", formats))


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: class-logit images, and for conv models the last conv layer's channels too.

    For conv models it also draws that layer's filters and feature maps.
    """
    from neuralatlas.featurevis import conv_layers

    params = checked_params(NAME, _compute, params)
    summary: dict[str, Any] = {}
    logits_params = {k: v for k, v in params.items() if k not in ("layer", "units")}
    logits_params.setdefault("steps", 128)
    logits_params.setdefault("data", ctx.capture_data)
    summary["logits"] = _compute(ctx.run_dir, ctx.model, progress=reporter.progress, message=reporter.message,
                                 **logits_params)[1]
    convs = conv_layers(ctx.model)
    layer = params.get("layer") or (convs[-1] if convs else None)
    if layer is not None:
        channel_params = {"steps": 128, "filters": bool(convs), "maps": 0, "data": ctx.capture_data, **params,
                          "layer": layer}
        summary["channels"] = _compute(ctx.run_dir, ctx.model, progress=reporter.progress,
                                       message=reporter.message, **channel_params)[1]
    return write_summary(ctx.results_dir(NAME), summary)


callable_module(__name__, _compute)
