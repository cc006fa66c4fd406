"""Layer-name patterns: ``*`` within one dotted segment, ``**`` across segments.

One meaning everywhere a layer is named by a pattern: at capture (model layers), in the
analyses (store layers), in ``reduce=``/``layer_output=``/``axes=`` mappings. Pure string
work, importable without torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from neuralatlas.errors import LayerError, close_matches

__all__ = ["expand_layers", "is_pattern", "layer_matches", "match_pattern"]


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
