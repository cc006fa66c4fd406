"""Fingerprints that keep a resumed capture honest: of a data set's content and of callables.

A store records how it was made; a second capture into the same ``out=`` resumes only when
everything that decides its numbers is the same. Names and lengths are not enough: two data
sets of one class and length, or two lambdas, are different things.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralatlas.errors import DataError

# Every item is hashed for data sets up to this length; larger ones are sampled at evenly
# spaced positions (first and last included), which catches a changed transform or a
# different file set, though not one changed item among millions (pass data_id= then).
FULL_HASH_ITEMS = 2048
SAMPLED_ITEMS = 256


def hash_value(h: Any, value: Any, where: str = "item") -> None:
    """Feed ``value`` (tensors, arrays, numbers, strings and containers of them) into ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (str, bytes))):
        a = np.ascontiguousarray(np.asarray(value))
        if a.dtype == object:
            for v in a.reshape(-1):
                hash_value(h, v, where)
            return
        h.update(f"A{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(value, Mapping):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            hash_value(h, value[k], where)
        h.update(b"}")
    elif isinstance(value, (tuple, list)):
        h.update(f"({len(value)}".encode())
        for v in value:
            hash_value(h, v, where)
    elif isinstance(value, (str, bytes, int, float, complex, bool, type(None), np.generic)):
        h.update(repr(value).encode() if not isinstance(value, bytes) else value)
    else:
        raise DataError(
            f"The {where} holds a {type(value).__name__}, whose content cannot be fingerprinted,"
            " so a later capture into the same out= could not tell this data from other data."
            " Pass data_id='...' (a name you change whenever the data changes), or return"
            " tensors/arrays from the data set."
        )


def dataset_fingerprint(dataset: Any, n: int, data_id: str | None = None) -> str:
    """A content hash of a map-style data set: every item when it is small, else a sample.

    An item that reads differently twice (random augmentation) has no stable content:
    that is an error asking for ``data_id=`` (or deterministic transforms).

    Raises
    ------
    DataError
        Items that cannot be hashed or that change from read to read.
    """
    if data_id is not None:
        return f"{type(dataset).__name__}:{n}:id={data_id}"
    if n <= FULL_HASH_ITEMS:
        positions, how = range(n), "all"
    else:
        positions = np.unique(np.linspace(0, n - 1, SAMPLED_ITEMS).round().astype(np.int64)).tolist()
        how = f"{len(positions)} of {n}"
    h = hashlib.sha1()
    for i in positions:
        hash_value(h, dataset[int(i)], f"data set's item {int(i)}")
    if n:
        first, again = hashlib.sha1(), hashlib.sha1()
        hash_value(first, dataset[0])
        hash_value(again, dataset[0])
        if first.digest() != again.digest():
            raise DataError(
                f"Item 0 of the {type(dataset).__name__} reads differently each time (a random"
                " transform?), so its activations could not be resumed or compared. Capture"
                " with deterministic transforms, or pass data_id='...' to name this data and"
                " take responsibility for it being the same on resume."
            )
    return f"{type(dataset).__name__}:{n}:{how}:{h.hexdigest()[:16]}"


def file_fingerprint(path: Path) -> str:
    """Content hash of a checkpoint file (size and mtime for files over 256 MiB).

    Recorded per epoch in a store's capture settings by the torch and the Flax/Keras loops, so
    a retrained run never passes for the one a store was captured from.
    """
    stat = path.stat()
    if stat.st_size > 256 * 2**20:
        return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{path.name}:{hashlib.sha1(path.read_bytes()).hexdigest()[:16]}"


def callable_fingerprint(fn: Callable[..., Any] | None) -> str | None:
    """A short hash of what a function does, and its name: ``"name#hash"``.

    From the function's bytecode, constants, names, defaults and closure values (so two
    lambdas on one line, or one with another constant, differ, while comments and layout do
    not matter); from its source where there is no bytecode; partials and callable objects
    through their function and arguments.
    """
    if fn is None:
        return None
    h = hashlib.sha1()
    _hash_callable(h, fn, depth=0)
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{name}#{h.hexdigest()[:12]}"


def _hash_callable(h: Any, fn: Any, depth: int) -> None:
    if isinstance(fn, functools.partial):
        _hash_callable(h, fn.func, depth)
        _hash_loose(h, fn.args, depth)
        _hash_loose(h, fn.keywords, depth)
        return
    if isinstance(fn, types.MethodType):
        _hash_loose(h, fn.__self__, depth + 1)
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if code is None and not isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)):
        code = getattr(type(fn).__call__, "__code__", None) if callable(fn) else None
        h.update(type(fn).__qualname__.encode())
        _hash_loose(h, {k: v for k, v in vars(fn).items()} if hasattr(fn, "__dict__") else {}, depth + 1)
    if code is not None:
        _hash_code(h, code)
        _hash_loose(h, getattr(fn, "__defaults__", None), depth)
        _hash_loose(h, getattr(fn, "__kwdefaults__", None), depth)
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                _hash_loose(h, cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                h.update(b"<empty>")
        globs = getattr(fn, "__globals__", {})
        for name in code.co_names:  # simple module-level values the function reads
            value = globs.get(name)
            if isinstance(value, (int, float, str, bool, tuple)) or (callable(value) and depth < 2
                                                                      and isinstance(value, types.FunctionType)):
                h.update(name.encode())
                _hash_loose(h, value, depth + 1)
        return
    try:
        h.update(textwrap.dedent(inspect.getsource(fn)).encode())
    except (OSError, TypeError):
        h.update(repr(fn).encode())


def _hash_code(h: Any, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(h, const)
        else:
            h.update(repr(const).encode())


def _hash_loose(h: Any, value: Any, depth: int) -> None:
    """Hash a value a callable depends on; what has no stable content is hashed by type."""
    if depth > 3:
        h.update(type(value).__qualname__.encode())
        return
    if isinstance(value, (types.FunctionType, functools.partial)):
        _hash_callable(h, value, depth + 1)
    elif isinstance(value, torch.nn.Module):
        h.update(type(value).__qualname__.encode())
        for k, t in value.state_dict().items():
            h.update(k.encode())
            hash_value(h, t)
    else:
        try:
            hash_value(h, value)
        except DataError:
            h.update(type(value).__qualname__.encode())


def positional_count(fn: Any, most: int, unknown: int | None = None) -> int:
    """How many positional arguments ``fn`` takes, up to ``most`` (``*args`` takes all).

    ``unknown`` is the answer when the signature cannot be read (default ``most``). Capture
    and attribution both use it to call a user's target/output function with the arguments
    it accepts (``(output, labels)`` or ``(output, labels, inputs)``).
    """
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return most if unknown is None else unknown
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return most
    return min(most, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params))
