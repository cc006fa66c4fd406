"""The DeepDream step (pretrained ImageNet models): one bundled photo, dreamed at one layer over octaves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.steps._common import dirs, save, unknown_params, write_summary
from neuralatlas.steps._photo import photo_model, skip

NAME = "deepdream"


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """``analyses.deepdream: {photo, size, layer, octaves, steps, step_size}`` on one bundled photo."""
    from neuralatlas.data.photos import photos
    from neuralatlas.featurevis import deepdream

    unknown_params(NAME, params, {"photo", "size", "layer", "octaves", "steps", "step_size"})
    why = photo_model(ctx)
    if why is not None:
        return skip(ctx, NAME, why, reporter)
    img = photos(int(params.get("size", 160)), names=[params.get("photo", "astronaut")]).inputs[0]
    results_dir, figures_dir = dirs(ctx.run_dir, NAME)
    res = deepdream(ctx.model, img, params.get("layer", "blocks.8"), octaves=int(params.get("octaves", 3)),
                    steps=int(params.get("steps", 10)), step_size=float(params.get("step_size", 0.02)),
                    min_size=64, progress=reporter.progress)
    res.save(results_dir)
    figures(res, figures_dir)
    gain = float(res.trace[-1].mean() / max(res.trace[0].mean(), 1e-12))
    reporter.message(f"deepdream {params.get('layer', 'blocks.8')}: objective x{gain:.2f} over the photo's")
    return write_summary(results_dir, {"layer": params.get("layer", "blocks.8"), "gain": round(gain, 3),
                                        "octaves": res.octave_sizes, "seconds": res.settings.get("seconds")})




step = run


def load(results_dir: Path) -> Any:
    """The :class:`DreamResult` the step saved."""
    from neuralatlas.featurevis.dream import DreamResult

    return DreamResult.load(results_dir)


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None) -> int:
    """The photo beside its dream."""
    from neuralatlas.plots import featurevis_dream

    return save(featurevis_dream(result), Path(figures_dir) / "dream", formats)
