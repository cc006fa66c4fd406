"""One family of errors, each message naming the bad value, what is valid, and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NeuralAtlasError(Exception):
    """Base class of every error neuralatlas raises on purpose."""


class DataError(NeuralAtlasError, ValueError):
    """A data set or data file is missing, malformed or of the wrong shape."""


class LayerError(NeuralAtlasError, KeyError):
    """A layer name or pattern matches no layer of the model or store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CaptureError(NeuralAtlasError, RuntimeError):
    """Capture cannot run as asked (shapes, shared modules, outputs)."""


class StoreError(NeuralAtlasError, RuntimeError):
    """An activation store is missing, incomplete or written by other arguments."""


class StoreMismatchError(StoreError):
    """A store exists at the path but was written with other capture arguments."""


class StoreCorruptError(StoreError):
    """A store's chunk or metadata file is missing or damaged (names the layer, epoch and rows)."""


class StoreLockedError(StoreError):
    """Another process is writing to the store (names its pid and host)."""


class ModelError(NeuralAtlasError, ValueError):
    """A model name, spec, builder argument, weights file or checkpoint is wrong."""


class ConfigError(NeuralAtlasError, ValueError):
    """A run configuration is invalid."""


class AnalysisError(NeuralAtlasError, ValueError):
    """An analysis was asked for something the data cannot give."""


class NonFiniteWarning(UserWarning):
    """Captured activations or gradients hold NaN or inf values (the layers are named)."""


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (for 'did you mean')."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix, or '' when nothing is close."""
    matches = close_matches(name, candidates)
    return f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
