"""Adversarial examples: FGSM and PGD (L∞ and L2, targeted or not), clamped to the data range.

FGSM runs on captum's ``captum.robust.FGSM``. PGD is written here in plain torch: captum's
PGD steps along the gradient's sign for the L2 norm too and then rescales, which is not the
L2 attack of Madry et al. (a step along the normalised gradient, then projection onto the
ball); this one follows the paper for both norms.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from neuralatlas.attribution.methods import InputBatches, quiet_captum
from neuralatlas.capture.hooks import preserved, select_tensor
from neuralatlas.capture.loop import call_model, pick_device
from neuralatlas.errors import AnalysisError, did_you_mean
from neuralatlas.results import Result, folder_of
from neuralatlas.vocabulary import renamed_parameter

ATTACKS = ("fgsm", "pgd")
NORMS = ("linf", "l2")


@dataclass
class AttackResult(Result):
    """Clean and adversarial inputs with the model's predictions on both.

    Attributes
    ----------
    method, norm, eps : str, str, float
    clean, adversarial : numpy.ndarray
        ``[n, ...]`` inputs before and after the attack.
    labels : numpy.ndarray
        True classes.
    target_class : numpy.ndarray or None
        ``[n]`` class each sample was pushed towards (targeted attacks).
    clean_pred, adv_pred : numpy.ndarray
        Predictions on clean and adversarial inputs.
    index : numpy.ndarray
        Sample index of the inputs.
    """

    method: str
    norm: str
    eps: float
    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    index: np.ndarray
    target_class: np.ndarray | None = None
    classes: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    kind = "attack"

    def __len__(self) -> int:
        return len(self.clean)

    @property
    def stem(self) -> str:
        """A folder name for this attack, e.g. ``pgd_linf_eps0.1`` (what run folders use)."""
        return f"{self.method}_{self.norm}_eps{self.eps:g}"

    @property
    def perturbation(self) -> np.ndarray:
        """Adversarial minus clean inputs, per sample."""
        return self.adversarial - self.clean

    @property
    def success(self) -> np.ndarray:
        """Per sample: targeted → reached the target class.

        Untargeted → prediction changed away from a correct one (samples already wrong count as
        not attacked).
        """
        if self.target_class is not None:
            return self.adv_pred == self.target_class
        return (self.clean_pred == self.labels) & (self.adv_pred != self.labels)

    @property
    def success_rate(self) -> float:
        """Share of attackable samples the attack succeeded on.

        Untargeted: among those the model got right; targeted: among those not already predicted as the target.
        """
        if self.target_class is not None:
            eligible = self.clean_pred != self.target_class
        else:
            eligible = self.clean_pred == self.labels
        return float(self.success[eligible].mean()) if eligible.any() else 0.0

    @property
    def clean_accuracy(self) -> float:
        """Accuracy on the clean inputs."""
        return float((self.clean_pred == self.labels).mean())

    @property
    def adversarial_accuracy(self) -> float:
        """Accuracy on the adversarial inputs."""
        return float((self.adv_pred == self.labels).mean())

    def norms(self) -> np.ndarray:
        """Size of each perturbation in the attack's norm."""
        d = self.perturbation.reshape(len(self), -1)
        return np.abs(d).max(1) if self.norm == "linf" else np.sqrt((d * d).sum(1))

    def as_dataset(self, name: str = "adversarial"):
        """Clean then adversarial inputs as one ``ArrayDataset`` with a ``group`` column.

        The groups are ``"clean"`` and ``"adversarial"``; both halves keep the original sample index.
        """
        from neuralatlas.data.dataset import ArrayDataset

        n = len(self)
        classes = self.classes or [str(i) for i in range(int(max(self.labels.max(), self.clean_pred.max(),
                                                                    self.adv_pred.max())) + 1)]
        return ArrayDataset(np.concatenate([self.clean, self.adversarial]), np.concatenate([self.labels, self.labels]),
                            classes, index=np.concatenate([self.index, self.index]),
                            groups=np.array(["clean"] * n + ["adversarial"] * n), name=name)

    def summary(self) -> dict[str, Any]:
        """Attack, size, accuracies before and after, success rate, mean perturbation, settings."""
        return {"method": self.method, "norm": self.norm, "eps": self.eps, "n_samples": len(self),
                "clean_accuracy": self.clean_accuracy, "adversarial_accuracy": self.adversarial_accuracy,
                "success_rate": self.success_rate, "mean_norm": float(self.norms().mean()) if len(self) else 0.0,
                "targeted": self.target_class is not None, **self.params}

    def save(self, directory: str | os.PathLike[str], name: str | None = None) -> Path:
        """Write ``attack.npz`` (inputs, predictions) and ``attack.json`` into ``directory``; return it.

        Run folders use ``results/adversarial/<result.stem>/``.
        """
        directory = folder_of("AttackResult", directory, name)  # name: deprecated, a subfolder
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in ("clean", "adversarial", "labels", "clean_pred", "adv_pred", "index")}
        if self.target_class is not None:
            arrays["target_class"] = self.target_class
        np.savez_compressed(directory / "attack.npz", **arrays)
        self.write_json(directory / "attack.json", {**self.summary(), "classes": self.classes, "params": self.params})
        return directory

    @classmethod
    @renamed_parameter("path", "directory")
    def load(cls, directory: str | os.PathLike[str]) -> AttackResult:
        """Read what :meth:`save` wrote (or an older run's ``<stem>.npz`` / ``<stem>.json`` / stem)."""
        path = Path(directory)
        base = path.with_suffix("") if path.suffix in (".npz", ".json") else path
        if not (path / "attack.json").is_file() and Path(f"{base}.json").is_file():  # an older run's files
            folder, stem = base.parent, base.name  # by name: a stem such as fgsm_eps0.1 holds dots
        else:
            folder, stem = path, "attack"
        meta = cls.read_json(cls._required(folder, f"{stem}.json", f"{stem}.npz", what="saved attack",
                                           fix="write one with attack(...).save(folder)"))
        with np.load(folder / f"{stem}.npz") as data:
            arrays = {k: data[k] for k in data.files}
        params = meta.get("params")
        if params is None:  # older files: the settings were only in the summary
            params = {k: v for k, v in meta.items() if k in ("steps", "step_size", "random_start", "bounds", "seed")}
        return cls(meta["method"], meta["norm"], meta["eps"], classes=meta.get("classes"), params=params, **arrays)

    def __repr__(self) -> str:
        return (f"AttackResult({self.method}/{self.norm}, eps={self.eps:g}, n={len(self)},"
                f" accuracy {self.clean_accuracy:.3f} -> {self.adversarial_accuracy:.3f},"
                f" success_rate={self.success_rate:.3f})")


def _logits(model: nn.Module, x: torch.Tensor, output: Any) -> torch.Tensor:
    return select_tensor(call_model(model, x), output, what="model output")


def _bounds(bounds: Any, source: InputBatches, x: torch.Tensor) -> tuple[float, float] | None:
    if bounds is None:
        return None
    if isinstance(bounds, str):
        if bounds != "data":
            raise AnalysisError(f"bounds={bounds!r}: give 'data' (the inputs' min and max), (low, high) or None.")
        return source.value_range() or (float(x.min()), float(x.max()))
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise AnalysisError(f"bounds={bounds!r}: the low bound must be below the high bound.")
    return lo, hi


def _check(method: str, norm: str, eps: float) -> tuple[str, str]:
    m = method.lower()
    if m not in ATTACKS:
        raise AnalysisError(
            f"Unknown attack {method!r}.{did_you_mean(m, ATTACKS)} Valid attacks: {', '.join(ATTACKS)}."
        )
    nm = norm.lower().replace("∞", "inf").replace("_", "")
    if nm not in NORMS:
        raise AnalysisError(f"Unknown norm {norm!r}; choose 'linf' or 'l2'.")
    if m == "fgsm" and nm != "linf":
        raise AnalysisError("FGSM is an L∞ attack; use method='pgd' with norm='l2' for an L2 attack.")
    if not float(eps) >= 0:
        raise AnalysisError(f"eps={eps} must be a non-negative perturbation size.")
    return m, nm


def attack(
    model: nn.Module,
    inputs: Any,
    method: str = "pgd",
    eps: float = 0.1,
    *,
    labels: Any = None,
    norm: str = "linf",
    target_class: int | Sequence[int] | None = None,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    bounds: str | tuple[float, float] | None = "data",
    batch_size: int = 256,
    output: Any = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> AttackResult:
    """Adversarial examples of ``inputs`` by FGSM or PGD.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier (left as found).
    inputs : tensor, array or data set
        With ``labels=`` for tensors and arrays.
    method : "fgsm" or "pgd"
    eps : float
        Radius of the perturbation in the chosen norm (input units).
    norm : "linf" or "l2"
        PGD's norm (FGSM is L∞).
    target_class : int or one per sample, optional
        Push towards this class (a targeted attack); default: away from the label.
    steps, step_size, random_start
        PGD iterations, step length (default ``2.5 * eps / steps``, Madry et al.), and a
        uniform random start inside the ball.
    bounds : "data", (low, high) or None
        Clamp adversarial inputs to the data range (``"data"``: the inputs' min and max).
    batch_size, device, seed
        Samples per step; device (``None``: CUDA when present); seed of the random start.

    Returns
    -------
    AttackResult

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> result = attack(model, test.subset(slice(0, 32)), "pgd", eps=0.1)
    >>> result.adversarial_accuracy <= result.clean_accuracy
    True
    """
    m, nm = _check(method, norm, eps)
    if int(steps) < 1:
        raise AnalysisError(f"steps={steps} must be at least 1.")
    source = InputBatches(inputs, labels, batch_size, cast_integers=True)  # integer pixels, as before
    if source.labels is None and source.source is None:
        raise AnalysisError("An attack needs the true labels: pass labels=... with tensor or array inputs.")
    dev = pick_device(device)
    first = source.first()
    lim = _bounds(bounds, source, first)
    step = float(step_size) if step_size is not None else 2.5 * float(eps) / int(steps)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    cleans: list[np.ndarray] = []
    advs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    cps: list[np.ndarray] = []
    aps: list[np.ndarray] = []
    tcs: list[np.ndarray] = []
    start = 0
    with preserved(model):
        model.to(dev).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        n_out = int(_logits(model, first[:1].to(dev), output).shape[1])
        tc_all = _target_classes(target_class, source.n, n_out)
        for x, y in source.batches():
            if y is None:
                raise AnalysisError("An attack needs the true labels; this data set has none.")
            x, y = x.to(dev), y.to(dev)
            tc = None if tc_all is None else torch.as_tensor(tc_all[start:start + len(x)], device=dev)
            if m == "fgsm":
                adv = _fgsm(model, x, y, float(eps), tc, lim, output)
            else:
                adv = _pgd(model, x, y, float(eps), nm, int(steps), step, random_start, tc, lim, output, gen)
            with torch.no_grad():
                cp = _logits(model, x, output).argmax(1)
                ap = _logits(model, adv, output).argmax(1)
            for lst, v in ((cleans, x), (advs, adv), (ys, y), (cps, cp), (aps, ap)):
                lst.append(v.detach().cpu().numpy())
            if tc is not None:
                tcs.append(tc.cpu().numpy())
            start += len(x)
    params = {"steps": int(steps) if m == "pgd" else 1, "step_size": step if m == "pgd" else float(eps),
              "random_start": bool(random_start) if m == "pgd" else False,
              "bounds": list(lim) if lim else None, "seed": int(seed)}
    return AttackResult(m, nm, float(eps), np.concatenate(cleans), np.concatenate(advs), np.concatenate(ys),
                        np.concatenate(cps), np.concatenate(aps), np.asarray(source.index),
                        np.concatenate(tcs) if tcs else None, source.classes, params)


def fgsm(model: nn.Module, inputs: Any, eps: float = 0.1, **kwargs: Any) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): one L∞ step of size ``eps``.

    Same arguments as :func:`attack` (``labels=``, ``target_class=``, ``bounds=``, ...).

    Examples
    --------
    >>> fgsm(model, test, eps=0.0).adversarial_accuracy == fgsm(model, test, eps=0.0).clean_accuracy   # doctest: +SKIP
    True
    """
    return attack(model, inputs, "fgsm", eps, **kwargs)


def pgd(model: nn.Module, inputs: Any, eps: float = 0.1, norm: str = "linf", **kwargs: Any) -> AttackResult:
    """Projected gradient descent (Madry et al. 2018) in the L∞ or L2 ball of radius ``eps``.

    Same arguments as :func:`attack` (``steps=``, ``step_size=``, ``target_class=``, ...).

    Examples
    --------
    >>> pgd(model, test, eps=0.2, norm="linf", steps=20).success_rate   # doctest: +SKIP
    0.97
    """
    return attack(model, inputs, "pgd", eps, norm=norm, **kwargs)


def _target_classes(target_class: Any, n: int, n_out: int) -> np.ndarray | None:
    if target_class is None:
        return None
    tc = np.full(n, int(target_class)) if np.ndim(target_class) == 0 else np.asarray(target_class, np.int64)
    if len(tc) != n:
        raise AnalysisError(f"target_class has {len(tc)} entries for {n} samples; give one class or one per sample.")
    bad = tc[(tc < 0) | (tc >= n_out)]
    if len(bad):
        raise AnalysisError(
            f"target_class {int(bad[0])} is out of range: the model has {n_out} outputs (0..{n_out - 1})."
        )
    return tc


def _loss_grad(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, output: Any) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(_logits(model, x, output), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _fgsm(model, x, y, eps, target_class, lim, output) -> torch.Tensor:
    from captum.robust import FGSM

    lo, hi = lim if lim else (float("-inf"), float("inf"))
    attacker = FGSM(lambda inp: _logits(model, inp, output),
                    loss_func=lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="none"),
                    lower_bound=lo, upper_bound=hi)
    targeted = target_class is not None
    with quiet_captum():
        adv = attacker.perturb(x.clone(), eps, target_class if targeted else y, targeted=targeted)
    return adv.detach()


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.reshape(len(delta), -1)
    scale = (eps / flat.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale[:, None]).reshape(delta.shape)


def _pgd(model, x, y, eps, norm, steps, step, random_start, target_class, lim, output, gen) -> torch.Tensor:
    sign = -1.0 if target_class is not None else 1.0  # targeted: descend the target's loss
    labels = target_class if target_class is not None else y
    delta = torch.zeros_like(x)
    if random_start and eps > 0:
        if norm == "linf":
            delta = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * eps
        else:  # uniform in the L2 ball: a random direction, radius eps * u^(1/d)
            d = x[0].numel()
            direction = torch.randn(x.shape, generator=gen).to(x)
            direction = direction / direction.reshape(len(x), -1).norm(dim=1).clamp_min(1e-12).view(
                -1, *[1] * (x.dim() - 1)
            )
            radius = eps * torch.rand(len(x), generator=gen).to(x) ** (1.0 / d)
            delta = direction * radius.view(-1, *[1] * (x.dim() - 1))
    adv = x + delta
    if lim:
        adv = adv.clamp(*lim)
    for _ in range(steps):
        g = _loss_grad(model, adv, labels, output)
        if norm == "linf":
            move = g.sign()
        else:
            move = g / g.reshape(len(g), -1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (g.dim() - 1))
        adv = x + _project(adv + sign * step * move - x, eps, norm)
        if lim:
            adv = adv.clamp(*lim)
    return adv.detach()


@dataclass
class RobustnessCurve(Result):
    """Accuracy and attack success rate against the perturbation size.

    ``table`` is the curve (one row per ``eps``); ``results`` the attacks kept (``keep=True``).
    """

    method: str
    norm: str
    table: pd.DataFrame  # a field: on a curve, ``table`` is the data, not the deprecated method
    results: list[AttackResult] = field(default_factory=list, repr=False)

    kind = "robustness"

    def summary(self) -> dict[str, Any]:
        """Attack, norm and the curve's rows."""
        return {"method": self.method, "norm": self.norm, "curve": self.table.to_dict(orient="records")}

    def to_frame(self) -> pd.DataFrame:
        """The curve: one row per perturbation size."""
        return self.table.copy()

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``robustness.json``, ``robustness.csv`` and each kept attack in ``<attack.stem>/``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(directory / "robustness.csv", index=False)
        self.write_json(directory / "robustness.json",
                        {**self.summary(), "attacks": [res.stem for res in self.results]})
        for res in self.results:
            res.save(directory / res.stem)
        return directory

    @classmethod
    @renamed_parameter("path", "directory")
    def load(cls, directory: str | os.PathLike[str]) -> RobustnessCurve:
        """Read what :meth:`save` wrote (or an older run's ``robustness_<method>_<norm>.json``)."""
        path = Path(directory)
        older = path.with_suffix(".json")
        meta_file = older if not path.is_dir() and older.is_file() else path / "robustness.json"
        meta = cls.read_json(cls._required(meta_file.parent, meta_file.name, what="robustness curve",
                                           fix="write one with robustness_curve(...).save(folder)"))
        csv = meta_file.with_suffix(".csv")
        table = pd.read_csv(csv) if csv.is_file() else pd.DataFrame(meta["curve"])
        results = [AttackResult.load(meta_file.parent / stem) for stem in meta.get("attacks", [])]
        return cls(meta["method"], meta["norm"], table, results)

    def _repr_html_(self) -> str:
        return (f"<div><b>Robustness to {html.escape(self.method)} ({html.escape(self.norm)})</b>"
                f"{self.table.to_html(index=False, float_format='%.3f', escape=True)}</div>")


def robustness_curve(model: nn.Module, inputs: Any, eps: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3),
                     method: str = "pgd", *, keep: bool = False, **kwargs: Any) -> RobustnessCurve:
    """Run the attack at each ``eps``; accuracy and success rate against ``eps``.

    ``keep=True`` keeps every :class:`AttackResult` (memory: one copy of the inputs per eps).

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> curve = robustness_curve(model, test.subset(slice(0, 32)), eps=[0, 0.05, 0.1])
    >>> curve.table["eps"].tolist(), bool(curve.table["accuracy"].is_monotonic_decreasing)
    ([0.0, 0.05, 0.1], True)
    """
    rows, kept = [], []
    norm = kwargs.get("norm", "linf")
    for e in eps:
        res = attack(model, inputs, method, float(e), **kwargs)
        rows.append({"eps": float(e), "accuracy": res.adversarial_accuracy, "clean_accuracy": res.clean_accuracy,
                     "success_rate": res.success_rate, "mean_norm": float(res.norms().mean())})
        if keep:
            kept.append(res)
    return RobustnessCurve(method.lower(), norm.lower(), pd.DataFrame(rows), kept)
