"""Figures of projections: scatter, thumbnail sequences, trails, evolution, neuron maps.

Pure functions ``(result, *, ax=None, ...) -> Figure``: they draw what
:func:`neuralatlas.project` and :func:`neuralatlas.neuron_projection` computed. Hue is the
class (``class_colors``, the same in every figure); in trails, brightness is the position
along the sequence (dark: first layer or epoch, full colour: last). Each panel's title
carries its quality: NH = neighbourhood hit, T = trustworthiness.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from neuralatlas.plots.style import DISPLAY_WIDTH_IN, SEQUENTIAL, class_colors, new_figure

__all__ = [
    "projection_epoch_evolution", "inter_epoch_evolution",
    "projection_layer_evolution", "inter_layer_evolution",
    "projection_neuron_map", "neuron_map",
    "projection_quality",
    "projection_scatter",
    "projection_sequence",
    "projection_trails",
    "projection_trail_image", "trail_image",
]


def _point_size(n: int) -> float:
    return float(np.clip(3000.0 / max(n, 1), 1.0, 18.0))


def _colors(result: Any) -> np.ndarray:
    k = max(1, len(result.classes), int(result.labels.max()) + 1 if len(result.labels) else 1)
    return class_colors(k)


def _label_of(key: tuple[str, int | None], along: str | None = None) -> str:
    layer, epoch = key
    if along == "layers":
        return layer
    if along == "epochs":
        return "final" if epoch is None else f"epoch {epoch}"
    return layer if epoch is None else f"{layer} · epoch {epoch}"


def _quality_text(result: Any, key: tuple[str, int | None]) -> str:
    q = result.quality.get(key, {})
    parts = []
    if "neighborhood_hit" in q:
        parts.append(f"NH {q['neighborhood_hit']:.2f}")
    if "trustworthiness" in q:
        parts.append(f"T {q['trustworthiness']:.2f}")
    return "  ".join(parts)


def _scatter(ax: Any, points: np.ndarray, labels: np.ndarray, colors: np.ndarray, size: float,
             wrong: np.ndarray | None = None) -> None:
    # a fixed random drawing order, so no class is always painted over the others
    order = np.random.default_rng(0).permutation(len(points))
    ax.scatter(points[order, 0], points[order, 1], c=colors[labels[order] % len(colors)], s=size,
               linewidths=0, rasterized=len(points) > 500)
    if wrong is not None and wrong.any():
        # a thin dark ring: visible on every class colour without hiding the points
        ax.scatter(points[wrong, 0], points[wrong, 1], facecolors="none", edgecolors="0.15", s=size * 2.2,
                   linewidths=0.35)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")


def _class_handles(result: Any, colors: np.ndarray) -> list[Line2D]:
    names = result.classes or [str(i) for i in range(len(colors))]
    return [Line2D([], [], marker="o", ls="", color=colors[i], label=str(name)) for i, name in enumerate(names)]


def _ring_handle() -> Line2D:
    return Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="0.15", markeredgewidth=0.6,
                  label="misclassified")


def _columns_that_fit(handles: list[Any], width_in: float, fontsize_pt: float = 8.0) -> int:
    """How many legend columns of these entries fit ``width_in`` inches (marker, gap, longest label)."""
    longest = max((len(h.get_label()) for h in handles), default=1)
    entry_in = 0.35 + longest * 0.6 * fontsize_pt / 72  # ~0.6 em a character, marker and padding
    return max(1, int(width_in // entry_in))


def _legend(fig: Figure, result: Any, colors: np.ndarray, *, rings: bool = False, title: str | None = None,
            **kwargs: Any) -> None:
    handles = _class_handles(result, colors) + ([_ring_handle()] if rings else [])
    # one row up to ten entries, two rows (11 + ring = 6 + 6) up to twenty, then rows of ten;
    # never more columns than the figure's width holds (40 classes drew past both edges)
    ncol = len(handles) if len(handles) <= 10 else min(10, -(-len(handles) // 2))
    ncol = min(ncol, _columns_that_fit(handles, fig.get_figwidth()))
    fig.legend(handles=handles, ncol=ncol, frameon=False, fontsize="small", title=title, title_fontsize=8, **kwargs)


# A panel in which most samples are misclassified (an untrained network's epoch 0) gets no
# rings: rings on nine points in ten say nothing the panel's NH does not, hide the class
# colours, and cost a third of the panel's bytes in the report. The figure says which
# epochs were drawn so (:func:`_unringed_note`).
RING_MAX_SHARE = 0.5


def _misclassified(result: Any, epoch: int | None) -> np.ndarray | None:
    pred = result.prediction(epoch)
    if pred is None:
        return None
    known = pred >= 0
    return (known & (pred != result.labels)) if known.any() else None


def _unringed_note(unringed: dict[Any, float]) -> str | None:
    if not unringed:
        return None
    where = ", ".join(f"{'final' if e is None else f'epoch {e}'} ({100 * share:.0f} % misclassified)"
                      for e, share in unringed.items())
    return f"no rings where most samples are misclassified:\n{where}"


def projection_scatter(result: Any, layer: str | None = None, epoch: int | None | str = "any", *, ax: Any = None,
                       mark_errors: bool = True, title: str | None = None) -> Figure:
    """One embedding: a point per sample, coloured by class, errors ringed, quality in the title.

    Example
    -------
    >>> fig = projection_scatter(result, "fc2")          # doctest: +SKIP
    """
    key = result._key(layer, epoch)
    fig, axes = new_figure(ax=ax, size=(4.2, 4.2))
    ax = axes if ax is not None else axes[0, 0]
    pts = result.coordinates[key]
    pred = result.prediction(key[1])
    wrong = (pred >= 0) & (pred != result.labels) if mark_errors else None
    colors = _colors(result)
    _scatter(ax, pts, result.labels, colors, _point_size(len(pts)), wrong)
    ax.set_title(title or f"{_label_of(key)}\n{_quality_text(result, key)}", fontsize="medium")
    if ax.figure is fig and len(fig.axes) == 1:
        _legend(fig, result, colors, loc="lower center", bbox_to_anchor=(0.5, -0.06))
    return fig


def projection_sequence(result: Any, along: str = "layers", *, layer: str | None = None,
                        epoch: int | None | str = "any", ncols: int | None = None, size: float = 2.4,
                        mark_errors: bool = False) -> Figure:
    """Thumbnails of a sequence of embeddings (every layer of one epoch, or one layer over epochs).

    Example
    -------
    >>> fig = projection_sequence(result, "epochs", layer="fc2")   # doctest: +SKIP
    """
    keys, coords = result.sequence(along, layer=layer, epoch=epoch)
    ncols = ncols or min(len(keys), 6)
    nrows = -(-len(keys) // ncols)
    fig, axes = new_figure(nrows, ncols, size=(size * ncols, size * nrows + 0.5))
    colors = _colors(result)
    # the grid may have spare cells at the end; keys and coordinates must pair up exactly
    for ax, (key, pts) in zip(axes.flat, zip(keys, coords, strict=True), strict=False):
        pred = result.prediction(key[1])
        wrong = (pred >= 0) & (pred != result.labels) if mark_errors else None
        _scatter(ax, pts, result.labels, colors, _point_size(len(pts)) * 0.6, wrong)
        ax.set_title(f"{_label_of(key, along)}\n{_quality_text(result, key)}", fontsize="small")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    _legend(fig, result, colors, loc="lower center", bbox_to_anchor=(0.5, -0.02))
    return fig


def _trail_segments(paths: np.ndarray, labels: np.ndarray, colors: np.ndarray, depth: np.ndarray,
                    alpha: float) -> tuple[np.ndarray, np.ndarray]:
    n, m, _ = paths.shape
    segs = np.stack([paths[:, :-1], paths[:, 1:]], axis=2)                   # [n, m-1, 2, 2]
    mid = 0.5 * (depth[:-1] + depth[1:])                                     # [m-1]
    shade = 0.25 + 0.75 * mid                                                # brightness = depth
    rgb = colors[labels % len(colors), :3][:, None, :] * shade[None, :, None]  # [n, m-1, 3]
    rgba = np.concatenate([rgb, np.full((n, m - 1, 1), alpha)], axis=2)
    # draw early (dark) segments first, later ones on top; samples in a fixed random order
    order = np.random.default_rng(0).permutation(n)
    segs = segs[order].transpose(1, 0, 2, 3).reshape(-1, 2, 2)
    rgba = rgba[order].transpose(1, 0, 2).reshape(-1, 4)
    return segs, rgba


def projection_trail_image(
    result: Any,
    along: str = "layers",
    *,
    layer: str | None = None,
    epoch: int | None | str = "any",
    bundle: bool = False,
    paths: tuple[np.ndarray, np.ndarray] | None = None,
    ax: Any = None,
    alpha: float | None = None,
    linewidth: float = 0.6,
    show_points: bool = True,
    bundle_options: dict[str, Any] | None = None,
) -> Figure:
    """Every sample's trail through a sequence: smooth curves, hue = class, brightness = depth.

    Parameters
    ----------
    result : Projection
    along : "layers" or "epochs"
    layer, epoch
        Which sequence (as :meth:`Projection.sequence`).
    bundle : bool
        Kernel-density bundling of the trails (:func:`neuralatlas.analysis.projection.bundle_trails`),
        which keeps thousands of trails readable.
    paths : (paths, depth), optional
        Curves already computed by :meth:`Projection.trails` (then ``bundle`` is ignored).
    alpha : float, optional
        Line opacity (default: lower for more samples).
    show_points : bool
        Mark the final positions.

    Example
    -------
    >>> fig = trail_image(result, "layers", bundle=True)   # doctest: +SKIP
    """
    if paths is None:
        paths = result.trails(along, layer=layer, epoch=epoch, bundle=bundle, **(bundle_options or {}))
    curves, depth = paths
    fig, axes = new_figure(ax=ax, size=(6.0, 6.0))
    ax = axes if ax is not None else axes[0, 0]
    colors = _colors(result)
    n = len(curves)
    a = alpha if alpha is not None else float(np.clip(40.0 / max(n, 1), 0.05, 0.8))
    segs, rgba = _trail_segments(curves, result.labels, colors, depth, a)
    ax.add_collection(LineCollection(segs, colors=rgba, linewidths=linewidth, rasterized=n > 200,
                                     capstyle="round"))
    if show_points:
        ax.scatter(curves[:, -1, 0], curves[:, -1, 1], c=colors[result.labels % len(colors)],
                   s=_point_size(n) * 0.5, linewidths=0, zorder=3, rasterized=n > 500)
    ax.autoscale_view()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    keys, _ = result.sequence(along, layer=layer, epoch=epoch)
    ax.set_title(f"trails: {_label_of(keys[0], along)} (dark) → {_label_of(keys[-1], along)} (bright)"
                 + (", bundled" if bundle else ""), fontsize="medium")
    return fig


def _standardised(coords: list[np.ndarray]) -> list[np.ndarray]:
    """Each embedding centred and scaled to unit RMS radius.

    t-SNE/UMAP scales are arbitrary and PCA's differ by layer, so shared axes compare positions, not scales.
    Rotations from the alignment (``align=True``) are kept.
    """
    out = []
    for pts in coords:
        centred = np.asarray(pts, np.float64) - np.nanmean(pts, axis=0)
        radius = float(np.sqrt(np.nanmean((centred ** 2).sum(1)))) or 1.0
        out.append(centred / radius)
    return out


def _small_multiples(fig: Figure, grid: Any, result: Any, keys: list, coords: list[np.ndarray], along: str,
                     ncols: int, alpha: float | None, linewidth: float) -> tuple[list[Any], dict[Any, float], bool]:
    """Draw one panel per step into ``grid`` (a GridSpec of ``ceil(len/ncols)`` x ``ncols``).

    Returns the panels, ``{epoch: share misclassified}`` of the epochs whose panels have no
    rings (more than :data:`RING_MAX_SHARE` misclassified), and whether any panel has rings.
    """
    colors = _colors(result)
    pts = _standardised(coords)
    every = np.concatenate(pts)
    lo, hi = np.nanpercentile(every, 0.5, axis=0), np.nanpercentile(every, 99.5, axis=0)
    pad = 0.06 * (hi - lo)
    n = len(result.labels)
    a = alpha if alpha is not None else float(np.clip(30.0 / max(n, 1), 0.04, 0.6))
    order = np.random.default_rng(0).permutation(n)   # no class always painted last
    rgba = colors[result.labels % len(colors)].copy()
    axes, first, unringed, ringed = [], None, {}, False
    for i, (key, now) in enumerate(zip(keys, pts, strict=True)):
        ax = fig.add_subplot(grid[i // ncols, i % ncols], sharex=first, sharey=first)
        first = first or ax
        moved = "\n" if len(keys) > 1 else ""   # every title three lines, so panels line up
        if i > 0:
            before = pts[i - 1]
            segs = np.stack([before[order], now[order]], axis=1)
            ax.add_collection(LineCollection(segs, colors=np.c_[rgba[order, :3], np.full(n, a)],
                                             linewidths=linewidth, rasterized=n > 200))
            moved = f"\nmoved {float(np.nanmean(np.linalg.norm(now - before, axis=1))):.2f}"
        wrong = _misclassified(result, key[1])
        if wrong is not None and wrong.mean() > RING_MAX_SHARE:
            unringed[key[1]] = float(wrong.mean())
            wrong = None
        ringed = ringed or bool(wrong is not None and wrong.any())
        _scatter(ax, now, result.labels, colors, _point_size(n) * 0.45, wrong)
        ax.set_aspect("auto")
        head = _label_of(key, along) if i == 0 else f"{_label_of(keys[i - 1], along)} → {_label_of(key, along)}"
        ax.set_title(f"{head}\n{_quality_text(result, key)}{moved}", fontsize=8)
        axes.append(ax)
    first.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    first.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    return axes, unringed, ringed


def projection_trails(result: Any, along: str = "layers", *, layer: str | None = None,
                      epoch: int | None | str = "any", ncols: int | None = None, alpha: float | None = None,
                      linewidth: float = 0.5, width: float = DISPLAY_WIDTH_IN) -> Figure:
    """Trails as small multiples: one panel per layer (or epoch) on shared axes.

    Each panel shows every sample's move from the previous step as a line in its class's colour.

    The trails of ten layers overlaid in one panel make a hairball; here each step has its own
    panel, so where samples move (and which classes move together) reads step by step. Each
    embedding is centred and scaled to unit RMS radius before the axes are shared (the
    embeddings' own scales are arbitrary), and the panel title gives the step's quality
    (NH, T) and the mean distance moved in those units. Misclassified samples are ringed.

    Parameters
    ----------
    result : Projection
    along : "layers" or "epochs"
    layer, epoch
        Which sequence (as :meth:`Projection.sequence`).
    ncols : int, optional
        Panels per row (default: at most 4).
    alpha, linewidth
        Of the trail lines (default opacity: lower for more samples).
    width : float
        Figure width in inches (the report's figure column).

    Example
    -------
    >>> fig = projection_trails(project(store, epochs=None))   # doctest: +SKIP
    """
    keys, coords = result.sequence(along, layer=layer, epoch=epoch)
    ncols = ncols or min(len(keys), 4)
    nrows = -(-len(keys) // ncols)
    panel = width / ncols
    fig = Figure(figsize=(width, (panel + 0.55) * nrows + 0.45), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    _, unringed, rings = _small_multiples(fig, grid, result, keys, coords, along, ncols, alpha, linewidth)
    _legend(fig, result, _colors(result), rings=rings, title=_unringed_note(unringed), loc="outside lower center")
    return fig


# The bundled overlay is drawn half the figure column wide, its class key beside it: a
# bundle of a few hundred trails reads as well at 3.25 in as at 6.5 in, and its many
# translucent shades made the full-width overlay most of each evolution figure's bytes
# (demo: 125 kB of an epoch figure's 175 kB in the report; 46 kB at half the width).
BUNDLE_SHARE = 0.5


def _evolution(result: Any, along: str, layer: str | None, epoch: int | None | str, bundle: bool,
               bundle_options: dict[str, Any] | None, thumb: float) -> Figure:
    # one panel per step on shared axes with each sample's move from the previous step (the
    # trails of every layer overlaid in one panel made a hairball); with bundle=True the
    # bundled overlay of every trail follows below, beside the class key
    keys, coords = result.sequence(along, layer=layer, epoch=epoch)
    ncols = min(len(keys), 4)
    nrows = -(-len(keys) // ncols)
    thumb = min(thumb, DISPLAY_WIDTH_IN / ncols)
    width = thumb * ncols
    title_h = 0.55
    side = max(width * BUNDLE_SHARE, min(width, 2.6))  # a narrow figure keeps a readable overlay
    trail_h = side + 0.45 if bundle else 0.0            # the overlay and its two-line title
    height = (thumb + title_h) * nrows + trail_h + (0.15 if bundle else 0.6)
    fig = Figure(figsize=(width, height), layout="constrained")
    if bundle:
        outer = fig.add_gridspec(2, 1, height_ratios=[(thumb + title_h) * nrows, trail_h])
        grid = outer[0].subgridspec(nrows, ncols)
        bottom = outer[1].subgridspec(1, 2, width_ratios=[side, max(width - side, 1e-3)])
    else:
        grid = fig.add_gridspec(nrows, ncols)
    _, unringed, rings = _small_multiples(fig, grid, result, keys, coords, along, ncols, None, 0.5)
    note = _unringed_note(unringed)
    if not bundle:
        _legend(fig, result, _colors(result), rings=rings, title=note, loc="outside lower center")
        return fig
    ax = fig.add_subplot(bottom[0])
    trail_image(result, along, layer=layer, epoch=epoch, bundle=True, ax=ax, bundle_options=bundle_options)
    ax.set_title(f"trails of every sample, bundled:\n{_label_of(keys[0], along)} (dark) → "
                 f"{_label_of(keys[-1], along)} (bright)", fontsize=8.5)
    key = fig.add_subplot(bottom[1])
    key.axis("off")
    handles = _class_handles(result, _colors(result)) + ([_ring_handle()] if rings else [])
    # the key sits in the upper ~half of the space beside the overlay (the note goes below it)
    rows_fit = max(1, int((0.55 * trail_h - 0.35) / 0.17))
    ncol = 1 if len(handles) <= 5 else max(2, -(-len(handles) // rows_fit))
    if ncol > _columns_that_fit(handles, width - side):  # too many classes to sit beside it: below the figure
        _legend(fig, result, _colors(result), rings=rings, title="class (hue, in every panel)",
                loc="outside lower center")
    else:
        key.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 0.45), ncol=ncol,
                   frameon=False, fontsize=8, title="class (hue, in every panel)", title_fontsize=8, alignment="left")
    if note:
        key.text(0.0, 0.4, note, transform=key.transAxes, fontsize=8, va="top", ha="left")
    return fig


def projection_layer_evolution(result: Any, *, epoch: int | None | str = "any", bundle: bool = False,
                          bundle_options: dict[str, Any] | None = None, thumb: float = 2.0) -> Figure:
    """Every layer's embedding, one panel per layer on shared axes.

    Each panel shows each sample's move from the previous layer (:func:`projection_trails`); with
    ``bundle=True`` the bundled trail image of the whole sequence follows below.

    Example
    -------
    >>> fig = inter_layer_evolution(project(store), bundle=True)   # doctest: +SKIP
    """
    return _evolution(result, "layers", None, epoch, bundle, bundle_options, thumb)


def projection_epoch_evolution(result: Any, layer: str | None = None, *, bundle: bool = False,
                          bundle_options: dict[str, Any] | None = None, thumb: float = 2.0) -> Figure:
    """One layer's embedding at every epoch, one panel per epoch on shared axes.

    Each panel shows each sample's move from the previous epoch; with ``bundle=True`` the bundled trail image
    follows below.

    Example
    -------
    >>> fig = inter_epoch_evolution(project(store, "fc2", epochs="all"))   # doctest: +SKIP
    """
    return _evolution(result, "epochs", layer, "any", bundle, bundle_options, thumb)


def projection_quality(result: Any, *, ax: Any = None) -> Figure:
    """Neighbourhood hit and trustworthiness per layer, one line per epoch.

    Where the projection was run with ``seeds > 1`` the neighbourhood hit carries the range
    (bar) and mean (tick) over the seeds.

    Example
    -------
    >>> fig = projection_quality(result)   # doctest: +SKIP
    """
    table = result.quality_table()
    fig, axes = new_figure(1, 2, size=(6.5, 3.0), layout="constrained") if ax is None else new_figure(ax=ax)
    panels = [axes[0, 0], axes[0, 1]] if ax is None else [ax, ax]
    epochs = result.epochs
    cmap = colormaps[SEQUENTIAL]
    for panel, score, name in zip(panels, ("neighborhood_hit", "trustworthiness"),
                                  ("neighbourhood hit", "trustworthiness"), strict=True):
        if score not in table:
            continue
        for j, e in enumerate(epochs):
            rows = table[table["epoch"].isna()] if e is None else table[table["epoch"] == e]
            colour = cmap(j / max(1, len(epochs) - 1)) if len(epochs) > 1 else "k"
            panel.plot(rows["layer"], rows[score], marker="o", color=colour,
                       label="final" if e is None else f"epoch {e}",
                       ls="-" if ax is None or score == "neighborhood_hit" else "--")
            if score == "neighborhood_hit" and "nh_min" in rows and rows["nh_min"].notna().any():
                # the spread over independent t-SNE/UMAP runs: differences smaller than these
                # bars are noise, not a better layer
                spread = rows[rows["nh_min"].notna()]
                k = int(spread["nh_seeds"].max())
                idx = [list(rows["layer"]).index(v) for v in spread["layer"]]
                panel.vlines(idx, spread["nh_min"], spread["nh_max"], color=colour, lw=1.2, zorder=3)
                panel.scatter(idx, spread["nh_mean"], marker="_", s=90, color=colour, zorder=4,
                              label=f"mean, range over {k} seeds")
        panel.set_ylabel(name)
        panel.tick_params(axis="x", rotation=45, labelsize=8)
        panel.grid(alpha=0.3)
    if len(epochs) > 1:
        panels[-1].legend(fontsize=8, frameon=False, ncol=1 + len(epochs) // 6)
    if "nh_min" in table and table["nh_min"].notna().any():
        # say what the bars are, on the panel that has them
        handles = [h for h in panels[0].get_legend_handles_labels()[0] if "seeds" in h.get_label()]
        panels[0].legend(handles=handles[:1], fontsize=8, frameon=False, loc="best")
    return fig


def projection_neuron_map(neurons: Any, values: np.ndarray | None = None, *, ax: Any = None, cmap: str = SEQUENTIAL,
               title: str | None = None, colorbar: bool = True, label: str = "",
               discriminative: Any = None) -> Figure:
    """A layer's neurons as points (placed by activation correlation), coloured as in Rauber et al.

    With ``discriminative`` (a :class:`~neuralatlas.analysis.discriminative.DiscriminativeNeurons`
    of the same layer) each neuron takes the colour of the class it discriminates best, as
    in the paper's neuron projections; with ``values`` a sequential colour scale; with
    neither, one colour. Dead (constant) neurons are drawn as grey crosses.

    Example
    -------
    >>> fig = neuron_map(neuron_projection(store, "fc1"))   # doctest: +SKIP
    """
    fig, axes = new_figure(ax=ax, size=(4.2, 4.0))
    ax = axes if ax is not None else axes[0, 0]
    pts = neurons.coordinates
    live = ~neurons.dead
    size = float(np.clip(4000.0 / max(len(pts), 1), 6.0, 60.0))
    if discriminative is not None:
        imp = np.asarray(discriminative.importances, np.float64)
        if imp.shape[0] != len(pts):
            raise ValueError(f"discriminative has {imp.shape[0]} neurons but the map has {len(pts)};"
                             " pass the scores of the same layer.")
        names = list(getattr(discriminative, "classes", range(imp.shape[1])))
        best = imp.argmax(1)
        colours = class_colors(imp.shape[1])
        for c in np.unique(best[live]):
            on = live & (best == c)
            ax.scatter(pts[on, 0], pts[on, 1], s=size, color=colours[c], linewidths=0, label=str(names[c]))
        ax.legend(fontsize="x-small", frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  title="best class", title_fontsize="x-small")
    elif values is None:
        ax.scatter(pts[live, 0], pts[live, 1], s=size, c="0.2", linewidths=0)
    else:
        values = np.asarray(values, np.float64)
        sc = ax.scatter(pts[live, 0], pts[live, 1], s=size, c=values[live], cmap=cmap, linewidths=0,
                        vmin=0.0, vmax=float(np.nanmax(values[live])) if live.any() else 1.0)
        if colorbar:
            fig.colorbar(sc, ax=ax, shrink=0.7, label=label)
    if (~live).any():
        ax.scatter(pts[~live, 0], pts[~live, 1], s=size, marker="x", c="0.6", linewidths=0.8, label="dead")
    q = neurons.quality.get("trustworthiness")
    metric = {"abs_correlation": "1 − |r|", "correlation": "1 − r"}.get(neurons.params.get("metric", ""), "")
    ax.set_title(title or f"{neurons.layer}: {neurons.n_neurons} neurons"
                 + (f", distance {metric}" if metric else "")
                 + (f"\nT {q:.2f}" if q is not None else ""), fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    return fig


# The names before issue 14's <analysis>_<what> rule, for imports from this module (the
# package-level names, neuralatlas.plots.<old>, warn: see neuralatlas/plots/__init__.py).
trail_image = projection_trail_image
inter_layer_evolution = projection_layer_evolution
inter_epoch_evolution = projection_epoch_evolution
neuron_map = projection_neuron_map
