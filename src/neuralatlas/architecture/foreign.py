"""The architecture table of a Flax or Keras model, with the layer names capture uses.

:func:`foreign_summary` gives the same :class:`~neuralatlas.architecture.table.ModelSummary`
as ``neuralatlas.summary`` gives for torch (so the report's layer table and the layer-cost
figure work unchanged): one row per layer as the capture adapter names it, the output shape as
the framework gives it (channels-last for Flax/Keras convs), parameters from the model's own
variables, and multiply-accumulates of layers with a ``kernel`` (dense and convolution:
kernel size × output positions). :func:`framework_summary` is the framework's own text
(``nnx.tabulate``, linen's ``tabulate``, ``model.summary()``), kept beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuralatlas.architecture.table import COLUMNS, ModelSummary
from neuralatlas.errors import ModelError


def _adapter(model: Any) -> Any:
    from neuralatlas.capture.foreign import adapter_for

    adapter = adapter_for(model)
    if adapter is None:
        raise ModelError(f"{type(model).__name__} is not a Flax or Keras model; use neuralatlas.summary"
                         " for torch models.")
    return adapter


def _output_shapes(adapter: Any, example: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    from neuralatlas.capture.foreign import Tap

    adapter.discover(example)
    names = adapter.layer_names()
    tap = Tap(names, is_array=lambda v: hasattr(v, "shape"))
    if adapter.framework == "keras:torch":
        import torch

        from neuralatlas.capture.keras_adapter import _call, _to_torch

        with torch.no_grad(), adapter.tapped(tap):
            _call(adapter.model, _to_torch(example), adapter._kwargs())
        shapes = {n: tuple(v.shape) for n, v in tap.outputs.items()}
    else:
        import jax

        from neuralatlas.capture.flax_adapter import as_jax

        apply = adapter.apply_jax if adapter.framework.startswith("keras") else adapter.apply
        weights = adapter._weights if adapter.framework.startswith("keras") else adapter.current()
        def traced(w: Any, x: Any) -> dict[str, Any]:
            apply(w, x, tap)
            return dict(tap.outputs)

        out = jax.eval_shape(traced, weights, as_jax(example))
        shapes = {n: tuple(v.shape) for n, v in out.items()}
    return {n: tuple(int(d) for d in s[1:]) for n, s in shapes.items()}, dict(tap.calls)


def _param_tree(adapter: Any) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """``{layer.path/param: shape}`` of every variable, and which of them are trainable."""
    from neuralatlas.capture.foreign import flatten_tree

    if adapter.framework == "flax.nnx":
        from flax import nnx

        params = flatten_tree(nnx.to_pure_dict(nnx.state(adapter.model, nnx.Param)))
        weights = flatten_tree(nnx.to_pure_dict(adapter.weights))
        return ({k.replace("/", "."): tuple(np.shape(v)) for k, v in weights.items()},
                {k.replace("/", ".") for k in params})
    if adapter.framework == "flax.linen":
        flat = flatten_tree(adapter.current())
        shapes = {k.split("/", 1)[1].replace("/", "."): tuple(np.shape(v)) for k, v in flat.items()}
        return shapes, {k.split("/", 1)[1].replace("/", ".") for k in flat if k.startswith("params/")}
    shapes, trainable = {}, set()
    trainable_ids = {id(v) for v in adapter.model.trainable_variables}
    for name, layer in adapter.layers:
        own = {id(w) for child in layer._flatten_layers(include_self=False, recursive=True) for w in child.weights}
        for w in layer.weights:
            if id(w) not in own:
                key = f"{name}.{w.name}"
                shapes[key] = tuple(w.shape)
                if id(w) in trainable_ids:
                    trainable.add(key)
    return shapes, trainable


def foreign_summary(model: Any, example: Any) -> ModelSummary:
    """The per-layer table of a Flax or Keras model, named as capture names its layers.

    Parameters
    ----------
    model : nnx.Module, linen (module, variables), keras.Model
    example : array
        One batch of inputs (shapes are read from a traced call; no compute for JAX).

    Examples
    --------
    >>> print(foreign_summary(nnx_model, x[:2]))                      # doctest: +SKIP
    """
    adapter = _adapter(model)
    example = np.asarray(example) if not isinstance(example, (dict, tuple, list)) else example
    shapes, calls = _output_shapes(adapter, example)
    params, trainable = _param_tree(adapter)
    names = adapter.layer_names()
    types = adapter.layer_types()
    leaves = set(adapter.leaf_names())
    rows = []
    for name in names:
        ancestors = [a for a in names if name.startswith(a + ".")]
        own = {k: s for k, s in params.items() if k.rsplit(".", 1)[0] == name}
        total = sum(int(np.prod(s)) for k, s in params.items() if k.startswith(name + "."))
        kernel = next((s for k, s in own.items() if k.endswith(".kernel")), None)
        shape = shapes.get(name)
        macs = 0
        if kernel is not None and shape is not None:
            positions = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            macs = int(np.prod(kernel)) * positions * calls.get(name, 1)
        rows.append({"name": name, "type": types.get(name, "Layer"), "depth": len(ancestors),
                     "parent": max(ancestors, key=len) if ancestors else "", "is_leaf": name in leaves,
                     "output_shape": shape, "calls": calls.get(name, 1),
                     "params": sum(int(np.prod(s)) for s in own.values()), "params_total": total,
                     "trainable": sum(int(np.prod(s)) for k, s in own.items() if k in trainable),
                     "macs": macs})
    table = pd.DataFrame(rows, columns=COLUMNS)
    n_total = sum(int(np.prod(s)) for s in params.values())
    n_train = sum(int(np.prod(s)) for k, s in params.items() if k in trainable)
    macs = int(table.loc[table.is_leaf, "macs"].sum()) if len(table) else 0
    first = example if not isinstance(example, (dict, tuple, list)) else None
    return ModelSummary(table, n_total, n_train, macs,
                        tuple(np.shape(first)[1:]) if first is not None else None,
                        f"{adapter.framework}:{adapter.model_id}")


def framework_summary(model: Any, example: Any) -> str:
    """The framework's own summary text: ``nnx.tabulate``, linen ``tabulate``, ``model.summary()``."""
    adapter = _adapter(model)
    if adapter.framework == "flax.nnx":
        from flax import nnx

        return str(nnx.tabulate(adapter.model, np.asarray(example), depth=3, console_kwargs={"width": 120}))
    if adapter.framework == "flax.linen":
        import jax

        return str(adapter.module.tabulate(jax.random.key(0), np.asarray(example), console_kwargs={"width": 120}))
    lines: list[str] = []
    adapter.model.summary(print_fn=lambda s, **_: lines.append(s), line_length=110)
    return "\n".join(lines)


def save_architecture(run_dir: str | Path, model: Any, example: Any) -> dict[str, Any]:
    """Write the architecture step's summaries of a Flax or Keras model into the run folder.

    The files are ``results/architecture/{summary.csv, summary.txt, framework_summary.txt, summary.json}``, as
    the architecture step writes them for torch models (no graph drawing; the step draws the layer costs).
    """
    run_dir = Path(run_dir)
    target = run_dir / "results" / "architecture"
    target.mkdir(parents=True, exist_ok=True)
    summary = foreign_summary(model, example)
    summary.table.to_csv(target / "summary.csv", index=False)
    (target / "summary.txt").write_text(str(summary) + "\n")
    try:
        text = framework_summary(model, example)
    except (ImportError, TypeError, ValueError, RuntimeError, AttributeError) as err:  # a bonus, never a failure
        text = f"(the framework's summary failed: {err})"
    (target / "framework_summary.txt").write_text(text + "\n")
    out = {"method": summary.model_type.split(":")[0] + " trace", "layers": len(summary.table),
           "total_params": summary.total_params, "total_macs": summary.total_macs}
    from neuralatlas.results import write_json

    write_json(target / "summary.json", out, kind="architecture_summary")
    return out
