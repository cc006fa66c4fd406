"""Reading weights files: one loader for the zoo, capture, the pipeline and the CLI.

A weights file may come from anywhere — this package's ``epoch_NNN.pt``, a training script
that saved ``{"state_dict": ..., "optimizer": ..., "epoch": ...}`` or
``{"model_state_dict": ...}``, a DistributedDataParallel or ``torch.compile`` model whose keys
start with ``module.`` / ``_orig_mod.``. :func:`read_state_dict` unwraps all of these to a plain
``{name: tensor}`` mapping; :func:`load_weights` then loads it strictly, naming the keys and
shapes at fault.

Files are read with ``torch.load(weights_only=True)``: a file that pickles a whole model (or
any other Python object) is refused with a message saying how to save a ``state_dict``.
Unpickling runs arbitrary code, so it happens only when asked for by name
(``trust_pickle=True``, ``trust_pickle: true`` in a config), never as a silent fallback.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuralatlas.zoo.errors import ModelError

#: Keys under which training scripts commonly nest the model's weights, in the order tried.
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")

#: Prefixes wrappers add to every key: DataParallel/DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_SAVE_HINT = "save the weights with torch.save(model.state_dict(), path)"


def _is_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _torch_load(path: Path, map_location: Any, trust_pickle: bool, what: str = "Weights") -> Any:
    """``torch.load`` with messages that say what the file is and how to fix it.

    An empty (0-byte) or truncated file — a save that was interrupted, a full disk, a copy cut
    short — otherwise surfaces as a bare ``EOFError`` (which the CLI shows as "Aborted.") or
    ``OSError: [Errno 22]`` without a path.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModelError(f"{what} file {str(path)!r} does not exist.") from None
    if size == 0:
        raise ModelError(f"{what} file {str(path)!r} is empty (0 bytes): its save was interrupted."
                         " Retrain (or copy the file again); it holds no weights.")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust_pickle)
    except (EOFError, OSError) as err:
        raise ModelError(
            f"{what} file {str(path)!r} ({size:,} bytes) is truncated or damaged ({type(err).__name__}:"
            f" {err}). Retrain (or copy the file again from where it was made)."
        ) from None
    except RuntimeError as err:
        if "zip" in str(err).lower() or "archive" in str(err).lower() or "central directory" in str(err).lower():
            raise ModelError(
                f"{what} file {str(path)!r} ({size:,} bytes) is truncated or damaged ({err}). Retrain"
                " (or copy the file again from where it was made)."
            ) from None
        raise ModelError(f"Cannot read {what.lower()} file {str(path)!r} with torch.load: {err}") from err
    except pickle.UnpicklingError as err:
        if trust_pickle:
            raise ModelError(f"Cannot unpickle weights file {str(path)!r}: {err}") from err
        raise ModelError(
            f"Weights file {str(path)!r} pickles Python objects (a whole model, or a class of your"
            f" code), which torch.load(weights_only=True) refuses because unpickling runs code."
            f" Either {_SAVE_HINT} and point to that file, or, only if you trust the file, pass"
            " trust_pickle=True (config: trust_pickle: true under the model)."
        ) from err
    except Exception as err:  # torch raises several types for unreadable files
        raise ModelError(f"Cannot read weights file {str(path)!r} with torch.load: {err}") from err


def unwrap_state_dict(obj: Any, what: str = "weights") -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` mapping inside ``obj``.

    ``obj`` is a state dict, a checkpoint dict holding one under a key of :data:`STATE_KEYS`, or a whole
    ``nn.Module`` (its ``state_dict()``).

    Wrapper prefixes (:data:`WRAPPER_PREFIXES`) are stripped when every key carries them.

    Raises
    ------
    ModelError
        When no state dict can be found; the keys that were there are listed.

    Example
    -------
    >>> sd = unwrap_state_dict({"epoch": 3, "state_dict": {"module.fc.weight": torch.zeros(2, 2)}})
    >>> list(sd)
    ['fc.weight']
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not _is_state(obj):
        if not isinstance(obj, Mapping):
            raise ModelError(f"{what} hold a {type(obj).__name__}, not a state_dict; {_SAVE_HINT}.")
        found = [k for k in STATE_KEYS if k in obj and (_is_state(obj[k]) or isinstance(obj[k], nn.Module))]
        if not found:
            keys = [str(k) for k in list(obj)[:12]]
            raise ModelError(
                f"{what} are a dict without model weights: keys {keys}{' ...' if len(obj) > 12 else ''}"
                f" (a state_dict maps parameter names to tensors, or sits under one of {list(STATE_KEYS)})."
                f" {_SAVE_HINT[0].upper() + _SAVE_HINT[1:]}.")
        inner = obj[found[0]]
        obj = inner.state_dict() if isinstance(inner, nn.Module) else inner
    state = dict(obj)
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike[str], *, map_location: Any = "cpu",
                    trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a weights file and unwrap it to a plain state dict (see :func:`unwrap_state_dict`).

    Parameters
    ----------
    path : path
        A file written by ``torch.save``.
    map_location : optional
        Passed to ``torch.load``.
    trust_pickle : bool
        Read with ``weights_only=False`` (runs the file's pickled code; only for files you
        trust). A pickled whole model then gives its ``state_dict()``.

    Raises
    ------
    ModelError
        A missing or unreadable file, pickled objects without ``trust_pickle``, or a file
        holding no state dict.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"Weights file {str(file)!r} does not exist; pass the path of a saved state_dict.")
    return unwrap_state_dict(_torch_load(file, map_location, trust_pickle), f"Weights file {str(file)!r}")


def _strip_outer(state: dict[str, torch.Tensor], own: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Keys saved from a wrapper object (Lightning's ``model.``), matched to the model's.

    A first segment shared by every key is stripped only when that makes the keys exactly the model's — a
    check, not a guess.
    """
    if set(state) == set(own):
        return state
    heads = {k.split(".", 1)[0] for k in state}
    if len(heads) == 1 and all("." in k for k in state):
        head = next(iter(heads)) + "."
        stripped = {k[len(head):]: v for k, v in state.items()}
        if set(stripped) == set(own):
            return stripped
    return state


def load_strict(model: nn.Module, state: Mapping[str, Any], what: str, hint: str = "") -> None:
    """``load_state_dict(strict=True)`` with a message that names the keys and shapes at fault."""
    own = model.state_dict()
    state = _strip_outer(dict(state), own)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if mismatched:
            parts.append(f"shape mismatches {mismatched[:5]}")
        raise ModelError(f"{what} do not fit {type(model).__name__}: {'; '.join(parts)}. {hint}".rstrip())
    model.load_state_dict(state, strict=True)


def load_weights(model: nn.Module, weights: str | os.PathLike[str] | Mapping[str, Any], *,
                 map_location: Any = None, trust_pickle: bool = False, what: str | None = None,
                 hint: str = "") -> nn.Module:
    """Load a weights file (or an in-memory checkpoint) strictly into ``model`` and return it.

    Parameters
    ----------
    model : torch.nn.Module
    weights : path or mapping
        A file as :func:`read_state_dict` reads it, or a state dict / checkpoint dict.
    map_location : optional
        Default: the device of the model's first parameter.
    trust_pickle : bool
        See :func:`read_state_dict`.
    what, hint : str, optional
        How error messages name the weights, and what they suggest.

    Raises
    ------
    ModelError
        As :func:`read_state_dict`, or when the keys or shapes do not fit the model.

    Example
    -------
    >>> net = nn.Linear(2, 2)
    >>> _ = load_weights(net, {"model_state_dict": nn.Linear(2, 2).state_dict()})
    """
    if map_location is None:
        first = next(model.parameters(), None)
        map_location = first.device if first is not None else "cpu"
    if isinstance(weights, Mapping):
        label = what or "Weights"
        state = unwrap_state_dict(weights, label)
    else:
        label = what or f"Weights file {str(weights)!r}"
        state = read_state_dict(weights, map_location=map_location, trust_pickle=trust_pickle)
    load_strict(model, state, label, hint)
    return model


__all__ = ["STATE_KEYS", "WRAPPER_PREFIXES", "load_strict", "load_weights", "read_state_dict",
           "unwrap_state_dict"]
