"""The root table of moved names (``neuralatlas._moved.MOVED``): every old path still works.

Each entry resolves to an existing object; using the old path warns (``DeprecationWarning``,
at the caller's line) naming the new home, and gives the very object found there (a
deprecated method calls it). Nothing here is cached at the old path, so every use warns.
"""

from __future__ import annotations

import importlib
import re
import tomllib
import warnings
from pathlib import Path

import pytest

import neuralatlas
from neuralatlas._moved import MOVED, Moved, is_method, message, moved_attribute_getter, resolve, resolve_moved

ATTRIBUTES = sorted(old for old in MOVED if not is_method(old))
METHODS = sorted(old for old in MOVED if is_method(old))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_entry_names_an_existing_new_home(old):
    moved = MOVED[old]
    module, _, attr = moved.new.partition(":")
    assert module.startswith("neuralatlas.") and attr, moved.new
    assert resolve(moved.new) is getattr(importlib.import_module(module), attr)
    text = message(old)
    assert text.startswith(f"{old.partition(':')[2]}()" if is_method(old) else old.replace(":", "."))
    assert module in text and f"since {moved.since}" in text and f"goes in {moved.until}" in text
    assert moved.use is None or moved.use in text


@pytest.mark.parametrize("old", ATTRIBUTES)
def test_the_old_attribute_warns_at_the_callers_line_and_is_the_new_object(old):
    module_name, _, attr = old.partition(":")
    module = importlib.import_module(module_name)
    assert attr not in vars(module), "cached at the old path: later uses would not warn"
    with pytest.warns(DeprecationWarning) as got:
        value = getattr(module, attr)
    assert [str(w.message) for w in got] == [message(old)]
    assert got[0].filename == __file__
    assert value is resolve(MOVED[old].new)


@pytest.mark.parametrize("old", METHODS)
def test_the_old_method_warns_at_the_callers_line_and_calls_the_new_function(old, monkeypatch):
    module_name, _, path = old.partition(":")
    cls_name, _, method = path.partition(".")
    new_module, _, new_attr = MOVED[old].new.partition(":")
    calls = []
    # the new home, looked up when the method is called (not bound when the module was imported)
    monkeypatch.setattr(importlib.import_module(new_module), new_attr, lambda *a, **k: calls.append((a, k)) or "drawn")
    instance = object.__new__(getattr(importlib.import_module(module_name), cls_name))
    with pytest.warns(DeprecationWarning) as got:
        assert getattr(instance, method)() == "drawn"
    assert [str(w.message) for w in got] == [message(old)]
    assert got[0].filename == __file__
    assert len(calls) == 1 and calls[0][0] == (instance,)


def test_the_method_warnings_still_match_the_error_filter_of_pyproject():
    # pyproject.toml turns these warnings into errors in the suite (no test draws through them
    # by accident); the filter matches the message's start
    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    (line,) = [f for f in config["tool"]["pytest"]["ini_options"]["filterwarnings"] if ".figure" in f]
    pattern = line.split(":")[1]
    assert METHODS and all(re.match(pattern, message(old), re.I) for old in METHODS)


def test_every_old_name_goes_in_its_release():
    # once the package reaches an entry's release, the old name (and its entry) must be deleted
    late = [old for old, moved in MOVED.items() if _version(neuralatlas.__version__) >= _version(moved.until)]
    assert not late, f"deprecated names past their release (delete them and their MOVED entry): {late}"
    assert all(_version(m.since) < _version(m.until) for m in MOVED.values())


def test_a_getter_serves_its_module_only():
    getter = moved_attribute_getter("neuralatlas.attribution.runfolder")
    with pytest.raises(AttributeError, match="has no attribute 'attack_run'"):
        getter("attack_run")
    with pytest.raises(LookupError, match="no moved names of 'neuralatlas.nowhere'"):
        moved_attribute_getter("neuralatlas.nowhere")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from neuralatlas.attribution.runfolder import embedding_layer  # a name that stayed: no warning
    assert callable(embedding_layer)


def test_resolve_moved_blames_the_given_frame():
    def old_api():
        return resolve_moved("neuralatlas.steps:run_naps")

    with pytest.warns(DeprecationWarning, match=r"steps\.naps\.run") as got:
        fn = old_api()
    assert got[0].filename == __file__ and got[0].lineno == old_api.__code__.co_firstlineno + 4  # the call below
    assert fn is importlib.import_module("neuralatlas.steps.naps").run
    assert Moved("a:b").since == "0.2" and Moved("a:b").until == "0.3"
