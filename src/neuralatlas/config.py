"""A run's configuration: pydantic models, read from YAML with errors that name the line.

Example ``run.yaml``::

    name: digits-study
    out: runs/digits-study
    data: {name: digits}
    models:
      - name: cnn
        model: cnn                      # built-in, or "package.module:function"
        train: {epochs: 10}
        layers: ["conv*", "fc1"]
    capture: {gradients: true, per_epoch: true}
    analyses:
      naps: {by: label}
      projection: {method: tsne, n_samples: 450}   # all: every sample

Your own code sits beside the YAML (the file's folder is on ``sys.path`` during the run)::

    data: "mydata:load"                 # returns (train, test) or one data set
    models:
      - name: net
        model: "mymodels:Net"
        checkpoint: net.pt              # state_dict, {"state_dict": ...}, DDP "module." keys
      - name: minilm
        model: {hf: models/all-MiniLM-L6-v2}        # a save_pretrained folder, offline
    capture: {output: logits, layer_output: {"lstm": [1, 0]}, reduce: token_mean}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from neuralatlas.errors import ConfigError, NeuralAtlasError, did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where the data comes from: a built-in set, a loader with the path of the user's files, or a loader of theirs.

    The user's own loader is named ``"package.module:function"`` (see :mod:`neuralatlas.data.custom` for what it
    must return). ``data: "mypkg.data:load"`` is short for ``data: {name: ...}``.
    """

    name: str = Field(default="digits", description="built-in name, 'name:path', or 'package.module:function'")
    path: Path | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the loader")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class TrainConfig(_Strict):
    """How a model is trained: ``train:`` of a model in the run config."""

    epochs: int = Field(default=10, ge=0)
    lr: float = Field(default=3e-3, gt=0)
    batch_size: int = Field(default=64, ge=1)
    seed: int = 0
    restarts: int = Field(default=0, ge=0)
    target_accuracy: float | None = Field(default=None, ge=0, le=1)


class HFModelConfig(_Strict):
    """A Hugging Face model folder on disk: ``model: {hf: path/to/dir, task: causal-lm}``."""

    hf: Path = Field(..., description="folder written by save_pretrained (config.json + weights)")
    task: str | None = Field(
        default=None,
        description="sequence-classification, causal-lm, ... or a transformers class name; default AutoModel",
    )


class ModelConfig(_Strict):
    """One model of the run: how to build it, whether to train it, which layers to study.

    A Hugging Face folder (``model: {hf: ...}``) and a model with a ``checkpoint`` are
    pretrained: they are loaded, not trained.
    """

    name: str
    model: str | HFModelConfig = Field(
        ..., description="built-in name (mlp, cnn, vgg, vgg16), 'package.module:function' or {hf: folder}"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: Path | None = Field(default=None, description="weights to load instead of training")
    trust_pickle: bool = Field(
        default=False,
        description="let the checkpoint unpickle Python objects (runs its code): only for files you trust",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    layers: list[str] | None = Field(default=None, description="names or glob patterns; default every leaf layer")
    # A pretrained model (e.g. efficientnet_lite0) is not trained; it may look at its own data
    # with its own capture settings and analyses instead of the run's.
    kind: Literal["train", "pretrained"] = Field(default="train",
                                                 description="'pretrained': weights come with the builder")
    data: DataConfig | None = Field(default=None, description="this model's data instead of the run's")
    capture: dict[str, Any] | None = Field(default=None,
                                           description="capture settings replacing the run's for this model")
    analyses: dict[str, dict[str, Any]] | None = Field(default=None,
                                                       description="this model's analyses instead of the run's")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError("must be a plain folder name (no '/', not starting with '.')")
        return v


class CaptureConfig(_Strict):
    """Which samples and layers are captured, and how: the run config's ``capture:``."""

    split: Literal["test", "train"] = "test"
    n_samples: int | None = Field(
        default=None, ge=1,
        description="the first n_samples samples of the split; null or 'all': every sample (default)",
    )
    gradients: bool = True
    target: str | int = "label"
    per_epoch: bool = True
    batch_size: int = Field(default=256, ge=1)
    reduce: str | dict[str, str] | None = None
    output: int | str | None = Field(default=None,
                                     description="which part of a tuple/dict model output is the prediction")
    layer_output: dict[str, int | str | list[int | str]] | None = Field(
        default=None,
        description="{layer pattern: index, key, or a path like [1, 0]} for layers returning tuples/dicts")
    repeated: Literal["error", "first", "last"] = "error"
    rows: Literal["samples", "tokens"] | None = Field(
        default=None, description="tokens: one row per non-padding token of [B, T, D] layers"
    )

    n: int | None = Field(default=None, ge=1, description="deprecated: n_samples", exclude=True)

    @field_validator("n_samples", mode="before")
    @classmethod
    def _all_words(cls, v: Any) -> Any:
        if isinstance(v, str):
            from neuralatlas.vocabulary import resolve_n_samples

            try:
                return resolve_n_samples(v)
            except NeuralAtlasError as err:
                raise ValueError(str(err)) from None
        return v

    @model_validator(mode="after")
    def _old_names(self) -> CaptureConfig:
        if self.n is not None:  # the old name, for one release
            if "n_samples" in self.model_fields_set:
                raise ValueError("give 'n_samples' only ('n' is its old name)")
            import warnings

            warnings.warn("capture.n is deprecated since 0.2; write capture.n_samples (null or 'all': every "
                          "sample)", DeprecationWarning, stacklevel=2)
            self.n_samples, self.n = self.n, None
        return self

    def capture_kwargs(self) -> dict[str, Any]:
        """The settings that go to :func:`neuralatlas.capture` as they are (``rows`` only when set)."""
        kwargs: dict[str, Any] = {"output": self.output, "repeated": self.repeated}
        if self.layer_output is not None:
            # YAML has no tuples: a list is a nested selector, (1, 0) = h_n of an LSTM's (out, (h_n, c_n))
            kwargs["layer_output"] = {k: tuple(v) if isinstance(v, list) else v
                                      for k, v in self.layer_output.items()}
        if self.rows is not None:
            kwargs["rows"] = self.rows
        return kwargs


def merged_capture(run: CaptureConfig, own: dict[str, Any]) -> CaptureConfig:
    """A model's capture settings (``models[].capture``) over the run's."""
    own = dict(own)
    if "n" in own:  # the old name: it replaces the run's n_samples
        own.setdefault("n_samples", own.pop("n"))
    return CaptureConfig.model_validate({**run.model_dump(), **own})


class ReportConfig(_Strict):
    """Which report formats a run writes: the run config's ``report:``."""

    html: bool = True
    latex: bool = False
    pdf: bool = Field(default=False, description="also save every figure as PDF at run time (the report needs PNG only;"
                                         " the LaTeX export draws its PDFs from the results)")


class RunConfig(_Strict):
    """The whole run: data, models, capture, analyses with their parameters, output folder."""

    name: str = "run"
    out: Path = Path("runs/run")
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    models: list[ModelConfig]
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    analyses: dict[str, dict[str, Any]] = Field(default_factory=dict)
    report: ReportConfig = Field(default_factory=ReportConfig)
    _source_text: str | None = PrivateAttr(None)
    _source_name: str = PrivateAttr("config")
    _base_dir: Path | None = PrivateAttr(None)

    @property
    def base_dir(self) -> Path | None:
        """The config file's folder: relative paths start there.

        It is also on ``sys.path`` while the run builds models and loads data (so ``model: "mymodels:Net"``
        imports a ``mymodels.py`` beside the YAML).
        """
        return self._base_dir

    def where(self, *loc: str | int) -> str:
        """'FILE:LINE' of a key (for errors found after validation, e.g. an unknown layer)."""
        return f"{self._source_name}{_line(self._source_text, [str(x) for x in loc])}"

    @field_validator("models")
    @classmethod
    def _unique_names(cls, v: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in v]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if not v:
            raise ValueError("at least one model is needed")
        return v


def load_config(source: str | Path | dict[str, Any], *, base_dir: Path | None = None) -> RunConfig:
    """Read and validate a run configuration from a YAML file, YAML text or a dict.

    Errors name the offending key with its line in the file, what was wrong, and a suggestion.
    Relative paths in the file are taken relative to the file's folder.

    Raises
    ------
    ConfigError
    """
    from neuralatlas.steps.registry import ANALYSES

    text, where = None, "config"
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(source) if not (isinstance(source, str) and "\n" in source) else None
        if path is not None:
            if not path.exists():
                raise ConfigError(f"Config file {path} does not exist.")
            text, where = path.read_text(), str(path)
            base_dir = base_dir or path.parent
        else:
            text = str(source)
        try:
            raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
        except _DuplicateKey as err:
            raise ConfigError(f"{where}:{err.line}: duplicate key {err.key!r} (first at line"
                              f" {err.first}); YAML would silently keep only the last value."
                              " Remove or merge one of them.") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of keys (name, data, models, ...).")
    raw = _renamed_params(raw, text, where)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(err, text, where)) from None
    for i, m in enumerate(config.models):
        if m.capture is not None:
            try:
                merged_capture(config.capture, m.capture)
            except ValidationError as err:
                raise ConfigError(_explain(err, text, f"{where} (models.{i}.capture)")) from None
    unknown = [name for name in config.analyses if name not in ANALYSES]
    unknown += [name for m in config.models for name in (m.analyses or {}) if name not in ANALYSES]
    if unknown:
        name = unknown[0]
        raise ConfigError(
            f"{where}{_line(text, ['analyses', name])}: unknown analysis {name!r}."
            f"{did_you_mean(name, ANALYSES)} Available: {', '.join(ANALYSES)}."
        )
    if base_dir is not None:
        config = _rebase(config, base_dir)
    config._source_text, config._source_name = text, where
    return config


#: Analysis parameters renamed since 0.2, ``{analysis: {old key: new key}}``: a config's old key keeps
#: working for one release, with a DeprecationWarning naming the new one. (``analyses.projection.n``
#: is renamed by its step, whose old value 0 meant "all".)
RENAMED_PARAMS: dict[str, dict[str, str]] = {
    "attribution": {"samples": "n_samples"},
    "adversarial": {"samples": "n_samples"},
    "photo_attribution": {"smooth_samples": "smooth_draws"},  # noisy copies are draws, not data samples
}


def _renamed_params(raw: dict[str, Any], text: str | None, where: str) -> dict[str, Any]:
    """``raw`` with the old keys of :data:`RENAMED_PARAMS` under their new names (copied where changed).

    Raises
    ------
    ConfigError
        A block gives both the old and the new key: which one was meant is unknowable.
    """
    import warnings

    def renamed(analyses: Any, loc: list[str]) -> Any:
        if not isinstance(analyses, dict):
            return analyses  # the schema check reports it
        out = dict(analyses)
        for name, params in analyses.items():
            for old, new in RENAMED_PARAMS.get(name, {}).items():
                if not isinstance(params, dict) or old not in params:
                    continue
                key, at = ".".join([*loc, name]), _line(text, [*loc, name, old])
                if new in params:
                    raise ConfigError(f"{where}{at}: {key} gives both {old!r} and {new!r}, and {old!r} is the old name"
                                      f" of {new!r}; keep only {key}.{new}.")
                meaning = " (null or 'all': every sample)" if new == "n_samples" else ""
                warnings.warn(f"{where}{at}: {key}.{old} is deprecated since 0.2; write {key}.{new}{meaning}."
                              " The old key goes in the next release.", DeprecationWarning, stacklevel=4)
                params = {(new if k == old else k): v for k, v in params.items()}
                out[name] = params
        return out

    raw = {**raw, "analyses": renamed(raw["analyses"], ["analyses"])} if "analyses" in raw else dict(raw)
    if isinstance(raw.get("models"), list):
        models = raw["models"] = list(raw["models"])
        for i, m in enumerate(models):  # a loop, not a comprehension: the warning's stacklevel counts frames
            if isinstance(m, dict) and "analyses" in m:
                models[i] = {**m, "analyses": renamed(m["analyses"], ["models", str(i), "analyses"])}
    return raw


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first: int):
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first})")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(str(key), key_node.start_mark.line + 1, first)
        return super().construct_mapping(node, deep=deep)


def _rebase(config: RunConfig, base: Path) -> RunConfig:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.expanduser().is_absolute() else base / p

    config.data.path = fix(config.data.path)
    for m in config.models:
        m.checkpoint = fix(m.checkpoint)
        if isinstance(m.model, HFModelConfig):
            m.model.hf = fix(m.model.hf) or m.model.hf
        if m.data is not None:
            m.data.path = fix(m.data.path)
    config._base_dir = base
    return config


def _explain(err: ValidationError, text: str | None, where: str) -> str:
    lines = []
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        key = ".".join(loc)
        at = _line(text, loc)
        if e["type"] == "extra_forbidden":
            valid = _fields_at(loc[:-1])
            lines.append(f"{where}{at}: unknown key {key!r}.{did_you_mean(loc[-1], valid)}"
                         f" Valid keys here: {', '.join(valid)}.")
        elif e["type"] == "missing":
            lines.append(f"{where}{at}: {key!r} is required.")
        else:
            lines.append(f"{where}{at}: {key}: {e['msg']} (got {e.get('input')!r}).")
    return "\n".join(lines)


def _fields_at(loc: list[str]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in loc:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or [])]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return []
        model = nxt
    return list(model.model_fields)


def _line(text: str | None, loc: list[str]) -> str:
    """':LINE' of the deepest key of ``loc`` found in the YAML text (or '')."""
    if not text:
        return ""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    mark = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    mark, node = key.start_mark, value
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            mark = node.start_mark
        else:
            break
    return f":{mark.line + 1}" if mark is not None else ""


def dump_config(config: RunConfig) -> str:
    """The configuration as YAML (written into the run folder for provenance)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
