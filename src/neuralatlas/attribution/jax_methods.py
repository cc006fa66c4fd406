"""Saliency, gradient × input and integrated gradients for JAX models (Flax, Keras on JAX).

The same :class:`~neuralatlas.attribution.result.Attribution` as the torch methods, so the
figures, the report and the saved results do not ask where it came from. Gradients come from
``jax.grad`` of the target logit (one compile per batch shape); integrated gradients use
Gauss-Legendre quadrature on [0, 1] (captum's default rule) and report completeness the same
way: ``delta = sum(map) - (F(x) - F(baseline))`` and ``|delta| / |F(x) - F(baseline)|`` with
the gap floored at 1% of the batch median.

Maps of image inputs (``[n, H, W, C]`` in Flax and Keras) are returned channels-first
(``[n, C, H, W]``), like the activation store and torch's maps; ``params["layout"]`` says so.

Examples
--------
>>> from neuralatlas.attribution.jax_methods import attribute_jax       # doctest: +SKIP
>>> ig = attribute_jax(nnx_model, test_nhwc, "integrated_gradients", n_steps=32) # doctest: +SKIP
>>> ig.summary()["completeness_max"] < 0.05                                     # doctest: +SKIP
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neuralatlas._moved import moved_attribute_getter
from neuralatlas.attribution.result import Attribution
from neuralatlas.errors import AnalysisError

JAX_METHODS = ("saliency", "gradient_x_input", "integrated_gradients")
_ALIASES = {"ig": "integrated_gradients", "gradient": "saliency", "grad": "saliency",
            "input_x_gradient": "gradient_x_input", "gxi": "gradient_x_input"}


def _method(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in JAX_METHODS:
        raise AnalysisError(f"Method {name!r} is not available for JAX models; choose one of"
                            f" {', '.join(JAX_METHODS)} (the other methods are torch/captum only).")
    return key


def _inputs(inputs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    from neuralatlas.data.dataset import ArrayDataset

    if isinstance(inputs, ArrayDataset):
        return inputs.inputs, inputs.labels, inputs.index
    x = np.asarray(inputs, np.float32)
    return x, None if labels is None else np.asarray(labels, np.int64), None


def attribute_jax(
    model: Any,
    inputs: Any,
    method: str = "integrated_gradients",
    target: str | int | Sequence[int] | np.ndarray = "label",
    baseline: Any = None,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    n_steps: int = 50,
    batch_size: int = 64,
    output: Any = None,
    keep_inputs: bool = True,
) -> Attribution:
    """Attribute a JAX model's class scores to its inputs.

    Parameters
    ----------
    model : nnx.Module, linen (module, variables), or keras.Model on the JAX backend
    inputs : ArrayDataset or array ``[n, ...]`` (with ``labels=``), in the model's layout
    method : "saliency", "gradient_x_input" or "integrated_gradients"
    target : "label", "prediction", int or array of int
    baseline : None/"zeros", a number, or an array broadcastable to the inputs
    n_steps : int
        Quadrature points of integrated gradients.
    batch_size : int
        Samples per compiled gradient call.
    output : int, str or callable, optional
        Which array of the model's output holds the logits.

    Returns
    -------
    Attribution
        Maps channels-first for image inputs; ``delta``/``completeness`` for integrated gradients.

    Raises
    ------
    AnalysisError
        A method that is torch-only, ``target="label"`` without labels, a target out of range,
        a Keras model on a backend other than JAX.
    """
    import jax
    import jax.numpy as jnp

    from neuralatlas.capture.foreign import adapter_for, pick

    key = _method(method)
    adapter = adapter_for(model)
    if adapter is None or not hasattr(adapter, "logits_fn") or getattr(adapter, "backend", "jax") != "jax":
        raise AnalysisError("attribute_jax needs a Flax model or a Keras model on the JAX backend"
                            f" (got {type(model).__name__}); torch models go through neuralatlas.attribute.")
    fn, weights = adapter.logits_fn()
    x_all, y_all, index = _inputs(inputs, labels)
    n = len(x_all)

    def logits_of(x):
        return pick(fn(weights, x), output, "model output", lambda v: hasattr(v, "shape"))[0]

    logits_jit = jax.jit(logits_of)
    logits = np.concatenate([np.asarray(logits_jit(jnp.asarray(x_all[i:i + batch_size])))
                             for i in range(0, n, batch_size)])
    n_classes = logits.shape[1]
    if isinstance(target, str):
        if target == "label":
            if y_all is None:
                raise AnalysisError("target='label' needs labels: pass an ArrayDataset or labels=.")
            targets = y_all
        elif target == "prediction":
            targets = logits.argmax(1)
        else:
            raise AnalysisError(f"Unknown target {target!r}; use 'label', 'prediction', an int or an array.")
    else:
        targets = np.broadcast_to(np.asarray(target, np.int64), (n,)).copy()
    if targets.min() < 0 or targets.max() >= n_classes:
        raise AnalysisError(f"Targets range over [{targets.min()}, {targets.max()}] but the model has"
                            f" {n_classes} outputs.")
    base = np.zeros_like(x_all) if baseline is None or (isinstance(baseline, str) and baseline == "zeros") \
        else np.broadcast_to(np.asarray(baseline, np.float32), x_all.shape).astype(np.float32)

    def scores(x, t):
        return jnp.take_along_axis(logits_of(x), t[:, None], 1)[:, 0]

    grad = jax.jit(jax.grad(lambda x, t: scores(x, t).sum()))
    score_jit = jax.jit(scores)
    nodes, node_weights = np.polynomial.legendre.leggauss(int(n_steps))
    alphas, alpha_w = (nodes + 1) / 2, node_weights / 2
    maps = np.empty_like(x_all)
    for i in range(0, n, batch_size):
        x = x_all[i:i + batch_size]
        t = jnp.asarray(targets[i:i + batch_size], jnp.int32)
        if key == "saliency":
            maps[i:i + len(x)] = np.abs(np.asarray(grad(jnp.asarray(x), t)))
        elif key == "gradient_x_input":
            maps[i:i + len(x)] = np.asarray(grad(jnp.asarray(x), t)) * x
        else:
            b = base[i:i + batch_size]
            total = np.zeros_like(x)
            for a, w in zip(alphas, alpha_w, strict=True):
                total += w * np.asarray(grad(jnp.asarray(b + a * (x - b)), t))
            maps[i:i + len(x)] = (x - b) * total
    delta = completeness = steps = None
    params: dict[str, Any] = {
        "framework": adapter.framework,
        "target": target if isinstance(target, (str, int)) else "array",
    }
    if key == "integrated_gradients":
        gap = np.concatenate(
            [
                np.asarray(
                    score_jit(
                        jnp.asarray(x_all[i : i + batch_size]), jnp.asarray(targets[i : i + batch_size], jnp.int32)
                    )
                )
                - np.asarray(
                    score_jit(
                        jnp.asarray(base[i : i + batch_size]), jnp.asarray(targets[i : i + batch_size], jnp.int32)
                    )
                )
                for i in range(0, n, batch_size)
            ]
        )
        delta = maps.reshape(n, -1).sum(1) - gap
        floor = max(1e-6, 0.01 * float(np.median(np.abs(gap)))) if n else 1e-6
        completeness = np.abs(delta) / np.maximum(np.abs(gap), floor)
        steps = np.full(n, int(n_steps), np.int64)
        params.update(n_steps=int(n_steps), integration="gausslegendre",
                      baseline="zeros" if baseline is None else repr(baseline)[:40])
    shown_inputs = x_all
    if x_all.ndim >= 4:  # channels-last images -> channels-first, as the store and torch keep them
        perm = (0, x_all.ndim - 1, *range(1, x_all.ndim - 1))
        maps, shown_inputs = maps.transpose(perm), x_all.transpose(perm)
        params["layout"] = "channels_first (transposed from the model's channels-last)"
    return Attribution(method=key, maps=np.ascontiguousarray(maps, np.float32), targets=targets.astype(np.int64),
                       signed=key != "saliency", inputs=np.ascontiguousarray(shown_inputs) if keep_inputs else None,
                       labels=y_all, predictions=logits.argmax(1), index=index, delta=delta,
                       completeness=completeness, n_steps=steps, params=params)


# ``attribution_step`` (it saves into a run folder) moved to neuralatlas.steps.attribution.jax_step (0.2)
__getattr__ = moved_attribute_getter(__name__)
