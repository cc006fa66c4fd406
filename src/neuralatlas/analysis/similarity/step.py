"""The run-folder step of the similarity analysis (moving to ``neuralatlas.steps``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.analysis.similarity.result import SimilarityResult
from neuralatlas.analysis.similarity.suite import similarity
from neuralatlas.errors import AnalysisError, did_you_mean


def save_figures(result: SimilarityResult, directory: str | Path,
                 formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Draw every figure of ``result`` (see :mod:`neuralatlas.plots.similarity`) into ``directory``."""
    import matplotlib.pyplot as plt

    from neuralatlas.plots.similarity import similarity_figures
    from neuralatlas.plots.style import save_figure

    written: list[Path] = []
    for name, fig in similarity_figures(result).items():
        written += save_figure(fig, Path(directory) / name, formats=formats)
        plt.close(fig)
    return written


_STEP_PARAMS = {"layers", "other", "other_layers", "epoch", "epochs", "rbf", "rsa", "probes", "pool",
                "n_samples", "subsample", "metric", "cv", "max_features", "seed", "memory_limit"}


def run_similarity(ctx: Any, params: Mapping[str, Any], reporter: Any = None) -> dict[str, Any]:
    """Pipeline step: the similarity analysis of one model's run, saved into its run folder.

    Writes ``results/similarity/`` and ``figures/similarity/``; returns the summary.
    ``params`` are keyword arguments of :func:`similarity`.
    """
    unknown = sorted(set(params) - _STEP_PARAMS)
    if unknown:
        raise AnalysisError(f"Unknown similarity parameter(s) {unknown};"
                            f"{did_you_mean(unknown[0], _STEP_PARAMS)} valid: {', '.join(sorted(_STEP_PARAMS))}.")
    progress = getattr(reporter, "progress", None)
    params = {"client": getattr(ctx, "client", None), **dict(params)}
    result = similarity(ctx.store, progress=progress, **params)
    result.save(ctx.results_dir("similarity"))
    save_figures(result, ctx.figures_dir("similarity"))
    return result.summary()
