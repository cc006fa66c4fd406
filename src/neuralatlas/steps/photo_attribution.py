"""The photo-attribution step (pretrained ImageNet models).

It computes saliency, integrated gradients, SmoothGrad and Grad-CAM of the predicted class on the bundled
photos, with the cascading sanity check of saliency.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.steps._common import dirs, save, unknown_params, write_summary
from neuralatlas.steps._photo import photo_model, skip
from neuralatlas.steps.attribution import captum_differences

NAME = "photo_attribution"
#: The keys of ``analyses.photo_attribution`` (checked before a run trains anything).
PARAMS = {"photos", "size", "methods", "n_steps", "smooth_draws", "sanity", "sanity_layers"}


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """``analyses.photo_attribution: {photos: [names], size, methods, n_steps, smooth_draws, sanity}``.

    Saliency, integrated gradients, SmoothGrad and Grad-CAM of the predicted class on the
    bundled photos, and (``sanity: true``) the cascading model-randomisation test of
    saliency on them.
    """
    from neuralatlas.attribution.photos import DEFAULT_METHODS, attribute_photos
    from neuralatlas.data.photos import photos

    unknown_params(NAME, params, PARAMS)
    why = photo_model(ctx)
    if why is not None:
        return skip(ctx, NAME, why, reporter)
    card = getattr(ctx.model, "card", None)
    size = int(params.get("size", getattr(card, "input_size", 224)))
    data = photos(size, names=params.get("photos", ["chelsea", "coffee", "rocket"]))
    results_dir, figures_dir = dirs(ctx.run_dir, NAME)
    t0 = time.perf_counter()
    res = attribute_photos(ctx.model, data, tuple(params.get("methods", DEFAULT_METHODS)),
                           n_steps=int(params.get("n_steps", 16)), smooth_draws=int(params.get("smooth_draws", 8)))
    res.save(results_dir)
    figures(res, figures_dir)
    summary = res.summary()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    differences = captum_differences(summary.get("methods") or [])
    if differences:  # the report shows them beside the maps
        summary["captum_differences"] = differences
    for name, top in zip(res.names, res.top, strict=True):
        reporter.message(f"{name}: " + ", ".join(f"{c} {p:.0%}" for c, p in top))
    ig = res.results.get("integrated_gradients") if hasattr(res, "results") else None
    if ig is not None and ig.summary().get("completeness_max") is not None:
        worst = float(ig.summary()["completeness_max"])
        summary["integrated_gradients_completeness_max"] = worst
        if worst > 0.05:  # the maps do not yet add up to F(x) - F(baseline): say so, never hide it
            reporter.message(f"integrated gradients on the photos: completeness error up to {worst:.0%} at"
                             f" {int(params.get('n_steps', 16))} steps; raise n_steps for maps that add up")
    if params.get("sanity", True):
        from neuralatlas.attribution import sanity_check
        t1 = time.perf_counter()
        layers = params.get("sanity_layers", ["fc", "head.conv", "blocks.12.project_conv", "blocks.4.project_conv"])
        check = sanity_check(ctx.model, data, "saliency", target="prediction", mode="cascading", layers=layers,
                             n_samples=len(data))
        check.save(results_dir / "sanity_saliency")
        figures(check, figures_dir)
        summary["sanity"] = {**check.summary(), "seconds": round(time.perf_counter() - t1, 2)}
    return write_summary(results_dir, summary)


step = run


def load(results_dir: Path) -> list[Any]:
    """The :class:`PhotoAttribution` (and the saliency sanity check, when it ran) the step saved."""
    from neuralatlas.attribution.photos import PhotoAttribution
    from neuralatlas.attribution.sanity import SanityResult

    found: list[Any] = [PhotoAttribution.load(results_dir)]  # saved into the folder itself
    found += [SanityResult.load(d) for d in sorted(Path(results_dir).glob("sanity_*")) if d.is_dir()]
    return found


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None) -> int:
    """The photo grid of a :class:`PhotoAttribution`, the curves of a :class:`SanityResult` (or each in a list)."""
    from neuralatlas.attribution.sanity import SanityResult
    from neuralatlas.plots.attribution import attribution_photo_grid, attribution_sanity_curves

    if isinstance(result, (list, tuple)):
        return sum(figures(r, figures_dir, formats) for r in result)
    if isinstance(result, SanityResult):
        return save(attribution_sanity_curves(result), Path(figures_dir) / f"sanity_{result.method}", formats)
    return save(attribution_photo_grid(result), Path(figures_dir) / "photos", formats)
