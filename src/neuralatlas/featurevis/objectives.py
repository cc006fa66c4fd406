"""Objectives for feature visualisation: what an optimised image should make the model do.

An :class:`Objective` maps the recorded tensors of one forward pass to one value per
image (``[B]``), to be *maximised*. Objectives compose like numbers::

    channel("conv2", 5) - 0.5 * channel("conv2", 7)       # excite 5, inhibit 7
    channel("conv2", 3) + 0.3 * diversity("conv2")          # several different images of one unit
    class_logit(range(10)) - 1e-3 * total_variation()       # one image per class, smooth

A unit argument may be a sequence: ``channel("conv2", range(64))`` asks for 64 images,
image ``i`` optimised for channel ``i``, all in one batch (one optimisation, not a loop).
Regularisers (:func:`l1`, :func:`l2`, :func:`total_variation`) return *penalties* on the
image: subtract them.

Layer names are the names ``model.named_modules()`` gives, as everywhere in neuralatlas.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from neuralatlas.errors import AnalysisError

#: Key of the model's output (the logits) in the tensors an objective reads.
OUTPUT = "<output>"
#: Key of the optimised image itself (before transforms), for regularisers.
INPUT = "<input>"

Units = int | Sequence[int] | Iterable[int]
ObjectiveFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class Objective:
    """A quantity to maximise, one value per image; combine with ``+``, ``-``, ``*`` and ``/``.

    Parameters
    ----------
    fn : callable
        ``fn(tensors) -> Tensor[B]`` where ``tensors`` maps layer names (and :data:`OUTPUT`,
        :data:`INPUT`) to the batch's tensors.
    keys : iterable of str
        The layer names (and special keys) ``fn`` reads; the optimiser hooks exactly these.
    name : str
        A readable description, used in figure titles and saved results.
    n_images : int, optional
        How many images the objective asks for (one per unit of a sequence of units);
        ``None`` when it works for any batch size.

    Example
    -------
    >>> obj = channel("conv2", 5) - 0.5 * channel("conv2", 7)
    >>> obj.name
    'channel(conv2, 5) - 0.5 * channel(conv2, 7)'
    """

    def __init__(self, fn: ObjectiveFn, keys: Iterable[str], name: str,
                 n_images: int | None = None, labels: Sequence[str] | None = None):
        self.fn = fn
        self.keys = frozenset(keys)
        self.name = name
        self.n_images = n_images
        # One label per image (e.g. "conv2:5"), used to title figures; None: from the name.
        self.labels = list(labels) if labels is not None else None

    def __call__(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The objective's value (to maximise) from the tapped tensors by layer name."""
        return self.fn(tensors)

    @property
    def layers(self) -> list[str]:
        """The model layers this objective reads (special keys excluded), sorted."""
        return sorted(k for k in self.keys if k not in (OUTPUT, INPUT))

    def image_labels(self, n: int) -> list[str]:
        """A label for each of ``n`` images."""
        if self.labels is not None and len(self.labels) == n:
            return list(self.labels)
        return [self.name if n == 1 else f"{self.name} [{i}]" for i in range(n)]

    # -- arithmetic ------------------------------------------------------------------
    def _combine(self, other: Objective, op: str) -> Objective:
        n = _joint_images(self, other)
        sign = 1.0 if op == "+" else -1.0
        a, b = self, other
        labels = a.labels if a.labels is not None and (n is None or len(a.labels) == n) else (
            b.labels if b.labels is not None and (n is None or len(b.labels) == n) else None)
        return Objective(lambda t: a(t) + sign * b(t), a.keys | b.keys,
                         f"{a.name} {op} {_paren(b.name, op)}", n, labels)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, numbers.Real):
            if other == 0:
                return self
            c = float(other)
            return Objective(lambda t: self(t) + c, self.keys, f"{self.name} + {c:g}",
                             self.n_images, self.labels)
        if not isinstance(other, Objective):
            return NotImplemented
        return self._combine(other, "+")

    def __radd__(self, other: Objective | float) -> Objective:
        # sum([...]) starts from 0.
        return self.__add__(other)

    def __sub__(self, other: Objective | float) -> Objective:
        if isinstance(other, numbers.Real):
            return self.__add__(-float(other))
        if not isinstance(other, Objective):
            return NotImplemented
        return self._combine(other, "-")

    def __rsub__(self, other: float) -> Objective:
        return (-self).__add__(other)

    def __neg__(self) -> Objective:
        return Objective(lambda t: -self(t), self.keys, f"-{_paren(self.name, '*')}",
                         self.n_images, self.labels)

    def __mul__(self, other: float) -> Objective:
        if isinstance(other, Objective):
            raise AnalysisError(
                f"Cannot multiply two objectives ({self.name!r} * {other.name!r}); objectives are"
                " weighted by numbers and added: 2 * channel('conv2', 5) - channel('conv2', 7).")
        if not isinstance(other, numbers.Real):
            return NotImplemented
        w = float(other)
        return Objective(lambda t: w * self(t), self.keys, f"{w:g} * {_paren(self.name, '*')}",
                         self.n_images, self.labels)

    __rmul__ = __mul__

    def __truediv__(self, other: float) -> Objective:
        if not isinstance(other, numbers.Real) or other == 0:
            raise AnalysisError(f"An objective can only be divided by a non-zero number, got {other!r}.")
        return self * (1.0 / float(other))

    def __repr__(self) -> str:
        n = "" if self.n_images is None else f", n_images={self.n_images}"
        return f"Objective({self.name!r}{n})"


def _paren(name: str, op: str) -> str:
    # Sums inside a product or after a minus need brackets to read right.
    return f"({name})" if (" + " in name or " - " in name) and op in ("-", "*") else name


def _joint_images(a: Objective, b: Objective) -> int | None:
    """Images asked for by a sum: equal counts, or one side works per image (1 or None)."""
    if a.n_images is None or a.n_images == 1:
        return b.n_images if b.n_images is not None else a.n_images
    if b.n_images is None or b.n_images == 1 or b.n_images == a.n_images:
        return a.n_images
    raise AnalysisError(
        f"Cannot combine {a.name!r} ({a.n_images} images) with {b.name!r} ({b.n_images} images):"
        " objectives over sequences of units must ask for the same number of images; combine"
        " sequences of equal length, or a sequence with single units.")


# ---------------------------------------------------------------------------- helpers
def _units(units: Units, what: str) -> tuple[list[int], bool]:
    """(unit list, is_sequence)."""
    if isinstance(units, (numbers.Integral, torch.Tensor)) and not (
            isinstance(units, torch.Tensor) and units.dim() > 0):
        return [int(units)], False
    try:
        out = [int(u) for u in units]  # type: ignore[union-attr]
    except TypeError:
        raise AnalysisError(f"{what} must be an integer or a sequence of integers, got {units!r}.") from None
    if not out:
        raise AnalysisError(f"{what} is an empty sequence; give at least one unit.")
    return out, True


def _get(tensors: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    try:
        return tensors[key]
    except KeyError:  # the optimiser always records every key; this means misuse by hand
        raise AnalysisError(f"No tensor recorded for {key!r}; recorded: {sorted(tensors)}.") from None


def _check_range(t: torch.Tensor, units: list[int], layer: str, axis_name: str) -> None:
    size = t.shape[1]
    bad = [u for u in units if not -size <= u < size]
    if bad:
        raise AnalysisError(
            f"{axis_name} {bad} out of range for layer {layer!r}: its output has shape"
            f" {tuple(t.shape[1:])} per image, so valid {axis_name}s are 0..{size - 1}.")


def _pick(t: torch.Tensor, units: list[int], seq: bool) -> torch.Tensor:
    """``t[:, u]`` for one unit; ``t[i, units[i]]`` (image i, its own unit) for a sequence."""
    if not seq:
        return t[:, units[0]]
    if t.shape[0] != len(units):
        raise AnalysisError(f"{len(units)} units but {t.shape[0]} images in the batch; a sequence"
                            " of units asks for one image per unit.")
    rows = torch.arange(len(units), device=t.device)
    return t[rows, torch.as_tensor(units, device=t.device)]


def _labels(prefix: str, units: list[int], seq: bool) -> list[str] | None:
    return [f"{prefix}{u}" for u in units] if seq else None


def _unit_text(units: list[int], seq: bool) -> str:
    if not seq:
        return str(units[0])
    if units == list(range(units[0], units[0] + len(units))) and len(units) > 3:
        return f"{units[0]}..{units[-1]}"
    return "[" + ", ".join(map(str, units)) + "]"


# ---------------------------------------------------------------------------- unit objectives
def channel(layer: str, units: Units) -> Objective:
    """The mean activation of one channel of ``layer`` over all positions.

    For a conv layer ``[B, C, H, W]`` the mean over ``H, W`` of channel ``unit``; for a
    dense layer ``[B, D]`` simply unit ``unit``; for tokens ``[B, T, D]`` the mean over
    tokens of feature ``unit``.

    Parameters
    ----------
    layer : str
        A name from ``model.named_modules()``.
    units : int or sequence of int
        One channel, or one channel per image (optimised together in one batch).

    Example
    -------
    >>> obj = channel("conv2", range(32))    # 32 images, one per channel
    >>> obj.n_images
    32
    """
    us, seq = _units(units, "units")

    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        a = _get(t, layer)
        if a.dim() == 3:  # [B, T, D]: channels are the last axis
            a = a.transpose(1, 2)
        _check_range(a, us, layer, "channel")
        picked = _pick(a, us, seq)
        return picked.flatten(1).mean(1) if picked.dim() > 1 else picked

    return Objective(fn, [layer], f"channel({layer}, {_unit_text(us, seq)})",
                     len(us) if seq else 1, _labels(f"{layer}:", us, seq))


def neuron(layer: str, units: Units, x: int | None = None, y: int | None = None) -> Objective:
    """One neuron: a unit of a dense layer, or one channel at one position of a conv map.

    Parameters
    ----------
    layer : str
        A name from ``model.named_modules()``.
    units : int or sequence of int
        The unit (channel for conv maps); a sequence gives one image per unit.
    x, y : int, optional
        Column and row in a conv map; default the centre. Ignored for dense layers.

    Example
    -------
    >>> obj = neuron("fc1", 12)
    """
    us, seq = _units(units, "units")

    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        a = _get(t, layer)
        _check_range(a, us, layer, "unit")
        picked = _pick(a, us, seq)
        if picked.dim() == 1:
            return picked
        if picked.dim() != 3:
            raise AnalysisError(
                f"neuron() reads dense [B, D] or conv [B, C, H, W] outputs; layer {layer!r} gives"
                f" {tuple(a.shape)}. Use channel() for other shapes.")
        h, w = picked.shape[1:]
        yy = h // 2 if y is None else int(y)
        xx = w // 2 if x is None else int(x)
        if not (0 <= yy < h and 0 <= xx < w):
            raise AnalysisError(f"Position (x={xx}, y={yy}) is outside layer {layer!r}'s {h}x{w} map;"
                                f" choose 0 <= x < {w}, 0 <= y < {h}.")
        return picked[:, yy, xx]

    where = "" if x is None and y is None else f", x={x}, y={y}"
    return Objective(fn, [layer], f"neuron({layer}, {_unit_text(us, seq)}{where})",
                     len(us) if seq else 1, _labels(f"{layer}:", us, seq))


def class_logit(classes: Units, layer: str | None = None) -> Objective:
    """The logit of a class (before the softmax): what the model must call that class.

    Parameters
    ----------
    classes : int or sequence of int
        Class index, or one class per image.
    layer : str, optional
        A layer whose output holds the logits; default the model's output.

    Example
    -------
    >>> obj = class_logit(range(10))     # ten images, image k for class k
    """
    us, seq = _units(classes, "classes")
    key = OUTPUT if layer is None else layer

    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = _get(t, key).flatten(1)
        _check_range(logits, us, "the model output" if layer is None else layer, "class")
        return _pick(logits, us, seq)

    return Objective(fn, [key], f"class_logit({_unit_text(us, seq)})", len(us) if seq else 1,
                     _labels("class ", us, seq))


def direction(layer: str, vectors: Any, *, cosine: bool = False) -> Objective:
    """Activation along a direction of ``layer``'s space, e.g. a probe's weights or a NAP contrast.

    For a conv map ``[B, C, H, W]`` the mean over positions of ``<a[:, :, y, x], v>`` with
    ``v`` the unit vector of ``vectors`` (Olah et al.'s ``direction``; Lucid's
    ``objectives.direction`` is the same dot product); for dense ``[B, C]`` simply
    ``<a, v>``; for tokens ``[B, T, C]`` the mean over tokens. With ``cosine=True`` the
    cosine of the angle between ``a`` and ``v`` instead (Lucent's choice), which rewards the
    direction without rewarding a large activation.

    Parameters
    ----------
    layer : str
        A name from ``model.named_modules()``.
    vectors : array ``[C]`` or ``[K, C]``
        One direction, or ``K`` directions (``K`` images, image ``k`` for direction ``k``).
        Each is normalised to unit length; a zero vector is refused.
    cosine : bool

    Example
    -------
    >>> import numpy as np
    >>> obj = direction("fc1", np.eye(64)[:3])    # three images, one per basis direction
    >>> obj.n_images
    3
    """
    v = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    seq = v.dim() == 2
    if v.dim() not in (1, 2) or v.shape[-1] < 1:
        raise AnalysisError(f"direction() takes a vector [C] or a stack [K, C], got shape {tuple(v.shape)}.")
    v2 = v[None] if not seq else v
    norms = v2.norm(dim=1)
    if not torch.all(torch.isfinite(v2)) or torch.any(norms == 0):
        raise AnalysisError("direction() got a zero or non-finite vector; a direction needs a finite, non-zero vector.")
    unit = v2 / norms[:, None]
    size = unit.shape[1]

    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        a = _get(t, layer)
        if a.dim() == 3:  # [B, T, D] -> [B, D, T]
            a = a.transpose(1, 2)
        if a.shape[1] != size:
            raise AnalysisError(f"The direction has {size} components but layer {layer!r} has"
                                f" {a.shape[1]} channels; give a vector of length {a.shape[1]}.")
        flat = a.flatten(2) if a.dim() > 2 else a[:, :, None]        # [B, C, P]
        u = unit.to(a)
        if seq:
            if a.shape[0] != len(u):
                raise AnalysisError(f"{len(u)} directions but {a.shape[0]} images; one image per direction.")
            w = u[:, :, None]                                          # image i, direction i
        else:
            w = u[0][None, :, None]
        dots = (flat * w).sum(1)                                       # [B, P]
        if cosine:
            dots = dots / (flat.norm(dim=1) + 1e-8)
        return dots.mean(1)

    n = len(unit) if seq else 1
    labels = [f"{layer}:dir{k}" for k in range(n)] if seq else None
    kind = "cosine" if cosine else "direction"
    return Objective(fn, [layer], f"{kind}({layer}{'' if not seq else f', {n} vectors'})", n, labels)


def layer(name: str) -> Objective:
    """The DeepDream objective: the mean squared activation of a whole layer.

    Parameters
    ----------
    name : str
        A name from ``model.named_modules()``.

    Example
    -------
    >>> obj = layer("conv2") + layer("conv1")
    """
    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return _get(t, name).flatten(1).pow(2).mean(1)

    return Objective(fn, [name], f"layer({name})")


def diversity(layer: str) -> Objective:
    """Reward images that differ from each other at ``layer`` (Olah et al., 2017).

    For image ``i``: minus the mean, over the other images ``j``, of the cosine similarity
    of their Gram matrices (channel co-activations) at ``layer``; for dense layers the
    activation vectors themselves. Add it to a single-unit objective and ask for several
    images: ``channel("conv2", 3) + 0.5 * diversity("conv2")`` with ``n_images=4``.

    Parameters
    ----------
    layer : str
        A name from ``model.named_modules()``.
    """
    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        a = _get(t, layer)
        b = a.shape[0]
        if b < 2:
            return a.new_zeros(b)
        if a.dim() > 2:
            flat = a.flatten(2)                                  # [B, C, positions]
            feats = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)  # Gram matrices
        else:
            feats = a.flatten(1)
        feats = torch.nn.functional.normalize(feats, dim=1, eps=1e-10)
        sim = feats @ feats.T
        return -(sim.sum(1) - sim.diagonal()) / (b - 1)

    return Objective(fn, [layer], f"diversity({layer})")


# ---------------------------------------------------------------------------- regularisers
def l1(constant: float = 0.0) -> Objective:
    """Penalty: mean absolute difference of the image from ``constant`` (subtract it).

    Example
    -------
    >>> obj = channel("conv1", 0) - 0.05 * l1(constant=0.5)
    """
    c = float(constant)
    return Objective(lambda t: (_get(t, INPUT) - c).abs().flatten(1).mean(1), [INPUT], f"l1({c:g})")


def l2(constant: float = 0.0) -> Objective:
    """Penalty: root mean squared difference of the image from ``constant`` (subtract it)."""
    c = float(constant)
    return Objective(lambda t: (_get(t, INPUT) - c).pow(2).flatten(1).mean(1).add(1e-12).sqrt(),
                     [INPUT], f"l2({c:g})")


def total_variation() -> Objective:
    """Penalty: mean absolute difference between neighbouring pixels (subtract it).

    Example
    -------
    >>> obj = class_logit(3) - 0.1 * total_variation()
    """
    def fn(t: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = _get(t, INPUT)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        return dx + dy

    return Objective(fn, [INPUT], "total_variation")


def as_objective(spec: Objective | str) -> Objective:
    """An :class:`Objective`, from itself or from a short text form.

    The text forms: ``"conv2:5"`` (channel), ``"logit:3"``, ``"layer:conv2"``, ``"neuron:fc1:12"``.

    Example
    -------
    >>> as_objective("conv2:5").name
    'channel(conv2, 5)'
    """
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise AnalysisError(f"An objective must be an Objective or a string like 'conv2:5', got"
                            f" {type(spec).__name__}.")
    head, _, rest = spec.partition(":")
    try:
        if head in ("logit", "class") and rest:
            return class_logit(int(rest))
        if head == "layer" and rest:
            return layer(rest)
        if head == "neuron" and rest:
            name, _, unit = rest.rpartition(":")
            return neuron(name, int(unit))
        if rest:
            name, _, unit = spec.rpartition(":")
            return channel(name, int(unit))
    except ValueError:
        pass
    raise AnalysisError(
        f"Cannot read objective {spec!r}; write 'LAYER:CHANNEL' (e.g. 'conv2:5'), 'logit:CLASS',"
        " 'layer:LAYER' or 'neuron:LAYER:UNIT', or build one with neuralatlas.objectives.")


__all__ = ["INPUT", "OUTPUT", "Objective", "as_objective", "channel", "class_logit", "direction", "diversity",
           "l1", "l2", "layer", "neuron", "total_variation"]
