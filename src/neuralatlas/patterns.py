"""Layer-name patterns: ``*`` within one dotted segment, ``**`` across segments.

One meaning everywhere a layer is named by a pattern: at capture (model layers), in the
analyses (store layers), in ``reduce=``/``layer_output=``/``axes=`` mappings. Pure string
work, importable without torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from neuralatlas.errors import LayerError, close_matches, did_you_mean

__all__ = ["expand_layers", "is_pattern", "layer_matches", "match_pattern", "select_layers"]


def is_pattern(name: str) -> bool:
    """Whether ``name`` is a glob pattern (``*``, ``**``, ``?``, ``[...]``) rather than a name."""
    return any(c in name for c in "*?[")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A dotted-name glob as a regex: ``*`` and ``?`` stay within one segment, ``**`` crosses them.

    ``a.**.b`` also matches ``a.b`` (zero segments), as ``**`` does in paths.
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith(".**.", i):
            out.append(r"\.(?:.*\.)?")
            i += 4
        elif pattern.startswith("**.", i) and i == 0:
            out.append(r"(?:.*\.)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(r"\[")
                i += 1
                continue
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def layer_matches(name: str, pattern: str) -> bool:
    """Whether the dotted layer ``name`` matches ``pattern``.

    ``*`` matches within one dotted segment and ``**`` across segments, so
    ``encoder.layer.*.output`` matches ``encoder.layer.3.output`` but not
    ``encoder.layer.3.attention.output``; ``encoder.**.output`` matches both.

    Examples
    --------
    >>> layer_matches("encoder.layer.3.output", "encoder.layer.*.output")
    True
    >>> layer_matches("encoder.layer.3.attention.output", "encoder.layer.*.output")
    False
    """
    if not is_pattern(pattern):
        return name == pattern
    return _pattern_regex(pattern).match(name) is not None


def match_pattern(mapping: Mapping[str, Any], name: str) -> Any:
    """The value of the first key of ``{pattern: value}`` that matches ``name`` (else ``None``)."""
    for pattern, value in mapping.items():
        if layer_matches(name, pattern):
            return value
    return None


def expand_layers(names: Sequence[str], patterns: str | Sequence[str], where: str) -> list[tuple[str, bool]]:
    """Expand names and patterns over ``names``: ``(name, named_exactly)`` pairs, in the order given.

    Each pattern expands in the order of ``names`` (model order); a name met twice is kept
    once, where it was first given. A name or pattern that matches nothing raises
    :class:`LayerError` listing what exists.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns:
        raise LayerError(empty_selection(where))
    chosen: dict[str, bool] = {}
    for pattern in patterns:
        hits = [n for n in names if layer_matches(n, pattern)]
        if not hits:
            near = close_matches(pattern, names)
            near_txt = f" Close matches: {', '.join(near)}." if near else ""
            spans = ("" if not is_pattern(pattern) or "**" in pattern or "." not in pattern else
                     " (in patterns * stays within one dotted segment; ** crosses segments)")
            listing = ", ".join(names) if len(names) <= 60 else ", ".join(names[:60]) + ", ..."
            raise LayerError(
                f"No layer of {where} matches {pattern!r}{spans}.{near_txt}"
                f" Layers are named as model.named_modules() names them: {listing}"
            )
        exact = not is_pattern(pattern)
        for n in hits:
            if n in chosen:
                chosen[n] = chosen[n] or exact
            else:
                chosen[n] = exact
    return list(chosen.items())


def empty_selection(where: str) -> str:
    """The one message for ``layers=[]``: an empty selection is an error, never an empty result."""
    return (f"layers=[] selects no layer of {where}: pass layers=None for every layer, or name the layers"
            " (names or patterns such as 'fc*').")


def select_layers(names: Sequence[str], layers: str | Sequence[str] | None, where: str, *,
                  listed_as: str = "Layers stored") -> list[str]:
    """The one layer-selection rule: ``None`` is every layer of ``names`` in their order; a list keeps its order.

    Each name or pattern (``*`` within a dotted segment, ``**`` across) is expanded in the
    order of ``names``; a layer met twice is kept once, where it was first given. An exact
    name is looked up before pattern matching (a layer may be called ``blocks[0]``).

    Parameters
    ----------
    names : sequence of str
        The layers there are (a store's, a result's), in their own order.
    layers : str, sequence of str, or None
        The selection.
    where : str
        What holds ``names``, for the messages (``"the store runs/x/acts.zarr"``).
    listed_as : str
        How the list of existing layers is introduced in the message.

    Raises
    ------
    LayerError
        ``layers=[]`` (an empty selection is a mistake, not a request for nothing), or a name
        or pattern that matches no layer (the message lists what exists).

    Examples
    --------
    >>> select_layers(["fc1", "relu1", "fc2"], ["fc2", "fc1"], "the model")
    ['fc2', 'fc1']
    >>> select_layers(["fc1", "relu1", "fc2"], "fc*", "the model")
    ['fc1', 'fc2']
    """
    names = list(names)
    if layers is None:
        return names
    patterns = [layers] if isinstance(layers, str) else list(layers)
    if not patterns:
        raise LayerError(empty_selection(where))
    chosen: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise LayerError(f"Layers are named by strings; got {pattern!r} ({type(pattern).__name__}) in"
                             f" layers={layers!r}.")
        hits = [pattern] if pattern in names else [n for n in names if layer_matches(n, pattern)]
        if not hits:
            spans = ("" if not is_pattern(pattern) or "**" in pattern or "." not in pattern else
                     " (in patterns * stays within one dotted segment; ** crosses segments)")
            listing = ", ".join(names) if len(names) <= 60 else ", ".join(names[:60]) + ", ..."
            raise LayerError(f"Layer {pattern!r} is not in {where}{spans}.{did_you_mean(pattern, names)}"
                             f" {listed_as}: {listing}.")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
