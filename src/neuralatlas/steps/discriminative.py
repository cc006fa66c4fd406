"""The discriminative-neurons part of the projection step.

For a layer: its neuron map and which neurons separate the classes (extra-trees importances, ANOVA F,
or both and their agreement).

Writes into the projection's folders (the report shows them there):
``RUN_DIR/results/projection/neurons/`` (the neuron projection, ``discriminative_<layer>_<how>/``)
and ``RUN_DIR/figures/projection/`` (``neurons_<layer>``, ``compare_<layer>_<how>``,
``discriminative_<layer>_<how>``, ``agreement_<layer>``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError
from neuralatlas.steps._common import file_stem, run_store, save

HOWS = ("trees", "anova", "both")


def step(run_dir: Path, layer: str, *, how: str = "both", method: str = "tsne", n_samples: Any = None,
         seed: int = 0, n_jobs: int | None = None, memory_limit: int | str | None = None, client: Any = None,
         message: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """The neuron projection of ``layer`` and its discriminative neurons, saved with their figures.

    ``n_samples`` as :func:`neuralatlas.analysis.projection.neuron_projection` takes it (None:
    every sample, streamed). Returns ``(NeuronProjection, {how: DiscriminativeNeurons})``.
    """
    from neuralatlas.analysis.discriminative import discriminative_neurons
    from neuralatlas.analysis.projection import neuron_projection

    if how not in HOWS:
        raise AnalysisError(f"discriminative={how!r} is not known; choose trees, anova or both.")
    store = run_store(run_dir)
    results_dir = Path(run_dir) / "results" / "projection" / "neurons"
    streaming = {"memory_limit": memory_limit, "client": client}
    nproj = neuron_projection(store, layer, method=method, n_samples=n_samples, seed=seed, n_jobs=n_jobs, **streaming)
    nproj.save(results_dir)
    found = {}
    for m in (["trees", "anova"] if how == "both" else [how]):
        found[m] = discriminative_neurons(store, layer, method=m, n_samples=n_samples, seed=seed,
                                          n_jobs=-1 if n_jobs is None else n_jobs,
                                          **(streaming if m == "anova" else {}))
        found[m].save(results_dir / f"discriminative_{file_stem(layer)}_{m}")
    figures((nproj, found), Path(run_dir) / "figures" / "projection")
    if len(found) == 2 and message is not None:
        agreement = found["trees"].agreement(found["anova"])
        message(f"{nproj.layer}: trees vs anova importances, Spearman per class"
                f" {agreement.min():.2f}–{agreement.max():.2f} (mean {agreement.mean():.2f})")
    return nproj, found


def agreement_summary(found: dict[str, Any]) -> dict[str, float] | None:
    """Mean and least Spearman agreement of trees and ANOVA importances (None unless both ran)."""
    if len(found) != 2:
        return None
    agreement = found["trees"].agreement(found["anova"])
    return {"trees_vs_anova_spearman_mean": float(agreement.mean()),
            "trees_vs_anova_spearman_min": float(agreement.min())}


def figures(result: tuple[Any, dict[str, Any]], figures_dir: Path, formats: Sequence[str] | None = None) -> int:
    """The neuron map and the discriminative figures of ``(NeuronProjection, {how: DiscriminativeNeurons})``."""
    from neuralatlas.plots.discriminative import (
        discriminative_agreement,
        discriminative_compare,
        discriminative_map,
    )
    from neuralatlas.plots.projection import projection_neuron_map

    nproj, found = result
    figures_dir = Path(figures_dir)
    stem = file_stem(nproj.layer)
    first = next(iter(found.values()), None)
    written = save(projection_neuron_map(nproj, discriminative=first), figures_dir / f"neurons_{stem}", formats)
    for how, imp in found.items():
        written += save(discriminative_compare(nproj, imp), figures_dir / f"compare_{stem}_{how}", formats)
        written += save(discriminative_map(nproj, imp), figures_dir / f"discriminative_{stem}_{how}", formats)
    if len(found) == 2:
        written += save(discriminative_agreement(found["trees"].agreement(found["anova"])),
                        figures_dir / f"agreement_{stem}", formats)
    return written


def load(neurons_dir: Path, layer: str) -> tuple[Any, dict[str, Any]]:
    """``(NeuronProjection, {how: DiscriminativeNeurons})`` of ``layer`` as :func:`step` saved them."""
    from neuralatlas.analysis.discriminative import DiscriminativeNeurons
    from neuralatlas.analysis.projection import NeuronProjection

    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in layer)  # NeuronProjection.save's name
    candidates = [Path(neurons_dir) / f"neurons_{s}{suffix}" for s in dict.fromkeys([stem, file_stem(layer)])
                  for suffix in ("", ".npz")]
    path = next((c for c in candidates if c.exists()), None)
    if path is None:
        raise FileNotFoundError(f"no neuron projection of {layer!r} in {neurons_dir}")
    nproj = NeuronProjection.load(path)
    found = {how: DiscriminativeNeurons.load(d) for how in ("trees", "anova")
             if (d := Path(neurons_dir) / f"discriminative_{file_stem(layer)}_{how}").is_dir()}
    return nproj, found
