"""One vocabulary for the whole package: shared type aliases and the rules for common parameters.

The glossary in CONTRIBUTING.md is the prose version of this module:

* ``n_samples`` — how many data samples an analysis uses; ``None`` means all of them,
  in Python, in YAML (``n_samples: null`` or ``all``) and on the CLI (``--n-samples all``,
  or leaving it out where all is the default). :func:`resolve_n_samples` is the one rule.
* ``by`` — the sample column that groups samples (``"label"``, ``"prediction"``, ``"position"`` …).
* ``epochs`` — always a *selection* of captured epochs: ``None`` (the default of the
  function), an int, a list of ints, ``"all"``, ``"last"``.
* ``layers`` — a selection of layers: ``None`` is every layer in the store's order; a list
  keeps the order given; an empty list is an error.

Old names keep working for one release through :func:`renamed_parameter`, which warns with
a ``DeprecationWarning`` naming the new one.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Union

from neuralatlas.errors import ConfigError

if TYPE_CHECKING:  # the store sits above this module in the data flow
    from neuralatlas.store import ActivationStore

StoreLike = Union["ActivationStore", str, "os.PathLike[str]"]
"""An :class:`~neuralatlas.store.ActivationStore`, or the path of one (or of a run folder)."""

Layers = str | Sequence[str] | None
"""A layer selection: a name or pattern, a list of them (order kept), or None for all."""

Epochs = int | Sequence[int] | str | None
"""An epoch selection: an index, a list of indices, ``"all"``, ``"last"``, or None (the function's default)."""

Progress = Callable[[int, int], None] | None
"""A progress callback ``(done, total)``, or None for none."""

F = TypeVar("F", bound=Callable[..., Any])

ALL_WORDS = frozenset({"all", "none", "null", ""})


def resolve_n_samples(value: Any, *, name: str = "n_samples") -> int | None:
    """The one rule for a sample count: ``None`` (or ``"all"``) means all; otherwise a positive int.

    ``0`` is refused: it used to mean "all" on the CLI and "none" elsewhere, so it is
    ambiguous; say ``None`` or ``"all"``.

    Examples
    --------
    >>> resolve_n_samples(None), resolve_n_samples("all"), resolve_n_samples("500")
    (None, None, 500)
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ALL_WORDS:
            return None
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a count: give a positive integer, or None/'all' "
                              "for every sample") from None
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ConfigError(f"{name}={value!r} is not a count: give a positive integer, or None/'all' for every sample")
    count = int(value)
    if count == 0:
        raise ConfigError(f"{name}=0 is ambiguous (it once meant 'all' on the CLI): give None or 'all' for every "
                          "sample, or a positive count")
    if count < 0:
        raise ConfigError(f"{name}={count} is negative: give a positive count, or None/'all' for every sample")
    return count


def renamed_parameter(old: str, new: str, *, since: str = "0.2", transform: Callable[[Any], Any] | None = None
                      ) -> Callable[[F], F]:
    """Decorator: keyword ``old`` keeps working as ``new`` for one release, with a ``DeprecationWarning``.

    ``transform`` converts an old value to the new meaning (e.g. the CLI's old ``n=0`` → ``None``).

    Examples
    --------
    >>> @renamed_parameter("n", "n_samples")
    ... def f(n_samples=None):
    ...     return n_samples
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     f(n=3), caught[0].category.__name__
    (3, 'DeprecationWarning')
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{func.__name__}() got both {old!r} (deprecated) and {new!r}; give only {new!r}")
                warnings.warn(f"{func.__name__}({old}=...) is deprecated since {since}; use {new}=... "
                              "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
                value = kwargs.pop(old)
                kwargs[new] = transform(value) if transform is not None else value
            return func(*args, **kwargs)

        # what the wrapper still accepts, for callers that check keywords against the signature
        # (which shows only the new names): ``{old: new}``, stacked decorators merged
        wrapper.__renamed_parameters__ = {**getattr(func, "__renamed_parameters__", {}), old: new}  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
