"""The similarity step: layer×layer and epoch×epoch CKA, RSA, linear probes (and model vs model).

Writes ``RUN_DIR/results/similarity/`` (:meth:`SimilarityResult.save`) and
``RUN_DIR/figures/similarity/`` (every figure of :func:`neuralatlas.plots.similarity.similarity_figures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.steps._common import dirs, run_store, save, unknown_params
from neuralatlas.vocabulary import Progress

NAME = "similarity"

#: The keyword arguments of :func:`neuralatlas.analysis.similarity.similarity` a config may set.
PARAMS = {"layers", "other", "other_layers", "epoch", "epochs", "rbf", "rsa", "probes", "debiased", "pool",
          "n_samples", "subsample", "metric", "cv", "max_features", "seed", "memory_limit"}


def step(run_dir: Path, *, other: Any = None, progress: Progress = None, client: Any = None,
         **params: Any) -> Any:
    """The similarity analysis of a run, saved with its figures; returns the :class:`SimilarityResult`.

    ``other`` is a second run folder or store (another model on the same samples); ``params``
    are the keyword arguments of :func:`neuralatlas.analysis.similarity.similarity` in
    :data:`PARAMS` (``layers``, ``epoch``, ``epochs``, ``rbf``, ``rsa``, ``probes``, ``pool``,
    ``subsample``, ``memory_limit``, ``seed`` …).
    """
    from neuralatlas.analysis.similarity import similarity

    unknown_params(NAME, params, PARAMS - {"other"})
    store = run_store(Path(run_dir))
    other_store = run_store(Path(other)) if isinstance(other, (str, Path)) else other
    result = similarity(store, other=other_store, progress=progress, client=client, **params)
    results_dir, figures_dir = dirs(run_dir, NAME)
    result.save(results_dir)
    figures(result, figures_dir)
    return result


def load(results_dir: Path) -> Any:
    """The :class:`SimilarityResult` the step saved."""
    from neuralatlas.analysis.similarity import SimilarityResult

    return SimilarityResult.load(results_dir)


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None) -> int:
    """Every figure of a :class:`SimilarityResult` into ``figures_dir``; returns the files written."""
    from neuralatlas.plots.similarity import similarity_figures

    return sum(save(fig, Path(figures_dir) / name, formats) for name, fig in similarity_figures(result).items())


def save_figures(result: Any, directory: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """The old ``neuralatlas.analysis.similarity.save_figures``: figures of ``result``, the files' paths."""
    from neuralatlas.plots.similarity import similarity_figures

    written: list[Path] = []
    for name, fig in similarity_figures(result).items():
        save(fig, Path(directory) / name, formats)
        written += [Path(directory) / f"{name}.{f}" for f in formats]
    return written


def run(ctx: Any, params: Mapping[str, Any], reporter: Any = None) -> dict[str, Any]:
    """Pipeline adapter: the similarity of one model's run; returns the summary."""
    unknown_params(NAME, dict(params), PARAMS)
    return step(ctx.run_dir, progress=getattr(reporter, "progress", None), client=getattr(ctx, "client", None),
                **dict(params)).summary()


def legacy_run_similarity(ctx: Any, params: Mapping[str, Any], reporter: Any = None) -> dict[str, Any]:
    """The old ``neuralatlas.analysis.similarity.run_similarity(ctx, params, reporter)``.

    Any ``ctx`` with ``store``, ``results_dir(name)`` and ``figures_dir(name)`` works; unknown parameters are
    an AnalysisError.
    """
    from neuralatlas.analysis.similarity import similarity
    from neuralatlas.errors import AnalysisError, did_you_mean

    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise AnalysisError(f"Unknown similarity parameter(s) {unknown};"
                            f"{did_you_mean(unknown[0], PARAMS)} valid: {', '.join(sorted(PARAMS))}.")
    params = {"client": getattr(ctx, "client", None), **dict(params)}
    result = similarity(ctx.store, progress=getattr(reporter, "progress", None), **params)
    result.save(ctx.results_dir(NAME))
    figures(result, ctx.figures_dir(NAME))
    return result.summary()
