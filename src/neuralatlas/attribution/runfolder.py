"""Attribution of a run folder: the maps of the whole split into a store, checks, figures.

What ``neuralatlas attribute RUN_DIR`` does, callable from Python::

    RUN_DIR/attributions.zarr            maps of every sample, one array per method (resumable)
    RUN_DIR/results/attribution/         <method>.npz/.json of the figure samples, faithfulness.*,
                                         sanity_<method>.*, summary.json
    RUN_DIR/figures/attribution/         grid, faithfulness, sanity_<method>, sanity_maps_<method>
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.attribution.dataset import attribute_dataset, method_key
from neuralatlas.attribution.faithfulness import deletion_curves
from neuralatlas.attribution.methods import attribute, resolve_method
from neuralatlas.attribution.sanity import sanity_check
from neuralatlas.errors import DataError

Progress = Callable[[int, int], None]


def load_run_data(run_dir: str | Path, data: str = "digits", data_path: str | Path | None = None,
                  split: str = "test", samples: int | None = None) -> tuple[Any, Any]:
    """``(model in eval mode, data set)`` of a run folder made by ``neuralatlas train``.

    ``samples`` keeps the first ``samples`` rows of the split.
    """
    from neuralatlas.data import load
    from neuralatlas.zoo import load_run

    if split not in ("test", "train"):
        raise DataError(f"split={split!r}: choose 'test' or 'train'.")
    model, _ = load_run(run_dir)
    train_set, test_set = load(data, path=data_path)
    dataset = test_set if split == "test" else train_set
    if samples is not None:
        if int(samples) < 1:
            raise DataError(f"samples={samples} must be at least 1.")
        dataset = dataset.subset(slice(0, int(samples)))
    return model.eval(), dataset


def attribute_run(
    run_dir: str | Path,
    methods: Sequence[str] = ("saliency", "integrated_gradients", "grad_cam"),
    *,
    data: str = "digits",
    data_path: str | Path | None = None,
    split: str = "test",
    samples: int | None = None,
    target: str | int = "label",
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
    data, data_path, split, samples
        The data set (as ``neuralatlas.data.load`` names it), the split, and how many of its
        first samples (default: all).
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
    from neuralatlas.plots import save_figure
    from neuralatlas.plots.attribution import attribution_grid, faithfulness_curves, sanity_curves, sanity_maps

    run_dir = Path(run_dir)
    names = [resolve_method(m) for m in methods]
    model, dataset = load_run_data(run_dir, data, data_path, split, samples)
    options = {m: {"n_steps": n_steps} for m in names if m in ("integrated_gradients", "conductance")}
    store = attribute_dataset(model, dataset, names, run_dir / "attributions.zarr", target=target, options=options,
                              batch_size=batch_size, device=device, overwrite=overwrite, progress=progress)
    results_dir = run_dir / "results" / "attribution"
    figures_dir = run_dir / "figures" / "attribution"
    results_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    few = dataset.subset(slice(0, min(len(dataset), max(figure_samples, check_samples))))
    shown = [attribute(model, few.subset(slice(0, min(len(few), figure_samples))), m, target=target,
                       device=device, **options.get(m, {})) for m in names]
    for res in shown:
        res.save(results_dir)
    fig = attribution_grid(shown, samples=figure_samples, classes=dataset.classes)
    save_figure(fig, figures_dir / "grid")
    plt.close(fig)

    samples_table = store.samples
    summary: dict[str, Any] = {
        "store": str(store.path.relative_to(run_dir)), "n_samples": store.n_samples, "split": split,
        "methods": {}, "target": target,
    }
    for m in names:
        key = method_key(m)
        entry: dict[str, Any] = {"map_shape": list(store.unit_shape(key))}
        col = f"completeness_{key}"
        if col in samples_table:
            values = samples_table[col].to_numpy(float)
            entry.update(completeness_median=float(np.nanmedian(values)), completeness_max=float(np.nanmax(values)))
        summary["methods"][key] = entry
    if faithfulness:
        check = few.subset(slice(0, min(len(few), check_samples)))
        input_space = [m for m, res in zip(names, shown) if res.maps.shape[1:] in (tuple(dataset.input_shape),
                                                                                   (1, *dataset.input_shape[1:]))]
        faith = deletion_curves(model, check, input_space, target=target, device=device)
        faith.save(results_dir)
        fig = faithfulness_curves(faith)
        save_figure(fig, figures_dir / "faithfulness")
        plt.close(fig)
        for mode in faith.curves:
            for name, auc in faith.auc(mode).items():
                summary["methods"].setdefault(name, {})[f"{mode}_auc"] = auc
    if sanity:
        check = few.subset(slice(0, min(len(few), check_samples)))
        for m in names:
            kw = dict(options.get(m, {}))
            if m in ("integrated_gradients", "conductance"):
                kw["n_steps"] = min(n_steps, 16)  # the ranking of a map settles long before completeness does
            result = sanity_check(model, check, m, target=target, device=device, **kw)
            result.save(results_dir)
            for stem, fig in ((f"sanity_{m}", sanity_curves(result)), (f"sanity_maps_{m}", sanity_maps(result))):
                save_figure(fig, figures_dir / stem)
                plt.close(fig)
            summary["methods"].setdefault(method_key(m), {}).update(
                sanity_passed=result.passed, sanity_final_spearman=result.final_spearman)
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
