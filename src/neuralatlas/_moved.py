"""Old homes of moved names: one table, and the one way an old path reaches the new one.

A name that moved to another module keeps working at its old path for one release, with a
``DeprecationWarning`` that names the new one. The old module does not import the new home
(often a layer above it, docs/ARCHITECTURE.md): it names it in :data:`MOVED`, and this module
imports it by name when the old path is used. So the import graph has no upward edge, and
``tests/test_moved.py`` checks every entry (it resolves, it warns naming the new home, it is
the very object there). Besides the root ``__init__`` (the public names), this is the only
module whose by-name imports reach above its own layer (``BY_NAME`` of
``tests/test_architecture_rules.py`` lists every module that imports by name, and why).

An old module hands its attribute look-ups here::

    __getattr__ = moved_attribute_getter(__name__)

and a deprecated method calls what replaced it::

    return resolve_moved("neuralatlas.attribution.photos:PhotoAttribution.figure")(self, **kwargs)

Imports the standard library only (layer root).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Moved:
    """Where an old name went.

    Parameters
    ----------
    new : str
        ``"module:attr"`` of the object the old name now resolves to (the identical object).
    use : str, optional
        What the warning tells callers to write instead, when not ``new`` itself (a public
        re-export, a call, a successor with a new signature).
    why : str, optional
        A reason the warning gives, in a few words.
    since : str
        The release that deprecated the old name.
    until : str
        The release without it (``tests/test_moved.py`` fails once ``__version__`` gets there).
    """

    new: str
    use: str | None = None
    why: str | None = None
    since: str = "0.2"
    until: str = "0.3"


def _from(module: str, names: dict[str, str | Moved]) -> dict[str, Moved]:
    """``{old attr: new "module:attr" or Moved}`` of one old module, as keys of :data:`MOVED`."""
    return {f"{module}:{old}": new if isinstance(new, Moved) else Moved(new) for old, new in names.items()}


_SIMILARITY: dict[str, str | Moved] = {
    # the old ``run_similarity(ctx, params, reporter)`` read ``ctx.store``; the new ``run`` reads the
    # run folder, so the old name keeps its own function until it goes
    "run_similarity": Moved("neuralatlas.steps.similarity:legacy_run_similarity",
                            use="neuralatlas.steps.similarity.run"),
    "save_figures": Moved("neuralatlas.steps.similarity:save_figures", use="neuralatlas.steps.similarity.figures"),
    "_STEP_PARAMS": "neuralatlas.steps.similarity:PARAMS",
}

#: ``"old.module:attr"`` (a module attribute) or ``"old.module:Class.method"`` (a deprecated
#: method) -> where it went. Every old path of a moved name that still works is here.
MOVED: dict[str, Moved] = {
    # run-folder steps moved from the analyses up to neuralatlas.steps (0.2)
    **_from("neuralatlas.attribution.runfolder", {
        "attribute_run": "neuralatlas.steps.attribution:attribute_run",
        "load_run_data": "neuralatlas.steps.attribution:load_run_data"}),
    **_from("neuralatlas.attribution.jax_methods", {"attribution_step": "neuralatlas.steps.attribution:jax_step"}),
    **_from("neuralatlas.adversarial.runfolder", {"attack_run": "neuralatlas.steps.adversarial:attack_run"}),
    **_from("neuralatlas.analysis.similarity", _SIMILARITY),
    **_from("neuralatlas.analysis.similarity.step", _SIMILARITY),
    **_from("neuralatlas.photo_steps", {
        "run_unit_cards": "neuralatlas.steps.unit_cards:run",
        "unit_cards_step": "neuralatlas.steps.unit_cards:step",
        "run_photo_attribution": "neuralatlas.steps.photo_attribution:run",
        "run_deepdream": "neuralatlas.steps.deepdream:run"}),
    **_from("neuralatlas.steps", {f"run_{name}": f"neuralatlas.steps.{name}:run" for name in (
        "naps", "topomap", "architecture", "featurevis", "similarity", "projection", "attribution", "adversarial")}),
    # capturing runs a model, so it moved from the store up to capture (0.2)
    "neuralatlas.store:import_innspect_corpus": Moved("neuralatlas.capture.innspect:import_innspect_corpus",
                                                      use="neuralatlas.import_innspect_corpus"),
    # a result does not draw itself: figures live in plots, above the analyses
    "neuralatlas.attribution.photos:PhotoAttribution.figure": Moved(
        "neuralatlas.plots.attribution:attribution_photo_grid", use="neuralatlas.plots.attribution_photo_grid(result)",
        why="results do not draw themselves"),
    "neuralatlas.featurevis.units:UnitCard.figure": Moved(
        "neuralatlas.plots.featurevis:featurevis_unit_card", use="neuralatlas.plots.featurevis_unit_card(card)",
        why="results do not draw themselves"),
}


def _split(path: str) -> tuple[str, str]:
    module, _, attr = path.partition(":")
    return module, attr


def is_method(old: str) -> bool:
    """Whether the old name ``"module:Class.method"`` is a deprecated method (not a module attribute)."""
    return "." in _split(old)[1]


def message(old: str) -> str:
    """The warning the old name gives: what is deprecated, since when, until when, and what to use.

    A method reads ``"Class.method() is deprecated ..."`` (a ``filterwarnings`` line of
    pyproject.toml matches that start); a module attribute by its full dotted old path.
    """
    moved = MOVED[old]
    module, attr = _split(old)
    new_module, new_attr = _split(moved.new)
    use = moved.use or f"{new_module}.{new_attr}"
    notes = [f"in {new_module}"] if not use.startswith(new_module + ".") else []
    notes += [moved.why] if moved.why else []
    shown = f"{attr}()" if is_method(old) else f"{module}.{attr}"
    return (f"{shown} is deprecated since {moved.since} and goes in {moved.until}; use {use}"
            + (f" ({'; '.join(notes)})" if notes else ""))


def resolve(path: str) -> Any:
    """The object ``"module:attr"`` names (``attr`` may be dotted), importing its module; no warning."""
    module, attr = _split(path)
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_moved(old: str, *, stacklevel: int = 2) -> Any:
    """What the old name ``old`` (a key of :data:`MOVED`) resolves to, with its DeprecationWarning.

    Parameters
    ----------
    old : str
        ``"old.module:attr"`` or ``"old.module:Class.method"``.
    stacklevel : int
        As :func:`warnings.warn` would count it in the function calling this one: 2 (default)
        blames that function's caller (the line that used the old name).
    """
    warnings.warn(message(old), DeprecationWarning, stacklevel=stacklevel + 1)
    return resolve(MOVED[old].new)


def moved_names(module: str) -> list[str]:
    """The module attributes of ``module`` that moved (keys of :data:`MOVED`), in the table's order."""
    return [_split(old)[1] for old in MOVED if _split(old)[0] == module and not is_method(old)]


def moved_attribute_getter(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving the names :data:`MOVED` lists for ``module``.

    Raises
    ------
    LookupError
        ``module`` has no entry in :data:`MOVED` (a typo, or an old module whose names are gone).
    """
    names = set(moved_names(module))
    if not names:
        raise LookupError(f"no moved names of {module!r} in neuralatlas._moved.MOVED")

    def __getattr__(name: str) -> Any:
        if name in names:
            return resolve_moved(f"{module}:{name}", stacklevel=2)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    __getattr__.__doc__ = f"The moved names of {module} ({', '.join(sorted(names))}), with a DeprecationWarning."
    return __getattr__
