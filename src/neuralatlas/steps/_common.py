"""What every run-folder step shares: the run's store and folders, figure saving, summaries.

A step writes ``RUN_DIR/results/<analysis>/`` (through each result's ``save(directory)``
and one ``summary.json``) and ``RUN_DIR/figures/<analysis>/``. Figures are written in the
formats of :func:`figure_formats` (PNG by default: the report shows PNGs; the LaTeX export
draws the PDFs it needs from the saved results, see :mod:`neuralatlas.report.latex`).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from neuralatlas.errors import ConfigError, did_you_mean
from neuralatlas.results import jsonable, safe_name, write_json

#: The formats a step saves figures in when the caller does not say (the report reads PNG).
DEFAULT_FORMATS: tuple[str, ...] = ("png",)
_FORMATS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("neuralatlas_figure_formats",
                                                                          default=DEFAULT_FORMATS)
_KNOWN_FORMATS = ("png", "pdf", "svg", "pgf")


@contextlib.contextmanager
def figure_formats(formats: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """Steps run inside the block save their figures as ``formats`` (e.g. ``("png", "pdf")``).

    Examples
    --------
    >>> with figure_formats(["png", "pdf"]) as chosen:
    ...     current_formats()
    ('png', 'pdf')
    >>> current_formats()
    ('png',)
    """
    chosen = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in chosen if f not in _KNOWN_FORMATS]
    if bad or not chosen:
        raise ConfigError(f"figure format {bad[0] if bad else '(none)'!r} is not one of {', '.join(_KNOWN_FORMATS)}")
    token = _FORMATS.set(chosen)
    try:
        yield chosen
    finally:
        _FORMATS.reset(token)


def current_formats() -> tuple[str, ...]:
    """The figure formats steps save now (see :func:`figure_formats`)."""
    return _FORMATS.get()


def file_stem(name: str) -> str:
    """A layer or group name as a safe file name (:func:`neuralatlas.results.safe_name`)."""
    return safe_name(name)


def run_store(run_dir: Path) -> Any:
    """The store of a run folder (RUN_DIR/acts.zarr), or RUN_DIR itself when it is a store."""
    from neuralatlas.store import ActivationStore

    return ActivationStore.locate(run_dir)


def save(fig: Any, stem: Path, formats: Sequence[str] | None = None, layer: str | None = None) -> int:
    """Save and close ``fig`` in ``formats`` (default: :func:`current_formats`); returns the files written.

    ``layer`` (a layer, or ``"all"``) is recorded in the file for the report's tag.
    """
    import matplotlib.pyplot as plt

    from neuralatlas.plots import save_figure

    try:
        return len(save_figure(fig, stem, formats=tuple(formats) if formats else current_formats(), layer=layer))
    finally:
        plt.close(fig)


def dirs(run_dir: Path, name: str) -> tuple[Path, Path]:
    """``(RUN_DIR/results/<name>, RUN_DIR/figures/<name>)``, created."""
    results, figures = Path(run_dir) / "results" / name, Path(run_dir) / "figures" / name
    results.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    return results, figures


def write_summary(results: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` (strict JSON, NaN as null; other objects as text); return ``summary``."""
    write_json(Path(results) / "summary.json", jsonable(summary, default=str), kind=f"{Path(results).name}_summary")
    return summary


FIGURE_SETTINGS = "figure_settings.json"


def write_figure_settings(results: Path, **settings: Any) -> None:
    """Record the keyword arguments the step's ``figures`` was called with.

    Then a redraw from the saved results (the LaTeX export) draws the same figures, not the defaults'.
    """
    write_json(Path(results) / FIGURE_SETTINGS, settings, kind="figure_settings")


def read_figure_settings(results: Path) -> dict[str, Any]:
    """What :func:`write_figure_settings` recorded (empty when nothing was)."""
    from neuralatlas.results import read_json

    path = Path(results) / FIGURE_SETTINGS
    return read_json(path, kind="figure_settings") if path.is_file() else {}


INTERNAL = ("run_dir", "model", "progress", "message", "data", "client")


def checked_params(analysis: str, fn: Callable[..., Any], params: dict[str, Any],
                   internal: Sequence[str] = INTERNAL) -> dict[str, Any]:
    """Refuse parameters a step does not take, naming the valid ones (config typos fail fast)."""
    valid = [p for p in inspect.signature(fn).parameters if p not in internal]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ConfigError(f"analyses.{analysis}: unknown parameter {unknown[0]!r}."
                          f"{did_you_mean(unknown[0], valid)} Valid: {', '.join(valid)}.")
    return dict(params)


def unknown_params(analysis: str, params: dict[str, Any], valid: set[str] | Sequence[str]) -> None:
    """Refuse keys of ``params`` outside ``valid`` (steps whose parameters are not keywords)."""
    bad = [k for k in params if k not in valid]
    if bad:
        raise ConfigError(f"analyses.{analysis}: unknown parameter {bad[0]!r}.{did_you_mean(bad[0], valid)}"
                          f" Valid: {', '.join(sorted(valid))}.")


# ---------------------------------------------------------------------------- the old names
class _LegacyStepModule(types.ModuleType):
    """A step module that can still be called as the function it replaced (one release)."""

    _legacy: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        short = self.__name__.rpartition(".")[2]
        warnings.warn(f"neuralatlas.steps.{short}(...) is deprecated since 0.2; use neuralatlas.steps.{short}.step"
                      "(...), which returns the result (the summary is result.summary())", DeprecationWarning,
                      stacklevel=2)
        return self._legacy(*args, **kwargs)


def callable_module(name: str, legacy: Callable[..., Any]) -> None:
    """Let the module ``name`` be called like the old ``neuralatlas.steps.<fn>`` (with a DeprecationWarning)."""
    module = sys.modules[name]
    module.__class__ = _LegacyStepModule
    module._legacy = legacy  # type: ignore[attr-defined]
