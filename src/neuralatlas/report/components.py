"""Small HTML pieces every section uses: figures, tables, plotly plots, embedded JSON.

Everything returned is a self-contained HTML string (images as data URIs, plot specs as
inline JSON), so a section can be pasted into the report, a notebook cell
(``_repr_html_``), or any page, and still shows without files or a server.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.report.tables import Table, format_number, is_number, readable_columns

__all__ = ["attrs", "esc", "figure_html", "json_script", "matplotlib_html", "plot_html", "table_html",
           "tables_html"]


def esc(text: Any) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(text), quote=True)


def attrs(model: str | None = None, layer: str | None = None, **extra: Any) -> str:
    """``data-model``/``data-layer`` attributes the layer picker filters on ('' when None)."""
    parts = []
    if model is not None:
        parts.append(f' data-model="{esc(model)}"')
    if layer is not None:
        parts.append(f' data-layer="{esc(layer)}"')
    for key, value in extra.items():
        if value is not None:
            parts.append(f' {key.replace("_", "-")}="{esc(value)}"')
    return "".join(parts)


def jsonable(value: Any) -> Any:
    """Plain JSON from numpy values: lists and numbers; NaN and inf to None (JSON has neither)."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def json_script(value: Any, cls: str = "", id: str | None = None) -> str:
    """Embed data as ``<script type="application/json">`` that no text inside can close early."""
    text = json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)
    # "<" never needs to be literal in JSON; escaping it keeps "</script>" and "<!--" inert.
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    id_attr = f' id="{esc(id)}"' if id else ""
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return f'<script type="application/json"{id_attr}{cls_attr}>{text}</script>'


def plot_html(data: list[dict[str, Any]], layout: dict[str, Any] | None = None, *,
              model: str | None = None, layer: str | None = None, height: int = 320,
              cls: str = "") -> str:
    """A plotly plot drawn by the report's script from an inline JSON spec (plotly.js is inlined once)."""
    layout = {"height": height, "margin": {"l": 50, "r": 20, "t": 30, "b": 40}, **(layout or {})}
    spec = json_script({"data": data, "layout": layout}, cls="na-plot-spec")
    return (f'<div class="na-plot-wrap {esc(cls)}"{attrs(model, layer)}>'
            f'<div class="na-plot" style="min-height:{int(height)}px"></div>{spec}</div>')


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, without decoding it."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


# Figures are shown at their drawn size (inches x 96 CSS px), at most the report's figure
# column; PNGs are re-encoded for that size (x IMAGE_SCALE) and 256 colours, so a 200-dpi
# file of 1300 px travels as ~640 px (the files in figures/ stay as they are).
CSS_PX_PER_IN = 96
# neuralatlas.plots.style.DISPLAY_WIDTH_IN (6.5 in) plus the 0.1 in padding on each side that
# saving with a tight bounding box adds, and a little slack: 6.75 in = 648 px
DISPLAY_WIDTH_PX = 648
# a figure shown at least this share of the column is printed the full text width
WIDE_SHARE = 0.85
# Inline: one image pixel per CSS pixel, the display size (8 pt text is 10.7 px high, as
# 8 pt text of the page itself). 1.15 made the demo page (3 models) 6.1 MB against 5.3 MB
# at 1.0, for a sharpness a 1x screen downsamples away and a 2x screen still blurs;
# images="files" is the sharp option.
IMAGE_SCALE = 1.0
IMAGE_SCALE_FILES = 2.0  # side files cost the page nothing: sharp on HiDPI screens


class ImageSink:
    """Where figure images go: inline ``data:`` URIs (default) or side files beside the page.

    Parameters
    ----------
    folder : path, optional
        Write each image there (named by a hash of its bytes) and reference it as
        ``prefix/name``; None inlines them.
    prefix : str
        The folder as the page refers to it (relative to the page).
    """

    def __init__(self, folder: Path | None = None, prefix: str = "", scale: float | None = None):
        self.folder, self.prefix = folder, prefix
        self.scale = scale if scale is not None else (IMAGE_SCALE if folder is None else IMAGE_SCALE_FILES)

    def src(self, raw: bytes, mime: str) -> str:
        if self.folder is None:
            return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")
        import hashlib

        name = hashlib.sha1(raw).hexdigest()[:16] + (".svg" if "svg" in mime else ".png")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        if not target.exists():
            target.write_bytes(raw)
        return f"{self.prefix}/{name}"


_SINK: list[ImageSink] = [ImageSink()]


def image_sink() -> ImageSink:
    """The sink figures are written to now (see :func:`write_report`'s ``images=``)."""
    return _SINK[-1]


def _encode_png(raw: bytes, width: int | None) -> bytes:
    """``raw`` resized to ``width`` px (when narrower) and quantised to 256 colours, if lighter."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        im = im.convert("RGB")
        if width is not None and im.width > width:
            im = im.resize((width, max(1, round(im.height * width / im.width))), Image.LANCZOS)
        small = im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        # Plots of a few flat colours (scatters of class colours, line charts) lose nothing
        # visible at 64 colours and shrink by about a third; heat maps and photos would band,
        # so the smaller palette is kept only when it stays within 2.5/255 of the image on
        # average (demo: scatters 1.1-2.2, heat maps 3.9-4.1, photos 4.5-7.6).
        fewer = im.quantize(64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        rgb = np.asarray(im, np.int16)
        if np.abs(np.asarray(fewer.convert("RGB"), np.int16) - rgb).mean() <= 2.5:
            small = fewer
        buf = io.BytesIO()
        small.save(buf, "PNG", compress_level=9)
    return buf.getvalue() if buf.tell() < len(raw) else raw


def figure_geometry(path: Path, raw: bytes | None = None) -> dict[str, Any]:
    """What is known of a saved figure's size.

    The keys: ``width_in``, ``height_in``, ``px`` (PNG), and ``font_pt`` (its smallest text, as
    :func:`neuralatlas.plots.style.save_figure` recorded).
    """
    from neuralatlas.plots.style import META_FONT, META_LAYER, figure_meta

    raw = path.read_bytes() if raw is None else raw
    info: dict[str, Any] = {}
    if path.suffix.lower() == ".svg":
        import re

        head = raw[:3000].decode("utf-8", "replace")
        w = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', head)
        h = re.search(r'<svg[^>]*\sheight="([\d.]+)pt"', head)
        if w and h:
            info["width_in"], info["height_in"] = float(w.group(1)) / 72, float(h.group(1)) / 72
    else:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as im:
            info["px"] = im.size
            dpi = im.info.get("dpi")
            if dpi and dpi[0] > 1:
                info["width_in"], info["height_in"] = im.width / float(dpi[0]), im.height / float(dpi[1])
    meta = figure_meta(path)
    if not meta and path.suffix.lower() == ".svg" and path.with_suffix(".png").is_file():
        meta = figure_meta(path.with_suffix(".png"))  # the same figure, saved in the same call
    if META_FONT in meta:
        info["font_pt"] = float(meta[META_FONT])
    if META_LAYER in meta:
        info["layer"] = meta[META_LAYER]
    return info


def image_uri(path: Path) -> tuple[str, tuple[int, int] | None]:
    """The page's reference to a PNG or SVG file, and the pixel size it is shown at (None for SVG).

    The reference is a ``data:`` URI unless images go to side files.
    """
    src, dims, _ = _image(path)
    return src, dims


def _image(path: Path) -> tuple[str, tuple[int, int] | None, dict[str, Any]]:
    raw = path.read_bytes()
    geo = figure_geometry(path, raw)
    sink = image_sink()
    if path.suffix.lower() == ".svg":
        dims = None
        if "width_in" in geo:
            scale = min(1.0, DISPLAY_WIDTH_PX / (geo["width_in"] * CSS_PX_PER_IN))
            dims = (max(1, round(geo["width_in"] * CSS_PX_PER_IN * scale)),
                    max(1, round(geo["height_in"] * CSS_PX_PER_IN * scale)))
        return sink.src(raw, "image/svg+xml"), dims, geo
    px = geo.get("px") or png_size(raw) or (DISPLAY_WIDTH_PX, DISPLAY_WIDTH_PX)
    # shown at its drawn size (unknown dpi: as a 2x image), at most the figure column
    shown_w = geo["width_in"] * CSS_PX_PER_IN if "width_in" in geo else px[0] / 2
    shown_w = max(1, math.ceil(min(shown_w, DISPLAY_WIDTH_PX) - 1e-6))  # never below the drawn size
    shown_h = max(1, round(px[1] * shown_w / px[0]))
    raw = _encode_png(raw, round(shown_w * sink.scale))
    return sink.src(raw, "image/png"), (shown_w, shown_h), geo


def figure_html(path: Path, *, caption: str | None = None, model: str | None = None,
                layer: str | None = None, tag: str | None = None, source: str | None = None) -> str:
    """A saved figure, shown at the size it was drawn for (at most the 6.5 in figure column).

    SVG stays vector (an ``<img>``, so figures share no IDs); PNG is re-encoded for its display
    size. The image carries ``data-width-in`` and ``data-font-pt`` (its smallest text) so the
    page's self-test can measure text size as shown; ``tag`` (a layer, or "all layers") is
    printed before the caption (or "all layers" when the figure was saved as about every
    layer); ``source`` (the file's stem) is the image's tooltip.
    """
    uri, size, geo = _image(path)
    dims = f' width="{size[0]}" height="{size[1]}"' if size is not None else ""
    if "width_in" in geo and "font_pt" in geo:
        dims += f' data-width-in="{geo["width_in"]:.3f}" data-font-pt="{geo["font_pt"]:.2f}"'
    cap = esc(caption if caption is not None else path.stem)
    tag = tag if tag is not None else (layer if layer is not None else geo.get("layer"))
    chip = f'<span class="na-tag">{esc("all layers" if tag == "all" else tag)}</span> ' if tag else ""
    title = f' title="{esc(source)}"' if source else ""
    # drawn for the figure column: printed across the whole text width (report.css)
    if size is not None and size[0] >= WIDE_SHARE * DISPLAY_WIDTH_PX:
        dims += ' data-print="wide"'
    return (f'<figure class="na-fig"{attrs(model, layer)}><img src="{uri}"{dims} alt="{cap}"{title} loading="lazy">'
            f"<figcaption>{chip}{cap}</figcaption></figure>")


def matplotlib_html(fig: Any, caption: str = "", fmt: str = "svg") -> str:
    """A live matplotlib Figure as an inline image (for ``_repr_html_`` of result objects)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=200)
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    uri = f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    size = png_size(buf.getvalue()) if fmt == "png" else None
    dims = f' width="{size[0] // 2}"' if size else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure class="na-fig"><img src="{uri}"{dims} alt="{esc(caption)}">{cap}</figure>'


def _cell(value: Any) -> str:
    text = esc(format_number(value))
    return f'<td class="num">{text}</td>' if is_number(value) else f"<td>{text}</td>"


def table_html(table: Table, *, model: str | None = None, layers: Iterable[str] = ()) -> str:
    """A :class:`~neuralatlas.report.tables.Table` as HTML; rows about a layer carry ``data-layer``."""
    head = "".join(
        f'<th title="{esc(c)}">{esc(n)}</th>'
        for c, n in zip(table.columns, readable_columns(table.columns, layers), strict=True)
    )
    body = []
    for row, layer in zip(table.rows, table.row_layers, strict=True):
        body.append(f"<tr{attrs(None, layer)}>{''.join(_cell(v) for v in row)}</tr>")
    caption = f"<caption>{esc(table.title)}</caption>" if table.title else ""
    return (f'<div class="na-table-wrap"{attrs(model)}><table class="na-table">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def tables_html(tables: Iterable[Table], *, model: str | None = None, layers: Iterable[str] = ()) -> str:
    """The HTML of several tables, each tagged with its model and layers for the page's filters."""
    layers = list(layers)
    return "".join(table_html(t, model=model, layers=layers) for t in tables)
