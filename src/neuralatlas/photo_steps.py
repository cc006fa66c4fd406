"""Pipeline steps for a pretrained ImageNet model: unit cards, attribution on photos, DeepDream.

Each is ``fn(ctx, params, reporter) -> summary`` as :data:`neuralatlas.pipeline.ANALYSES`
expects, writes ``results/<name>/`` and ``figures/<name>/`` and prints one line per
visualised unit (its activation over that of its best natural patch), with the time taken.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from neuralatlas.errors import ConfigError
from neuralatlas.steps import _dirs, _save, _write_summary


def _unknown(analysis: str, params: dict[str, Any], valid: set[str]) -> None:
    bad = [k for k in params if k not in valid]
    if bad:
        from neuralatlas.errors import did_you_mean

        raise ConfigError(f"analyses.{analysis}: unknown parameter {bad[0]!r}.{did_you_mean(bad[0], valid)}"
                          f" Valid: {', '.join(sorted(valid))}.")


def _skip(ctx: Any, analysis: str, reason: str, reporter: Any) -> dict[str, Any]:
    """A step that does not apply to this model: say why, in the summary and on screen."""
    reporter.message(f"{ctx.name}: {analysis} skipped: {reason}")
    return _write_summary(ctx.results_dir(analysis), {"skipped": reason})


def _photo_model(ctx: Any) -> str | None:
    """Why the photo steps do not apply to this model (``None``: they do)."""
    from neuralatlas.zoo.efficientnet import model_card

    card = model_card(ctx.model)
    if card is None or card.input_shape[0] != 3:
        return "needs an RGB photo classifier with a model card (e.g. efficientnet_lite0)"
    return None


def unit_cards_step(run_dir: Path, model: Any, store: Any, data: Any, *,
                    units: dict[str, list[int]], k: int = 8, steps: int = 128, lr: float | None = None,
                    seed: int = 0, message: Any = print, progress: Any = None) -> dict[str, Any]:
    """Unit cards of ``units`` (``{layer: [channels]}``), one batched featurevis per layer."""
    from neuralatlas.featurevis.units import unit_cards

    results_dir, figures_dir = _dirs(run_dir, "unit_cards")
    summary: dict[str, Any] = {"cards": [], "seconds": {}}
    for layer, channels in units.items():
        t0 = time.perf_counter()
        cards = unit_cards(model, store, layer, list(channels), data=data, k=k, steps=steps, lr=lr, seed=seed,
                           progress=progress)
        for card in cards:
            card.save(results_dir / card.stem)
            _save(card.figure(), figures_dir / f"unit_{layer.replace('.', '_')}_{card.channel}", formats=("png",))
            message(f"featurevis {card.name}: {card.value:.3g} = {card.ratio:.2f} x best natural patch"
                    f" ({card.best_natural:.3g}); drives {', '.join(card.class_names[:3])}")
            summary["cards"].append(card.summary())
        summary["seconds"][layer] = round(time.perf_counter() - t0, 2)
    ratios = [c["ratio"] for c in summary["cards"]]
    summary["min_ratio"] = min(ratios) if ratios else None
    summary["steps"] = int(steps)
    return _write_summary(results_dir, summary)


def run_unit_cards(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """``analyses.unit_cards: {units: {layer: [channels]}, k, steps, lr, seed}``."""
    _unknown("unit_cards", params, {"units", "k", "steps", "lr", "seed"})
    params = dict(params)
    if not params.get("units"):
        # default: the first 4 channels of up to three captured conv layers, shallow to deep
        store = ctx.store
        spatial = [n for n in store.layers if len(store.unit_shape(n)) >= 3]
        if not spatial:
            return _skip(ctx, "unit_cards", "no conv layer (channel maps) in the store", reporter)
        picks = sorted({spatial[0], spatial[len(spatial) // 2], spatial[-1]}, key=spatial.index)
        params["units"] = {n: list(range(min(4, store.unit_shape(n)[0]))) for n in picks}
    return unit_cards_step(ctx.run_dir, ctx.model, ctx.store, ctx.capture_data, message=reporter.message,
                           progress=reporter.progress, **params)


def run_photo_attribution(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """``analyses.photo_attribution: {photos: [names], size, methods, n_steps, smooth_samples, sanity}``.

    Saliency, integrated gradients, SmoothGrad and Grad-CAM of the predicted class on the
    bundled photos, and (``sanity: true``) the cascading model-randomisation test of
    saliency on them.
    """
    from neuralatlas.attribution.photos import DEFAULT_METHODS, attribute_photos
    from neuralatlas.data.photos import photos

    _unknown("photo_attribution", params, {"photos", "size", "methods", "n_steps", "smooth_samples", "sanity",
                                           "sanity_layers"})
    why = _photo_model(ctx)
    if why is not None:
        return _skip(ctx, "photo_attribution", why, reporter)
    card = getattr(ctx.model, "card", None)
    size = int(params.get("size", getattr(card, "input_size", 224)))
    data = photos(size, names=params.get("photos", ["chelsea", "coffee", "rocket"]))
    results_dir, figures_dir = _dirs(ctx.run_dir, "photo_attribution")
    t0 = time.perf_counter()
    res = attribute_photos(ctx.model, data, tuple(params.get("methods", DEFAULT_METHODS)),
                           n_steps=int(params.get("n_steps", 16)), smooth_samples=int(params.get("smooth_samples", 8)))
    res.save(results_dir)
    _save(res.figure(), figures_dir / "photos", formats=("png",))
    summary = res.summary()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    for name, top in zip(res.names, res.top):
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
        from neuralatlas.plots import sanity_curves

        t1 = time.perf_counter()
        layers = params.get("sanity_layers", ["fc", "head.conv", "blocks.12.project_conv", "blocks.4.project_conv"])
        check = sanity_check(ctx.model, data, "saliency", target="prediction", mode="cascading", layers=layers,
                             n_samples=len(data))
        check.save(results_dir / "sanity_saliency")
        _save(sanity_curves(check), figures_dir / "sanity_saliency", formats=("png",))
        summary["sanity"] = {**check.summary(), "seconds": round(time.perf_counter() - t1, 2)}
    return _write_summary(results_dir, summary)


def run_deepdream(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """``analyses.deepdream: {photo, size, layer, octaves, steps, step_size}`` on one bundled photo."""
    from neuralatlas.data.photos import photos
    from neuralatlas.featurevis import deepdream
    from neuralatlas.plots import dream_comparison

    _unknown("deepdream", params, {"photo", "size", "layer", "octaves", "steps", "step_size"})
    why = _photo_model(ctx)
    if why is not None:
        return _skip(ctx, "deepdream", why, reporter)
    img = photos(int(params.get("size", 160)), names=[params.get("photo", "astronaut")]).inputs[0]
    results_dir, figures_dir = _dirs(ctx.run_dir, "deepdream")
    res = deepdream(ctx.model, img, params.get("layer", "blocks.8"), octaves=int(params.get("octaves", 3)),
                    steps=int(params.get("steps", 10)), step_size=float(params.get("step_size", 0.02)),
                    min_size=64, progress=reporter.progress)
    res.save(results_dir)
    _save(dream_comparison(res), figures_dir / "dream", formats=("png",))
    gain = float(res.trace[-1].mean() / max(res.trace[0].mean(), 1e-12))
    reporter.message(f"deepdream {params.get('layer', 'blocks.8')}: objective x{gain:.2f} over the photo's")
    return _write_summary(results_dir, {"layer": params.get("layer", "blocks.8"), "gain": round(gain, 3),
                                        "octaves": res.octave_sizes, "seconds": res.settings.get("seconds")})


__all__ = ["run_deepdream", "run_photo_attribution", "run_unit_cards", "unit_cards_step"]
