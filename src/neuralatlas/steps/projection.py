"""The projection step: projections of hidden activity (Rauber et al. 2017) with the evolution figures.

For each layer in ``neurons`` it adds that layer's neuron map and discriminative neurons
(:mod:`.discriminative`).

Writes ``RUN_DIR/results/projection/`` (:meth:`Projection.save`, ``neurons/``, ``summary.json``)
and ``RUN_DIR/figures/projection/`` (``layers_<epoch>``, ``epochs_<layer>``, ``quality`` …).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError
from neuralatlas.steps import discriminative as _discriminative
from neuralatlas.steps._common import (
    callable_module,
    checked_params,
    dirs,
    file_stem,
    run_store,
    save,
    write_figure_settings,
    write_summary,
)
from neuralatlas.vocabulary import Progress, renamed_parameter, resolve_n_samples

NAME = "projection"


def _old_n(value: Any) -> Any:
    """The old ``n``: None was the default subset, 0 every sample."""
    from neuralatlas.analysis.sources import DEFAULT_N_SAMPLES

    return DEFAULT_N_SAMPLES if value is None else (None if value == 0 else value)


def _samples(value: Any) -> Any:
    from neuralatlas.analysis.sources import DEFAULT_N_SAMPLES, AtMost

    if isinstance(value, str) and value == "default":
        return DEFAULT_N_SAMPLES
    return value if isinstance(value, AtMost) else resolve_n_samples(value)


@renamed_parameter("n", "n_samples", transform=_old_n)
def _compute(run_dir: Path, *, layers: Sequence[str] | None = None, epochs: Any = None, method: str = "tsne",
             n_samples: Any = "default", seed: int = 0, align: bool = True, bundle: bool = True,
             neurons: Sequence[str] | None = None, discriminative: str = "both", n_jobs: int | None = None,
             memory_limit: int | str | None = None, client: Any = None,
             progress: Progress = None, message: Callable[[str], None] | None = None,
             seeds: int = 3) -> tuple[Any, dict[str, Any]]:
    from neuralatlas.analysis.projection import project

    if discriminative not in _discriminative.HOWS:
        raise AnalysisError(f"discriminative={discriminative!r} is not known; choose trees, anova or both.")
    store = run_store(run_dir)
    n = _samples(n_samples)
    streaming = dict(memory_limit=memory_limit, client=client)
    result = project(store, layers=layers or None, epochs=epochs, method=method, n_samples=n, align=align,
                     seed=seed, n_jobs=n_jobs, progress=progress, seeds=seeds, **streaming)
    results_dir, figures_dir = dirs(run_dir, NAME)
    result.save(results_dir)
    write_figure_settings(results_dir, bundle=bundle)
    figures(result, figures_dir, bundle=bundle)
    summary = _input_baseline(result.summary(), store, result.layers)
    for layer in neurons or []:
        nproj, found = _discriminative.step(run_dir, layer, how=discriminative, method=method, n_samples=n, seed=seed,
                                            n_jobs=n_jobs, message=message, **streaming)
        agreement = _discriminative.agreement_summary(found)
        if agreement is not None:
            summary.setdefault("neurons", {})[nproj.layer] = agreement
    return result, write_summary(results_dir, summary)


def step(run_dir: Path, **params: Any) -> Any:
    """Projections of a run's hidden activity, saved with their figures; returns the :class:`Projection`.

    Parameters: ``layers``, ``epochs`` (a selection: ``"all"``, a list, None for the final
    model), ``method`` (``tsne``, ``umap``, ``pca``), ``n_samples`` (a stratified subset of
    at most 2,000 by default; ``None`` or ``"all"``: every sample, and PCA projections,
    neuron correlations and ANOVA scores then stream over the store with ``memory_limit``
    and ``client``), ``seed``, ``align``, ``bundle``, ``neurons`` (layers whose neuron maps
    and discriminative neurons to draw), ``discriminative`` (``trees``, ``anova``, ``both``),
    ``n_jobs``, ``progress``, ``message``, ``seeds`` (default 3: the last epoch's layers are
    embedded ``seeds`` times and the quality figure and the findings give the neighbourhood
    hit's range over them, since t-SNE noise can be as large as the differences between
    layers; it costs ``seeds - 1`` more t-SNE/UMAP runs per layer; 1 for one run). The old
    ``n`` (0 = all) still works, with a DeprecationWarning.
    """
    return _compute(run_dir, **params)[0]


def load(results_dir: Path) -> Any:
    """The :class:`Projection` the step saved, with the neuron maps beside it when there are any.

    With neuron maps it is ``(Projection, [(NeuronProjection, {how: DiscriminativeNeurons}), ...])``.
    """
    from neuralatlas.analysis.projection import Projection
    from neuralatlas.results import ResultNotFoundError, read_json

    result = Projection.load(results_dir)
    summary_path = Path(results_dir) / "summary.json"
    layers = list((read_json(summary_path).get("neurons") or {}) if summary_path.is_file() else {})
    neurons_dir = Path(results_dir) / "neurons"
    maps = []
    for layer in layers:
        try:
            maps.append(_discriminative.load(neurons_dir, layer))
        except (FileNotFoundError, ResultNotFoundError):  # a map lost since: the projection still loads
            continue
    return (result, maps) if maps else result


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None, *, bundle: bool = True) -> int:
    """The evolution figures (over layers and epochs) and the quality figure of a :class:`Projection`.

    Given :func:`load`'s pair, the neuron maps are drawn too.
    """
    from neuralatlas.plots.projection import (
        projection_epoch_evolution,
        projection_layer_evolution,
        projection_quality,
        projection_scatter,
    )

    figures_dir = Path(figures_dir)
    if isinstance(result, tuple):
        result, maps = result
        return figures(result, figures_dir, formats, bundle=bundle) + sum(
            _discriminative.figures(pair, figures_dir, formats) for pair in maps)
    written = 0
    ep = result.epochs
    if len(result.layers) > 1:
        for e in dict.fromkeys([ep[0], ep[-1]]):
            written += save(projection_layer_evolution(result, epoch=e, bundle=bundle),
                            figures_dir / f"layers_{'final' if e is None else f'epoch{e}'}", formats, layer="all")
    if len(ep) > 1:
        for layer in result.layers:
            written += save(projection_epoch_evolution(result, layer, bundle=bundle),
                            figures_dir / f"epochs_{file_stem(layer)}", formats, layer=layer)
    if len(result.layers) == 1 and len(ep) == 1:
        written += save(projection_scatter(result), figures_dir / file_stem(result.layers[0]), formats)
    written += save(projection_quality(result), figures_dir / "quality", formats, layer="all")
    return written


# Layers that only reshape the input (a leading flatten) are the raw input seen again.
_INPUT_VIEWS = ("Flatten", "Identity", "Unflatten", "Dropout", "Reshape")


def input_views(store: Any, layers: Sequence[str]) -> list[str]:
    """The leading layers that are the raw input seen again.

    They have identical activations at the first and last captured epoch, or (with one epoch) are a
    reshaping layer type before any other.
    """
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


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: every layer over every epoch; the neurons of the last hidden layer by default.

    ``epochs`` takes what :func:`neuralatlas.project` takes, and ``"first-middle-last"``.
    """
    params = dict(params)
    if "n" in params:  # the old name in a config, for one release
        import warnings

        if "n_samples" in params:
            from neuralatlas.errors import ConfigError

            raise ConfigError("analyses.projection: give n_samples only (n is its old name)")
        warnings.warn("analyses.projection.n is deprecated since 0.2; write n_samples (null or 'all': every sample;"
                      " the old n: 0)", DeprecationWarning, stacklevel=2)
        params["n_samples"] = _old_n(params.pop("n"))
    params = checked_params(NAME, _compute, params)
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
    return _compute(ctx.run_dir, progress=reporter.progress, message=reporter.message, **params)[1]


callable_module(__name__, _compute)
