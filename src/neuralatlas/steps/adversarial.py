"""The adversarial step: robustness curve, example grids, and a store of clean and adversarial activations.

What ``neuralatlas attack RUN_DIR`` and the pipeline's ``adversarial`` do::

    RUN_DIR/adversarial.zarr             clean + adversarial activations, group column (optional)
    RUN_DIR/results/adversarial/         robustness.csv/.json (the curve), <method>_<norm>_eps<e>/ (each attack),
                                         summary.json
    RUN_DIR/figures/adversarial/         robustness, grid_eps<e> (0.05 written 0p05)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import AnalysisError
from neuralatlas.results import write_json
from neuralatlas.steps._common import checked_params, save
from neuralatlas.steps.attribution import load_run_data
from neuralatlas.vocabulary import renamed_parameter

NAME = "adversarial"

Progress = Callable[[int, int], None]


@renamed_parameter("samples", "n_samples")
def attack_run(
    run_dir: str | Path,
    method: str = "pgd",
    eps: Sequence[float] = (0.05, 0.1, 0.2),
    *,
    norm: str = "linf",
    steps: int = 10,
    target_class: int | None = None,
    data: str = "digits",
    data_path: str | Path | None = None,
    split: str = "test",
    n_samples: int | str | None = None,
    capture: bool = True,
    layers: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Attack a run's data set at each ``eps``, save results and figures; returns the summary.

    With ``capture``, clean and adversarial inputs of the largest ``eps`` are captured into
    ``RUN_DIR/adversarial.zarr`` (a ``group`` column says which), on ``layers`` (default: the
    layers of ``RUN_DIR/acts.zarr`` when it exists, else every leaf layer). ``n_samples``
    attacks the first ``n_samples`` samples of the split (``None`` or ``"all"``, the default:
    every sample; ``samples`` is its old name).

    Examples
    --------
    >>> summary = attack_run("runs/digits", "pgd", eps=[0.05, 0.1])     # doctest: +SKIP
    """
    from neuralatlas.adversarial.attacks import robustness_curve
    from neuralatlas.adversarial.representations import capture_adversarial

    run_dir = Path(run_dir)
    eps = [float(e) for e in eps]
    if not eps:
        raise AnalysisError("eps is empty; give at least one perturbation size, e.g. --eps 0.1.")
    model, dataset = load_run_data(run_dir, data, data_path, split, n_samples)
    total = len(eps) + int(capture)
    kwargs = dict(norm=norm, steps=steps, target_class=target_class, batch_size=batch_size, device=device,
                  seed=seed)
    curve = robustness_curve(model, dataset, eps, method, keep=True, **kwargs)
    if progress is not None:
        progress(len(eps), total)
    results_dir = run_dir / "results" / "adversarial"
    figures_dir = run_dir / "figures" / "adversarial"
    curve.save(results_dir)  # the curve, and each attack in its own folder <method>_<norm>_eps<eps>/
    figures(curve, figures_dir, classes=dataset.classes)
    summary: dict[str, Any] = {"method": method, "norm": norm, "n_samples": len(dataset), "split": split,
                               "curve": curve.table.to_dict(orient="records")}
    if capture:
        chosen = layers
        acts = run_dir / "acts.zarr"
        if chosen is None and (acts / "zarr.json").exists():
            from neuralatlas.store import ActivationStore

            chosen = ActivationStore.open(acts).layers
        store = capture_adversarial(model, dataset, run_dir / "adversarial.zarr", result=curve.results[-1],
                                    layers=chosen, device=device, overwrite=overwrite, batch_size=batch_size)
        summary["store"] = {"path": Path(str(store.path)).relative_to(run_dir).as_posix(), "eps": curve.results[-1].eps,
                            "layers": store.layers, "n_samples": store.n_samples}
        if progress is not None:
            progress(total, total)
    curve.results.clear()
    write_json(results_dir / "summary.json", summary, kind="adversarial_summary")
    return summary


step = attack_run  # the step of this module (``step(run_dir, method, eps, ...) -> summary``)


def load(results_dir: Path) -> Any:
    """The :class:`RobustnessCurve` the step saved (with its attacks)."""
    from neuralatlas.adversarial.attacks import RobustnessCurve

    return RobustnessCurve.load(results_dir)


def figures(result: Any, figures_dir: Path, formats: Sequence[str] | None = None, *,
            classes: Sequence[str] | None = None) -> int:
    """The robustness curve and one grid of clean/perturbation/adversarial examples per eps."""
    from neuralatlas.plots.adversarial import adversarial_grid, adversarial_robustness

    figures_dir = Path(figures_dir)
    written = save(adversarial_robustness(result), figures_dir / "robustness", formats)
    for res in result.results:
        written += save(adversarial_grid(res, samples=6, classes=classes),
                        figures_dir / f"grid_eps{res.eps:g}".replace(".", "p"), formats)  # no dot: it is no suffix
    return written


_RUN_DATA = ("run_dir", "data", "data_path", "split", "progress")


def run(ctx: Any, params: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Pipeline adapter: FGSM/PGD success against eps, and a store of clean and adversarial activations."""
    params = checked_params(NAME, attack_run, params, internal=_RUN_DATA)
    params.setdefault("n_samples", ctx.run.capture.n_samples)
    return attack_run(ctx.run_dir, data=ctx.run.data.name, data_path=ctx.run.data.path,
                      split=ctx.run.capture.split, progress=reporter.progress, **params)
