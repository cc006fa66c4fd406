"""The report's sections: a registry of renderers keyed by analysis name, with a generic fallback.

Every analysis the run folder holds (``<model>/results/<name>/``, ``<model>/figures/<name>/``)
gets one section. When ``name`` is registered, its renderer draws the section; otherwise the
generic renderer shows each model's ``summary.json`` as tables and its figures, crisp. A new
analysis therefore appears in the report with no change here, and a richer view plugs in
from anywhere::

    from neuralatlas.report import register_section, analysis_block

    @register_section("naps", title="Neuron activation patterns", order=20)
    def naps_section(ctx):
        return "".join(analysis_block(ctx, out) for out in ctx.outputs)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neuralatlas.report.captions import REGISTERED_TITLES, caption_fields, describe, section_title
from neuralatlas.report.captions import TITLES as TITLES  # re-exported: its old home
from neuralatlas.report.collect import AnalysisOutput, ModelInfo, RunInfo, depth_order, layer_of
from neuralatlas.report.components import attrs, esc, figure_html, plot_html, tables_html
from neuralatlas.report.tables import summary_table

Renderer = Callable[["SectionContext"], str]


@dataclass
class Section:
    """A registered section: how to draw it, its title, and where it goes (lower = earlier)."""

    name: str
    render: Renderer
    title: str
    order: int = 100


@dataclass
class SectionContext:
    """What a renderer gets: the run, this analysis' output per model, and sample images."""

    name: str
    title: str
    run: RunInfo
    outputs: list[AnalysisOutput]
    images: Any = None  # neuralatlas.report.thumbnails.SampleImages, for hover thumbnails
    notes: list[str] = field(default_factory=list)  # warnings the report lists at the top

    def model(self, name: str) -> ModelInfo:
        """The model called ``name``."""
        return self.run.model(name)


SECTIONS: dict[str, Section] = {}

# Titles (TITLES, the registered ones and section_title) live in captions.py, below this
# module: captions need them, and sections import captions.


# Where the analyses the package ships go when nobody registered a renderer for them: from
# the model's structure, through what units and layers represent, to what drives decisions.
ORDER: dict[str, int] = {
    "architecture": 5, "toy": 8, "naps": 10, "topomap": 15, "topomaps": 15, "projection": 30,
    "discriminative": 35, "similarity": 40, "attribution": 50, "featurevis": 60, "adversarial": 70,
}


def register_section(
    name: str, *, title: str | None = None, order: int | None = None
) -> Callable[[Renderer], Renderer]:
    """Register ``fn(ctx: SectionContext) -> str`` (HTML) as the section of analysis ``name``.

    Parameters
    ----------
    name : str
        The analysis' folder name under ``results/`` and ``figures/``.
    title : str, optional
        Heading of the section (default: from ``TITLES`` or the name).
    order : int, optional
        Sort key among sections (default: from ``ORDER``, else 100: after the known ones).

    Example
    -------
    >>> @register_section("my_probe", title="Linear probes")     # doctest: +SKIP
    ... def probes(ctx):
    ...     return "".join(analysis_block(ctx, out) for out in ctx.outputs)
    """
    def decorate(fn: Renderer) -> Renderer:
        heading = title or section_title(name)
        REGISTERED_TITLES[name] = heading
        SECTIONS[name] = Section(name, fn, heading, ORDER.get(name, 100) if order is None else order)
        return fn
    return decorate


def section_for(name: str) -> Section:
    """The registered section, or the generic one for an analysis nobody registered."""
    return SECTIONS.get(name) or Section(name, render_generic, section_title(name), ORDER.get(name, 100))


# ---------------------------------------------------------------------------- generic
def analysis_block(ctx: SectionContext, out: AnalysisOutput, *, before: str = "", after: str = "") -> str:
    """One model's part of a section: heading, ``summary.json`` tables, figures.

    ``before``/``after`` are extra HTML (an interactive view) placed around the figures.
    Rows and figures about one layer carry ``data-layer`` so the layer picker can filter them.
    """
    model = ctx.model(out.model)
    layers = model.layers
    tables = tables_html(summary_table(out.summary, layers), model=out.model, layers=layers) if out.summary else ""
    figures = []
    wording = caption_fields(model, out.name)
    for path in depth_order(out.figures, layers, out.figures_dir):
        rel = path.relative_to(out.figures_dir)
        stem = rel.with_suffix("")
        figures.append(figure_html(path, caption=describe(out.name, stem, layers=layers, **wording), model=out.model,
                                   layer=layer_of(str(stem), layers), source=str(stem)))
    grid = f'<div class="na-figs">{"".join(figures)}</div>' if figures else ""
    empty = "" if (tables or figures or before or after) else '<p class="na-muted">No summary or figures written.</p>'
    return (f'<div class="na-model-block"{attrs(out.model)}><h3>{esc(out.model)}</h3>'
            f"{before}{tables}{grid}{after}{empty}</div>")


def render_generic(ctx: SectionContext) -> str:
    """Each model's summary tables and figures, one block per model."""
    return "".join(analysis_block(ctx, out) for out in ctx.outputs)


@register_section("architecture", title="Architecture")
def render_architecture(ctx: SectionContext) -> str:
    """The model graph (``results/architecture/*.svg``, vector), its layer table, then the figures."""
    parts = []
    for out in ctx.outputs:
        drawings = sorted(out.results_dir.glob("*.svg")) if out.results_dir.is_dir() else []
        html = "".join(_pan_zoom(p, f"{out.model}: {p.stem.replace('_', ' ')}", out.model) for p in drawings)
        if html:
            html += _PAN_ZOOM_ASSETS
        table = _layer_table(out.results_dir / "summary.csv", out.model)
        before = (f'<div class="na-figs na-arch">{html}</div>' if html else "") + table
        # the PNG of the drawing duplicates the SVG shown above
        shown = {p.stem for p in drawings}
        out = AnalysisOutput(out.name, out.model, out.results_dir, out.figures_dir, out.summary,
                             [f for f in out.figures if f.stem not in shown], out.pdfs, out.files)
        parts.append(analysis_block(ctx, out, before=before))
    return "".join(parts)


# Big graphs (a transformer, an EfficientNet) are drawn at their natural size inside a
# scrolling viewport: drag to pan, the buttons (or ctrl + wheel) to zoom, "fit" for the page width.
_PAN_ZOOM_ASSETS = """<style>
.na-panzoom { margin: 0 0 1rem 0; flex-basis: 100%; }
.na-panzoom .na-pz-view { overflow: auto; max-height: 80vh; border: 1px solid #ddd; background: #fff; cursor: grab; }
.na-panzoom .na-pz-view.na-pz-drag { cursor: grabbing; user-select: none; }
.na-panzoom .na-pz-view img { display: block; max-width: none; }
.na-panzoom .na-pz-bar { font-size: 0.8rem; margin: 0.2rem 0; }
.na-panzoom .na-pz-bar button { font-size: 0.8rem; padding: 0 0.5rem; margin-right: 0.2rem; }
</style>
<script>
(function () {
  function setup(root) {
    if (root.dataset.ready) return;
    root.dataset.ready = "1";
    var view = root.querySelector(".na-pz-view"), img = view.querySelector("img");
    var label = root.querySelector(".na-pz-scale"), scale = 1;
    function natural() { return img.naturalWidth || img.width || 800; }
    function zoom(s) {
      scale = Math.max(0.1, Math.min(8, s));
      img.style.width = Math.round(natural() * scale) + "px";
      label.textContent = Math.round(scale * 100) + "%";
    }
    function fit() { zoom(Math.min(1, (view.clientWidth - 4) / natural())); }
    root.querySelectorAll("button[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        var z = b.getAttribute("data-zoom");
        if (z === "fit") fit(); else if (z === "1") zoom(1); else zoom(scale * parseFloat(z));
      });
    });
    view.addEventListener("wheel", function (e) {
      if (!e.ctrlKey) return;
      e.preventDefault();
      zoom(scale * (e.deltaY < 0 ? 1.15 : 1 / 1.15));
    }, {passive: false});
    var drag = null;
    view.addEventListener("mousedown", function (e) {
      drag = {x: e.clientX, y: e.clientY, left: view.scrollLeft, top: view.scrollTop};
      view.classList.add("na-pz-drag"); e.preventDefault();
    });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      view.scrollLeft = drag.left - (e.clientX - drag.x);
      view.scrollTop = drag.top - (e.clientY - drag.y);
    });
    window.addEventListener("mouseup", function () { drag = null; view.classList.remove("na-pz-drag"); });
    if (img.complete) fit(); else img.addEventListener("load", fit);
  }
  document.querySelectorAll(".na-panzoom").forEach(setup);
})();
</script>"""


def _pan_zoom(path: Any, caption: str, model: str) -> str:
    """An SVG drawing in a pan/zoom viewport.

    It has its own markup: the report's click-to-enlarge of ``.na-fig`` would fight the dragging.
    """
    from neuralatlas.report.components import image_uri

    uri, _ = image_uri(path)
    buttons = "".join(f'<button type="button" data-zoom="{z}">{t}</button>'
                      for z, t in (("0.8", "−"), ("1.25", "+"), ("fit", "fit"), ("1", "1:1")))
    return (f'<figure class="na-panzoom"{attrs(model)}><div class="na-pz-bar">{buttons}'
            f' <span class="na-pz-scale">100%</span> <span class="na-muted">drag to pan, ctrl + wheel to zoom</span>'
            f'</div><div class="na-pz-view"><img src="{uri}" alt="{esc(caption)}"></div>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _layer_table(path: Any, model: str) -> str:
    """The architecture's per-layer table (summary.csv); rows carry their layer for the picker."""
    if not path.is_file():
        return ""
    import pandas as pd

    frame = pd.read_csv(path)
    if "is_leaf" in frame:  # containers repeat their children's numbers
        frame = frame[frame["is_leaf"].astype(str) == "True"]
    columns = [c for c in ("name", "type", "output_shape", "params", "macs") if c in frame]
    if "name" not in columns:
        return ""
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in columns)
    rows = []
    for rec in frame[columns].itertuples(index=False):
        cells = "".join(f'<td class="num">{int(v):,}</td>' if isinstance(v, (int, float)) and v == v
                        and not isinstance(v, bool) else f"<td>{esc(v)}</td>" for v in rec)
        rows.append(f"<tr{attrs(None, str(rec[0]))}>{cells}</tr>")
    return (f'<details class="na-layers"{attrs(model)}><summary>layer table (output shapes, parameters,'
            f' multiply-adds)</summary><div class="na-table-wrap"><table class="na-table"><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>")


# ---------------------------------------------------------------------------- run summary
def render_run_summary(run: RunInfo) -> str:
    """The run at a glance: config, then per model its data, training curve, store and layers."""
    parts = []
    config_text = ""
    if run.config is not None:
        import yaml

        config_text = (f'<details class="na-config"><summary>config.yaml</summary>'
                       f"<pre>{esc(yaml.safe_dump(run.config, sort_keys=False))}</pre></details>")
    data = (run.config or {}).get("data") or {}
    capture = (run.config or {}).get("capture") or {}
    entries = {m.get("name"): m for m in (run.config or {}).get("models") or [] if isinstance(m, dict)}
    for model in run.models:
        # a model entry may bring its own data and capture settings (a pretrained model)
        own = entries.get(model.name) or {}
        parts.append(_model_card(model, own.get("data") or data, {**capture, **(own.get("capture") or {})}))
    return config_text + f'<div class="na-cards">{"".join(parts)}</div>'


def _model_card(model: ModelInfo, data: dict[str, Any], capture: dict[str, Any]) -> str:
    facts: list[tuple[str, str]] = []
    if model.spec:
        kwargs = ", ".join(f"{k}={v}" for k, v in (model.spec.get("kwargs") or {}).items())
        facts.append(("model", f"{model.spec.get('builder', '?')}({kwargs})"))
    if data:
        where = f" ({data['path']})" if data.get("path") else ""
        split = capture.get("split", "test")
        n = capture.get("n")
        facts.append(("data", f"{data.get('name', '?')}{where}; captured the {split} split"
                              f"{f', first {n}' if n else ''}"))
    epochs = model.epochs_table
    if epochs:
        last = epochs[-1]
        acc = [f"{k.split('_')[0]} {last[k]:.4f}" for k in ("test_accuracy", "train_accuracy")
               if isinstance(last.get(k), (int, float))]
        facts.append(("accuracy", ", ".join(acc) + f" after {last.get('epoch', len(epochs) - 1)} epochs"))
        tries = (model.metrics or {}).get("tries", 1)
        if tries and tries > 1:
            notes = "; ".join((model.metrics or {}).get("restarted_because", []))
            facts.append(("restarts", f"{tries} tries (kept try {model.metrics.get('best_try', '?')})"
                                      + (f": {notes}" if notes else "")))
    store = model.store
    if store is not None:
        ep = f"epochs {store.epochs[0]}–{store.epochs[-1]}" if store.epochs else "final model only"
        facts.append(("store", f"{store.n_samples} samples × {len(store.layers)} layers, {ep},"
                               f" {store.nbytes / 2**20:.1f} MiB{'' if store.complete else ' (incomplete)'}"))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    curve = training_plot(model) if epochs else ""
    layers = ""
    if store is not None and store.layers:
        body = "".join(
            f'<tr{attrs(None, layer)}><td><code>{esc(layer)}</code></td>'
            f'<td>{esc(tuple(store.unit_shapes.get(layer, [])))}</td>'
            f'<td class="num">{_units(store.unit_shapes.get(layer, []))}</td></tr>'
            for layer in store.layers)
        layers = (f'<details class="na-layers" open><summary>layers</summary><table class="na-table">'
                  f"<thead><tr><th>layer</th><th>unit shape</th><th>units</th></tr></thead>"
                  f"<tbody>{body}</tbody></table></details>")
    return (f'<div class="na-card"{attrs(model.name)}><h3>{esc(model.name)}</h3>'
            f'<table class="na-facts">{rows}</table>{curve}{layers}</div>')


def _units(shape: list[int]) -> str:
    n = 1
    for s in shape:
        n *= int(s)
    return f"{n:,}"


def training_plot(model: ModelInfo) -> str:
    """Accuracy per epoch (train and test) with the loss on a second axis, from metrics.json."""
    epochs = model.epochs_table
    x = [e.get("epoch", i) for i, e in enumerate(epochs)]
    traces = []
    for key, name, dash in (("train_accuracy", "train accuracy", "solid"), ("test_accuracy", "test accuracy", "solid"),
                            ("loss", "train loss", "dot"), ("test_loss", "test loss", "dot")):
        y = [e.get(key) for e in epochs]
        if any(isinstance(v, (int, float)) for v in y):
            trace = {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "name": name,
                     "line": {"dash": dash}}
            if "loss" in key:
                trace["yaxis"] = "y2"
            traces.append(trace)
    layout = {
        "title": {"text": f"{model.name}: training", "font": {"size": 13}},
        "xaxis": {"title": {"text": "epoch"}, "dtick": 1 if len(x) <= 20 else None},
        "yaxis": {"title": {"text": "accuracy"}, "range": [0, 1.02]},
        "yaxis2": {"title": {"text": "loss"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
                   "showgrid": False},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"l": 50, "r": 50, "t": 35, "b": 40},
    }
    return plot_html(traces, layout, model=model.name, height=300, cls="na-training")


# ---------------------------------------------------------------------------- pretrained ImageNet model
_UNIT_CARDS_NOTE = (
    "<p class=\"na-muted\">Each card: the channel's feature visualisation (Fourier image, colour"
    " decorrelation, transformation robustness) and its activation as a multiple of the best natural"
    " patch's (the same objective: the channel's mean over positions); the top patches of the"
    " captured data set with the effective receptive field of the channel's strongest position"
    " (pixels whose |gradient| exceeds 5&nbsp;% of the peak) and those crops; the histogram of the"
    " activation over the data set; the classes whose logits drop most when the channel is zeroed on"
    " its top patches (minus the mean drop).</p>")


@register_section("unit_cards", title="Unit cards (Microscope view)", order=62)
def render_unit_cards(ctx: SectionContext) -> str:
    """The method note, then each model's card table and card figures."""
    return _UNIT_CARDS_NOTE + "".join(analysis_block(ctx, out) for out in ctx.outputs)


def _captum_block(ctx: SectionContext, out: AnalysisOutput) -> str:
    """An attribution output's block, then where its methods differ from captum on purpose.

    The differences are the summary's ``captum_differences`` (the attribution steps write it).
    """
    differences = (out.summary or {}).get("captum_differences") or {}  # summary_table leaves it out
    note = ""
    if differences:
        items = "".join(f"<li><b>{esc(m.replace('_', ' '))}</b>: {esc(text)}</li>" for m, text in differences.items())
        note = (f'<div class="na-captum"><p class="na-muted">Where these methods differ from captum on purpose'
                f" (otherwise they are captum's):</p><ul class=\"na-muted\">{items}</ul></div>")
    return analysis_block(ctx, out, after=note)


@register_section("attribution", title="Attribution")
def render_attribution(ctx: SectionContext) -> str:
    """Each model's attribution tables and figures, and where its methods differ from captum."""
    return "".join(_captum_block(ctx, out) for out in ctx.outputs)


@register_section("photo_attribution", title="Attribution on photos", order=52)
def render_photo_attribution(ctx: SectionContext) -> str:
    """The photo-attribution section: a note on what the maps explain, then each output's block."""
    note = ("<p class=\"na-muted\">Maps explain each photo's predicted class (top predictions with their"
            " probabilities above each row), drawn over the photo as the model saw it.</p>")
    return note + "".join(_captum_block(ctx, out) for out in ctx.outputs)


@register_section("deepdream", title="DeepDream", order=64)
def render_deepdream(ctx: SectionContext) -> str:
    """The DeepDream section: each output's block."""
    return "".join(analysis_block(ctx, out) for out in ctx.outputs)
