"""The dream step: DeepDream of one image file with any model (``neuralatlas dream``).

Writes the dreamed image (``IMAGE_dream.png`` beside IMAGE, or ``out``) and, for a run
folder's model, ``RUN_DIR/results/dream/<image>/`` and ``RUN_DIR/figures/dream/<image>``
(``_trace``); without a run folder the figures go beside the image (``<out>_comparison``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.steps._common import save
from neuralatlas.vocabulary import Progress

NAME = "dream"


def step(image: Path, model: Any, layers: Sequence[str] | str, *, run_dir: Path | None = None,
         out: Path | None = None, octaves: int = 3, octave_scale: float = 1.4, steps: int = 20,
         step_size: float = 0.02, seed: int = 0, device: str | None = None,
         progress: Progress = None) -> tuple[Any, Path, Path]:
    """Dream ``image`` at ``layers`` of ``model``; returns ``(DreamResult, image written, figure stem)``."""
    from neuralatlas.featurevis import deepdream
    from neuralatlas.featurevis.images import read_image, write_image
    from neuralatlas.featurevis.taps import default_input_shape

    image = Path(image)
    model.eval()
    channels = default_input_shape(model)[0] if hasattr(model, "_neuralatlas_spec") else None
    picture = read_image(image, channels=channels)
    result = deepdream(model, picture, layers, octaves=octaves, octave_scale=octave_scale, steps=steps,
                       step_size=step_size, seed=seed, device=device, progress=progress)
    target = Path(out) if out is not None else image.with_name(f"{image.stem}_dream.png")
    scale = max(1, 256 // max(picture.shape[1:]))
    write_image(target, result.image, scale=scale if target.suffix.lower() != ".npy" else 1)
    figure_stem = target.with_name(f"{target.stem}_comparison")
    if run_dir is not None:
        result.save(Path(run_dir) / "results" / NAME / image.stem)  # one folder per result
        figure_stem = Path(run_dir) / "figures" / NAME / image.stem
    figures(result, figure_stem.parent, stem=figure_stem.name)
    return result, target, figure_stem


def load(results_dir: Path) -> dict[str, Any]:
    """``{image stem: DreamResult}`` of every dream saved in ``results_dir``."""
    from neuralatlas.featurevis.dream import DreamResult

    return {d.name: DreamResult.load(d) for d in sorted(Path(results_dir).iterdir()) if d.is_dir()}


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None, *, stem: str = "dream") -> int:
    """The image beside its dream (``<stem>``) and the objective per step (``<stem>_trace``)."""
    from neuralatlas.plots import featurevis_dream, featurevis_trace

    if isinstance(result, dict):
        return sum(figures(r, figures_dir, formats, stem=name) for name, r in result.items())
    return (save(featurevis_dream(result), Path(figures_dir) / stem, formats)
            + save(featurevis_trace(result), Path(figures_dir) / f"{stem}_trace", formats))
