"""What an attack does inside: clean and adversarial inputs captured into one store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from neuralatlas.adversarial.attacks import AttackResult, attack
from neuralatlas.store import ActivationStore


def capture_adversarial(
    model: nn.Module,
    inputs: Any,
    out: str | Path,
    *,
    result: AttackResult | None = None,
    method: str = "pgd",
    eps: float = 0.1,
    layers: Any = None,
    gradients: bool = False,
    attack_options: dict[str, Any] | None = None,
    **capture_options: Any,
) -> ActivationStore:
    """Capture activations of clean and adversarial inputs into one store.

    The sample table gets a ``group`` column (``"clean"`` / ``"adversarial"``) and both
    halves keep the original sample index, so NAPs, projections and the report can show
    where adversarial points land relative to the clean ones of the same class.

    Parameters
    ----------
    model : torch.nn.Module
    inputs : tensor, array or data set
        Attacked here unless ``result`` (an earlier :func:`attack`) is given.
    out : path
        Folder of the new store (e.g. ``RUN_DIR / "adversarial.zarr"``).
    result : AttackResult, optional
        Reuse an attack already run.
    method, eps, attack_options
        The attack to run (see :func:`attack`).
    layers, gradients, **capture_options
        Passed to :func:`neuralatlas.capture` (``overwrite=``, ``batch_size=``, ...).

    Returns
    -------
    ActivationStore

    Examples
    --------
    >>> from neuralatlas.data import digits
    >>> from neuralatlas.zoo import build
    >>> train, test = digits()
    >>> model = build("cnn", seed=0).eval()                       # untrained: fast, still a CNN
    >>> store = capture_adversarial(model, test.subset(slice(0, 32)), "adversarial.zarr", eps=0.1)
    >>> store.samples.groupby("group").size().to_dict()
    {'adversarial': 32, 'clean': 32}
    """
    from neuralatlas.capture import capture

    if result is None:
        result = attack(model, inputs, method, eps, **(attack_options or {}))
    data = result.as_dataset(name=f"{result.method}-{result.norm}-eps{result.eps:g}")
    return capture(model, data, layers=layers, out=out, gradients=gradients, **capture_options)
