"""The interactive projection section: zoom, hover thumbnails, layer and epoch sliders.

Reads what :meth:`neuralatlas.analysis.projection.Projection.save` writes into
``<model>/results/projection/`` (``projection.json`` + ``coordinates.npz``) through
:func:`load_projection` — the one place to change if that format changes. Each model's
projection travels to the page as one compact JSON payload; the page's script draws it
with plotly (one trace per class, misclassified samples as crosses) and swaps the
coordinates when a slider moves. Static figures and the ``summary.json`` tables of the
analysis follow, as in any section.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.report.collect import AnalysisOutput
from neuralatlas.report.components import attrs, esc, json_script
from neuralatlas.report.sections import SectionContext, analysis_block, register_section
from neuralatlas.report.thumbnails import MAX_THUMBNAILS, sprite

MAX_POINTS = 5000  # SVG scatter stays smooth up to here; larger projections are subsampled


def load_projection(results_dir: Path) -> Any | None:
    """The saved projection of one model, or None when the folder holds none.

    Returns an object with (at least) the attributes the section reads:
    ``coordinates`` ``{(layer, epoch): [n, 2]}`` (``epoch`` None = final model),
    ``layers``, ``epochs``, ``index`` ``[n]`` (position in the data set, for thumbnails),
    ``labels`` ``[n]``, ``predictions`` ``{epoch: [n]}``, ``quality``
    ``{(layer, epoch): {score: value}}``, ``classes``, ``method`` — i.e. a
    :class:`neuralatlas.analysis.projection.Projection`.
    """
    if not (Path(results_dir) / "projection.json").exists():
        return None
    from neuralatlas.analysis.projection import Projection

    return Projection.load(results_dir)


# Coordinates travel as 16-bit integers on each layer/epoch's own bounding box: 65,534
# steps across the plot is far finer than any screen (or zoom) resolves, and base64 of
# two bytes per number is 2.7 characters, against ~7 for the same numbers printed to four
# significant digits (the demo's two projections: 1.08 MB -> 0.42 MB of the page).
XY_MISSING = 0xFFFF  # the code of a NaN coordinate (a sample the projection left out)
_XY_LEVELS = XY_MISSING - 1


def encode_xy(xy: np.ndarray) -> dict[str, Any]:
    """``[n, 2]`` coordinates as ``{"lo": [x, y], "step": [dx, dy], "q": base64}``.

    ``q`` holds little-endian uint16 codes ``[x0, y0, x1, y1, ...]``; a coordinate is
    ``lo + code * step`` (per axis), code :data:`XY_MISSING` is NaN. The largest error is
    half a step, ``extent / 131068``. :func:`decode_xy` (and ``report.js``) invert it.
    """
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    finite = np.isfinite(pts)
    lo = np.array([float(pts[finite[:, a], a].min()) if finite[:, a].any() else 0.0 for a in (0, 1)])
    hi = np.array([float(pts[finite[:, a], a].max()) if finite[:, a].any() else 0.0 for a in (0, 1)])
    step = np.where(hi > lo, (hi - lo) / _XY_LEVELS, 1.0)
    codes = np.rint((np.where(finite, pts, lo) - lo) / step)
    codes = np.where(finite, np.clip(codes, 0, _XY_LEVELS), XY_MISSING).astype("<u2")
    return {"lo": lo.tolist(), "step": step.tolist(), "q": base64.b64encode(codes.tobytes()).decode("ascii")}


def decode_xy(entry: dict[str, Any]) -> np.ndarray:
    """The ``[n, 2]`` coordinates of an :func:`encode_xy` entry (NaN where none)."""
    codes = np.frombuffer(base64.b64decode(entry["q"]), "<u2").reshape(-1, 2)
    out = np.asarray(entry["lo"], np.float64) + codes * np.asarray(entry["step"], np.float64)
    return np.where(codes == XY_MISSING, np.nan, out)


def projection_payload(proj: Any, model: str, images: np.ndarray | None = None,
                       texts: list[str] | None = None) -> dict[str, Any]:
    """What the page's script needs to draw one model's projection (see ``report.js``).

    Keys: ``model``, ``method``, ``layers``, ``epochs`` (``null`` = final model),
    ``classes``, ``labels``, ``index``, ``pred`` (``{epoch or "final": [n]}``),
    ``keys`` (``[[layer, epoch], ...]``) with ``xy`` (the coordinates, :func:`encode_xy`) and
    ``quality`` (scores) aligned to them, ``sprite`` (thumbnail sheet, or null), ``texts`` (the
    sentence, or the token in context, of each point; null for non-text data), wrapped
    with newlines every ~60 characters.
    """
    n = len(proj.labels)
    keep = np.arange(n)
    if n > MAX_POINTS:  # an even subsample keeps every class in proportion
        keep = np.linspace(0, n - 1, MAX_POINTS).astype(np.int64)
    keys = list(proj.coordinates)
    epochs = sorted(dict.fromkeys(k[1] for k in keys), key=lambda e: (e is None, e or 0))
    return {
        "model": model,
        "method": proj.method,
        "layers": list(dict.fromkeys(k[0] for k in keys)),
        "epochs": epochs,
        "classes": list(proj.classes),
        "labels": proj.labels[keep].tolist(),
        "index": proj.index[keep].tolist(),
        "pred": {("final" if e is None else str(e)): np.asarray(p)[keep].tolist()
                 for e, p in proj.predictions.items()},
        "keys": [[k[0], k[1]] for k in keys],
        "xy": [encode_xy(np.asarray(proj.coordinates[k])[keep]) for k in keys],
        "quality": [{s: (round(float(v), 4) if v is not None and math.isfinite(v) else None)
                     for s, v in proj.quality.get(k, {}).items()} for k in keys],
        "sprite": sprite(images[keep]) if images is not None and len(keep) <= MAX_THUMBNAILS else None,
        "texts": [_wrapped(texts[int(i)]) for i in keep] if texts is not None else None,
    }


def _wrapped(text: str, width: int = 60) -> str:
    import textwrap

    # lines split at spaces only, so joining them with spaces gives the text back
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)) or text


def projection_widget(payload: dict[str, Any], class_colors: list[str]) -> str:
    """The interactive plot with its sliders; drawn by ``report.js`` from the JSON payload."""
    payload = {**payload, "colors": class_colors}
    n_layers, n_epochs = len(payload["layers"]), len(payload["epochs"])
    epoch_ctrl = ""
    if n_epochs > 1:
        epoch_ctrl = (f'<label>epoch <input type="range" class="na-proj-epoch" min="0" max="{n_epochs - 1}"'
                      f' step="1" value="{n_epochs - 1}"> <output class="na-proj-epoch-name"></output></label>'
                      '<button type="button" class="na-proj-play" title="play the epochs">▶ play</button>')
    layer_ctrl = (f'<label>layer <input type="range" class="na-proj-layer" min="0" max="{max(0, n_layers - 1)}"'
                  f' step="1" value="{max(0, n_layers - 1)}"{" disabled" if n_layers < 2 else ""}>'
                  ' <output class="na-proj-layer-name"></output></label>')
    predicted = bool(payload.get("pred"))  # a store of class logits; an encoder or a regression has none
    what = "label and prediction" if predicted else "label"
    note = (f"hover a point for its image, {what}" if payload.get("sprite")
            else f"hover a point for its text, {what}" if payload.get("texts")
            else f"hover a point for its {what}")
    if predicted:
        note += "; × marks a misclassified sample"
    return (f'<div class="na-proj"{attrs(payload["model"])}>'
            f'<div class="na-proj-controls">{layer_ctrl}{epoch_ctrl}'
            f'<span class="na-proj-score"></span></div>'
            f'<div class="na-plot na-proj-plot" style="min-height:520px"></div>'
            f'<p class="na-muted">{esc(payload["method"])} of {len(payload["labels"])} samples; '
            f"{esc(note)}; click a class in the legend to hide it.</p>"
            f'{json_script(payload, cls="na-proj-data")}</div>')


def _hex_colors(n: int) -> list[str]:
    from matplotlib.colors import to_hex

    from neuralatlas.plots.style import class_colors

    return [to_hex(c) for c in class_colors(max(1, n))]


@register_section("projection", title="Projections")
def render_projection(ctx: SectionContext) -> str:
    """Per model: the interactive projection (when one was saved), then tables and figures."""
    parts = []
    for out in ctx.outputs:
        parts.append(analysis_block(ctx, out, before=_interactive(ctx, out)))
    return "".join(parts)


def _interactive(ctx: SectionContext, out: AnalysisOutput) -> str:
    proj = load_projection(out.results_dir)
    if proj is None or not proj.coordinates:
        return ""
    images = texts = None
    if ctx.images is not None:
        store = _model_store(ctx, out.model)
        texts = ctx.images.texts(store, proj.rows, proj.index)
        if texts is None:  # text data shows its sentences instead of thumbnails
            images = ctx.images.by_index(proj.index)
        if texts is None and images is None and ctx.images.note:
            ctx.notes.append(f"{out.model}: {ctx.images.note}")
    payload = projection_payload(proj, out.model, images, texts)
    return projection_widget(payload, _hex_colors(len(payload["classes"])))


def _model_store(ctx: SectionContext, model: str) -> Path | None:
    try:
        info = ctx.model(model).store
    except Exception:  # noqa: BLE001 - no store known: texts come from the data set, if at all
        return None
    return None if info is None else Path(info.path)
