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

from neuralatlas.report.tables import Table, format_number, is_number

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
    """numpy values to lists and numbers; NaN and inf to None (JSON has neither)."""
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


# PNGs larger than this are shrunk for the page (the files in figures/ stay as they are):
# at most MAX_PNG_WIDTH pixels wide (2x the page's figure width) and 256 colours.
SHRINK_PNG_BYTES = 256 * 1024
MAX_PNG_WIDTH = 1600


def _shrink_png(raw: bytes) -> bytes:
    """A lighter PNG of a large figure: ~10x smaller for dense scatter plots, still crisp."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        im = im.convert("RGB")
        if im.width > MAX_PNG_WIDTH:
            im = im.resize((MAX_PNG_WIDTH, max(1, round(im.height * MAX_PNG_WIDTH / im.width))), Image.LANCZOS)
        small = im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        small.save(buf, "PNG", compress_level=6)
    return buf.getvalue() if buf.tell() < len(raw) else raw


def image_uri(path: Path) -> tuple[str, tuple[int, int] | None]:
    """A ``data:`` URI of a PNG or SVG file, and a PNG's pixel size."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".svg":
        return "data:image/svg+xml;base64," + base64.b64encode(raw).decode("ascii"), None
    if len(raw) > SHRINK_PNG_BYTES:
        raw = _shrink_png(raw)
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii"), png_size(raw)


def figure_html(path: Path, *, caption: str | None = None, model: str | None = None,
                layer: str | None = None) -> str:
    """A saved figure, inlined. SVG as vector (no shared IDs between figures: it is an
    ``<img>``, not inline markup); PNG shown at half its pixel size, i.e. 2x on HiDPI screens."""
    uri, size = image_uri(path)
    dims = ""
    if size is not None:
        dims = f' width="{max(1, size[0] // 2)}" height="{max(1, size[1] // 2)}"'
    cap = esc(caption if caption is not None else path.stem)
    return (f'<figure class="na-fig"{attrs(model, layer)}><img src="{uri}"{dims} alt="{cap}" loading="lazy">'
            f'<figcaption>{cap}</figcaption></figure>')


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


def table_html(table: Table, *, model: str | None = None) -> str:
    """A :class:`~neuralatlas.report.tables.Table` as HTML; rows about a layer carry ``data-layer``."""
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = []
    for row, layer in zip(table.rows, table.row_layers):
        body.append(f"<tr{attrs(None, layer)}>{''.join(_cell(v) for v in row)}</tr>")
    caption = f"<caption>{esc(table.title)}</caption>" if table.title else ""
    return (f'<div class="na-table-wrap"{attrs(model)}><table class="na-table">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def tables_html(tables: Iterable[Table], *, model: str | None = None) -> str:
    return "".join(table_html(t, model=model) for t in tables)
