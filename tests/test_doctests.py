"""Every docstring example in the package runs, one test per module.

The examples are documentation first: they must run, fast, on data generated in the example
(digits, toy sets, tiny models) and write only below a temporary working directory. Examples
that need what a test cannot have (a trained model from a run folder, a file from another
tool) carry ``# doctest: +SKIP`` on each of their lines.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import pytest

# Keras reads its backend once, on import; the package supports jax and torch.
os.environ.setdefault("KERAS_BACKEND", "jax")
# An example must never reach the network (Hugging Face would try to).
os.environ["HF_HUB_OFFLINE"] = "1"

import neuralatlas  # noqa: E402  (after the environment it reads on import)
from neuralatlas.errors import ModelError  # noqa: E402

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = [neuralatlas.__name__]
    def unreadable(name: str) -> None:  # walk_packages would skip a package that fails to import
        raise ImportError(f"{name} could not be imported to list its modules")

    for info in pkgutil.walk_packages(neuralatlas.__path__, prefix=f"{neuralatlas.__name__}.", onerror=unreadable):
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_module_is_found():
    # walk_packages silently skips what it cannot see; a few known modules guard the list
    for name in ("neuralatlas.analysis.topomap", "neuralatlas.capture.loop", "neuralatlas.report.html"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files ("runs/x") write them here
    try:
        module = importlib.import_module(name)
    except ModelError as err:
        # an adapter for an optional framework (jax, keras) whose extra is not installed
        if not isinstance(err.__context__, ImportError):
            raise
        pytest.skip(str(err))
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name, globs=dict(vars(module))) if t.examples]
    if not tests:
        pytest.skip(f"{name} has no examples")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append, clear_globs=True)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples failed in {name}:\n" + "".join(report)
