"""Read what a run folder holds: config, models, training metrics, stores, results, figures.

The report and the LaTeX export both start here, so they show the same things. Nothing is
computed: every number comes from a file an earlier step wrote (CONTRIBUTING.md lists the
layout). Two layouts are understood:

* a pipeline run: ``RUN/config.yaml`` and one folder per model (``RUN/mlp/``, ``RUN/cnn/``);
* a single model's run folder (``acts.zarr``, ``metrics.json``, ``results/`` directly inside),
  as ``neuralatlas train`` / ``capture`` / an analysis command leave it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuralatlas.errors import NeuralAtlasError

FIGURE_SUFFIXES = (".svg", ".png")
_MODEL_MARKERS = ("acts.zarr", "metrics.json", "model.json", "results", "figures")


class ReportError(NeuralAtlasError, ValueError):
    """A folder cannot be reported on (not a run folder, nothing in it)."""


@dataclass
class AnalysisOutput:
    """One analysis' files for one model: ``results/<name>/`` and ``figures/<name>/``."""

    name: str
    model: str
    results_dir: Path
    figures_dir: Path
    summary: dict[str, Any] | None = None
    figures: list[Path] = field(default_factory=list)     # the best file of each figure (SVG or PNG)
    pdfs: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)       # other result files (.npz, .json)


@dataclass
class StoreInfo:
    """What the report shows of an activation store, read from its attributes only."""

    path: Path
    n_samples: int
    layers: list[str]
    unit_shapes: dict[str, list[int]]
    epochs: list[int]
    classes: list[str]
    nbytes: int
    complete: bool
    attrs: dict[str, Any]


@dataclass
class ModelInfo:
    """One model of the run."""

    name: str
    dir: Path
    spec: dict[str, Any] | None = None          # model.json
    metrics: dict[str, Any] | None = None       # metrics.json
    store: StoreInfo | None = None
    analyses: dict[str, AnalysisOutput] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        """The model's captured layers (none without a store)."""
        return self.store.layers if self.store is not None else []

    @property
    def epochs_table(self) -> list[dict[str, Any]]:
        """metrics.json's per-epoch entries (epoch 0 = before training)."""
        return list((self.metrics or {}).get("epochs", []))


@dataclass
class RunInfo:
    """A whole run: its folder, config (as a plain dict) and models."""

    dir: Path
    name: str
    config: dict[str, Any] | None
    models: list[ModelInfo]

    def analysis_names(self) -> list[str]:
        """Every analysis found in any model, in the pipeline's order, then alphabetically."""
        try:
            from neuralatlas.steps.registry import ANALYSES
            known = list(ANALYSES)
        except ImportError:  # pragma: no cover - the pipeline is part of the package
            known = []
        found = {name for m in self.models for name in m.analyses}
        return [n for n in known if n in found] + sorted(found - set(known))

    def outputs(self, analysis: str) -> list[AnalysisOutput]:
        """Every model's output of ``analysis``."""
        return [m.analyses[analysis] for m in self.models if analysis in m.analyses]

    def model(self, name: str) -> ModelInfo:
        """The model called ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise ReportError(f"No model {name!r} in the run {self.dir}; models: {[m.name for m in self.models]}.")


def read_run(run_dir: str | Path) -> RunInfo:
    """Gather what ``run_dir`` holds.

    Parameters
    ----------
    run_dir : path
        A pipeline run folder (with ``config.yaml`` and model folders) or one model's run folder.

    Returns
    -------
    RunInfo

    Raises
    ------
    ReportError
        When the folder does not exist or holds no model folder.

    Example
    -------
    >>> run = read_run("runs/demo")                          # doctest: +SKIP
    >>> [m.name for m in run.models], run.analysis_names()    # doctest: +SKIP
    (['mlp', 'cnn'], ['naps', 'projection'])
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise ReportError(f"Run folder {root} does not exist; pass the folder `neuralatlas run` wrote"
                          " (its config's `out:`), e.g. runs/demo.")
    config = _read_yaml(root / "config.yaml")
    order = [m.get("name") for m in (config or {}).get("models", []) if isinstance(m, dict)]
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and _is_model_dir(d)]
    subdirs.sort(key=lambda d: order.index(d.name) if d.name in order else len(order))
    # A pipeline run names its model folders in config.yaml; otherwise a folder with a store
    # or metrics of its own is one model's run folder.
    pipeline_layout = any(d.name in order for d in subdirs)
    dirs = [root] if _is_model_dir(root) and not pipeline_layout else subdirs
    if not dirs:
        raise ReportError(
            f"{root} is not a run folder: no model folder with {', '.join(_MODEL_MARKERS)} inside."
            " Run `neuralatlas run CONFIG.yaml` (or train + capture) first, or pass its `out:` folder."
        )
    models = [read_model(d) for d in dirs]
    name = (config or {}).get("name") or root.resolve().name
    return RunInfo(root, str(name), config, models)


def read_model(model_dir: Path, name: str | None = None) -> ModelInfo:
    """One model folder: model.json, metrics.json, the store's attributes and every analysis."""
    info = ModelInfo(name or model_dir.resolve().name, model_dir)
    info.spec = _read_json(model_dir / "model.json")
    info.metrics = _read_json(model_dir / "metrics.json")
    info.store = read_store_info(model_dir / "acts.zarr")
    names = set()
    for sub in ("results", "figures"):
        if (model_dir / sub).is_dir():
            names |= {d.name for d in (model_dir / sub).iterdir() if d.is_dir() and not d.name.startswith(".")}
    for analysis in sorted(names):
        info.analyses[analysis] = read_analysis(model_dir, analysis, info.name)
    return info


def read_analysis(model_dir: Path, analysis: str, model: str) -> AnalysisOutput:
    """One analysis's outputs in a model folder: its summary, tables and figures."""
    results, figures = model_dir / "results" / analysis, model_dir / "figures" / analysis
    out = AnalysisOutput(analysis, model, results, figures)
    out.summary = _read_json(results / "summary.json")
    if results.is_dir():
        out.files = sorted(p for p in results.rglob("*") if p.is_file() and p.name != "summary.json")
    if figures.is_dir():
        by_stem: dict[Path, dict[str, Path]] = {}
        for p in sorted(figures.rglob("*")):
            if p.is_file():
                by_stem.setdefault(p.with_suffix(""), {})[p.suffix.lower()] = p
        for stem in sorted(by_stem, key=_natural_key):
            kinds = by_stem[stem]
            best = _best_figure(kinds)
            if best is not None:
                out.figures.append(best)
            if ".pdf" in kinds:
                out.pdfs.append(kinds[".pdf"])
    return out


def read_store_info(path: Path) -> StoreInfo | None:
    """The store's attributes (layers, shapes, epochs, size); None when there is no store."""
    if not (path / "zarr.json").exists():
        return None
    meta = _read_json(path / "zarr.json") or {}
    attrs = meta.get("attributes", {})
    complete = attrs.get("complete", {})
    nbytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return StoreInfo(
        path=path, n_samples=int(attrs.get("n_samples", 0)), layers=list(attrs.get("layers", [])),
        unit_shapes={k: list(v) for k, v in attrs.get("unit_shapes", {}).items()},
        epochs=[int(e) for e in attrs.get("epochs", [])], classes=[str(c) for c in attrs.get("classes", [])],
        nbytes=nbytes, complete=bool(complete) and all(complete.values()), attrs=attrs,
    )


def layer_of(text: str, layers: list[str]) -> str | None:
    """The layer a figure's file name is about (``naps_fc1.png`` -> ``fc1``), or None.

    The longest layer name found between non-alphanumeric boundaries wins, so ``fc10`` is
    not mistaken for ``fc1``; dots in layer names may appear as ``.``, ``_`` or ``-``.
    """
    best: str | None = None
    for layer in layers:
        variants = {layer, layer.replace(".", "_"), layer.replace(".", "-")}
        for v in variants:
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])", text):
                if best is None or len(layer) > len(best):
                    best = layer
    return best


def depth_order(paths: list[Path], layers: list[str], base: Path | None = None) -> list[Path]:
    """Figures in the model's layer order (not alphabetical).

    Figures about no single layer (overviews, "all layers") come first, then each layer's in depth order,
    file names breaking ties.

    Example
    -------
    >>> [p.name for p in depth_order([Path("fc2.png"), Path("all.png"), Path("fc1.png")], ["fc1", "fc2"])]
    ['all.png', 'fc1.png', 'fc2.png']
    """
    def key(path: Path) -> tuple[Any, ...]:
        rel = path.relative_to(base) if base is not None and path.is_relative_to(base) else path
        text = str(rel.with_suffix(""))
        layer = layer_of(text, layers)
        folder = str(rel.parent)
        return (_natural_key(Path(folder)), layer is not None, layers.index(layer) if layer else -1, _natural_key(rel))
    return sorted(paths, key=key)


def _best_figure(kinds: dict[str, Path]) -> Path | None:
    # SVG stays crisp at any zoom, but a figure with a big raster inside makes a heavy SVG;
    # then the 2x PNG is the lighter crisp choice.
    svg, png = kinds.get(".svg"), kinds.get(".png")
    if svg is not None and (png is None or svg.stat().st_size < 1_500_000):
        return svg
    return png


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is not valid JSON ({err}); rerun the step that wrote it.") from None
    if isinstance(data, dict):  # the result protocol's format tag is provenance, not a number to show
        from neuralatlas.results import FORMAT_KEY

        data.pop(FORMAT_KEY, None)
    return data


def _read_yaml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ReportError(f"{path} is not valid YAML ({err}).") from None
    return data if isinstance(data, dict) else None


def _is_model_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in _MODEL_MARKERS)
