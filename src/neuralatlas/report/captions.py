"""What each saved figure shows, in a sentence: one registry for the HTML report and LaTeX.

A figure is known by its analysis and its file stem relative to ``figures/<analysis>/``
(``naps`` + ``fc1_heatmap``). :func:`describe` matches the stem against the patterns of
:data:`CAPTIONS` (``fnmatch`` style, first match wins) and fills in what the name says
(``{layer}``, ``{method}``, ``{eps}``, ``{epoch}``). An analysis of your own adds entries
with :func:`register_caption`; a figure nobody described gets a sentence naming the analysis
and the figure, never a bare file name.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePath
from typing import Any

__all__ = ["CAPTIONS", "describe", "caption_fields", "group_noun", "grouping", "register_caption"]

# analysis -> [(stem pattern, sentence)]; {layer} is the layer the stem names, {rest} the
# part of the stem the pattern's * matched.
CAPTIONS: dict[str, list[tuple[str, str]]] = {
    "architecture": [
        ("layer_costs", "Parameters and multiply-adds per sample of every layer with a cost (log scale)."),
        ("*", "The model's layer graph."),
    ],
    "naps": [
        ("*_heatmap", "Neuron activation patterns of {layer}: each {group}'s mean activation (rows) per unit"
                      " (columns; conv layers averaged over positions)."),
        ("*_maps", "Spatial activation patterns of {layer}: each {group}'s mean activation map, averaged over"
                   " channels, on one colour scale."),
        ("unit_statistics", "Fraction of dead and always-on units, and sparsity, in every layer."),
    ],
    "topomap": [
        ("*overview", "Topographic activation maps of every layer (rows, in depth order) and {group} (columns);"
                      " one colour scale per layer."),
        ("*_layout", "How the units of {layer} are laid out on its topographic map, coloured by the {group}"
                     " each unit prefers."),
        ("quality_*", "Layout quality of {layer} for each layout method (Spearman correlation of distances)."),
        ("*", "Topographic map of {layer}."),
    ],
    "projection": [
        ("layers_*", "Two-dimensional embedding of every layer ({epoch}), one panel per layer on shared"
                     " axes, each line a {row}'s move from the previous layer{rings_most}; where drawn, every"
                     " trail bundled below."),
        ("epochs_*", "Embedding of {layer} at each captured epoch, one panel per epoch on shared axes,"
                     " each line a {row}'s move over training{rings_most}; where drawn, every trail bundled"
                     " below."),
        ("trails_*", "Trails as small multiples ({rest}): one panel per step on shared axes, each line a"
                     " {row}'s move from the previous step{rings_most}."),
        ("quality", "Neighbourhood hit and trustworthiness of the embedding, per layer and epoch."),
        ("neurons_*", "Neuron projection of {layer}: units close together respond alike across samples."),
        ("compare_*", "Neuron projection of {layer} beside the importance of each unit per class ({method})."),
        ("discriminative_*", "Most discriminated class of each unit of {layer} ({method}); size and opacity"
                             " give the strength."),
        ("agreement_*", "Agreement of the trees and ANOVA importances of {layer}'s units, per class."),
    ],
    "similarity": [
        ("layer_cka", "Linear CKA between every pair of layers of the final model."),
        ("layer_rbf_cka", "RBF-kernel CKA between every pair of layers of the final model."),
        ("layer_rsa", "Representational similarity (RSA) between every pair of layers."),
        ("epoch_cka", "Linear CKA of each layer with itself across the captured epochs."),
        ("probes", "Accuracy of a linear probe per layer, against chance."),
        ("*", "Layer similarity: {rest}."),
    ],
    "attribution": [
        ("grid", "Attribution maps of example samples, one column per method (shared scale per row)."),
        ("sanity_maps_*", "Cascading randomisation of {method}: its maps as the weights are randomised from"
                          " the output layer down."),
        ("sanity_*", "Sanity check of {method}: similarity of its maps to the trained model's as more layers"
                     " are randomised; the dashed line is the pass threshold."),
        ("faithfulness", "Deletion and insertion curves of each attribution method against a random order."),
    ],
    "adversarial": [
        ("grid_eps*", "Adversarial examples at ε = {eps}: input, perturbation and the attacked input with its"
                      " new prediction."),
        ("robustness", "Accuracy under attack against the perturbation budget ε."),
    ],
    "featurevis": [
        ("*_images", "Inputs optimised to excite each unit of {layer}."),
        ("*_trace", "Objective value during the optimisation for {layer}."),
        ("feature_maps_*", "Feature maps of {layer} for one sample."),
        ("filters_*", "Learned kernels of {layer}."),
        ("dream*", "The input before and after amplifying {layer} (deep dream)."),
    ],
    "toy": [
        ("*", "Each neuron of the toy network over the input plane: {rest}."),
    ],
}


def register_caption(analysis: str, pattern: str, sentence: str) -> None:
    """Describe the figures of ``analysis`` whose stem matches ``pattern`` (checked first).

    Example
    -------
    >>> register_caption("my_probe", "probe_*", "Probe accuracy of {layer} per epoch.")
    >>> describe("my_probe", "probe_fc1", layers=["fc1"])
    'Probe accuracy of fc1 per epoch.'
    """
    CAPTIONS.setdefault(analysis, []).insert(0, (pattern, sentence))


# what a NAP / topomap grouping column is called in a sentence ("each position's mean ...")
GROUP_NOUNS = {"label": "class", "label_name": "class", "position": "position", "token": "token",
               "token_id": "token", "prediction": "predicted class", "sample": "sample"}


def group_noun(by: str | None) -> str:
    """The word for one group of a grouping column.

    ``"label"`` -> ``"class"``, ``"position"`` -> ``"position"``, any other column -> its name (``"group"``,
    ``"topic"``).
    """
    if not by:
        return "class"
    return GROUP_NOUNS.get(str(by), str(by).replace("_", " "))


def grouping(model: Any, analysis: str) -> str | None:
    """The sample-table column ``analysis`` grouped by for ``model`` (a report ModelInfo), when known.

    It is known when its summary says so: the NAPs' ``by``; for topomaps (whose summary names only the
    groups), the NAPs' ``by`` when the groups are the same. None when unknown (class is assumed).
    """
    def summary(name: str) -> dict:
        out = model.analyses.get(name) if model is not None else None
        return out.summary if out is not None and isinstance(out.summary, dict) else {}

    own = summary(analysis)
    by = own.get("by") or (own.get("options") or {}).get("by")
    if by or analysis != "topomap":
        return by
    naps = summary("naps")
    if naps.get("by") and [str(g) for g in naps.get("groups") or []] == [str(g) for g in own.get("groups") or []]:
        return naps["by"]
    return None


def caption_fields(model: Any, analysis: str) -> dict[str, Any]:
    """What :func:`describe` needs to know of a model's store and analysis to word a caption.

    That is ``by`` (:func:`grouping`), ``rows`` ("tokens" for a store of token rows) and ``predictions``
    (whether the store has predictions to ring the misclassified).
    """
    attrs = getattr(getattr(model, "store", None), "attrs", None) or {}
    return {"by": grouping(model, analysis), "rows": "tokens" if attrs.get("rows") == "tokens" else "samples",
            "predictions": bool(attrs.get("has_prediction", True))}


# Titles of the analyses the package ships, used by the generic renderer and the captions.
TITLES: dict[str, str] = {
    "architecture": "Architecture",
    "naps": "Neuron activation patterns (NAPs)",
    "topomap": "Topomaps",
    "topomaps": "Topomaps",
    "projection": "Projections",
    "discriminative": "Discriminative neurons",
    "similarity": "Layer similarity",
    "attribution": "Attribution",
    "featurevis": "Feature visualisation",
    "adversarial": "Adversarial examples",
    "toy": "Toy network: each neuron over the input plane",
}

#: Titles given by ``report.sections.register_section`` (the section registry lives there).
REGISTERED_TITLES: dict[str, str] = {}


def section_title(name: str) -> str:
    """The heading of an analysis's section: its registered title, else the name made readable."""
    if name in REGISTERED_TITLES:
        return REGISTERED_TITLES[name]
    return TITLES.get(name, name.replace("_", " ").capitalize())


def describe(analysis: str, stem: str | PurePath, *, layers: list[str] | tuple[str, ...] = (),
             model: str | None = None, by: str | None = None, rows: str = "samples",
             predictions: bool = True) -> str:
    """The sentence describing figure ``stem`` of ``analysis`` (see the module docstring).

    ``by`` is the sample-table column the analysis grouped by (the NAPs' ``by``): figures of
    NAPs by position say "each position's", not "each class's". ``{group}`` in a registered
    sentence is that word (default "class"). ``rows`` ("samples" or "tokens") names the points
    (``{row}``), and ``predictions=False`` (a store without predictions, an encoder) drops
    "rings mark misclassified samples" (``{rings}``).
    """
    from neuralatlas.report.collect import layer_of

    stem = PurePath(stem).as_posix()
    name = stem.rsplit("/", 1)[-1]
    layer = layer_of(stem, list(layers)) or ""
    for pattern, sentence in CAPTIONS.get(analysis, []):
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(stem, pattern):
            rest = _rest(pattern, name)
            fields = {
                "layer": layer or rest.replace("_", " ") or "the layer",
                "method": _method(name, pattern) or rest.replace("_", " "),
                "eps": rest.replace("p", ".") if re.fullmatch(r"[\dp]+", rest) else rest,
                "epoch": _epoch(name),
                "rest": rest.replace("_", " ") or name.replace("_", " "),
                "group": group_noun(by),
                "row": rows.rstrip("s") or "sample",
                "rings": f"; rings mark misclassified {rows}" if predictions else "",
                # the small multiples leave rings out of a panel in which most are misclassified
                "rings_most": (f"; rings mark misclassified {rows}, except in a panel where most are"
                               " (the figure names it)") if predictions else "",
            }
            text = sentence.format(**fields)
            return f"{model}: {text}" if model else text
    words = name.replace("_", " ")
    text = f"{section_title(analysis)}: the figure “{words}”" + (f" of layer {layer}" if layer else "") + "."
    return f"{model}: {text}" if model else text


def _rest(pattern: str, name: str) -> str:
    """What the (single) ``*`` of ``pattern`` matched in ``name``."""
    if "*" not in pattern:
        return ""
    head, _, tail = pattern.partition("*")
    tail = tail.replace("*", "")
    if name.startswith(head) and name.endswith(tail):
        return name[len(head):len(name) - len(tail) if tail else None]
    return ""


def _method(name: str, pattern: str) -> str:
    rest = _rest(pattern, name)
    for how in ("trees", "anova"):
        if rest.endswith("_" + how):
            return "trees" if how == "trees" else "ANOVA F"
    return rest.replace("_", " ")


def _epoch(name: str) -> str:
    m = re.search(r"epoch_?(\d+)", name)
    if m:
        return f"epoch {int(m.group(1))}"
    return "final model" if "final" in name else "all epochs"
