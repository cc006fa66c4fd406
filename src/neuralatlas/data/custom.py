"""Your own data, named ``"package.module:function"`` in a config or on the command line.

In a config that is ``data: "mypkg.data:load"``; on the command line, ``--data mypkg.data:load``.

The contract
------------
The function is called with the config's ``data.options`` as keyword arguments (and
``path=`` when ``data.path`` is given; it must then take a ``path`` argument). It returns

* ``(train, test)`` — a tuple or list of two data sets; or
* one data set — used for capture and analyses only; a run that would train the model then
  stops with an error (give the model a ``checkpoint:``, or return ``(train, test)``).

A data set is a :class:`~neuralatlas.data.ArrayDataset` (fast path; its ``classes`` name the
labels) or a map-style ``torch.utils.data.Dataset`` (``__len__`` and ``__getitem__``) whose
items are ``(inputs, label)`` pairs; ``inputs`` may be a tensor, a tuple or a dict of tensors
(``model(**inputs)``), exactly as :func:`neuralatlas.capture` takes them. What the function
returns is checked here, with an error that names what was wrong.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from neuralatlas.errors import DataError


def resolve_spec(spec: str, what: str = "data loader") -> Callable[..., Any]:
    """The callable named by ``"package.module:function"`` (``function`` may be dotted)."""
    from neuralatlas.specs import resolve_callable

    return resolve_callable(spec, error=DataError, what=what, makes="that loads data",
                            import_hint=". Put the module next to the config file (its folder is on"
                                        " sys.path during a run), install it, or add its folder to PYTHONPATH.")


def _check_dataset(ds: Any, spec: str, which: str) -> None:
    from neuralatlas.data.dataset import ArrayDataset

    if isinstance(ds, ArrayDataset):
        if len(ds) == 0:
            raise DataError(f"{spec!r} returned an empty {which} data set.")
        return
    import torch.utils.data as tud

    if isinstance(ds, tud.DataLoader):
        raise DataError(f"{spec!r} returned a DataLoader as its {which} set; return its dataset"
                        " (loader.dataset) — neuralatlas batches it itself, in order.")
    if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
        raise DataError(
            f"{spec!r} returned a {type(ds).__name__} as its {which} set; expected a neuralatlas"
            " ArrayDataset or a map-style torch Dataset (with __len__ and __getitem__) of"
            " (inputs, label) pairs.")
    if len(ds) == 0:
        raise DataError(f"{spec!r} returned an empty {which} data set.")
    item = ds[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else f"a {type(item).__name__}"
        raise DataError(f"Items of the {which} set of {spec!r} are {got}; each item must be an"
                        " (inputs, label) pair (use label -1 or 0.0 when there is none).")


def load_custom(spec: str, path: str | os.PathLike[str] | None = None, **options: Any) -> tuple[Any, Any]:
    """Call the user's data loader ``spec`` and check what it returns (see the module's contract).

    Returns
    -------
    (train, test) : tuple
        ``train`` is ``None`` when the loader returned one data set.

    Raises
    ------
    DataError
        When the loader cannot be imported, does not take the options given, fails, or returns
        something that is not one or two data sets of ``(inputs, label)`` items.

    Example
    -------
    >>> train, test = load_custom("mypkg.data:load", n=100)      # doctest: +SKIP
    """
    fn = resolve_spec(spec)
    kwargs = dict(options)
    if path is not None:
        kwargs["path"] = path
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(**kwargs)
        except TypeError as err:
            takes = [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            raise DataError(f"data loader {spec!r} cannot be called with {sorted(kwargs)}: {err}. It takes"
                            f" {takes}; set data.options (and data.path only if it takes path=).") from None
    try:
        result = fn(**kwargs)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"data loader {spec!r} failed: {type(err).__name__}: {err}") from err
    if isinstance(result, (tuple, list)) and len(result) == 2 and _looks_like_item(result):
        raise DataError(f"data loader {spec!r} returned two arrays (inputs, labels?), not data sets;"
                        " wrap them: ArrayDataset(inputs, labels, classes) from neuralatlas.data, or"
                        " torch.utils.data.TensorDataset(inputs, labels).")
    if isinstance(result, (tuple, list)) and len(result) == 2:
        train, test = result
        _check_dataset(train, spec, "train")
        _check_dataset(test, spec, "test")
        return train, test
    if isinstance(result, (tuple, list)):
        raise DataError(f"data loader {spec!r} returned a {type(result).__name__} of {len(result)} items;"
                        " return (train, test) or one data set.")
    _check_dataset(result, spec, "returned")
    return None, result


def _looks_like_item(pair: Any) -> bool:
    """(x, y) arrays/tensors themselves rather than two data sets: a common slip."""
    import numpy as np
    import torch

    return all(isinstance(p, (np.ndarray, torch.Tensor)) for p in pair)


def is_import_spec(name: str, builtin: Any = ()) -> bool:
    """``"pkg.mod:fn"`` rather than a built-in ``"name"`` or ``"name:path"``.

    ``builtin`` holds the built-in names (already normalised: lower case, ``_`` for ``-``,
    aliases resolved); :func:`neuralatlas.data.load` passes them, so this module does not
    import its own package back.
    """
    head, sep, tail = name.partition(":")
    key = head.strip().lower().replace("-", "_")
    return bool(sep) and key not in builtin and tail.replace(".", "").replace("_", "").isalnum()
