"""The training loop: seeded, per-epoch checkpoints, optional restarts, a run folder.

A run folder written by :func:`train` (see CONTRIBUTING.md)::

    run_dir/
      model.json                 {"builder", "kwargs", "input_shape", "classes", "seed"}
      checkpoints/epoch_000.pt   state_dict before training, then one per epoch
      metrics.json               {"epochs": [{"epoch", "loss", "train_accuracy",
                                   "test_accuracy", ...}], "tries", "restarted_because", ...}
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset

from neuralatlas.errors import ConfigError, DataError
from neuralatlas.zoo.checkpoints import load_weights
from neuralatlas.zoo.errors import ModelError
from neuralatlas.zoo.models import SPEC_ATTR
from neuralatlas.zoo.registry import build

ProgressCallback = Callable[[int, int, dict[str, Any]], None]

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.json"
_CHECKPOINT_RE = re.compile(r"^epoch_(\d+)\.pt$")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The model passed in (same object), holding the best try's final weights.
    metrics : list of dict
        The best try's per-epoch entries, epoch 0 (before training) first.
    tries : int
        How many tries were run (1 without restarts).
    reached_target : bool or None
        Whether the final accuracy reached ``target_accuracy``; ``None`` when no target
        was given.
    run_dir : pathlib.Path or None
        The run folder written, if any.
    restarted_because : list of str
        One note per restart, saying which try fell short of the target and by how much.
    seed : int
        The seed of the try kept (``seed + try_index``).
    """

    model: nn.Module
    metrics: list[dict[str, Any]]
    tries: int
    reached_target: bool | None
    run_dir: Path | None
    restarted_because: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's entry."""
        return self.metrics[-1]


def train(
    model: nn.Module,
    train_data: Dataset,
    test_data: Dataset | None = None,
    epochs: int = 10,
    run_dir: str | os.PathLike[str] | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    restarts: int = 0,
    target_accuracy: float | None = None,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train a classifier with Adam and cross-entropy, checkpointing every epoch.

    Deterministic on CPU: the same seed gives bitwise-identical weights (on CUDA, close but
    not guaranteed identical). The caller's global random state is left untouched. Every
    epoch's metrics are measured in eval mode after the epoch (epoch 0: before training):
    ``loss`` is the mean cross-entropy over the training set.

    With ``target_accuracy`` and ``restarts=N``, a try whose final accuracy (test, or train
    when there is no test set) falls below the target is followed by another, up to ``N``
    more; try ``k`` (from 0) shuffles with ``seed + k`` and, from ``k = 1``, re-initialises
    the weights with ``seed + k`` (by rebuilding from the model's spec for zoo/``build``
    models, otherwise by calling ``reset_parameters()`` on every submodule). The best try
    is kept: its weights in the model, its checkpoints and metrics in the run folder.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to ``[batch, n_classes]`` logits. Trained in place.
    train_data, test_data : Dataset
        ``ArrayDataset`` (fast path: batches are sliced from its arrays) or any torch
        ``Dataset`` of ``(input, label)`` pairs.
    epochs : int
        Passes over ``train_data``; 0 only evaluates and writes the epoch-0 checkpoint.
    run_dir : path, optional
        Run folder to write ``checkpoints/``, ``metrics.json`` and (for models that know
        their builder) ``model.json`` into; created if needed. Checkpoints of an earlier run
        there are replaced once training succeeds, and left alone if it fails.
    lr, batch_size : float, int
        Adam learning rate; mini-batch size.
    seed : int
        Seed of shuffling, dropout and restart initialisations.
    restarts : int
        Extra tries allowed when ``target_accuracy`` is not reached (ignored without one).
    target_accuracy : float, optional
        Accuracy in [0, 1] the final epoch should reach.
    progress : callable, optional
        ``progress(epoch, epochs, entry)`` after each epoch (epoch 0 included); ``entry``
        is the epoch's metrics plus ``"try"`` (1-based). The library prints nothing.
    device : str or torch.device, optional
        Where to train; ``None`` picks CUDA when available, else CPU. The model returns to
        its original device afterwards.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        For invalid settings (negative epochs, zero batch size, ...).
    DataError
        When the model cannot take the data's inputs or its outputs do not match the
        number of classes.

    Example
    -------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import mlp, train
    >>> train_set, test_set = digits()
    >>> result = train(mlp(), train_set, test_set, epochs=5, run_dir="runs/digits")  # doctest: +SKIP
    >>> result.metrics[-1]["test_accuracy"] > 0.9  # doctest: +SKIP
    True
    """
    _validate(epochs, lr, batch_size, restarts, target_accuracy)
    n_tries = 1 + (int(restarts) if target_accuracy is not None else 0)
    target = "test" if test_data is not None else "train"
    run_path = Path(run_dir) if run_dir is not None else None
    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    first = next(model.parameters(), None)
    original_device = first.device if first is not None else torch.device("cpu")
    modes = [(m, m.training) for m in model.modules()]
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    spec = getattr(model, SPEC_ATTR, None)

    tmp_root: Path | None = None
    owner = None
    if run_path is not None:
        run_path.mkdir(parents=True, exist_ok=True)
        remove_stale_train_folders(run_path)
        # Inside run_dir, so moving the winning try into place is a rename, not a copy.
        tmp_root = Path(tempfile.mkdtemp(prefix=".train-", dir=run_path))
        owner = _hold_train_folder(tmp_root)

    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    history: list[dict[str, Any]] = []
    notes: list[str] = []
    best: dict[str, Any] | None = None
    try:
        with torch.random.fork_rng(devices=rng_devices):
            model.to(dev)
            for k in range(n_tries):
                try_seed = int(seed) + k
                torch.manual_seed(try_seed)
                if k > 0:
                    _reinitialise(model, spec, try_seed)
                try_dir = tmp_root / f"try_{k + 1}" if tmp_root is not None else None
                epochs_log = _train_once(model, train_data, test_data, int(epochs), float(lr), int(batch_size),
                                         try_seed, dev, try_dir, progress, k + 1)
                accuracy = epochs_log[-1][f"{target}_accuracy"]
                history.append({"try": k + 1, "seed": try_seed, f"final_{target}_accuracy": accuracy})
                if best is None or accuracy > best["accuracy"]:
                    if best is not None and best["dir"] is not None:
                        shutil.rmtree(best["dir"], ignore_errors=True)
                    best = {"try": k + 1, "seed": try_seed, "accuracy": accuracy, "dir": try_dir,
                            "metrics": epochs_log,
                            "state": {n: v.detach().to("cpu", copy=True) for n, v in model.state_dict().items()}}
                elif try_dir is not None:
                    shutil.rmtree(try_dir, ignore_errors=True)
                if target_accuracy is None or accuracy >= target_accuracy:
                    break
                if k + 1 < n_tries:
                    notes.append(f"try {k + 1} (seed {try_seed}): final {target} accuracy {accuracy:.4f}"
                                 f" < target {target_accuracy}")
            assert best is not None
            model.load_state_dict(best["state"])
    except BaseException:
        # Leave the model (and any earlier run in run_dir) as found when training does not finish.
        model.load_state_dict(initial)
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)
        if owner is not None:
            owner.release()
        raise
    finally:
        model.to(original_device)
        for m, mode in modes:
            m.training = mode

    reached = None if target_accuracy is None else bool(best["accuracy"] >= target_accuracy)
    if spec is not None and best["try"] > 1:
        # The kept weights started from a re-initialisation with this seed.
        setattr(model, SPEC_ATTR, {**spec, "seed": best["seed"]})
    if run_path is not None and tmp_root is not None:
        try:
            _write_run(run_path, tmp_root, model, best, train_data, {
                "epochs": best["metrics"], "tries": len(history), "best_try": best["try"],
                "seed": best["seed"], "target_accuracy": target_accuracy, "reached_target": reached,
                "accuracy_on": target, "restarted_because": notes, "history": history,
                "lr": float(lr), "batch_size": int(batch_size), "device": str(dev),
            })
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)
            if owner is not None:
                owner.release()
    return TrainResult(model=model, metrics=best["metrics"], tries=len(history), reached_target=reached,
                       run_dir=run_path, restarted_because=notes, seed=best["seed"])


_LEGACY_STALE_S = 3600.0


def _hold_train_folder(folder: Path) -> Any:
    """Lock a training's scratch folder for as long as this process trains into it."""
    from neuralatlas.store.lock import StoreLock

    lock = StoreLock(folder / "owner", purpose="training")
    lock.acquire()
    return lock


def remove_stale_train_folders(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``.train-*`` scratch folders of trainings that were killed; return those removed.

    Their checkpoints would otherwise stay for ever. A folder whose owner still runs is left alone; a folder
    of an older version (no owner lock) is removed once nothing in it changed for an hour.
    """
    from neuralatlas.errors import StoreLockedError
    from neuralatlas.store.lock import StoreLock, lock_path

    removed = []
    for folder in Path(run_dir).glob(".train-*"):
        if not folder.is_dir():
            continue
        if lock_path(folder / "owner").exists():
            probe = StoreLock(folder / "owner", purpose="training")
            try:
                probe.acquire()
            except StoreLockedError:
                continue  # a training in another process is using it
            probe.release()
        else:
            newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
            if time.time() - newest < _LEGACY_STALE_S:
                continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _validate(epochs: int, lr: float, batch_size: int, restarts: int, target_accuracy: float | None) -> None:
    if int(epochs) < 0:
        raise ConfigError(f"epochs must be 0 or more, got {epochs!r}.")
    if not float(lr) > 0:
        raise ConfigError(f"lr must be positive, got {lr!r}.")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size!r}.")
    if int(restarts) < 0:
        raise ConfigError(f"restarts must be 0 or more, got {restarts!r}.")
    if target_accuracy is not None and not float(target_accuracy) > 0:
        raise ConfigError(f"target_accuracy must be a positive fraction such as 0.95, got {target_accuracy!r}.")


def _reinitialise(model: nn.Module, spec: Mapping[str, Any] | None, seed: int) -> None:
    if spec is not None:
        fresh = build(spec["builder"], **spec["kwargs"], seed=seed)
        model.load_state_dict(fresh.state_dict())
        return
    # The global RNG is already seeded with `seed` by the caller.
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def _loader(data: Dataset, batch_size: int, generator: torch.Generator | None) -> Iterable[Any]:
    """Batches in shuffled order (``generator`` given) or in data order (``None``)."""
    inputs, labels = getattr(data, "inputs", None), getattr(data, "labels", None)
    if inputs is not None and labels is not None:
        # Whole batches are sliced out of the arrays: no per-sample Python calls.
        tensors = TensorDataset(torch.as_tensor(inputs), torch.as_tensor(labels))
        order = RandomSampler(tensors, generator=generator) if generator is not None else SequentialSampler(tensors)
        return DataLoader(tensors, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)
    return DataLoader(data, batch_size=batch_size, shuffle=generator is not None, generator=generator)


def _evaluate(model: nn.Module, data: Dataset, batch_size: int, device: torch.device,
              n_classes: int | None) -> tuple[float, float]:
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in _loader(data, max(batch_size, 256), None):
            x, y = x.to(device), y.to(device)
            if y.is_floating_point() or y.ndim != 1:
                # cross-entropy would fail deep in torch (or, cast, fit truncated targets)
                raise DataError(
                    f"train() fits classifiers (cross-entropy on integer class labels); these labels are"
                    f" {y.dtype} of shape {list(y.shape)} (regression targets?). Train the model with your"
                    " own loop, save a state_dict per epoch as epoch_000.pt, epoch_001.pt ... and capture"
                    " with checkpoints=that folder (in a run config: checkpoint: FILE, loaded, not trained)."
                )
            try:
                logits = model(x)
            except RuntimeError as err:
                raise DataError(f"{type(model).__name__} cannot take inputs of shape {tuple(x.shape)}: {err}") from err
            if logits.ndim != 2 or (n_classes is not None and logits.shape[1] != n_classes):
                raise DataError(
                    f"{type(model).__name__} returns outputs of shape {tuple(logits.shape)} but the data has"
                    f" {n_classes} classes; build the model with n_classes={n_classes}."
                )
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
            count += len(y)
    if count == 0:
        raise DataError("The data set is empty; training needs at least one sample.")
    return total_loss / count, correct / count


def _train_once(model: nn.Module, train_data: Dataset, test_data: Dataset | None, epochs: int, lr: float,
                batch_size: int, seed: int, device: torch.device, ckpt_dir: Path | None,
                progress: ProgressCallback | None, try_number: int) -> list[dict[str, Any]]:
    classes = getattr(train_data, "classes", None)
    n_classes = len(classes) if classes is not None else None
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    log: list[dict[str, Any]] = []
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True)

    def finish_epoch(epoch: int, started: float) -> None:
        loss, train_acc = _evaluate(model, train_data, batch_size, device, n_classes)
        test_loss, test_acc = (_evaluate(model, test_data, batch_size, device, n_classes)
                               if test_data is not None else (None, None))
        entry = {"epoch": epoch, "loss": loss, "train_accuracy": train_acc, "test_accuracy": test_acc,
                 "test_loss": test_loss, "seconds": round(time.perf_counter() - started, 4)}
        log.append(entry)
        if ckpt_dir is not None:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            torch.save(state, ckpt_dir / f"epoch_{epoch:03d}.pt")
        if progress is not None:
            progress(epoch, epochs, {**entry, "try": try_number})

    finish_epoch(0, time.perf_counter())
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        for x, y in _loader(train_data, batch_size, generator):
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        finish_epoch(epoch, started)
    return log


def _write_json(path: Path, payload: Any) -> None:
    from neuralatlas.results import dumps

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(payload, indent=2) + "\n")  # strict: a diverged (NaN) loss is null, readable anywhere
    os.replace(tmp, path)


def _write_run(run_dir: Path, tmp_root: Path, model: nn.Module, best: Mapping[str, Any],
               train_data: Dataset, metrics: dict[str, Any]) -> None:
    target = run_dir / CHECKPOINT_DIR
    if target.exists():
        shutil.rmtree(target)
    os.replace(best["dir"], target)
    spec = getattr(model, SPEC_ATTR, None)
    if spec is not None:
        input_shape = getattr(train_data, "input_shape", None) or spec["kwargs"].get("input_shape")
        classes = getattr(train_data, "classes", None)
        info = {"builder": spec["builder"], "kwargs": spec["kwargs"],
                "input_shape": list(input_shape) if input_shape is not None else None,
                "classes": list(classes) if classes is not None else None, "seed": spec["seed"]}
        try:
            _write_json(run_dir / MODEL_FILE, info)
        except TypeError as err:
            metrics["model_json"] = f"not written: builder arguments are not JSON ({err})"
            (run_dir / (MODEL_FILE + ".tmp")).unlink(missing_ok=True)
    _write_json(run_dir / METRICS_FILE, metrics)


def list_checkpoints(run_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """The checkpoints of a run folder, by epoch, in epoch order.

    Parameters
    ----------
    run_dir : path
        A run folder (its ``checkpoints/`` is read) or a checkpoints folder itself.

    Returns
    -------
    dict of int to pathlib.Path
        Empty when there are none.

    Example
    -------
    >>> list_checkpoints("runs/digits")  # doctest: +SKIP
    {0: PosixPath('runs/digits/checkpoints/epoch_000.pt'), 1: ...}
    """
    root = Path(run_dir)
    folder = root / CHECKPOINT_DIR if (root / CHECKPOINT_DIR).is_dir() else root
    if not folder.is_dir():
        return {}
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := _CHECKPOINT_RE.match(p.name))}
    return dict(sorted(found.items()))


def load_checkpoint(model: nn.Module, path_or_run_dir: str | os.PathLike[str], epoch: int | None = None,
                    *, trust_pickle: bool = False) -> nn.Module:
    """Load one epoch's weights (strictly) into ``model`` and return it.

    A file may hold a plain ``state_dict``, a training script's checkpoint dict
    (``{"state_dict": ...}``, ``{"model_state_dict": ...}``) or keys with a DDP ``module.``
    prefix: see :mod:`neuralatlas.zoo.checkpoints`.

    Parameters
    ----------
    model : torch.nn.Module
        A model of the architecture that was trained; its device is kept.
    path_or_run_dir : path
        A checkpoint file, a run folder or a checkpoints folder.
    epoch : int, optional
        Which epoch of a folder; ``None`` loads the last one.
    trust_pickle : bool
        Also read files that pickle Python objects (a whole model); runs the file's code, so
        only for files you trust. Without it such a file is refused with the fix.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Raises
    ------
    ModelError
        When there is no such checkpoint (the epochs present are listed) or its keys or
        shapes do not fit the model.

    Example
    -------
    >>> model = load_checkpoint(mlp(), "runs/digits", epoch=0)  # doctest: +SKIP
    """
    path = Path(path_or_run_dir)
    if path.is_file():
        if epoch is not None:
            raise ModelError(f"{str(path)!r} is a single checkpoint file; pass its run folder to choose epoch={epoch}.")
        file = path
    else:
        found = list_checkpoints(path)
        if not found:
            raise ModelError(f"No checkpoints (epoch_NNN.pt) in {str(path)!r}; train with run_dir={str(path)!r} first.")
        if epoch is None:
            epoch = max(found)
        if epoch not in found:
            raise ModelError(f"No checkpoint of epoch {epoch} in {str(path)!r}; epochs present: {sorted(found)}.")
        file = found[epoch]
    return load_weights(model, file, trust_pickle=trust_pickle, what=f"Checkpoint {str(file)!r}",
                        hint="Was it trained with another model or other builder arguments?")


def load_run(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Rebuild a run's model from ``model.json`` and load its last checkpoint.

    Parameters
    ----------
    run_dir : path
        A run folder written by :func:`train`.

    Returns
    -------
    (model, metrics) : tuple
        The model (on CPU, in training mode: call ``.eval()`` to analyse) and the per-epoch
        entries of ``metrics.json`` (empty when that file is missing).

    Raises
    ------
    ModelError
        When ``model.json`` is missing (models not made by the zoo or ``build`` have
        none: build the model yourself and use :func:`load_checkpoint`) or no checkpoint fits.

    Example
    -------
    >>> model, metrics = load_run("runs/digits")  # doctest: +SKIP
    """
    root = Path(run_dir)
    info_path = root / MODEL_FILE
    if not info_path.is_file():
        raise ModelError(
            f"{str(root)!r} has no {MODEL_FILE}, so the model cannot be rebuilt; build it yourself and"
            f" call load_checkpoint(model, {str(root)!r})."
        )
    info = json.loads(info_path.read_text())
    model = build(info["builder"], **info.get("kwargs", {}), seed=info.get("seed", 0))
    load_checkpoint(model, root)
    metrics_path = root / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()).get("epochs", []) if metrics_path.is_file() else []
    return model, metrics
