"""``"package.module:function"`` specs: the one resolver for user models and user data loaders."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from neuralatlas.errors import NeuralAtlasError, did_you_mean


def resolve_callable(spec: str, *, error: type[NeuralAtlasError], what: str, import_hint: str,
                     makes: str) -> Callable[..., Any]:
    """The callable named by ``spec`` (``function`` may be dotted: ``module:Class.method``).

    Parameters
    ----------
    spec : str
        ``"package.module:function"``.
    error : NeuralAtlasError subclass
        Raised, with the problem and the fix, when the spec is malformed, its module does not
        import, the attribute is missing (with a did-you-mean) or not callable.
    what : str
        How the messages name the spec ("model spec", "data loader").
    import_hint : str
        The fix appended when the module does not import.
    makes : str
        What a callable of this kind does ("builds a model"), for the not-callable message.
    """
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise error(f"{what[0].upper()}{what[1:]} {spec!r} must look like 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise error(f"Cannot import module {module_name!r} of {what} {spec!r} ({err}){import_hint}") from err
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise error(f"Module {module_name!r} has no attribute {attr_path!r} ({what} {spec!r})."
                        + did_you_mean(part, public))
        obj = getattr(obj, part)
    if not callable(obj):
        raise error(f"{spec!r} names an object of type {type(obj).__name__}, not a function {makes}.")
    return obj
