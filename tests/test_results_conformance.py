"""Every result class keeps the one result protocol (``neuralatlas.results.Result``).

Examples come from ``tests/result_examples/*.py`` (each defines ``EXAMPLES: dict[str, () -> Result]``).
Each one goes through save -> load -> ``equals``, ``summary()`` -> strict JSON, a strict parse of
every JSON file its ``save`` wrote, and ``_repr_html_`` with an HTML-hostile name. A last test
imports every module of the package and fails for a result class that has no example.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

# Keras reads its backend once, on import (as in test_doctests): the adapters import with jax
os.environ.setdefault("KERAS_BACKEND", "jax")

import neuralatlas  # noqa: E402
from neuralatlas.errors import ModelError  # noqa: E402
from neuralatlas.results import FORMAT_KEY, Result, result_classes  # noqa: E402

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
