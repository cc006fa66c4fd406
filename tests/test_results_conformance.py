"""Every result class keeps the one result protocol (``neuralatlas.results.Result``).

Examples come from ``tests/result_examples/*.py`` (each defines ``EXAMPLES: dict[str, () -> Result]``).
Each one goes through save -> load -> ``equals``, ``summary()`` -> strict JSON, a strict parse of
every JSON file its ``save`` wrote, and ``_repr_html_`` with an HTML-hostile name. A last test
imports every module of the package and fails for a result class that has no example.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

# Keras reads its backend once, on import (as in test_doctests): the adapters import with jax
os.environ.setdefault("KERAS_BACKEND", "jax")

import neuralatlas  # noqa: E402
from neuralatlas.errors import ModelError, NeuralAtlasError  # noqa: E402
from neuralatlas.results import FORMAT_KEY, Result, ResultNotFoundError, result_classes  # noqa: E402

HOSTILE = "<img src=x onerror=alert(1)>"
EXAMPLE_DIR = Path(__file__).parent / "result_examples"


def _load_examples() -> dict[str, Callable[[], Result]]:
    found: dict[str, Callable[[], Result]] = {}
    for path in sorted(EXAMPLE_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"result_examples_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, make in getattr(module, "EXAMPLES", {}).items():
            key = f"{path.stem}:{name}"
            assert key not in found, f"two examples named {key}"
            found[key] = make
    return found


EXAMPLES = _load_examples()


def _reject_constant(text: str) -> None:
    raise ValueError(f"non-strict JSON constant {text}")


@pytest.fixture(params=sorted(EXAMPLES), scope="module")
def example(request):
    return EXAMPLES[request.param]()


def test_save_load_gives_an_equal_result_and_strict_files(example, tmp_path):
    folder = tmp_path / "a folder of its own"
    assert example.save(folder) == folder, "save(directory) returns the directory"
    back = type(example).load(folder)
    assert type(back) is type(example)
    assert back.equals(example) and example.equals(back), f"{type(example).__name__}: load(save(x)) != x"
    written = list(folder.rglob("*.json"))
    assert written, f"{type(example).__name__}.save wrote no JSON"
    for path in written:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        assert FORMAT_KEY in data, f"{path.name} was not written by results.write_json (no format tag)"
    assert not [p for p in folder.rglob("*") if p.name.startswith(".") and ".tmp-" in p.name]


def test_load_of_a_folder_without_the_result_names_the_folder_and_the_fix(example, tmp_path):
    cls = type(example)
    for folder in (tmp_path / "empty", tmp_path / "absent"):
        if folder.name == "empty":
            folder.mkdir()
        with pytest.raises(NeuralAtlasError) as caught:
            cls.load(folder)
        message = str(caught.value)
        assert str(folder) in message, f"{cls.__name__}.load's error does not name the folder: {message}"
        assert ".save" in message or "run " in message, f"{cls.__name__}.load's error names no fix: {message}"


def test_load_names_the_file_that_went_missing(example, tmp_path):
    """A folder ``save`` wrote, less one of its files: an error naming that file, never a half-read result."""
    cls = type(example)
    folder = example.save(tmp_path / "r")
    top = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "summary.json")
    for victim in top:
        kept = victim.read_bytes()
        victim.unlink()
        try:
            try:
                back = cls.load(folder)
            except ResultNotFoundError as err:
                assert victim.name in str(err), f"{cls.__name__}: {err}"
            except NeuralAtlasError:
                pass  # a class-specific check caught it first (say, a NeuronProjection's listing)
            else:  # only a file the result can do without (a CSV copy of its JSON) may go
                assert back.equals(example), f"{cls.__name__}.load without {victim.name} read a different result"
        finally:
            victim.write_bytes(kept)


def test_save_and_load_take_the_protocols_arguments():
    """``save(directory)`` / ``load(directory)`` for every result; anything more is optional."""
    _import_every_module()
    wrong = []
    for cls in result_classes():
        for method in ("save", "load"):
            params = list(inspect.signature(getattr(cls, method)).parameters.values())
            params = params[1:] if method == "save" else params  # self (load is a bound classmethod)
            if not params or params[0].name != "directory":
                wrong.append(f"{cls.__qualname__}.{method}: first argument {params[0].name if params else None!r}")
            wrong += [f"{cls.__qualname__}.{method}: {p.name} has no default" for p in params[1:]
                      if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert not wrong, wrong


def test_the_old_path_keyword_of_an_attack_load_warns_and_reads_the_same(tmp_path):
    from neuralatlas.adversarial.attacks import AttackResult, RobustnessCurve

    for key, cls in (("analyses:attack", AttackResult), ("analyses:robustness", RobustnessCurve)):
        example = EXAMPLES[key]()
        folder = example.save(tmp_path / key.split(":")[1])
        with pytest.warns(DeprecationWarning, match="use directory="):
            assert cls.load(path=folder).equals(cls.load(folder))


def test_equals_sees_a_changed_result(example, tmp_path):
    back = type(example).load(example.save(tmp_path / "r"))
    changed = _perturb(back)
    assert not back.equals(example), f"{type(example).__name__}.equals missed a changed {changed}"


def _float_array(value: object, seen: set[int]):
    """The first non-empty float array held anywhere in ``value`` (results, dicts, lists, dataclasses)."""
    import numpy as np

    if id(value) in seen:
        return None
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind == "f" and value.size and value.flags.writeable else None
    if isinstance(value, Result):
        children = list(value._equals_state().values())
    elif isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    elif hasattr(value, "__dataclass_fields__"):
        children = list(vars(value).values())
    else:
        return None
    for child in children:
        found = _float_array(child, seen)
        if found is not None:
            return found
    return None


def _perturb(result: Result) -> str:
    array = _float_array(result, set())
    if array is not None:
        array += 1  # in place: the result holds this very array
        return f"array of shape {array.shape}"
    for key, value in result._equals_state().items():  # no arrays (a graph): change a count
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(result, key, value + 1)
            return key
    raise AssertionError(f"nothing to change in {type(result).__name__}")


def test_summary_is_strict_json(example):
    summary = example.summary()
    assert isinstance(summary, dict)
    text = json.dumps(example.summary_json(), allow_nan=False)
    assert json.loads(text, parse_constant=_reject_constant) == example.summary_json()
    frame = example.to_frame()
    assert hasattr(frame, "columns"), "to_frame() gives a DataFrame"


def test_repr_html_escapes_names(example):
    text = example._repr_html_()
    assert HOSTILE not in text, f"{type(example).__name__}._repr_html_ shows a name unescaped"
    if HOSTILE in json.dumps(example.summary_json()):  # a name it summarises is shown, escaped
        assert "&lt;img" in text, f"{type(example).__name__}._repr_html_ does not show its names"


def _import_every_module() -> list[str]:
    skipped = []
    for info in pkgutil.walk_packages(neuralatlas.__path__, "neuralatlas."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as err:  # an optional extra not installed here
            if err.name and err.name.startswith("neuralatlas"):
                raise
            skipped.append(f"{info.name} ({err.name})")
        except ModelError as err:  # an extra whose backend is missing (keras without its backend)
            if "not installed" not in str(err):
                raise
            skipped.append(f"{info.name} ({err})")
    return skipped


def test_every_result_class_has_an_example():
    skipped = _import_every_module()
    covered = {type(make()) for make in EXAMPLES.values()}
    missing = [f"{c.__module__}.{c.__qualname__}" for c in result_classes()
               if c.__module__.startswith("neuralatlas.") and c not in covered]
    assert not missing, (
        f"result classes without an example in tests/result_examples/: {', '.join(missing)}. "
        "Add a small instance of each to an EXAMPLES dict there (a layer or group named "
        f"{HOSTILE!r} where it has names), so the conformance test checks it."
        + (f" (modules not imported, optional extras missing: {', '.join(skipped)})" if skipped else ""))


def test_old_name_arguments_still_save_and_load_with_a_warning(tmp_path):
    from neuralatlas.featurevis.dream import DreamResult

    example = EXAMPLES["analyses:dream"]()
    with pytest.warns(DeprecationWarning, match="folder of its own"):
        folder = example.save(tmp_path, "my photo")
    assert folder == tmp_path / "my_photo" and (folder / "dream.json").is_file()
    with pytest.warns(DeprecationWarning, match="folder of its own"):
        assert DreamResult.load(tmp_path, "my photo").equals(example)


@pytest.mark.parametrize("key, stem, dotted", [
    ("analyses:attack", "attack", "pgd_linf_eps0.1"),                     # an eps in the name: a dot
    ("analyses:attribution", "attribution", "saliency.v1"),
    ("analyses:discriminative", "discriminative", "discriminative_features.0_trees"),
])
def test_older_flat_files_beside_others_still_load(tmp_path, key, stem, dotted):
    """Before one folder per result, files were ``<name>.json`` / ``<name>.npz`` side by side."""
    example = EXAMPLES[key]()
    folder = example.save(tmp_path / "new")
    for suffix in (".json", ".npz"):
        (folder / f"{stem}{suffix}").rename(tmp_path / f"{dotted}{suffix}")
    assert type(example).load(tmp_path / f"{dotted}.npz").equals(example)
