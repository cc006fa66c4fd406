"""Unit cards: one channel seen from every side (the OpenAI Microscope view).

A card puts side by side, for a channel of a conv layer:

- its **feature visualisation** (activation maximisation, :func:`visualize_feature`), and its
  value over that of the best natural patch (the ratio: above 1 means the optimiser found
  more of what the unit wants than any patch of the data set holds);
- its **top-k dataset patches** from a capture store, each with the **receptive-field crop**
  around the position where the channel fires most;
- the **histogram** of its activation over the whole data set;
- the **classes it most drives**.

How each is measured
--------------------
- *Activation* of a channel on an image: the mean of the channel's map over positions (the
  ``channel`` objective; the store must hold these means, ``reduce="mean"``, or full maps).
  The same number is maximised, ranked and histogrammed, so the ratio compares like with like.
- *Receptive-field crop*: for a top patch the position ``(y, x)`` of the channel's largest
  value is found; the gradient of that single activation with respect to the input pixels
  is taken, and the crop is the bounding box of the pixels whose summed ``|gradient|``
  exceeds ``rf_threshold`` (5 %) of its maximum: the *effective* receptive field (Luo et
  al., 2016), tighter than the theoretical one, and exact for any architecture (padding,
  strides, residual paths) because it is measured, not computed from layer arithmetic.
- *Classes it drives*: the channel is ablated (set to zero) on its top-k patches; the drop
  of each class logit, averaged over the patches, minus the mean drop over all classes (an
  ablation shifts every logit by a shared amount that says nothing about a class). The
  classes with the largest drops are those the unit speaks for.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralatlas._moved import resolve_moved
from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis.taps import as_batch, prepared
from neuralatlas.results import Result, files_of, folder_of, jsonable, safe_name
from neuralatlas.vocabulary import Progress

_ARRAYS = ("image", "trace", "top_index", "top_values", "patches", "positions", "boxes", "crops",
           "hist_counts", "hist_edges", "class_effects", "class_ids")


@dataclass
class UnitCard(Result):
    """Everything a unit card shows, kept by :meth:`save` and :meth:`load`.

    :func:`neuralatlas.plots.featurevis_unit_card` draws it.

    Attributes
    ----------
    layer : str
    channel : int
    image : numpy.ndarray
        ``[3, H, W]`` the feature visualisation (in the model's [0, 1] input range).
    value : float
        The channel's mean activation on ``image``.
    trace : numpy.ndarray
        ``[steps]`` the objective during optimisation.
    best_natural : float
        The largest activation over the data set.
    ratio : float
        ``value / best_natural``.
    top_index, top_values : numpy.ndarray
        ``[k]`` sample index (the store's ``index`` column) and activation of the top patches.
    patches : numpy.ndarray
        ``[k, 3, h, w]`` the top patches.
    positions : numpy.ndarray
        ``[k, 2]`` (row, column) of the channel's largest value in its map.
    boxes : numpy.ndarray
        ``[k, 4]`` (top, left, bottom, right) receptive-field box in patch pixels (bottom/right exclusive).
    crops : numpy.ndarray
        ``[k, 3, c, c]`` the receptive-field crops, resized to one size.
    hist_counts, hist_edges : numpy.ndarray
        Histogram of the activation over the data set.
    class_ids, class_effects : numpy.ndarray
        The classes it most drives and their logit drops (see the module docstring).
    class_names : list of str
    settings : dict
    """

    layer: str
    channel: int
    image: np.ndarray
    value: float
    trace: np.ndarray
    best_natural: float
    ratio: float
    top_index: np.ndarray
    top_values: np.ndarray
    patches: np.ndarray
    positions: np.ndarray
    boxes: np.ndarray
    crops: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    class_ids: np.ndarray
    class_effects: np.ndarray
    class_names: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    kind = "unit_card"

    @property
    def name(self) -> str:
        """``layer:channel``."""
        return f"{self.layer}:{self.channel}"

    @property
    def stem(self) -> str:
        """A folder name for the card, e.g. ``unit_blocks_4_conv_3`` (what run folders use)."""
        return f"unit_{safe_name(self.layer.replace('.', '_'))}_{self.channel}"

    def _repr_html_(self) -> str:
        return (f"<div><b>UnitCard</b> <code>{html.escape(self.name)}</code>: value {float(self.value):.3g},"
                f" ratio to the best natural patch {float(self.ratio):.2f}; drives"
                f" {html.escape(', '.join(map(str, self.class_names[:5])))}</div>")

    def summary(self) -> dict[str, Any]:
        """Unit, its optimised value, the best natural value, their ratio, the classes it drives."""
        return {"unit": self.name, "value": round(float(self.value), 4),
                "best_natural": round(float(self.best_natural), 4), "ratio": round(float(self.ratio), 3),
                "top_classes": list(self.class_names[:5])}

    def figure(self, size: float = 1.6) -> Any:
        """Deprecated (goes in 0.3): draw with :func:`neuralatlas.plots.featurevis_unit_card` (card).

        A result does not draw itself: figures live in :mod:`neuralatlas.plots`, above the
        analyses (docs/ARCHITECTURE.md); this alias warns and calls that function.
        """
        # by name through the root table: plots sit above featurevis (no upward import here)
        return resolve_moved("neuralatlas.featurevis.units:UnitCard.figure")(self, size=size)

    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``unit.npz`` (the arrays) and ``unit.json`` (the rest) into ``directory``; return it.

        Run folders use ``results/unit_cards/<card.stem>/``.
        """
        d = folder_of("UnitCard", directory, name)  # name: deprecated, a subfolder
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(d / "unit.npz", **{k: getattr(self, k) for k in _ARRAYS if k not in
                                               ("hist_counts", "hist_edges")},
                            hist_counts=self.hist_counts, hist_edges=self.hist_edges)
        meta = {"layer": self.layer, "channel": int(self.channel), "value": float(self.value),
                "best_natural": float(self.best_natural), "ratio": float(self.ratio),
                "class_names": list(self.class_names), "settings": jsonable(self.settings, default=str)}
        self.write_json(d / "unit.json", meta)
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str | None = None) -> UnitCard:
        """Read what :meth:`save` wrote (``name`` is deprecated: load ``directory / name``)."""
        stem = files_of(cls.__name__, directory, "unit", name)
        meta = cls.read_json(cls._required(stem.parent, f"{stem.name}.json", f"{stem.name}.npz", what="unit card",
                                           fix="write one with unit_card(...).save(directory)"))
        with np.load(stem.parent / f"{stem.name}.npz") as arrays:
            loaded = {k: arrays[k] for k in _ARRAYS}

        def number(key: str) -> float:  # null in strict JSON was a NaN (a ratio to a best of 0)
            return math.nan if meta[key] is None else float(meta[key])

        return cls(layer=meta["layer"], channel=meta["channel"], value=number("value"),
                   best_natural=number("best_natural"), ratio=number("ratio"), class_names=meta["class_names"],
                   settings=meta.get("settings", {}), **loaded)

    def __repr__(self) -> str:
        return (f"UnitCard({self.name!r}, ratio={self.ratio:.2f}, top={self.top_values[:3].round(3).tolist()},"
                f" classes={self.class_names[:3]})")


# ---------------------------------------------------------------------------- store access
def channel_values(store: Any, layer: str, channel: int) -> np.ndarray:
    """``[N]`` the channel's mean activation per sample, from a store of means or of full maps."""
    reduce = (store.attrs.get("capture", {}) or {}).get("reduce")
    mode = reduce.get(layer) if isinstance(reduce, dict) else reduce
    if isinstance(reduce, dict):  # patterns: find the one that matched
        from fnmatch import fnmatch

        mode = next((v for k, v in reduce.items() if fnmatch(layer, k)), None)
    shape = tuple(store.unit_shape(layer))
    if not 0 <= int(channel) < shape[0]:
        raise AnalysisError(f"channel {channel} out of range for layer {layer!r}: it has {shape[0]} channels"
                            f" (0..{shape[0] - 1}).")
    if mode not in (None, "mean"):
        raise AnalysisError(
            f"The store holds the {mode!r} of {layer!r} over positions; a unit card ranks and compares"
            " the channel's mean activation (the featurevis objective). Capture with reduce='mean'"
            " (or no reduction) for this layer.")
    if mode is None and len(shape) < 3:
        raise AnalysisError(
            f"Layer {layer!r} has no spatial map (unit shape {shape}); unit cards are for conv channels."
        )
    acts = store.activations(layer)
    values = np.asarray(acts[:, int(channel)], dtype=np.float64)
    if values.ndim > 1:
        values = values.reshape(len(values), -1).mean(1)
    return values


def _check_data(store: Any, data: Any) -> None:
    recorded = (store.attrs.get("capture", {}) or {}).get("data")
    fp = getattr(data, "fingerprint", None)
    if recorded and callable(fp) and not str(recorded).endswith(fp()):
        raise AnalysisError(
            f"The data given ({getattr(data, 'name', type(data).__name__)}) is not the data the store"
            f" was captured on ({recorded}); pass the same data set (same seed, size and count).")
    if len(data) != store.n_samples:
        raise AnalysisError(f"The data holds {len(data)} samples but the store {store.n_samples};"
                            " pass the data set the store was captured on.")


def data_of_store(store: Any) -> Any:
    """Rebuild the built-in patch set a store was captured on, from its recorded name."""
    recorded = str((store.attrs.get("capture", {}) or {}).get("data") or "")
    parts = recorded.split(":")
    if len(parts) >= 3 and parts[0] == "photo_patches" and "x" in parts[1] and parts[2].startswith("seed"):
        from neuralatlas.data.photos import photo_patches

        n, size = (int(v) for v in parts[1].split("x"))
        data = photo_patches(n, size, seed=int(parts[2][4:]))
        if recorded.endswith(data.fingerprint()):
            return data
    raise AnalysisError(f"Cannot rebuild the data of this store ({recorded or 'unknown'}); pass data=<the data set"
                        " it was captured on>.")


def _inputs(data: Any, rows: np.ndarray) -> torch.Tensor:
    if hasattr(data, "inputs"):
        return torch.as_tensor(np.asarray(data.inputs)[rows])
    return torch.stack([torch.as_tensor(data[int(r)][0]) for r in rows])


# ---------------------------------------------------------------------------- measurements
def receptive_fields(model: nn.Module, layer: str, channel: int, images: torch.Tensor,
                     threshold: float = 0.05, device: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``channel`` fires most in each image, and the input box that position sees.

    Returns ``(values [n], positions [n, 2], boxes [n, 4])``: the channel's largest value,
    its (row, column) in the map, and the (top, left, bottom, right) bounding box of the
    pixels whose summed ``|d value / d pixel|`` exceeds ``threshold`` times its maximum.
    """
    x = as_batch(images)
    with prepared(model, [layer], device) as (taps, dev, dtype):
        x = x.to(dev, dtype).requires_grad_(True)
        a = taps.run(x)[layer]
        if a.dim() != 4:
            raise AnalysisError(
                f"Layer {layer!r} gives {tuple(a.shape)}; receptive fields need conv maps [B, C, H, W]."
            )
        m = a[:, int(channel)]
        flat = m.flatten(1)
        best, where = flat.max(1)
        (grad,) = torch.autograd.grad(best.sum(), x)  # each image's max depends on that image only
    g = grad.abs().sum(1).detach().cpu().numpy()
    w = m.shape[-1]
    where_np = where.cpu().numpy()
    positions = np.stack([where_np // w, where_np % w], axis=1)
    boxes = np.zeros((len(g), 4), dtype=np.int64)
    for i, gi in enumerate(g):
        peak = gi.max()
        mask = gi > threshold * peak if peak > 0 else np.ones_like(gi, dtype=bool)
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        boxes[i] = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    return best.detach().cpu().numpy(), positions, boxes


def _crop(image: np.ndarray, box: Sequence[int], size: int) -> np.ndarray:
    import torch.nn.functional as F

    t, lft, b, r = (int(v) for v in box)
    side = max(b - t, r - lft)  # a square crop around the box's centre, inside the image
    h, w = image.shape[1:]
    side = min(side, h, w)
    cy, cx = (t + b) / 2, (lft + r) / 2
    top = int(min(max(round(cy - side / 2), 0), h - side))
    left = int(min(max(round(cx - side / 2), 0), w - side))
    piece = torch.from_numpy(np.ascontiguousarray(image[:, top:top + side, left:left + side]))[None]
    return F.interpolate(piece, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=side > size)[0].numpy()


def class_effects(model: nn.Module, layer: str, channel: int, images: torch.Tensor,
                  device: Any = None) -> np.ndarray:
    """``[n_classes]`` mean logit drop when ``channel`` is zeroed, minus the mean over classes."""
    from neuralatlas.capture.hooks import replace_tensor, select_tensor

    x = as_batch(images)
    module = dict(model.named_modules())[layer]
    with prepared(model, [], device) as (taps, dev, dtype), torch.no_grad():
        x = x.to(dev, dtype)
        clean = taps.run(x)
        from neuralatlas.featurevis.objectives import OUTPUT

        base = clean[OUTPUT].float()

        def ablate(mod: nn.Module, args: Any, out: Any) -> Any:
            t = select_tensor(out, what=f"output of {layer!r}").clone()
            t[:, int(channel)] = 0
            return replace_tensor(out, t)

        handle = module.register_forward_hook(ablate)
        try:
            ablated = taps.run(x)[OUTPUT].float()
        finally:
            handle.remove()
    drop = (base - ablated).mean(0)
    return (drop - drop.mean()).cpu().numpy()


# ---------------------------------------------------------------------------- the cards
def unit_cards(model: nn.Module, store: Any, layer: str, channels: Sequence[int], *, data: Any = None,
               k: int = 8, steps: int = 256, lr: float | None = None, seed: int = 0, n_classes: int = 5,
               bins: int = 40, crop_size: int = 64, rf_threshold: float = 0.05,
               featurevis: Any = None, device: Any = None, progress: Progress | None = None) -> list[UnitCard]:
    """Unit cards of several channels of one layer; their feature visualisations in one batch.

    Parameters
    ----------
    model : torch.nn.Module
        The model the store was captured from (a zoo model's card names the classes).
    store : ActivationStore
        Holds ``layer`` (channel means, ``reduce="mean"``, or full maps) over ``data``.
    layer : str
    channels : sequence of int
    data : data set, optional
        What the store was captured on; default: rebuilt from the store's record when it is a
        built-in :func:`~neuralatlas.data.photo_patches` set.
    k : int
        Top patches per card.
    steps, lr, seed
        Of the feature visualisation (at the data's image size, so the ratio compares equals).
    n_classes : int
        Classes listed per card.
    bins : int
        Histogram bins.
    crop_size : int
        Side of the receptive-field crops.
    rf_threshold : float
        Share of the peak gradient that bounds the receptive field.
    featurevis : FeatureVisResult, optional
        Reuse images optimised before (one per channel, in order) instead of optimising.

    Returns
    -------
    list of UnitCard

    Raises
    ------
    AnalysisError
        A store without the layer's means, data that is not the store's, a channel out of range.
    """
    from neuralatlas.featurevis import objectives as O
    from neuralatlas.featurevis.optimize import visualize_feature
    from neuralatlas.zoo.efficientnet import model_card

    chosen = [int(c) for c in channels]
    if not chosen:
        raise AnalysisError("unit_cards needs at least one channel.")
    if int(k) < 1:
        raise AnalysisError(f"k must be at least 1, got {k!r}.")
    if layer not in store.layers:
        raise AnalysisError(f"The store has no layer {layer!r}; it holds {store.layers}.")
    data = data_of_store(store) if data is None else data
    _check_data(store, data)
    index = np.asarray(store.samples["index"]) if "index" in store.samples else np.arange(store.n_samples)
    card = model_card(model)
    names = list(card.classes) if card is not None else None
    values = {c: channel_values(store, layer, c) for c in chosen}
    shape = tuple(int(s) for s in _inputs(data, np.arange(1)).shape[1:])
    if featurevis is None:
        featurevis = visualize_feature(model, O.channel(layer, chosen), input_shape=shape, steps=steps, lr=lr,
                                       seed=seed, device=device, progress=progress)
    elif len(featurevis.images) != len(chosen):
        raise AnalysisError(f"featurevis holds {len(featurevis.images)} images for {len(chosen)} channels.")
    cards = []
    for i, c in enumerate(chosen):
        v = values[c]
        order = np.argsort(-v, kind="stable")[: int(k)]
        patches = _inputs(data, order)
        # the store and the model must agree on the best patch, else the ratio is meaningless
        recomputed = _channel_mean(model, layer, c, patches[:1], device)
        if not np.isclose(recomputed, v[order[0]], rtol=1e-3, atol=1e-4):
            raise AnalysisError(
                f"The model gives {recomputed:.5g} for {layer}:{c} on the store's best patch, the store"
                f" {v[order[0]]:.5g}: the store was captured from other weights or other data.")
        _, positions, boxes = receptive_fields(model, layer, c, patches, rf_threshold, device)
        crops = np.stack([_crop(p, b, int(crop_size)) for p, b in zip(patches.numpy(), boxes, strict=True)])
        effects = class_effects(model, layer, c, patches, device)
        if names is None and len(store.classes) == len(effects):
            names = list(store.classes)  # a model without a card: the data's class names
        top = np.argsort(-effects, kind="stable")[: int(n_classes)]
        counts, edges = np.histogram(v, bins=int(bins))
        value = float(featurevis.values[i])
        best = float(v[order[0]])
        cards.append(UnitCard(
            layer=layer, channel=c, image=np.asarray(featurevis.images[i]), value=value,
            trace=np.asarray(featurevis.trace)[:, i], best_natural=best,
            ratio=value / best if best > 0 else float("nan"), top_index=index[order], top_values=v[order],
            patches=patches.numpy(), positions=positions, boxes=boxes, crops=crops,
            hist_counts=counts, hist_edges=edges, class_ids=top, class_effects=effects[top],
            class_names=[names[j] if names else str(j) for j in top],
            settings={"k": int(k), "steps": featurevis.settings.get("steps"), "lr": featurevis.settings.get("lr"),
                      "seed": int(seed), "rf_threshold": float(rf_threshold), "input_shape": list(shape),
                      "class_method": "logit drop when the channel is zeroed on its top-k patches, minus the mean drop",
                      "rf_method": "effective receptive field: |d max activation / d pixel| > rf_threshold * peak",
                      "seconds_featurevis": featurevis.settings.get("seconds")}))
    return cards


def _channel_mean(model: nn.Module, layer: str, channel: int, x: torch.Tensor, device: Any) -> float:
    with prepared(model, [layer], device) as (taps, dev, dtype), torch.no_grad():
        a = taps.run(as_batch(x).to(dev, dtype))[layer]
    return float(a[0, int(channel)].float().mean())


def unit_card(model: nn.Module, store: Any, layer: str, channel: int, **kwargs: Any) -> UnitCard:
    """The unit card of one channel (see :func:`unit_cards` for the parameters).

    Example
    -------
    >>> card = unit_card(model, store, "blocks.8", channel=5)        # doctest: +SKIP
    >>> card.ratio > 1, card.class_names[:3]                                    # doctest: +SKIP
    >>> from neuralatlas.plots import featurevis_unit_card
    >>> featurevis_unit_card(card).savefig("blocks8_5.png")          # doctest: +SKIP
    """
    return unit_cards(model, store, layer, [int(channel)], **kwargs)[0]


__all__ = [
    "UnitCard",
    "best_natural",
    "channel_values",
    "class_effects",
    "data_of_store",
    "receptive_fields",
    "unit_card",
    "unit_cards",
]


def best_natural(model: nn.Module, objective: Any, data: Any, *, batch_size: int = 64,
                 device: Any = None) -> np.ndarray:
    """``[n_images]`` the largest value each image's objective reaches on a real data set.

    For one-unit-per-image objectives (``channel(layer, units)``, ``class_logit(units)``,
    ``direction``): image ``i``'s objective evaluated on every sample, maximised over the
    samples. Divide a feature visualisation's values by it to see whether the optimiser
    beat the data (regularisers reading the image are evaluated on the sample too).
    """
    from neuralatlas.featurevis.objectives import INPUT, as_objective

    objective = as_objective(objective)
    n = objective.n_images or 1
    x_all = np.asarray(data.inputs if hasattr(data, "inputs") else np.stack([data[i][0] for i in range(len(data))]))
    best = torch.full((n,), -torch.inf, dtype=torch.float64)
    with prepared(model, objective.keys, device) as (taps, dev, dtype), torch.no_grad():
        for lo in range(0, len(x_all), int(batch_size)):
            x = torch.as_tensor(x_all[lo:lo + int(batch_size)]).to(dev, dtype)
            tensors = taps.run(x)
            tensors[INPUT] = x
            for r in range(len(x)):
                # sample r as every image of an n-image batch: entry i is image i's objective on r
                batch = {k: v[r:r + 1].expand(n, *v.shape[1:]) for k, v in tensors.items()}
                best = torch.maximum(best, objective(batch).double().cpu())
    return best.numpy()
