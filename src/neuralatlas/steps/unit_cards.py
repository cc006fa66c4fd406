"""The unit-cards step (pretrained ImageNet models).

Per unit: its optimised image, best natural patches and the classes it drives, in
``RUN_DIR/results/unit_cards/`` and ``RUN_DIR/figures/unit_cards/``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.steps._common import dirs, save, unknown_params, write_summary
from neuralatlas.steps._photo import skip

NAME = "unit_cards"


def unit_cards_step(run_dir: Path, model: Any, store: Any, data: Any, *,
                    units: dict[str, list[int]], k: int = 8, steps: int = 128, lr: float | None = None,
                    seed: int = 0, message: Any = print, progress: Any = None) -> dict[str, Any]:
    """Unit cards of ``units`` (``{layer: [channels]}``), one batched featurevis per layer."""
    from neuralatlas.featurevis.units import unit_cards

    results_dir, figures_dir = dirs(run_dir, NAME)
    summary: dict[str, Any] = {"cards": [], "seconds": {}}
    for layer, channels in units.items():
        t0 = time.perf_counter()
        cards = unit_cards(model, store, layer, list(channels), data=data, k=k, steps=steps, lr=lr, seed=seed,
                           progress=progress)
        for card in cards:
            card.save(results_dir / card.stem)
            figures(card, figures_dir)
            message(f"featurevis {card.name}: {card.value:.3g} = {card.ratio:.2f} x best natural patch"
                    f" ({card.best_natural:.3g}); drives {', '.join(card.class_names[:3])}")
            summary["cards"].append(card.summary())
        summary["seconds"][layer] = round(time.perf_counter() - t0, 2)
    ratios = [c["ratio"] for c in summary["cards"]]
    summary["min_ratio"] = min(ratios) if ratios else None
    summary["steps"] = int(steps)
    return write_summary(results_dir, summary)


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """``analyses.unit_cards: {units: {layer: [channels]}, k, steps, lr, seed}``."""
    unknown_params(NAME, params, {"units", "k", "steps", "lr", "seed"})
    params = dict(params)
    if not params.get("units"):
        # default: the first 4 channels of up to three captured conv layers, shallow to deep
        store = ctx.store
        spatial = [n for n in store.layers if len(store.unit_shape(n)) >= 3]
        if not spatial:
            return skip(ctx, NAME, "no conv layer (channel maps) in the store", reporter)
        picks = sorted({spatial[0], spatial[len(spatial) // 2], spatial[-1]}, key=spatial.index)
        params["units"] = {n: list(range(min(4, store.unit_shape(n)[0]))) for n in picks}
    return unit_cards_step(ctx.run_dir, ctx.model, ctx.store, ctx.capture_data, message=reporter.message,
                           progress=reporter.progress, **params)


step = unit_cards_step


def load(results_dir: Path) -> list[Any]:
    """Every :class:`UnitCard` the step saved in ``results_dir``."""
    from neuralatlas.featurevis.units import UnitCard

    return [UnitCard.load(d) for d in sorted(Path(results_dir).iterdir()) if d.is_dir()]


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None) -> int:
    """The card figure of a :class:`UnitCard` (or of each in a list)."""
    from neuralatlas.plots.featurevis import featurevis_unit_card

    if isinstance(result, (list, tuple)):
        return sum(figures(card, figures_dir, formats) for card in result)
    return save(
        featurevis_unit_card(result),
        Path(figures_dir) / f"unit_{result.layer.replace('.', '_')}_{result.channel}",
        formats,
    )
