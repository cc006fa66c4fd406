"""Token attributions as words and as HTML: the rows of a token heat map and its ``<span>`` markup.

No figure is drawn here, so :class:`~neuralatlas.attribution.result.Attribution` shows its
token heat map in a notebook (``_repr_html_``) without importing :mod:`neuralatlas.plots`,
which sits above attribution. The figure of the same rows, merging and colour scale is
:func:`neuralatlas.plots.attribution.attribution_token_heatmap`; the plots module re-exports
these functions under their old names. The module sits at the bottom of the package (numpy
and the colour-map names only), not inside :mod:`neuralatlas.attribution`, whose package
import loads torch and captum: importing :mod:`neuralatlas.plots` stays light.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuralatlas.errors import AnalysisError
from neuralatlas.palette import DIVERGING, MAGNITUDE

__all__ = ["token_heatmap_html", "token_rows", "token_scale"]

_SPACE_MARKERS = ("Ġ", "▁")  # byte-level BPE (GPT-2, RoBERTa) and SentencePiece word starts

Rows = list[tuple[str, list[tuple[str, float]]]]


def token_rows(result: Any, *, samples: int | Sequence[int] = 8, merge: bool = True,
               tokenizer: Any = None, classes: Sequence[str] | None = None) -> Rows:
    """``[(caption, [(token, score), ...]), ...]`` for the chosen samples, padding dropped.

    Scores are :attr:`Attribution.token_scores` (an embedding layer's maps summed over its
    dimension). With ``merge`` a word split into sub-word pieces is shown as one word whose
    score is the sum of its pieces' (sums keep completeness): WordPiece continuations
    (``##ing``) join the piece before them, and with byte-level BPE / SentencePiece a piece
    that does not start a word (no ``Ġ`` / ``▁``) joins the one before; the markers are
    dropped. Special tokens ([CLS], [SEP], <|endoftext|>) stay as they are. ``merge=False``
    shows every token exactly as the tokenizer wrote it.

    Raises
    ------
    AnalysisError
        The result carries no token strings and no ``tokenizer`` (with its ids) was given.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> res = SimpleNamespace(token_scores=np.array([[0.5, 0.25, 0.125, 0.0]]), mask=np.array([[1, 1, 1, 0]]),
    ...                       tokens=np.array([["[CLS]", "play", "##ing", "[PAD]"]]), labels=np.array([1]))
    >>> token_rows(res, classes=["calm", "sport"])
    [('sample 0 · sport', [('[CLS]', 0.5), ('playing', 0.375)])]
    >>> token_scale(token_rows(res), signed=True, vmax=None)
    (-0.5, 0.5)
    """
    scores = np.asarray(result.token_scores, np.float64)
    tokens = getattr(result, "tokens", None)
    if tokens is None:
        if tokenizer is None or getattr(result, "inputs", None) is None:
            raise AnalysisError("These attributions carry no token strings; pass tokenizer=... (the one that"
                                " made the ids), or attribute a TextDataset so the tokens are kept.")
        ids = np.asarray(result.inputs)
        tokens = np.array(tokenizer.convert_ids_to_tokens(ids.reshape(-1).tolist()), dtype=str).reshape(ids.shape)
    tokens = np.asarray(tokens)
    n = len(scores)
    rows = list(range(min(int(samples), n))) if isinstance(samples, (int, np.integer)) else [int(i) for i in samples]
    mask = getattr(result, "mask", None)
    labels = getattr(result, "labels", None)
    out = []
    for r in rows:
        keep = np.ones(scores.shape[1], bool) if mask is None else np.asarray(mask[r]) != 0
        keep &= tokens[r] != ""
        pieces = [(str(t), float(s)) for t, s in zip(tokens[r][keep], scores[r][keep], strict=True)]
        caption = f"sample {r}"
        if labels is not None and r < len(labels):
            lab = int(labels[r])
            caption += f" · {classes[lab] if classes is not None and 0 <= lab < len(classes) else lab}"
        out.append((caption, _merge_pieces(pieces) if merge else pieces))
    return out


def _is_special(token: str) -> bool:
    return (token.startswith("[") and token.endswith("]")) or (token.startswith("<") and token.endswith(">"))


def _merge_pieces(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    markers = any(t.startswith(_SPACE_MARKERS) for t, _ in pieces)
    words: list[list[Any]] = []
    for token, score in pieces:
        special = _is_special(token)
        if token.startswith("##") and words and not _is_special(words[-1][0]):
            words[-1][0] += token[2:]
            words[-1][1] += score
        elif (markers and not special and words and not _is_special(words[-1][0])
              and not token.startswith(_SPACE_MARKERS)):
            words[-1][0] += token
            words[-1][1] += score
        else:
            words.append([token.lstrip("".join(_SPACE_MARKERS)) or token, score])
    return [(w, s) for w, s in words]


def token_scale(rows: Rows, signed: bool, vmax: float | None) -> tuple[float, float]:
    """The colour scale of the rows: ``(-top, top)`` when signed, else ``(0, top)``.

    ``top`` is ``vmax`` when given, else the largest finite ``|score|`` shown (1 when there is
    none, or when every score is 0, so that an all-zero sentence is drawn neutral).
    """
    if vmax is not None:
        top = float(vmax)
    else:
        values = np.abs(np.array([s for _, toks in rows for _, s in toks], np.float64))
        values = values[np.isfinite(values)]
        top = float(values.max()) if values.size and values.max() > 0 else 1.0
    return (-top, top) if signed else (0.0, top)


def token_heatmap_html(result: Any, *, samples: int | Sequence[int] = 8, merge: bool = True,
                       tokenizer: Any = None, classes: Sequence[str] | None = None,
                       vmax: float | None = None) -> str:
    """The token heat map as HTML: one ``<p>`` per sentence of ``<span>`` tokens on coloured backgrounds.

    Same rows, merging and colour scale as
    :func:`neuralatlas.plots.attribution.attribution_token_heatmap` (the colour maps of
    :mod:`neuralatlas.palette`: diverging centred on 0 for signed methods, from 0 for unsigned
    ones); token text and captions are escaped, and each span's ``title`` holds its score. For
    embedding in the report or a notebook.

    Parameters
    ----------
    result : Attribution
        Token attributions, with ``tokens`` kept or a ``tokenizer`` given.
    samples : int or sequence of int
        How many samples (the first ones) or which rows.
    merge : bool
        Words with their sub-word pieces merged and scores summed (see :func:`token_rows`).
    tokenizer, classes
        To turn ids into tokens when the result has none; class names for the captions.
    vmax : float, optional
        Top of the colour scale; default the largest ``|score|`` shown.

    Returns
    -------
    str
        A ``<div class="na-tokens">`` element.
    """
    # the colour maps only (no pyplot, no figure): the HTML matches the figure's colours
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, to_hex

    rows = token_rows(result, samples=samples, merge=merge, tokenizer=tokenizer, classes=classes)
    signed = bool(getattr(result, "signed", True))
    lo, hi = token_scale(rows, signed, vmax)
    norm = Normalize(lo, hi)
    cmap = colormaps[DIVERGING if signed else MAGNITUDE]
    parts = ['<div class="na-tokens">']
    for caption, toks in rows:
        spans = []
        for tok, score in toks:
            v = float(norm(score))
            dark = abs(v - (0.5 if signed else 0.0)) > (0.35 if signed else 0.7)
            spans.append(f'<span style="background:{to_hex(cmap(v))};color:{"#fff" if dark else "#000"};'
                         f'padding:0 2px;border-radius:2px" title="{score:+.4g}">{html.escape(tok)}</span>')
        parts.append(f'<p><small style="color:#666">{html.escape(caption)}</small> {" ".join(spans)}</p>')
    scale = f"{lo:+.3g} … {hi:+.3g}" if signed else f"0 … {hi:.3g}"
    parts.append(f'<p><small style="color:#666">colour scale {html.escape(scale)}'
                 f' ({"blue negative, red positive" if signed else "darker = larger"})</small></p></div>')
    return "".join(parts)
