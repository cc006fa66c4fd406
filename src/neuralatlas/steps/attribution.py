"""The attribution step: the maps of a run's whole split into a store, checks, figures.

What ``neuralatlas attribute RUN_DIR`` and the pipeline's ``attribution`` do::

    RUN_DIR/attributions.zarr            maps of every sample, one array per method (resumable)
    RUN_DIR/results/attribution/         <method>/ (the figure samples' maps), faithfulness/,
                                         sanity_<method>/ (one folder per result), summary.json
    RUN_DIR/figures/attribution/         grid, faithfulness, sanity_<method>, sanity_maps_<method>

Text (a ``TextDataset``: token ids, not pixels): every method attributes to the embedding
layer (``layer=``, default the model's word-embedding layer), the comparison grid is one
token heat map per method (``tokens_<method>``), and the deletion/insertion curves, which
delete pixels, are skipped (the summary says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.errors import AnalysisError, DataError
from neuralatlas.results import safe_name, write_json
from neuralatlas.steps._common import checked_params, save
from neuralatlas.vocabulary import renamed_parameter, resolve_n_samples

Progress = Callable[[int, int], None]
NAME = "attribution"


@renamed_parameter("samples", "n_samples")
def load_run_data(run_dir: str | Path, data: Any = "digits", data_path: str | Path | None = None,
                  split: str = "test", n_samples: int | str | None = None, *, model: Any = None,
                  tokenizer: Any = None) -> tuple[Any, Any]:
    """``(model in eval mode, data set)`` of a run folder made by ``neuralatlas train``.

    ``data`` is a name for ``neuralatlas.data.load`` or a ``(train, test)`` pair / one data
    set already loaded; ``model`` a model already built (default: rebuilt from the run
    folder); ``tokenizer`` (an object or a local model folder) tokenises a text data set
    loaded without one. ``n_samples`` keeps the first ``n_samples`` rows of the split (``None``
    or ``"all"``: every row; ``samples`` is its old name).
    """
    from neuralatlas.data import load
    from neuralatlas.data.text import TextDataset

    if split not in ("test", "train"):
        raise DataError(f"split={split!r}: choose 'test' or 'train'.")
    if model is None:
        from neuralatlas.zoo import load_run

        model, _ = load_run(run_dir)
    if isinstance(data, str):
        train_set, test_set = load(data, path=data_path)
        dataset = test_set if split == "test" else train_set
    elif isinstance(data, tuple):
        dataset = data[1] if split == "test" else data[0]
    else:
        dataset = data
    if isinstance(dataset, TextDataset) and (tokenizer is not None or dataset.tokenizer is None):
        if tokenizer is None:
            raise DataError(f"The text data set {dataset.name!r} has no tokenizer, so it has no model inputs;"
                            " pass tokenizer=... (the model's tokenizer, or its local folder).")
        dataset = dataset.with_tokenizer(tokenizer)
    count = resolve_n_samples(n_samples)
    if count is not None:
        dataset = dataset.subset(slice(0, count))
    return model.eval(), dataset


@renamed_parameter("samples", "n_samples")
def attribute_run(
    run_dir: str | Path,
    methods: Sequence[str] = ("saliency", "integrated_gradients", "grad_cam"),
    *,
    data: str = "digits",
    data_path: str | Path | None = None,
    split: str = "test",
    n_samples: int | str | None = None,
    target: Any = "label",
    layer: str | None = None,
    tokenizer: Any = None,
    model: Any = None,
    n_steps: int = 50,
    figure_samples: int = 6,
    check_samples: int = 64,
    sanity: bool = True,
    faithfulness: bool = True,
    batch_size: int = 64,
    device: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Attribute a run's data set with each method, check the maps, draw them; returns the summary.

    Parameters
    ----------
    run_dir : path
        A run folder (``model.json``, ``checkpoints/``).
    methods : sequence of str
        Method names of :func:`~neuralatlas.attribution.attribute`.
    data, data_path, split, n_samples
        The data set (as ``neuralatlas.data.load`` names it, or already loaded), the split,
        and how many of its first samples (``None`` or ``"all"``, the default: every sample;
        ``samples`` is the old name of ``n_samples``).
    layer : str, optional
        Text: the embedding layer every method attributes to (default: the model's
        ``nn.Embedding`` named like ``word_embeddings`` / ``wte`` / ``embed_tokens``, else its
        first ``nn.Embedding``). Grad-CAM, which needs a conv layer, is dropped for text.
    tokenizer : tokenizer or path, optional
        Tokenises a text data set that was loaded without one.
    model : torch.nn.Module, optional
        The model, when the run folder cannot rebuild it (a Hugging Face model, say).
    target, n_steps, batch_size, device
        See :func:`~neuralatlas.attribution.attribute`.
    figure_samples, check_samples
        Samples in the comparison grid; samples of the sanity checks and faithfulness curves.
    sanity, faithfulness : bool
        Run the sanity checks (every method) and the deletion/insertion curves.
    overwrite : bool
        Replace an existing ``attributions.zarr`` made with other settings.
    progress : callable(done, total), optional
        Progress of the whole-data-set pass.

    Returns
    -------
    dict
        What ``results/attribution/summary.json`` holds.

    Examples
    --------
    >>> summary = attribute_run("runs/digits", ["saliency", "integrated_gradients"])   # doctest: +SKIP
    """
    from neuralatlas.attribution.dataset import attribute_dataset, method_key
    from neuralatlas.attribution.faithfulness import deletion_curves
    from neuralatlas.attribution.methods import attribute, resolve_method
    from neuralatlas.attribution.runfolder import (
        SANITY_TEXT_LAYERS,
        embedding_layer,
        spread_layers,
    )
    from neuralatlas.attribution.sanity import sanity_check
    from neuralatlas.data.text import TextDataset
    from neuralatlas.plots.attribution import (
        attribution_faithfulness,
        attribution_grid,
        attribution_sanity_curves,
        attribution_sanity_maps,
    )

    run_dir = Path(run_dir)
    names = [resolve_method(m) for m in methods]
    model, dataset = load_run_data(run_dir, data, data_path, split, n_samples, model=model, tokenizer=tokenizer)
    text = isinstance(dataset, TextDataset)
    options: dict[str, dict[str, Any]] = {m: {"n_steps": n_steps} for m in names
                                          if m in ("integrated_gradients", "conductance")}
    skipped: dict[str, str] = {}
    if text:
        layer = layer or embedding_layer(model)
        for m in list(names):
            if m in ("grad_cam", "guided_grad_cam", "smoothgrad", "gradient_shap", "occlusion", "deeplift",
                     "guided_backprop", "deconvolution"):
                names.remove(m)  # they need a conv layer or perturb the inputs, which ids do not allow
                skipped[m] = "not applicable to token ids"
            else:
                options.setdefault(m, {})["layer"] = layer
        if not names:
            raise AnalysisError(f"None of the methods {list(methods)} works on token ids; use integrated_gradients,"
                                " saliency or gradient_x_input (they attribute to the embedding layer).")
        faithfulness = False  # deletion curves delete pixels
    store = attribute_dataset(model, dataset, names, run_dir / "attributions.zarr", target=target, options=options,
                              batch_size=batch_size, device=device, overwrite=overwrite, progress=progress)
    results_dir = run_dir / "results" / "attribution"
    figures_dir = run_dir / "figures" / "attribution"
    results_dir.mkdir(parents=True, exist_ok=True)

    few = dataset.subset(slice(0, min(len(dataset), max(figure_samples, check_samples))))
    shown = [attribute(model, few.subset(slice(0, min(len(few), figure_samples))), m, target=target,
                       device=device, **options.get(m, {})) for m in names]
    for res in shown:
        res.save(results_dir / safe_name(res.name))
    if text:
        from neuralatlas.plots.attribution import attribution_token_heatmap

        for m, res in zip(names, shown, strict=True):
            save(
                attribution_token_heatmap(res, samples=figure_samples, classes=dataset.classes),
                figures_dir / f"tokens_{m}",
            )
    else:
        save(attribution_grid(shown, samples=figure_samples, classes=dataset.classes), figures_dir / "grid")

    samples_table = store.samples
    summary: dict[str, Any] = {
        "store": Path(str(store.path)).relative_to(run_dir).as_posix(), "n_samples": store.n_samples, "split": split,
        "methods": {}, "target": target if not callable(target) else getattr(target, "__name__", "function"),
    }
    differences = captum_differences(names)
    if differences:  # the report shows them beside the maps
        summary["captum_differences"] = differences
    if text:
        summary.update(text=True, layer=layer, skipped=skipped,
                       faithfulness="skipped: deletion/insertion curves delete pixels, not tokens")
    for m in names:
        key = method_key(m, options.get(m, {}).get("layer"))
        entry: dict[str, Any] = {"map_shape": list(store.unit_shape(key))}
        col = f"completeness_{key}"
        if col in samples_table:
            values = samples_table[col].to_numpy(float)
            entry.update(completeness_median=float(np.nanmedian(values)), completeness_max=float(np.nanmax(values)))
        summary["methods"][key] = entry
    if faithfulness:
        check = few.subset(slice(0, min(len(few), check_samples)))
        input_space = [
            m
            for m, res in zip(names, shown, strict=True)
            if res.maps.shape[1:] in (tuple(dataset.input_shape), (1, *dataset.input_shape[1:]))
        ]
        faith = deletion_curves(model, check, input_space, target=target, device=device)
        faith.save(results_dir / "faithfulness")
        save(attribution_faithfulness(faith), figures_dir / "faithfulness")
        for mode in faith.curves:
            for name, auc in faith.auc(mode).items():
                summary["methods"].setdefault(name, {})[f"{mode}_auc"] = auc
    if sanity:
        check = few.subset(slice(0, min(len(few), check_samples)))
        for m in names:
            kw = dict(options.get(m, {}))
            if m in ("integrated_gradients", "conductance"):
                kw["n_steps"] = min(n_steps, 16)  # the ranking of a map settles long before completeness does
            if text:  # a transformer has ~100 modules with weights: randomise a spread of them, top down
                kw.update(layers=spread_layers(model, SANITY_TEXT_LAYERS), mode="cascading")
            result = sanity_check(model, check, m, target=target, device=device, **kw)
            result.save(results_dir / f"sanity_{safe_name(m)}")
            figs = [(f"sanity_{m}", attribution_sanity_curves(result))]
            if not text:  # [T, D] embedding maps drawn as images say nothing; the curves do
                figs.append((f"sanity_maps_{m}", attribution_sanity_maps(result)))
            for stem, fig in figs:
                save(fig, figures_dir / stem)
            summary["methods"].setdefault(method_key(m, options.get(m, {}).get("layer")), {}).update(
                sanity_passed=result.passed, sanity_final_spearman=result.final_spearman)
    write_json(results_dir / "summary.json", summary, kind="attribution_summary")
    return summary


step = attribute_run  # the step of this module (``step(run_dir, methods, ...) -> summary``)


def captum_differences(methods: Sequence[str]) -> dict[str, str]:
    """Where each of ``methods`` differs from captum on purpose, ``{method: sentence}``.

    The sentences of :data:`neuralatlas.attribution.methods.CAPTUM_DIFFERENCES`, for the run's
    summary (the report shows them beside the maps).
    """
    from neuralatlas.attribution.methods import CAPTUM_DIFFERENCES

    return {m: CAPTUM_DIFFERENCES[m] for m in dict.fromkeys(methods) if m in CAPTUM_DIFFERENCES}

_RUN_DATA = ("run_dir", "data", "data_path", "split", "progress")


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: attribution maps of the captured split with sanity checks and deletion/insertion curves."""
    from neuralatlas.featurevis import conv_layers

    params = checked_params(NAME, attribute_run, params, internal=_RUN_DATA)
    params.setdefault("n_samples", ctx.run.capture.n_samples)
    if "methods" not in params:  # Grad-CAM needs a conv layer
        convs = conv_layers(ctx.model)
        params["methods"] = ["saliency", "integrated_gradients"] + (["grad_cam"] if convs else ["gradient_x_input"])
    # the data the run loaded (its own loader, options, tokenizer) and the model it built or
    # loaded (a Hugging Face folder cannot be rebuilt from the run folder)
    return attribute_run(ctx.run_dir, data=ctx.data, split=ctx.capture_config.split, model=ctx.model,
                         progress=reporter.progress, **params)


@renamed_parameter("samples", "n_samples")
def jax_step(run_dir: str | Path, model: Any, data: Any,
                     methods: Sequence[str] = ("saliency", "integrated_gradients"), *,
                     n_samples: int | str | None = 6, target: str | int = "label", n_steps: int = 50) -> dict[str, Any]:
    """The run folder's attribution section for a JAX model: results, grid figure, summary.

    The first ``n_samples`` samples of ``data`` are attributed and shown (``samples`` is its
    old name).

    Writes ``results/attribution/<method>/attribution.npz/.json`` and ``summary.json`` and
    ``figures/attribution/grid``, as ``neuralatlas attribute`` does for torch models (without
    the torch-only sanity checks and deletion curves).
    """
    from neuralatlas.attribution.jax_methods import attribute_jax
    from neuralatlas.plots.attribution import attribution_grid

    run_dir = Path(run_dir)
    results, figures = run_dir / "results" / "attribution", run_dir / "figures" / "attribution"
    results.mkdir(parents=True, exist_ok=True)
    count = resolve_n_samples(n_samples)  # None / "all": every sample, as the other steps
    few = data.subset(slice(0, len(data) if count is None else min(len(data), count)))
    shown = [attribute_jax(model, few, m, target=target, n_steps=n_steps) for m in methods]
    summary: dict[str, Any] = {"n_samples": len(few), "target": target, "methods": {}}
    for res in shown:
        res.save(results / safe_name(res.name))
        summary["methods"][res.method] = {k: v for k, v in res.summary().items() if k not in ("method", "name")}
    save(attribution_grid(shown, samples=len(few), classes=getattr(data, "classes", None)), figures / "grid")
    write_json(results / "summary.json", summary, kind="attribution_summary")
    return summary
