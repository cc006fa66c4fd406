"""Drawing the layer graph: DOT, SVG/PNG/PDF through Graphviz, or a built-in SVG without it.

DOT is written for Graphviz and drawn to SVG/PNG/PDF through ``dot``; a built-in SVG stands in when
Graphviz is missing, and an HTML fragment lets a click on a layer copy its name.

Every module node carries the exact ``named_modules()`` name (the name capture, the
config and the figures use); containers (``block1``, ``layer2.0``) are drawn as clusters
around their layers; a shared module's calls are joined by a dashed "shared" edge.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuralatlas.architecture.table import format_shape
from neuralatlas.errors import AnalysisError

if TYPE_CHECKING:
    from neuralatlas.architecture.graph import ArchitectureGraph, Node


class GraphvizMissing(AnalysisError):
    """Graphviz's ``dot`` program is needed and not installed."""


_INSTALL_HINT = ("Install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install"
                 " graphviz; conda: conda install graphviz), or use to_svg(engine='builtin').")


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` is on the PATH."""
    return shutil.which("dot") is not None


_FILL = [
    (("Conv",), "#cfe2f3"),
    (("Linear", "Bilinear", "Embedding"), "#fce5cd"),
    (("ReLU", "GELU", "Tanh", "Sigmoid", "SiLU", "ELU", "Softmax", "Mish", "Hardswish", "PReLU",
      "Softplus", "LeakyReLU", "SELU"), "#d9ead3"),
    (("Pool",), "#e6d7f0"),
    (("Norm",), "#eeeeee"),
    (("LSTM", "GRU", "RNN", "Attention", "Transformer"), "#f4cccc"),
]


def _fill(node: Node) -> str:
    if node.kind in ("input", "output"):
        return "#fff2cc"
    if node.kind == "function":
        return "#ffffff"
    for keys, colour in _FILL:
        if any(k in node.type for k in keys):
            return colour
    return "#f8f8f8"


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _head(node: Node) -> str:
    """The first line of a box: its name, the run it stands for (``encoder.layer.0–5 ×6``)."""
    if node.repeat > 1:
        if node.span.startswith(node.name + "–"):
            return f"{node.span}  ×{node.repeat}"
        return f"{node.name}  ×{node.repeat}"
    return node.name


def _runs(graph: ArchitectureGraph) -> dict[str, list[str]]:
    """First block of each collapsed run -> the run's block names."""
    return {run[0]: run for run in graph.extra.get("repeats", []) if run}


def _label(node: Node) -> str:
    if node.kind == "module":
        head = _head(node) + (f"  (call {node.call}/{node.calls})" if node.calls > 1 else "")
        lines = [head, node.type, format_shape(node.output_shape)]
        if node.n_params and node.call == 1:
            lines.append(f"{node.n_params:,} params")
        return "\n".join(lines)
    if node.kind == "function":
        return f"{node.name}\n{format_shape(node.output_shape)}"
    return f"{node.name}\n{format_shape(node.output_shape)}"


def _dom_ids(graph: ArchitectureGraph) -> dict[str, str]:
    """Node id -> an id safe in SVG/HTML (module names hold dots and '#')."""
    return {n.id: f"na-node-{i}" for i, n in enumerate(graph.nodes)}


def to_dot(graph: ArchitectureGraph, rankdir: str = "TB") -> str:
    """DOT text of the graph: nodes named by module, containers as clusters.

    Example
    -------
    >>> print(architecture(model).to_dot())         # doctest: +SKIP
    """
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise AnalysisError(f"rankdir={rankdir!r}; choose 'TB', 'LR', 'BT' or 'RL'.")
    dom = _dom_ids(graph)
    containers = {r["name"]: r for r in graph.modules if not r["is_leaf"]}
    parent_of = {r["name"]: r["parent"] for r in graph.modules}
    # Which nodes sit directly in which container, and which containers in which.
    members: dict[str, list[Node]] = {}
    for n in graph.nodes:
        members.setdefault(n.parent if n.parent in containers else "", []).append(n)
    used = set()
    for c in list(members):
        while c:
            used.add(c)
            c = parent_of.get(c, "")
    children: dict[str, list[str]] = {}
    for c in containers:
        if c in used:
            children.setdefault(parent_of.get(c, "") if parent_of.get(c, "") in containers else "", []).append(c)

    lines = [
        "digraph architecture {",
        f"  rankdir={rankdir}; newrank=true; nodesep=0.25; ranksep=0.3;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, penwidth=0.8];',
        '  edge [arrowsize=0.6, penwidth=0.8, color="#555555", fontname="Helvetica"];',
    ]

    def node_line(n: Node, pad: str) -> str:
        attrs = {
            "label": _label(n), "id": dom[n.id], "fillcolor": _fill(n),
            "tooltip": f"{n.name} ({n.type}) {format_shape(n.output_shape)}",
            "class": "na-layer" if n.kind == "module" else f"na-{n.kind}",
        }
        if n.kind == "function":
            attrs["shape"] = "ellipse"
            attrs["style"] = "filled"
            attrs["fontsize"] = "9"
        elif n.kind in ("input", "output"):
            attrs["shape"] = "box"
            attrs["style"] = "filled"
        body = ", ".join(f"{k}={_q(v)}" for k, v in attrs.items())
        return f"{pad}{_q(n.id)} [{body}];"

    counter = iter(range(10**9))
    runs = _runs(graph)
    from neuralatlas.architecture.collapse import _span

    def emit(container: str, depth: int) -> None:
        pad = "  " * (depth + 1)
        for n in members.get(container, []):
            lines.append(node_line(n, pad))
        for c in children.get(container, []):
            lines.append(f"{pad}subgraph cluster_{next(counter)} {{")
            info = containers[c]
            run = runs.get(c)
            title = _q(f"{_span(run)} ({info['type']}) ×{len(run)}" if run else f"{c} ({info['type']})")
            lines.append(f"{pad}  label={title}; labeljust=l; fontname=\"Helvetica\";"
                         ' fontsize=10; style="rounded,dashed"; color="#888888";')
            emit(c, depth + 1)
            lines.append(f"{pad}}}")

    emit("", 0)
    for s, t in graph.edges:
        lines.append(f"  {_q(s)} -> {_q(t)};")
    by_module: dict[str, list[Node]] = {}
    for n in graph.nodes:
        if n.kind == "module" and n.calls > 1:
            by_module.setdefault(n.name, []).append(n)
    for calls in by_module.values():
        for a, b in pairwise(calls):
            lines.append(f'  {_q(a.id)} -> {_q(b.id)} [style=dashed, color="#cc0000", dir=none,'
                         ' constraint=false, label="shared", fontsize=8, fontcolor="#cc0000"];')
    lines.append("}")
    return "\n".join(lines)


def _run_dot(dot: str, fmt: str, dpi: int | None = None) -> bytes:
    if not dot_available():
        raise GraphvizMissing(f"Drawing the graph as {fmt} needs Graphviz's 'dot', which is not installed."
                              f" {_INSTALL_HINT}")
    cmd = ["dot", f"-T{fmt}"] + ([f"-Gdpi={int(dpi)}"] if dpi else [])
    proc = subprocess.run(cmd, input=dot.encode(), capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise AnalysisError(f"Graphviz 'dot -T{fmt}' failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


LAYOUTS = ("tall", "wide")


def to_svg(graph: ArchitectureGraph, engine: str = "auto", rankdir: str = "TB", layout: str = "tall",
           width: int = 1400) -> str:
    """SVG text, by Graphviz (``"dot"``), the built-in layout (``"builtin"``), or ``"auto"``.

    ``layout="wide"``: left to right, rows wrapping at ``width`` pixels — the built-in layout
    (with ``engine="auto"`` too, since dot cannot wrap); ``engine="dot"`` draws it ``LR``.
    """
    if engine not in ("auto", "dot", "builtin"):
        raise AnalysisError(f"engine={engine!r}; choose 'auto', 'dot' or 'builtin'.")
    if layout not in LAYOUTS:
        raise AnalysisError(f"layout={layout!r}; choose 'tall' (top to bottom) or 'wide' (rows that wrap).")
    if layout == "wide":
        if engine == "dot":
            return _run_dot(to_dot(graph, "LR"), "svg").decode()
        return builtin_svg(graph, layout="wide", width=width)
    if engine == "dot" or (engine == "auto" and dot_available()):
        return _run_dot(to_dot(graph, rankdir), "svg").decode()
    return builtin_svg(graph)


def render_file(graph: ArchitectureGraph, path: str | Path, fmt: str, rankdir: str = "TB",
                dpi: int = 150, layout: str = "tall") -> Path:
    """Write the drawing in ``fmt`` (svg, png, pdf or dot) to ``path``.

    PNG needs Graphviz's ``dot``; PDF comes from ``dot`` when it is installed, otherwise from
    the built-in layout drawn by matplotlib (:func:`builtin_figure`), vector either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(to_dot(graph, rankdir))
    elif fmt == "svg":
        path.write_text(to_svg(graph, rankdir=rankdir, layout=layout))
    elif fmt == "png" or (fmt == "pdf" and dot_available()):
        path.write_bytes(_run_dot(to_dot(graph, rankdir), fmt, dpi if fmt == "png" else None))
    elif fmt == "pdf":
        # no Graphviz: the built-in layout (the HTML view's) drawn by matplotlib, still vector
        builtin_figure(graph, layout=layout).savefig(path, format="pdf")
    else:
        raise AnalysisError(f"Cannot draw the graph as {fmt!r}; use a path ending in .svg, .png, .pdf or .dot.")
    return path


# ---------------------------------------------------------------------------- built-in layout
_W, _H, _GAP_X, _GAP_Y, _MARGIN = 190, 46, 24, 30, 16


@dataclass
class _Drawing:
    """The built-in layout in drawing units (px, y down): what the SVG and the PDF both draw."""

    width: float
    height: float
    box_w: float
    edges: list[tuple[tuple[float, float], ...]]        # cubic Béziers: start, c1, c2, end
    frames: list[tuple[float, float, float, float, str]]  # x0, y0, x1, y1, title
    boxes: list[tuple[Any, float, float, float, str, str]]  # node, x, y, corner radius, head, sub


def _builtin_layout(graph: ArchitectureGraph, layout: str = "tall", width: int = 1400) -> _Drawing:
    """Each node one rank after its deepest predecessor (parallel branches side by side)."""
    in_run = {n.id for n in graph.nodes if n.repeat > 1 and not n.span.startswith(n.name + "–")}
    heads = {n.id: (n.name if n.id in in_run else _head(n)) + (f" ({n.call}/{n.calls})" if n.calls > 1 else "")
             for n in graph.nodes}
    # boxes as wide as the longest name (12 px text: ~7 px a character), within reason
    W = min(380, max(_W, 24 + int(7 * max((len(h) for h in heads.values()), default=0))))
    preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for s, t in graph.edges:
        if s in preds and t in preds:
            preds[t].append(s)
    order = [n.id for n in graph.nodes]
    row: dict[str, int] = {}
    for nid in order:  # nodes come in a topological order (trace order)
        row[nid] = 1 + max((row[p] for p in preds[nid] if p in row), default=-1)
    columns: dict[int, int] = {}
    col: dict[str, int] = {}
    for nid in order:
        col[nid] = columns.get(row[nid], 0)
        columns[row[nid]] = col[nid] + 1
    n_rows = max(row.values(), default=0) + 1
    n_cols = max(columns.values(), default=1)
    per_band = 1
    if layout == "wide":
        per_band = max(1, int((width - 2 * _MARGIN + _GAP_X) // (W + _GAP_X)))
        band_top: list[float] = []
        top = float(_MARGIN + 14)
        for b in range((n_rows + per_band - 1) // per_band):
            band_top.append(top)
            tallest = max(columns.get(r, 0) for r in range(b * per_band, min(n_rows, (b + 1) * per_band)))
            top += tallest * (_H + _GAP_Y) + 2 * _GAP_Y
        ranks_wide = min(n_rows, per_band)
        width = 2 * _MARGIN + ranks_wide * W + (ranks_wide - 1) * _GAP_X
        height = int(top - 2 * _GAP_Y + _MARGIN + 8)

        def xy(nid: str) -> tuple[float, float]:
            band, pos = divmod(row[nid], per_band)
            return _MARGIN + pos * (W + _GAP_X), band_top[band] + col[nid] * (_H + _GAP_Y)
    else:
        width = 2 * _MARGIN + n_cols * W + (n_cols - 1) * _GAP_X
        height = 2 * _MARGIN + n_rows * _H + (n_rows - 1) * _GAP_Y

        def xy(nid: str) -> tuple[float, float]:
            # Centre each row's nodes.
            k = columns[row[nid]]
            offset = (n_cols - k) * (W + _GAP_X) / 2
            return _MARGIN + offset + col[nid] * (W + _GAP_X), _MARGIN + row[nid] * (_H + _GAP_Y)

    edges: list[tuple[tuple[float, float], ...]] = []
    for s, t in graph.edges:
        if s not in row or t not in row:
            continue
        (x0, y0), (x1, y1) = xy(s), xy(t)
        if layout == "wide" and x1 > x0 and abs(y1 - y0) < 3 * (_H + _GAP_Y) and (y1 >= y0 or x1 > x0):
            # the next column of the same band: leave right, enter left
            ax, ay, bx, by = x0 + W, y0 + _H / 2, x1, y1 + _H / 2
            mid = (ax + bx) / 2
            edges.append(((ax, ay), (mid, ay), (mid, by), (bx, by)))
        else:
            ax, ay, bx, by = x0 + W / 2, y0 + _H, x1 + W / 2, y1
            mid = (ay + by) / 2
            edges.append(((ax, ay), (ax, mid), (bx, mid), (bx, by)))
    types = {r["name"]: r["type"] for r in graph.modules}
    from neuralatlas.architecture.collapse import _inside, _owner, _span

    frames: list[tuple[float, float, float, float, str]] = []
    for first, run in _runs(graph).items():
        inside = [n for n in graph.nodes if n.kind in ("module", "function") and _owner(n)
                  and _inside(_owner(n), first) and n.id in row]
        if not inside or (len(inside) == 1 and inside[0].name == first):
            continue  # one box for the whole block: its own label says ×N
        title = f"{_span(run)} ({types.get(first, '')}) ×{len(run)}"
        parts: dict[int, list[tuple[float, float]]] = {}  # a frame per band of the wide layout
        for n in inside:
            x, y = xy(n.id)
            parts.setdefault(row[n.id] // per_band if layout == "wide" else 0, []).append((x, y))
        for points in parts.values():
            xs, ys = zip(*points, strict=True)
            frames.append((min(xs) - 6, min(ys) - 16, max(xs) + W + 6, max(ys) + _H + 6, title))
    boxes = []
    for n in graph.nodes:
        x, y = xy(n.id)
        sub = f"{n.type} {format_shape(n.output_shape)}" if n.kind == "module" else format_shape(n.output_shape)
        boxes.append((n, x, y, 18 if n.kind == "function" else 6, heads[n.id], sub))
    return _Drawing(width, height, W, edges, frames, boxes)


def builtin_svg(graph: ArchitectureGraph, layout: str = "tall", width: int = 1400) -> str:
    """A layered drawing in plain SVG, for machines without Graphviz.

    Each node sits one rank after its deepest predecessor, so parallel branches (a residual
    shortcut) sit side by side. ``layout="tall"``: ranks are rows, top to bottom;
    ``"wide"``: ranks are columns, left to right, wrapping into bands ``width`` pixels wide.
    A collapsed run of blocks (:meth:`ArchitectureGraph.collapsed`) gets a dashed frame.
    """
    dom = _dom_ids(graph)
    d = _builtin_layout(graph, layout, width)
    W, width, height = d.box_w, d.width, d.height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
           f' viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
           '<defs><marker id="na-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6"'
           ' markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"'
           ' fill="#555"/></marker></defs>']
    for (ax, ay), (c1x, c1y), (c2x, c2y), (bx, by) in d.edges:
        path = f"M {ax:.1f} {ay:.1f} C {c1x:.1f} {c1y:.1f}, {c2x:.1f} {c2y:.1f}, {bx:.1f} {by:.1f}"
        out.append(f'<path class="na-edge" d="{path}" fill="none" stroke="#555" stroke-width="1"'
                   ' marker-end="url(#na-arrow)"/>')
    for x0, y0, x1, y1, title in d.frames:
        out.append(
            f'<g class="na-repeat"><rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}"'
            f' height="{y1 - y0:.1f}" rx="8" fill="none" stroke="#888" stroke-dasharray="4 3"/>'
            f'<text x="{x0 + 6:.1f}" y="{y0 + 11:.1f}" font-size="10" fill="#555">{html.escape(title)}</text></g>'
        )
    for n, x, y, rx, head, sub in d.boxes:
        cls = "na-layer" if n.kind == "module" else f"na-{n.kind}"
        title = html.escape(f"{n.name} ({n.type}) {format_shape(n.output_shape)}")
        out.append(
            f'<g id="{dom[n.id]}" class="node {cls}" data-layer="{html.escape(n.name)}">'
            f"<title>{title}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{W}" height="{_H}" rx="{rx}" fill="{_fill(n)}"'
            f' stroke="#444" stroke-width="0.8"/>'
            f'<text x="{x + W / 2:.1f}" y="{y + 19:.1f}" text-anchor="middle" font-size="12">{html.escape(head)}</text>'
            f'<text x="{x + W / 2:.1f}" y="{y + 35:.1f}" text-anchor="middle" font-size="10"'
            f' fill="#444">{html.escape(sub)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def builtin_figure(graph: ArchitectureGraph, layout: str = "tall", width: int = 1400) -> Any:
    """The built-in layered drawing as a matplotlib Figure (vector in PDF), for machines without Graphviz.

    It has the same layout as :func:`builtin_svg`, at 96 px to the inch, with the layer names at 9 pt and the
    shapes and frame titles at 8 pt at the figure's own size.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
    from matplotlib.path import Path as MplPath

    d = _builtin_layout(graph, layout, width)
    px = 1 / 96  # inches per drawing px
    fig = Figure(figsize=(d.width * px, d.height * px))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, d.width)
    ax.set_ylim(d.height, 0)   # y down, as in the SVG
    ax.set_axis_off()
    pt = 72 / 96               # font px -> pt
    for (ax0, ay0), c1, c2, (bx, by) in d.edges:
        path = MplPath([(ax0, ay0), c1, c2, (bx, by)],
                       [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4])
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=8, color="#555",
                                     linewidth=0.75, shrinkA=0, shrinkB=0))
    for x0, y0, x1, y1, title in d.frames:
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=8",
                                    fill=False, edgecolor="#888", linestyle=(0, (4, 3)), linewidth=0.75))
        ax.text(x0 + 6, y0 + 11, title, fontsize=8, color="#555", va="baseline")
    for n, x, y, rx, head, sub in d.boxes:
        shape = FancyBboxPatch((x, y), d.box_w, _H, boxstyle=f"round,pad=0,rounding_size={rx}",
                               facecolor=_fill(n), edgecolor="#444", linewidth=0.6) if rx else \
            Rectangle((x, y), d.box_w, _H, facecolor=_fill(n), edgecolor="#444", linewidth=0.6)
        ax.add_patch(shape)
        ax.text(x + d.box_w / 2, y + 19, head, fontsize=12 * pt, ha="center", va="baseline")
        ax.text(x + d.box_w / 2, y + 36, sub, fontsize=8, ha="center", va="baseline", color="#444")
    return fig


# ---------------------------------------------------------------------------- HTML
_SCRIPT = """
(function () {
  var root = document.getElementById("%(root)s");
  if (!root) return;
  var names = %(names)s;
  var toast = root.querySelector(".na-toast");
  function copied(name) {
    toast.textContent = "copied: " + name;
    toast.style.opacity = 1;
    setTimeout(function () { toast.style.opacity = 0; }, 1200);
  }
  root.querySelectorAll("g.na-layer").forEach(function (g) {
    g.style.cursor = "pointer";
    g.addEventListener("click", function () {
      var name = names[g.id] || g.getAttribute("data-layer");
      if (!name) return;
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(name).then(function () { copied(name); },
                                                 function () { copied(name); });
      } else {
        var t = document.createElement("textarea");
        t.value = name; document.body.appendChild(t); t.select();
        try { document.execCommand("copy"); } catch (e) {}
        document.body.removeChild(t); copied(name);
      }
    });
  });
})();
"""


def to_html(graph: ArchitectureGraph, engine: str = "auto", layout: str = "tall") -> str:
    """An HTML fragment: the drawing, where a click on a layer copies its name.

    The fragment is self-contained (inline SVG, style and script), ready for the report.
    """
    svg = to_svg(graph, engine=engine, layout=layout)
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and DOCTYPE for inline use
    root = f"na-arch-{uuid.uuid4().hex[:8]}"
    dom = _dom_ids(graph)
    names = {dom[n.id]: n.name for n in graph.nodes if n.kind == "module"}
    # "<" as \u003c: a layer named "</script><img ...>" must not end the script and run as HTML
    script = _SCRIPT % {"root": root, "names": json.dumps(names).replace("<", "\\u003c")}
    style = (f"#{root} {{position: relative; overflow: auto; max-width: 100%;}}"
             f" #{root} g.na-layer:hover polygon, #{root} g.na-layer:hover path,"
             f" #{root} g.na-layer:hover rect {{stroke: #c00; stroke-width: 2;}}"
             f" #{root} .na-toast {{position: sticky; left: 0; top: 0; background: #333; color: #fff;"
             " padding: 2px 8px; border-radius: 4px; font: 12px sans-serif; opacity: 0;"
             " transition: opacity .3s; display: inline-block;}")
    return (f'<div id="{root}" class="na-architecture" title="Click a layer to copy its name">'
            f"<style>{style}</style><div class=\"na-toast\"></div>{svg}<script>{script}</script></div>")
