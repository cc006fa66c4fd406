"""Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains the model must change when the model's weights are replaced by random
ones. Cascading randomisation replaces the weights from the top layer down, one layer more
at each step; independent randomisation replaces one layer at a time. At each step the maps
are compared with the original ones by Spearman rank correlation and SSIM, per sample; a
method whose maps stay similar once every layer is random fails.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import ndimage, stats
from torch import nn

from neuralatlas.attribution.methods import InputBatches, _Layout, attribute, resolve_method
from neuralatlas.capture.hooks import preserved
from neuralatlas.capture.loop import _to_device, pick_device
from neuralatlas.errors import AnalysisError, LayerError, did_you_mean
from neuralatlas.results import Result, safe_name

MethodFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor | np.ndarray]
MODES = ("cascading", "independent")


@dataclass
class SanityResult(Result):
    """Similarity of maps of the original and randomised models, per randomisation step.

    Attributes
    ----------
    method : str
    steps : pandas.DataFrame
        One row per step: ``mode`` ("cascading" / "independent"), ``layer`` (the layer
        randomised at that step; in cascading mode, with every layer above it), ``spearman``
        and ``spearman_std`` (over samples), ``ssim`` and ``ssim_std``.
    threshold : float
        Largest mean Spearman correlation a passing method may keep after full randomisation.
    passed : bool
        Whether the maps of the fully randomised model (last cascading step, or the least
        similar independent step when only that mode ran) fall below ``threshold``.
    maps : dict of str to numpy.ndarray
        ``"original"`` and one entry per cascading step: maps of the first few samples (for
        figures); ``inputs`` the same samples.
    absolute : bool
        Whether the similarities compare ``|maps|`` (summed over channels) rather than the
        signed maps; figures show what was compared.
    """

    method: str
    steps: pd.DataFrame
    threshold: float
    passed: bool
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: np.ndarray | None = None
    absolute: bool = True

    kind = "sanity"

    @property
    def final_spearman(self) -> float:
        """Mean Spearman correlation with every layer randomised (the decisive number)."""
        casc = self.steps[self.steps["mode"] == "cascading"]
        if len(casc):
            return float(casc["spearman"].iloc[-1])
        return float(self.steps["spearman"].min())

    def summary(self) -> dict[str, Any]:
        """Verdict, threshold, the decisive Spearman correlation and every step."""
        return {"method": self.method, "passed": bool(self.passed), "threshold": self.threshold,
                "final_spearman": self.final_spearman, "absolute": bool(self.absolute),
                "steps": self.steps.to_dict(orient="records")}

    def to_frame(self) -> pd.DataFrame:
        """The steps: one row per randomisation step."""
        return self.steps.copy()

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``sanity.json``, ``sanity.csv`` (steps) and ``sanity.npz`` (maps) into ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.steps.to_csv(directory / "sanity.csv", index=False)
        self.write_json(directory / "sanity.json", self.summary())
        arrays = {f"map_{k}": v for k, v in self.maps.items()}
        if self.inputs is not None:
            arrays["inputs"] = self.inputs
        np.savez_compressed(directory / "sanity.npz", **arrays)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str], method: str | None = None) -> SanityResult:
        """Read what :meth:`save` wrote (or the one ``sanity_<method>.*`` of an older run's folder).

        ``method`` is deprecated: it reads ``directory/sanity_<method>/`` (a run folder's layout)
        or an older run's flat ``directory/sanity_<method>.*`` files.
        """
        directory = Path(directory)
        stem = "sanity"
        if method is not None:
            import warnings

            warnings.warn(f"SanityResult.load(directory, method={method!r}) is deprecated since 0.2: each check has"
                          f" a folder of its own; use SanityResult.load(directory / 'sanity_{safe_name(method)}')",
                          DeprecationWarning, stacklevel=2)
            if (directory / f"sanity_{safe_name(method)}" / "sanity.json").is_file():
                directory = directory / f"sanity_{safe_name(method)}"
            elif (directory / f"sanity_{method}.json").is_file():
                stem = f"sanity_{method}"
            else:
                raise AnalysisError(f"No sanity check of {method!r} in {directory}.")
        if not (directory / f"{stem}.json").is_file():
            older = sorted(directory.glob("sanity_*.json"))  # before one folder per result
            if len(older) > 1:
                raise AnalysisError(f"No sanity check in {directory} (no sanity.json; older files of {len(older)}"
                                    " methods: load their folder); write one with sanity_check(...).save(folder).")
            if older:
                stem = older[0].stem
        meta = cls.read_json(cls._required(directory, f"{stem}.json", f"{stem}.csv", f"{stem}.npz", what="sanity check",
                                           fix="write one with sanity_check(...).save(folder)"))
        steps = pd.read_csv(directory / f"{stem}.csv")
        with np.load(directory / f"{stem}.npz") as data:
            maps = {k[4:]: data[k] for k in data.files if k.startswith("map_")}
            inputs = data["inputs"] if "inputs" in data.files else None
        return cls(meta["method"], steps, meta["threshold"], meta["passed"], maps, inputs,
                   meta.get("absolute", True))

    def _repr_html_(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"<div><b>Sanity check of {html.escape(self.method)}</b>: {verdict} (final Spearman"
                f" {self.final_spearman:.2f}, threshold {self.threshold})"
                f"{self.steps.to_html(index=False, float_format='%.3f', escape=True)}</div>")


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (vectorised).

    Constant rows (no ranking) give 0.
    """
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    ra = stats.rankdata(a, axis=1)
    rb = stats.rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(1) / den
    return np.where(den > 0, r, 0.0)


def ssim_rows(a: np.ndarray, b: np.ndarray, window: int = 7) -> np.ndarray:
    """Mean structural similarity of each 2-D map in ``a`` with the same map in ``b``.

    Maps ``[n, H, W]`` are first scaled to [0, 1] each (as Adebayo et al. do), then compared
    exactly as :func:`skimage.metrics.structural_similarity` does with its defaults
    (``data_range=1``): a uniform ``window`` (7, shrunk to the largest odd size that fits
    small maps), the sample covariance, the constants of Wang et al. (2004), and the mean
    taken after cropping ``(window − 1) / 2`` pixels from each border. Vectorised over maps.
    A window of 1 (a map one pixel high) uses the population covariance, where
    scikit-image refuses.
    """
    a = _unit_scale(np.asarray(a, np.float64))
    b = _unit_scale(np.asarray(b, np.float64))
    w = int(max(1, min(window, *a.shape[1:])))
    w -= 1 - w % 2                                   # odd, as scikit-image requires
    size = (1, w, w)
    n_pixels = w * w
    cov_norm = n_pixels / (n_pixels - 1) if n_pixels > 1 else 1.0
    mu_a, mu_b = ndimage.uniform_filter(a, size), ndimage.uniform_filter(b, size)
    var_a = cov_norm * (ndimage.uniform_filter(a * a, size) - mu_a ** 2)
    var_b = cov_norm * (ndimage.uniform_filter(b * b, size) - mu_b ** 2)
    cov = cov_norm * (ndimage.uniform_filter(a * b, size) - mu_a * mu_b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    pad = (w - 1) // 2
    if pad:
        s = s[:, pad:-pad, pad:-pad]
    return s.reshape(len(s), -1).mean(1)


def _unit_scale(x: np.ndarray) -> np.ndarray:
    lo = x.reshape(len(x), -1).min(1).reshape(-1, 1, 1)
    hi = x.reshape(len(x), -1).max(1).reshape(-1, 1, 1)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)


def _as_2d(maps: np.ndarray, absolute: bool, tokens: bool = False) -> np.ndarray:
    """``[n, H, W]`` heat maps: channels summed (of |values| when ``absolute``).

    Maps of token inputs (``[n, T, D]`` of an embedding layer) become ``[n, 1, T]`` token
    scores: summed over the embedding first (the per-token attribution), then ``|.|``.
    """
    if tokens and maps.ndim >= 3:
        t = maps.reshape(*maps.shape[:2], -1).sum(-1)
        return (np.abs(t) if absolute else t)[:, None, :]
    m = np.abs(maps) if absolute else maps
    if m.ndim == 4:
        return m.sum(1)
    if m.ndim == 3:
        return m
    return m.reshape(len(m), 1, -1)


def randomisable_layers(model: nn.Module) -> list[str]:
    """Modules holding parameters of their own, in model order (what randomisation replaces)."""
    return [name for name, m in model.named_modules()
            if name and any(True for _ in m.parameters(recurse=False))]


def _randomise(module: nn.Module, gen: torch.Generator) -> None:
    """Replace a module's own parameters by Gaussian draws of the same mean and spread.

    Keeping each tensor's scale (not the init scheme's) keeps activations in the range the
    rest of the network was trained on, so a change in the maps is due to the lost
    structure, not to a collapse or explosion of the signal.
    """
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            mean = float(p.float().mean())
            std = float(p.float().std()) if p.numel() > 1 else 0.0
            if std == 0.0:  # a constant tensor (zero biases, a scalar): give it some spread
                std = max(abs(mean), 0.01)
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype)
            p.copy_(noise * std + mean)


def sanity_check(
    model: nn.Module,
    inputs: Any,
    method: str | MethodFn = "saliency",
    *,
    target: Any = "label",
    labels: Any = None,
    mode: str | Sequence[str] = ("cascading", "independent"),
    layers: Sequence[str] | None = None,
    threshold: float = 0.5,
    absolute: bool = True,
    n_samples: int = 64,
    keep_maps: int = 4,
    seed: int = 0,
    device: str | torch.device | None = None,
    **options: Any,
) -> SanityResult:
    """Model-parameter randomisation test of an attribution method.

    Parameters
    ----------
    model : torch.nn.Module
        A trained model; its weights are restored afterwards (also on error).
    inputs : tensor, array or data set
        Inputs to explain; the first ``n_samples`` are used.
    method : str or callable
        A method name of :func:`attribute`, or ``fn(model, x, targets) -> maps`` (any map
        function, e.g. to test a home-made method).
    target, labels : see :func:`attribute`
        Targets are fixed from the original model (``"prediction"`` uses its predictions).
    mode : "cascading", "independent" or both
        Cascading: top layer first, keeping earlier randomisations. Independent: one layer
        at a time, the others original.
    layers : sequence of str, optional
        Layers to randomise (default: every module with parameters), in model order.
    threshold : float
        A method passes when the mean Spearman correlation of the fully randomised model's
        maps with the original maps is below this.
    absolute : bool
        Compare ``|maps|`` (Adebayo et al.'s main variant; sign flips do not count as change).
    n_samples, keep_maps, seed, device
        Samples compared; samples whose maps are kept for figures; seed of the random
        weights; device.
    **options
        Passed to :func:`attribute` (``n_steps=``, ``layer=``, ...).

    Returns
    -------
    SanityResult

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> result = sanity_check(model, test.subset(slice(0, 32)), "saliency")
    >>> result.steps["mode"].unique().tolist(), result.steps["layer"].tolist()[:4]
    (['cascading', 'independent'], ['out', 'fc1', 'conv2', 'conv1'])
    """
    modes = [mode] if isinstance(mode, str) else list(mode)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise AnalysisError(f"mode {bad or modes!r} is unknown; choose 'cascading', 'independent' or both.")
    name = method.__name__ if callable(method) else resolve_method(method)
    all_layers = randomisable_layers(model)
    if layers is None:
        chosen = all_layers
    else:
        missing = [name for name in layers if name not in all_layers]
        if missing:
            raise LayerError(f"Layer {missing[0]!r} holds no parameters to randomise or does not exist."
                             f"{did_you_mean(missing[0], all_layers)} Layers with parameters: {', '.join(all_layers)}.")
        chosen = [name for name in all_layers if name in layers]
    if not chosen:
        raise AnalysisError(f"{type(model).__name__} has no layers with parameters to randomise.")
    source = InputBatches(inputs, labels, max(1, int(n_samples)))
    x, y = next(source.batches(0, min(source.n, int(n_samples))))
    dev = pick_device(device)
    modules = dict(model.named_modules())
    with preserved(model, restore_weights=True):
        model.to(dev).eval()
        x = _to_device(x, dev)  # a tensor or a dict of them (token ids stay integers)
        primary = x[_Layout(x, options.get("input_key")).key] if isinstance(x, dict) else x
        tokens = not (primary.is_floating_point() or primary.is_complex())
        if tokens and source.pad_token_id is not None and options.get("baseline") in (None, "pad"):
            options = {**options, "baseline": int(source.pad_token_id)}  # the batch below forgets the tokenizer
        # targets are fixed by the original model; one saliency call resolves and checks them
        # (through the same layer, output and input key: token ids have no input gradient)
        resolve = {k: options[k] for k in ("layer", "output", "input_key") if k in options}
        targets = (target if callable(target) else
                   attribute(model, x, "saliency", target=target, labels=None if y is None else y.numpy(),
                             device=dev, keep_inputs=False, **resolve).targets)

        def maps_now() -> np.ndarray:
            if callable(method):
                with torch.no_grad():
                    out = method(model, x, torch.as_tensor(targets, device=dev))
                return np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, np.float32)
            return attribute(model, x, name, target=targets, device=dev, seed=seed, keep_inputs=False,
                             **options).maps

        original = maps_now()
        orig2d = _as_2d(original, absolute, tokens)
        rows: list[dict[str, Any]] = []
        kept = {"original": original[:keep_maps]}
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        gen = torch.Generator().manual_seed(int(seed))
        for m in modes:
            model.load_state_dict(state)
            order = list(reversed(chosen))  # top layer first
            for layer in order:
                if m == "independent":
                    model.load_state_dict(state)
                _randomise(modules[layer], gen)
                now = maps_now()
                now2d = _as_2d(now, absolute, tokens)
                rho = spearman_rows(orig2d, now2d)
                ss = ssim_rows(orig2d, now2d)
                rows.append({"mode": m, "layer": layer, "spearman": float(rho.mean()),
                             "spearman_std": float(rho.std()), "ssim": float(ss.mean()), "ssim_std": float(ss.std())})
                if m == "cascading":
                    kept[layer] = now[:keep_maps]
        model.load_state_dict(state)
    steps = pd.DataFrame(rows)
    result = SanityResult(name, steps, float(threshold), False, kept,
                          primary[:keep_maps].detach().cpu().numpy(), bool(absolute))
    result.passed = bool(result.final_spearman < threshold)
    return result
