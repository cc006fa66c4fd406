"""Build a model by name or ``"package.module:function"`` spec, and describe its layers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from neuralatlas.errors import did_you_mean
from neuralatlas.zoo.efficientnet import efficientnet_lite0
from neuralatlas.zoo.errors import ModelError
from neuralatlas.zoo.models import SPEC_ATTR, cnn, mlp, remember, seeded, vgg, vgg16

#: Built-in model names and their builders (what ``build`` and the CLI accept).
BUILTIN_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
    "vgg": vgg,
    "vgg16": vgg16,
}

#: Built-in models that come with their weights (and a ModelCard): nothing to train.
PRETRAINED_MODELS: dict[str, Callable[..., nn.Module]] = {
    "efficientnet_lite0": efficientnet_lite0,
}


def build(name_or_spec: str, **kwargs: Any) -> nn.Module:
    """Build a built-in model by name, or the user's model from a ``module:function`` spec.

    The model remembers how it was built (``model._neuralatlas_spec``), so :func:`train`
    can write ``model.json`` and :func:`load_run` can rebuild it later.

    Parameters
    ----------
    name_or_spec : str
        A name in ``BUILTIN_MODELS`` (``"mlp"``, ``"cnn"``, ``"vgg"``, ``"vgg16"``) or
        ``"package.module:function"`` naming a callable (function or class) that returns an
        ``nn.Module``; the module must be importable (installed or on ``sys.path``).
    **kwargs
        Arguments of the builder. ``seed`` (default 0) seeds the initial weights; a user
        builder that takes no ``seed`` argument is called under ``torch.manual_seed(seed)``
        with the global random state restored afterwards.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ModelError
        For an unknown name (listing the built-ins), a spec whose module cannot be
        imported or has no such attribute, arguments the builder does not take, or a
        builder that returns something other than an ``nn.Module``.

    Example
    -------
    >>> model = build("mlp", hidden=(32,), seed=1)
    >>> model = build("my_project.models:resnet_tiny", n_classes=10)  # doctest: +SKIP
    """
    if not isinstance(name_or_spec, str):
        raise ModelError(f"A model is named by a string, got {type(name_or_spec).__name__}.")
    if name_or_spec in BUILTIN_MODELS or name_or_spec in PRETRAINED_MODELS:
        builder = BUILTIN_MODELS.get(name_or_spec) or PRETRAINED_MODELS[name_or_spec]
        _check_arguments(builder, kwargs, name_or_spec)
        return builder(**kwargs)
    if ":" not in name_or_spec:
        raise ModelError(
            f"Unknown model {name_or_spec!r}; built-in models are {sorted(BUILTIN_MODELS)},"
            f" pretrained ones {sorted(PRETRAINED_MODELS)}."
            + did_you_mean(name_or_spec, [*BUILTIN_MODELS, *PRETRAINED_MODELS])
            + " For your own model pass 'package.module:function'."
        )
    builder = _resolve(name_or_spec)
    seed = int(kwargs.pop("seed", 0))
    _check_arguments(builder, kwargs, name_or_spec)
    if _accepts(builder, "seed"):
        model = builder(**kwargs, seed=seed)
    else:
        with seeded(seed):
            model = builder(**kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(f"{name_or_spec!r} returned an object of type {type(model).__name__}, not a torch.nn.Module.")
    return remember(model, name_or_spec, kwargs, seed)


def _resolve(spec: str) -> Callable[..., Any]:
    from neuralatlas.specs import resolve_callable

    return resolve_callable(spec, error=ModelError, what="model spec", makes="or class that builds a model",
                            import_hint="; install it or add its folder to PYTHONPATH.")


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C callables have none
        return None


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    sig = _signature(fn)
    if sig is None:
        return False
    return name in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def _check_arguments(fn: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    sig = _signature(fn)
    if sig is None:
        return
    try:
        sig.bind(**kwargs)
    except TypeError as err:
        valid = [n for n, p in sig.parameters.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [k for k in kwargs if k not in sig.parameters]
        hint = "".join(did_you_mean(k, valid) for k in unknown)
        raise ModelError(f"Bad arguments for model {what!r}: {err}. It takes {valid}.{hint}") from err


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    # Modes are restored per module: a model may hold submodules in a mode of their own.
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def layer_table(model: nn.Module, input_shape: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One row per named submodule: its name, type, output shape and parameter count.

    Runs one forward pass on zeros (batch 2) in eval mode without gradients; hooks are
    removed and every module's training mode is restored afterwards, even on error.

    Parameters
    ----------
    model : torch.nn.Module
    input_shape : sequence of int, optional
        Shape of one sample, e.g. ``(1, 8, 8)``. Defaults to the ``input_shape`` the model
        was built with (zoo models); VGG16 defaults to ``(3, 224, 224)``.

    Returns
    -------
    list of dict
        In ``named_modules()`` order (the root left out), each with ``name``, ``type``
        (class name), ``output_shape`` (one sample's shape, without the batch dimension; a
        list of shapes for tuple outputs; ``None`` for a module the forward did not call)
        and ``n_params`` (parameters the module holds itself, so the column sums to the
        model's total).

    Raises
    ------
    ModelError
        When no input shape is known, or the forward pass fails on that shape.

    Example
    -------
    >>> rows = layer_table(mlp(), (1, 8, 8))
    >>> rows[1]["name"], rows[1]["output_shape"], rows[1]["n_params"]
    ('fc1', (64,), 4160)
    """
    shape = _default_input_shape(model) if input_shape is None else tuple(int(s) for s in input_shape)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    shapes: dict[str, Any] = {}
    handles = []

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            shapes.setdefault(name, _shape_of(output))  # a shared module: its first call
        return hook

    named = [(n, m) for n, m in model.named_modules() if n]
    try:
        for name, module in named:
            handles.append(module.register_forward_hook(record(name)))
        with _eval_mode(model), torch.no_grad():
            try:
                model(torch.zeros((2, *shape), device=device, dtype=dtype))
            except Exception as err:
                raise ModelError(
                    f"{type(model).__name__} cannot run on inputs of shape {(2, *shape)}"
                    f" (input_shape={shape}): {err}"
                ) from err
    finally:
        for handle in handles:
            handle.remove()
    return [
        {"name": name, "type": type(module).__name__, "output_shape": shapes.get(name),
         "n_params": sum(p.numel() for p in module.parameters(recurse=False))}
        for name, module in named
    ]


def _shape_of(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    if isinstance(output, (tuple, list)):
        return [_shape_of(o) for o in output]
    return None


def _default_input_shape(model: nn.Module) -> tuple[int, ...]:
    spec = getattr(model, SPEC_ATTR, None) or {}
    if "input_shape" in spec.get("kwargs", {}):
        return tuple(int(s) for s in spec["kwargs"]["input_shape"])
    if spec.get("builder") == "vgg16":
        return (3, 224, 224)
    card = getattr(model, "card", None)
    if card is not None and hasattr(card, "input_shape"):
        return tuple(card.input_shape)
    raise ModelError(
        f"No input shape known for {type(model).__name__}; pass input_shape, e.g. (3, 32, 32)."
    )
