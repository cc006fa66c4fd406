"""What a run's numbers say, in words; per-class results; the models side by side.

Three report sections that read only what earlier steps wrote (``summary.json`` files, the
store's sample table, ``attributions.zarr``), so they agree with the tables below them:

* **Findings** — per model, sentences from the numbers: which layer separates the classes
  first, which attribution methods pass the sanity check, how far PGD at each ε drops
  accuracy, where linear CKA shows blocks of similar adjacent layers.
* **Per-class results** — confusion matrix and per-class accuracy of the final model, and a
  gallery of misclassified samples with their attribution maps; a click rings the sample in
  its model's projection.
* **Models side by side** — neighbourhood hit, probe accuracy and adjacent-layer CKA against
  relative depth, and accuracy against PGD ε, on shared axes.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from neuralatlas.report.collect import ModelInfo, RunInfo
from neuralatlas.report.components import attrs, esc, plot_html

# "separates the classes" = within this fraction of the best neighbourhood hit / probe accuracy
NEAR_BEST = 0.98
# adjacent layers whose linear CKA is at least this form one block of similar representations
CKA_BLOCK = 0.95
MAX_GALLERY = 24


@dataclass
class Finding:
    """One sentence of the findings block, with the analysis it comes from."""

    topic: str
    text: str


def _summary(model: ModelInfo, analysis: str) -> dict[str, Any] | None:
    out = model.analyses.get(analysis)
    return out.summary if out is not None and isinstance(out.summary, dict) else None


def input_views(model: ModelInfo) -> list[str]:
    """Layers before the first layer with parameters (a flatten of the input, say).

    They are the raw input seen again: a baseline for the layers after them rather than a learned
    representation.

    Known from the architecture step's ``summary.csv`` (empty when it did not run).
    """
    out = model.analyses.get("architecture")
    path = out.results_dir / "summary.csv" if out is not None else None
    if path is None or not path.is_file():
        return []
    import pandas as pd

    frame = pd.read_csv(path)
    if "is_leaf" in frame:
        frame = frame[frame["is_leaf"].astype(str) == "True"]
    views = []
    for name, params in zip(frame["name"].astype(str), frame.get("params", [0] * len(frame)), strict=True):
        if float(params or 0) > 0:
            break
        views.append(name)
    return [v for v in views if v in model.layers]


def _first_near_best(values: dict[str, float], order: list[str]) -> tuple[str, float, str, float] | None:
    """(first layer within NEAR_BEST of the best, its value, best layer, best value)."""
    layers = [layer for layer in order if isinstance(values.get(layer), (int, float))]
    if not layers:
        return None
    best = max(layers, key=lambda layer: values[layer])
    first = next(layer for layer in layers if values[layer] >= NEAR_BEST * values[best])
    return first, float(values[first]), best, float(values[best])


def _last_epoch_hits(summary: dict[str, Any]) -> dict[str, float]:
    scores = [s for s in summary.get("scores", []) if isinstance(s, dict) and "neighborhood_hit" in s]
    epochs = [s.get("epoch") for s in scores]
    last = max((e for e in epochs if e is not None), default=None)
    return {s["layer"]: float(s["neighborhood_hit"]) for s in scores
            if s.get("epoch") == last and isinstance(s.get("neighborhood_hit"), (int, float))}


def _last_epoch_spread(summary: dict[str, Any]) -> dict[str, tuple[float, float, int]]:
    """{layer: (min, max, seeds)} of the last epoch's neighbourhood hit over seeds (where run)."""
    scores = [s for s in summary.get("scores", []) if isinstance(s, dict) and "nh_min" in s]
    last = max((s.get("epoch") for s in summary.get("scores", []) if isinstance(s, dict)
                and s.get("epoch") is not None), default=None)
    return {s["layer"]: (float(s["nh_min"]), float(s["nh_max"]), int(s.get("nh_seeds", 0)))
            for s in scores if s.get("epoch") == last and isinstance(s.get("nh_min"), (int, float))
            and s["nh_min"] == s["nh_min"]}  # NaN where a layer had no extra seeds


def token_rows(model: ModelInfo) -> bool:
    """Whether the model's store has a row per token (``rows="tokens"``).

    Its points are then tokens, each labelled with its sentence's class, and positions are not classes.
    """
    return model.store is not None and model.store.attrs.get("rows") == "tokens"


def model_findings(model: ModelInfo) -> list[Finding]:
    """The sentences of one model's findings block (empty when nothing was analysed).

    On a token store the sentences say what is grouped: tokens by their sentence's class
    (projections, probes) and, for NAPs by another column, that column (positions, tokens).
    """
    found: list[Finding] = []
    tokens = token_rows(model)
    order = model.layers
    views = input_views(model)
    epochs = model.epochs_table
    if epochs:
        last = epochs[-1]
        test, train = last.get("test_accuracy"), last.get("train_accuracy")
        if isinstance(test, (int, float)):
            gap = f" (train {train:.3f}; gap {train - test:+.3f})" if isinstance(train, (int, float)) else ""
            found.append(Finding("training", f"Test accuracy {test:.3f} after {last.get('epoch', len(epochs) - 1)}"
                                             f" epochs{gap}."))
    proj = _summary(model, "projection")
    if proj:
        base = (proj.get("input_baseline") or {}).get("layer")
        if base and base not in views:  # the projection step found it from the activations
            views = [*views, base]
        hits = _last_epoch_hits(proj)
        learned = [layer for layer in (proj.get("layers") or order) if layer not in views]
        near = _first_near_best(hits, learned)
        if near is not None:
            first, value, best, top = near
            who = "The tokens' classes (each token labelled with its sentence's)" if tokens else "Classes"
            text = (f"{who} separate first at {first} (neighbourhood hit {value:.3f} in the"
                    f" {proj.get('method', 'projection')} map, within {1 - NEAR_BEST:.0%} of the best, {best}"
                    f" {top:.3f}).")
            spread = _last_epoch_spread(proj)
            if first in spread and best in spread and first != best:
                (lo1, hi1, k), (lo2, hi2, _) = spread[first], spread[best]
                text += (f" Over {k} seeds the hit spans {lo1:.3f}–{hi1:.3f} at {first} and {lo2:.3f}–{hi2:.3f}"
                         f" at {best}" + ("; the ranges overlap: the difference is within the embedding's noise."
                                          if lo2 <= hi1 else "."))
            elif first in spread:
                lo1, hi1, k = spread[first]
                text += f" Over {k} seeds the hit spans {lo1:.3f}–{hi1:.3f}."
            base = [v for v in views if v in hits]
            if base:
                b = hits[base[0]]
                text += (f" The raw input ({base[0]}, a baseline) already scores {b:.3f}"
                         + ("; no layer beats it." if top <= b else "."))
            found.append(Finding("projection", text))
    sim = _summary(model, "similarity")
    if sim:
        probes = sim.get("probe_accuracy") or {}
        near = _first_near_best(probes, [layer for layer in order if layer not in views] or order)
        if near is not None:
            first, value, best, top = near
            chance = sim.get("probe_chance")
            what = "each token's class (its sentence's)" if tokens else "the class"
            found.append(Finding("probes", f"A linear probe reads {what} from {first} at {value:.3f}"
                                           f" (best {best} {top:.3f}"
                                           + (f", chance {chance:.3f}" if isinstance(chance, (int, float)) else "")
                                           + ")."))
        blocks = cka_blocks(sim.get("adjacent_layer_cka") or {}, order)
        if blocks:
            parts = [f"{b[0]}–{b[-1]}" for b in blocks]
            found.append(Finding("similarity", f"Linear CKA shows {len(blocks)} block{'s' if len(blocks) > 1 else ''}"
                                               f" of similar adjacent layers (CKA ≥ {CKA_BLOCK}): {', '.join(parts)}."))
        adjacent = {k: v for k, v in (sim.get("adjacent_layer_cka") or {}).items() if isinstance(v, (int, float))}
        if adjacent:
            step = min(adjacent, key=adjacent.get)
            found.append(Finding("similarity", f"The representation changes most at {step}"
                                               f" (adjacent CKA {adjacent[step]:.3f})."))
    naps = _summary(model, "naps")
    if naps and naps.get("by") and (tokens or naps["by"] not in ("label", "label_name")):
        from neuralatlas.report.captions import group_noun

        noun = group_noun(naps["by"])
        nouns = noun + ("es" if noun.endswith("s") else "s")
        groups = [str(g) for g in naps.get("groups") or []]
        shown = ", ".join(groups[:6]) + (", …" if len(groups) > 6 else "")
        found.append(Finding("naps", f"NAPs group the {'tokens' if tokens else 'samples'} by {noun}"
                                     f" ({len(groups)} {nouns}: {shown})"
                                     + (", not by class: their heat maps compare " + nouns if noun != "class" else "")
                                     + "."))
    attr = _summary(model, "attribution")
    if attr:
        methods = {m: v for m, v in (attr.get("methods") or {}).items()
                   if isinstance(v, dict) and "sanity_passed" in v}
        passed = [m for m, v in methods.items() if v["sanity_passed"]]
        failed = [m for m, v in methods.items() if not v["sanity_passed"]]
        if methods:
            text = (f"Sanity check (cascading weight randomisation): {_names(passed) or 'no method'} pass"
                    f"{'es' if len(passed) == 1 else ''}")
            if failed:
                text += (f"; {_names(failed)} fail{'s' if len(failed) == 1 else ''} — their maps stay similar"
                         " when the weights are randomised, so they show the input more than the model")
            found.append(Finding("attribution", text + "."))
    adv = _summary(model, "adversarial")
    if adv and adv.get("curve"):
        curve = [c for c in adv["curve"] if isinstance(c, dict)]
        clean = next((c.get("clean_accuracy") for c in curve if c.get("clean_accuracy") is not None), None)
        steps = ", ".join(f"ε = {c['eps']:g}: {c['accuracy']:.3f}" for c in curve
                          if isinstance(c.get("accuracy"), (int, float)))
        method = f"{str(adv.get('method', 'attack')).upper()} ({adv.get('norm', '')})".replace(" ()", "")
        if steps:
            found.append(Finding("adversarial", f"{method} drops accuracy from {clean:.3f} (clean) to {steps}."
                                 if isinstance(clean, (int, float)) else f"{method}: accuracy {steps}."))
    return found


def _names(methods: list[str]) -> str:
    names = [m.replace("_", " ") for m in methods]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""


def cka_blocks(adjacent: dict[str, float], order: list[str]) -> list[list[str]]:
    """Runs of ≥ 3 consecutive layers whose adjacent linear CKA is ≥ CKA_BLOCK.

    ``adjacent`` is the similarity summary's ``{"a → b": cka}``.

    Example
    -------
    >>> cka_blocks({"a → b": 0.99, "b → c": 0.97, "c → d": 0.5}, ["a", "b", "c", "d"])
    [['a', 'b', 'c']]
    """
    pairs = {}
    for key, value in adjacent.items():
        a, _, b = str(key).partition(" → ")
        if isinstance(value, (int, float)):
            pairs[(a, b)] = float(value)
    blocks: list[list[str]] = []
    run: list[str] = []
    for a, b in pairwise(order):
        if pairs.get((a, b), 0.0) >= CKA_BLOCK:
            run = run or [a]
            run.append(b)
        else:
            if len(run) >= 3:
                blocks.append(run)
            run = []
    if len(run) >= 3:
        blocks.append(run)
    return blocks


def render_findings(run: RunInfo) -> str:
    """The findings block: one list of sentences per model."""
    parts = []
    for model in run.models:
        items = model_findings(model)
        if not items:
            continue
        li = "".join(f'<li data-topic="{esc(f.topic)}">{esc(f.text)}</li>' for f in items)
        parts.append(f'<div class="na-findings"{attrs(model.name)}><h3>{esc(model.name)}</h3><ul>{li}</ul></div>')
    return "".join(parts)


# ---------------------------------------------------------------------------- per class
def predictions(model: ModelInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """(data-set index, label, prediction) of the final model's captured samples, and class names."""
    if model.store is None:
        return None
    from neuralatlas.store import ActivationStore

    try:
        samples = ActivationStore.open(model.store.path).samples
    except Exception:  # noqa: BLE001 - an unreadable store only costs this section
        return None
    if "prediction" not in samples or "label" not in samples:
        return None
    label = np.asarray(samples["label"])
    pred = np.asarray(samples["prediction"])
    if not (np.issubdtype(label.dtype, np.integer) and np.issubdtype(pred.dtype, np.integer)):
        return None  # regression targets have no classes
    classes = list(model.store.classes) or [str(c) for c in range(int(max(label.max(), pred.max())) + 1)]
    return np.asarray(samples["index"]), label, pred, classes


def confusion(label: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """``[n, n]`` counts, rows = true class, columns = predicted; samples with label < 0 skipped."""
    ok = (label >= 0) & (label < n) & (pred >= 0) & (pred < n)
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (label[ok], pred[ok]), 1)
    return m


def _confusion_html(m: np.ndarray, classes: list[str], model: str) -> str:
    totals = m.sum(axis=1)
    head = "".join(f'<th class="num">{esc(c)}</th>' for c in classes)
    rows = []
    for i, name in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            share = m[i, j] / totals[i] if totals[i] else 0.0
            hue = "47,111,176" if i == j else "179,38,30"
            cells.append(f'<td class="num" style="background:rgba({hue},{share * 0.85:.2f})"'
                         f' title="true {esc(name)}, predicted {esc(classes[j])}: {m[i, j]}">{m[i, j]}</td>')
        acc = f"{m[i, i] / totals[i]:.3f}" if totals[i] else "–"
        rows.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}<td class=\"num na-acc\">{acc}</td>"
                    f'<td class="num">{totals[i]}</td></tr>')
    overall = np.trace(m) / m.sum() if m.sum() else float("nan")
    return (
        f'<div class="na-table-wrap"{attrs(model)}><table class="na-table na-confusion">'
        f"<caption>confusion matrix of the final model on the {int(m.sum())} captured samples (rows: true"
        f" class, columns: predicted) and per-class accuracy; overall {overall:.3f}</caption>"
        f"<thead><tr><th>true \\ predicted</th>{head}"
        f'<th class="num">accuracy</th><th class="num">n</th></tr></thead><tbody>{"".join(rows)}</tbody>'
        f"</table></div>"
    )


def _png_uri(img: np.ndarray, scale: int = 6, cmap: str | None = None, signed: bool = False) -> str:
    """A small PNG of one ``[C, H, W]`` image (or a map through ``cmap``), nearest-upscaled."""
    from PIL import Image

    a = np.asarray(img, np.float64)
    if cmap is not None:
        import matplotlib

        m = a.mean(axis=0) if a.ndim == 3 else a
        lim = float(np.nanmax(np.abs(m))) or 1.0
        m = (m / lim + 1) / 2 if signed else np.abs(m) / lim
        rgb = (matplotlib.colormaps[cmap](np.nan_to_num(m))[..., :3] * 255).astype(np.uint8)
    else:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = (a - lo) / (hi - lo or 1.0)
        rgb = (np.transpose(a, (1, 2, 0)) * 255).astype(np.uint8)
        rgb = rgb[..., 0] if rgb.shape[-1] == 1 else rgb
    im = Image.fromarray(np.ascontiguousarray(rgb))  # a strided view would be read as garbage
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _attribution_maps(model: ModelInfo, index: np.ndarray) -> dict[str, tuple[np.ndarray, bool]]:
    """``{method: (maps [len(index), ...] or NaN rows for missing samples, signed)}`` from attributions.zarr."""
    path = model.dir / "attributions.zarr"
    if not (path / "zarr.json").exists():
        return {}
    from neuralatlas.store import ActivationStore

    try:
        store = ActivationStore.open(path)
        have = np.asarray(store.samples["index"])
        pos = {int(v): i for i, v in enumerate(have)}
        rows = [pos.get(int(i), -1) for i in index]
        signed = store.attrs.get("signed", {})
        out = {}
        for method in store.layers[:3]:
            arr = store.activations(method)
            maps = np.full((len(rows), *arr.shape[1:]), np.nan, np.float32)
            for k, r in enumerate(rows):
                if r >= 0:
                    maps[k] = arr[r]
            out[method] = (maps, bool(signed.get(method, True)))
        return out
    except Exception:  # noqa: BLE001 - the gallery still shows the samples without maps
        return {}


def _gallery_html(model: ModelInfo, images: Any, index: np.ndarray, label: np.ndarray, pred: np.ndarray,
                  classes: list[str]) -> str:
    wrong = np.flatnonzero((label != pred) & (label >= 0))
    if not len(wrong):
        return '<p class="na-muted">No captured sample is misclassified.</p>'
    shown = wrong[:MAX_GALLERY]
    inputs = images.by_index(index[shown]) if images is not None else None
    maps = _attribution_maps(model, index[shown])
    items = []
    for k, row in enumerate(shown):
        pics = ""
        if inputs is not None:
            pics += f'<img src="{_png_uri(inputs[k])}" alt="sample {int(index[row])}" title="input">'
        for method, (m, signed) in maps.items():
            if np.isfinite(m[k]).all():
                cmap = "RdBu_r" if signed else "magma"
                pics += (f'<img src="{_png_uri(m[k], cmap=cmap, signed=signed)}" alt="{esc(method)}"'
                         f' title="{esc(method.replace("_", " "))}">')
        name = lambda c: classes[c] if 0 <= c < len(classes) else str(c)  # noqa: E731
        items.append(
            f'<button type="button" class="na-miss-item" data-model="{esc(model.name)}"'
            f' data-index="{int(index[row])}" title="show this sample in the projection">'
            f'<span class="na-miss-pics">{pics}</span><span>#{int(index[row])}: true {esc(name(int(label[row])))},'
            f" predicted {esc(name(int(pred[row])))}</span></button>"
        )
    legend = ("input" + (", then " + ", ".join(m.replace("_", " ") for m in maps) if maps else "")
              + " (attributions of the true class)" * bool(maps))
    more = f"; the first {len(shown)} of {len(wrong)}" if len(wrong) > len(shown) else ""
    return (f'<p class="na-muted">Misclassified samples{more}: {esc(legend)}. Click one to ring it in'
            f' the projection.</p><div class="na-miss">{"".join(items)}</div>')


def render_per_class(run: RunInfo, images: Any = None) -> str:
    """Per model: confusion matrix, per-class accuracy, misclassified gallery ('' when no store)."""
    parts = []
    for model in run.models:
        got = predictions(model)
        if got is None:
            continue
        index, label, pred, classes = got
        m = confusion(label, pred, len(classes))
        parts.append(f'<div class="na-model-block"{attrs(model.name)}><h3>{esc(model.name)}</h3>'
                     f"{_confusion_html(m, classes, model.name)}"
                     f"{_gallery_html(model, images, index, label, pred, classes)}</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------- side by side
def _depth(layers: list[str]) -> dict[str, float]:
    n = len(layers)
    return {layer: (i / (n - 1) if n > 1 else 0.0) for i, layer in enumerate(layers)}


def render_comparison(run: RunInfo) -> str:
    """Models on shared axes: per-layer scores against relative depth, robustness against ε."""
    if len(run.models) < 2:
        return ""
    panels: dict[str, list[dict[str, Any]]] = {"hit": [], "probe": [], "cka": [], "adv": []}
    for model in run.models:
        depth = _depth(model.layers)
        proj = _summary(model, "projection")
        if proj:
            hits = _last_epoch_hits(proj)
            ls = [layer for layer in model.layers if layer in hits]
            panels["hit"].append(_trace(model.name, [depth[x] for x in ls], [hits[x] for x in ls], ls))
        sim = _summary(model, "similarity")
        if sim:
            probes = sim.get("probe_accuracy") or {}
            ls = [layer for layer in model.layers if isinstance(probes.get(layer), (int, float))]
            panels["probe"].append(_trace(model.name, [depth[x] for x in ls], [probes[x] for x in ls], ls))
            adj = sim.get("adjacent_layer_cka") or {}
            xs, ys, names = [], [], []
            for a, b in pairwise(model.layers):
                v = adj.get(f"{a} → {b}")
                if isinstance(v, (int, float)):
                    xs.append(depth[b])
                    ys.append(v)
                    names.append(f"{a} → {b}")
            panels["cka"].append(_trace(model.name, xs, ys, names))
        adv = _summary(model, "adversarial")
        if adv and adv.get("curve"):
            curve = [c for c in adv["curve"] if isinstance(c, dict) and isinstance(c.get("accuracy"), (int, float))]
            clean = next((c.get("clean_accuracy") for c in curve if c.get("clean_accuracy") is not None), None)
            xs = ([0.0] if clean is not None else []) + [c["eps"] for c in curve]
            ys = ([clean] if clean is not None else []) + [c["accuracy"] for c in curve]
            panels["adv"].append(_trace(model.name, xs, ys, [f"ε = {x:g}" for x in xs]))
    titles = {
        "hit": (
            "neighbourhood hit (last epoch) by depth",
            "relative depth (0 = first layer, 1 = output)",
            "neighbourhood hit",
        ),
        "probe": ("linear probe accuracy by depth", "relative depth", "probe accuracy"),
        "cka": ("linear CKA with the previous layer", "relative depth", "adjacent CKA"),
        "adv": ("accuracy under attack", "ε (L∞)", "accuracy"),
    }
    plots = []
    for key, traces in panels.items():
        if len(traces) < 1 or not any(t["x"] for t in traces):
            continue
        title, xlab, ylab = titles[key]
        layout = {"title": {"text": title}, "xaxis": {"title": {"text": xlab}},
                  "yaxis": {"title": {"text": ylab}, "range": [0, 1.02]}}
        plots.append(f'<div class="na-compare-cell">{plot_html(traces, layout, height=280, cls="na-compare")}</div>')
    if not plots:
        return ""
    return (
        f'<p class="na-muted">Each model\'s layers are placed by relative depth, so models of different'
        f' length share an axis; hover a point for its layer.</p><div class="na-compare-grid">{"".join(plots)}</div>'
    )


def _trace(name: str, x: list[float], y: list[float], text: list[str]) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "y": y, "text": text}
