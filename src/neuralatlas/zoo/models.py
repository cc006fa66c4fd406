"""Small reference models built from plain ``torch.nn``, with readable layer names.

Every layer a figure or a capture may name is its own module, activations included, so
``model.named_modules()`` reads like the architecture:

- ``mlp``: ``flatten``, ``fc1``, ``relu1``, ``fc2``, ``relu2``, ..., ``out``
- ``cnn``: ``conv1``, ``relu1``, ``pool1``, ``conv2``, ``relu2``, ``pool2``, ...,
  ``flatten``, ``fc1``, ``relu_fc1``, ``out``
- ``vgg``: ``block1.conv1``, ``block1.relu1``, ``block1.conv2``, ``block1.relu2``,
  ``block1.pool``, ..., ``flatten``, ``classifier.fc1``, ``classifier.relu1``,
  ``classifier.dropout1``, ..., ``classifier.out``
- ``vgg16``: torchvision's layout exactly (``features.0`` ... ``features.30``, ``avgpool``,
  ``classifier.0`` ... ``classifier.6``) so torchvision weight files load unchanged.

The naming scheme: an activation is named after its kind (``relu``, ``tanh``, ...) and
carries the number of the layer it follows (``fc2`` -> ``relu2``). Where one namespace
holds two kinds of numbered layers (the CNN's convolutions and its dense head), the
activation of the second kind also names that layer (``fc1`` -> ``relu_fc1``). The last
layer, producing the logits, is always ``out``.

Every builder takes ``seed``: the same seed gives identical weights, and the caller's
global random state is left untouched. Models come back in training mode; calling
``.eval()`` is the caller's choice.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from neuralatlas.errors import did_you_mean
from neuralatlas.zoo.errors import ModelError

#: Attribute under which a model remembers how it was built (read by ``train``).
SPEC_ATTR = "_neuralatlas_spec"

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class MLP(nn.Sequential):
    """Fully connected classifier; see :func:`mlp`."""


class CNN(nn.Sequential):
    """Small convolutional classifier; see :func:`cnn`."""


class VGG(nn.Sequential):
    """VGG-style classifier of conv blocks; see :func:`vgg`."""


class VGG16(nn.Module):
    """VGG16 with torchvision's module layout and parameter names; see :func:`vgg16`."""

    def __init__(self, n_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in _VGG16_CONFIG:
            if isinstance(v, str):  # "M", the only text in the config
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)

    def init_weights(self) -> None:
        """The initialisation torchvision uses (He-normal convolutions, N(0, 0.01) linear layers)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:  # VGG16's convolutions all have one
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


# torchvision's configuration "D": channels per conv, "M" a 2x2 max pool.
_VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under ``torch.manual_seed(seed)`` and restore the global RNG after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def remember(model: ModuleT, builder: str, kwargs: Mapping[str, Any], seed: int) -> ModuleT:
    """Attach how ``model`` was built, so a run folder can rebuild it (``model.json``)."""
    setattr(model, SPEC_ATTR, {"builder": builder, "kwargs": _jsonable(dict(kwargs)), "seed": int(seed)})
    return model


def _jsonable(value: Any) -> Any:
    # Tuples become lists so the spec equals what a JSON round trip gives back.
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _activation(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ModelError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}."
            + did_you_mean(name, ACTIVATIONS)
        ) from None


def _as_tuple(value: int | Sequence[int] | None, what: str) -> tuple[int, ...]:
    if value is None:
        return ()
    out = (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)
    if any(v < 1 for v in out):
        raise ModelError(f"{what} must be positive integers, got {value!r}.")
    return out


def _image_shape(input_shape: Sequence[int], builder: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ModelError(
            f"{builder} needs input_shape (channels, height, width), got {tuple(input_shape)!r};"
            " for flat inputs or 2-D points use mlp."
        )
    return shape  # type: ignore[return-value]


def _pooled(size: int, n_pools: int) -> int:
    # Pools use ceil_mode so a 1-pixel map stays 1 pixel instead of vanishing.
    for _ in range(n_pools):
        size = math.ceil(size / 2)
    return size


def mlp(
    input_shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 10,
    hidden: int | Sequence[int] = (64, 32),
    activation: str = "relu",
    seed: int = 0,
) -> MLP:
    """A fully connected classifier: ``flatten``, ``fc1``, ``relu1``, ..., ``out``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one sample: ``(C, H, W)`` for images, ``(2,)`` for 2-D points.
    n_classes : int
        Number of logits of ``out``.
    hidden : int or sequence of int
        Widths of the hidden layers ``fc1``, ``fc2``, ...; ``()`` gives a linear model.
    activation : str
        One of ``ACTIVATIONS`` (``"relu"``, ``"tanh"``, ``"gelu"``, ...). Activation
        modules are named after it: ``relu1`` follows ``fc1``, ``tanh1`` with ``"tanh"``.
    seed : int
        Seed of the initial weights; the same seed gives identical weights.

    Returns
    -------
    MLP
        An ``nn.Sequential`` in training mode.

    Raises
    ------
    ModelError
        For an unknown activation or non-positive sizes.

    Example
    -------
    >>> model = mlp((2,), n_classes=3, hidden=(16,), activation="tanh")
    >>> [name for name, _ in model.named_children()]
    ['flatten', 'fc1', 'tanh1', 'out']
    """
    act = _activation(activation)
    widths = _as_tuple(hidden, "hidden")
    in_features = math.prod(int(s) for s in input_shape)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    with seeded(seed):
        for i, width in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(in_features, width)
            layers[f"{activation}{i}"] = act()
            in_features = width
        layers["out"] = nn.Linear(in_features, int(n_classes))
        model = MLP(layers)
    return remember(model, "mlp", dict(input_shape=input_shape, n_classes=n_classes, hidden=widths,
                                       activation=activation), seed)


def cnn(
    input_shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 10,
    channels: int | Sequence[int] = (16, 32),
    hidden: int | None = 64,
    seed: int = 0,
) -> CNN:
    """A small convolutional classifier.

    Each stage ``k`` is ``convk`` (3×3, padding 1), ``reluk`` and ``poolk`` (2×2 max pool,
    ceil mode, so an 8×8 digit survives several stages); then ``flatten``, ``fc1``,
    ``relu_fc1`` (left out when ``hidden`` is ``None``) and ``out``.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)``; 1×8×8 digits, 1×28×28 MNIST and 3×32×32 CIFAR all work.
    n_classes : int
        Number of logits.
    channels : int or sequence of int
        Output channels of ``conv1``, ``conv2``, ...
    hidden : int or None
        Width of the dense layer ``fc1``; ``None`` connects ``flatten`` to ``out``.
    seed : int
        Seed of the initial weights.

    Returns
    -------
    CNN
        An ``nn.Sequential`` in training mode.

    Example
    -------
    >>> model = cnn((1, 28, 28))
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    c, h, w = _image_shape(input_shape, "cnn")
    widths = _as_tuple(channels, "channels")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    with seeded(seed):
        for i, width in enumerate(widths, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c, width, kernel_size=3, padding=1)
            layers[f"relu{i}"] = nn.ReLU()
            layers[f"pool{i}"] = nn.MaxPool2d(2, ceil_mode=True)
            c = width
        layers["flatten"] = nn.Flatten()
        features = c * _pooled(h, len(widths)) * _pooled(w, len(widths))
        if hidden:
            layers["fc1"] = nn.Linear(features, int(hidden))
            layers["relu_fc1"] = nn.ReLU()
            features = int(hidden)
        layers["out"] = nn.Linear(features, int(n_classes))
        model = CNN(layers)
    return remember(model, "cnn", dict(input_shape=tuple(input_shape),
                                       n_classes=n_classes, channels=widths, hidden=hidden), seed)


def vgg(
    input_shape: Sequence[int] = (3, 32, 32),
    n_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_block: int = 2,
    hidden: int | Sequence[int] = 256,
    dropout: float = 0.5,
    seed: int = 0,
) -> VGG:
    """A VGG-style classifier: blocks of 3×3 convolutions, each block ending in a pool.

    Layer names: ``block{b}.conv{k}``, ``block{b}.relu{k}`` (``k`` = 1..convs_per_block),
    ``block{b}.pool``; then ``flatten``; then ``classifier.fc{k}``, ``classifier.relu{k}``,
    ``classifier.dropout{k}`` (only when ``dropout > 0``) and ``classifier.out``.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)``; pools use ceil mode so 8×8 inputs pass three blocks.
    n_classes : int
        Number of logits.
    widths : sequence of int
        Channels of each block; one block per entry.
    convs_per_block : int
        Convolutions (each followed by a ReLU) per block.
    hidden : int or sequence of int
        Widths of the dense layers of the classifier.
    dropout : float
        Dropout after each dense hidden layer (inactive in eval mode).
    seed : int
        Seed of the initial weights.

    Returns
    -------
    VGG
        An ``nn.Sequential`` of ``block1`` ..., ``flatten``, ``classifier``.

    Example
    -------
    >>> model = vgg((3, 32, 32), widths=(8, 16))
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    c, h, w = _image_shape(input_shape, "vgg")
    block_widths = _as_tuple(widths, "widths")
    dense = _as_tuple(hidden, "hidden")
    if int(convs_per_block) < 1:
        raise ModelError(f"convs_per_block must be at least 1, got {convs_per_block!r}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ModelError(f"dropout must lie in [0, 1), got {dropout!r}.")
    children: OrderedDict[str, nn.Module] = OrderedDict()
    with seeded(seed):
        for b, width in enumerate(block_widths, start=1):
            block: OrderedDict[str, nn.Module] = OrderedDict()
            for k in range(1, int(convs_per_block) + 1):
                block[f"conv{k}"] = nn.Conv2d(c, width, kernel_size=3, padding=1)
                block[f"relu{k}"] = nn.ReLU()
                c = width
            block["pool"] = nn.MaxPool2d(2, ceil_mode=True)
            children[f"block{b}"] = nn.Sequential(block)
        children["flatten"] = nn.Flatten()
        features = c * _pooled(h, len(block_widths)) * _pooled(w, len(block_widths))
        head: OrderedDict[str, nn.Module] = OrderedDict()
        for k, width in enumerate(dense, start=1):
            head[f"fc{k}"] = nn.Linear(features, width)
            head[f"relu{k}"] = nn.ReLU()
            if dropout > 0:
                head[f"dropout{k}"] = nn.Dropout(float(dropout))
            features = width
        head["out"] = nn.Linear(features, int(n_classes))
        children["classifier"] = nn.Sequential(head)
        model = VGG(children)
    return remember(model, "vgg", dict(input_shape=tuple(input_shape), n_classes=n_classes,
                                       widths=block_widths, convs_per_block=convs_per_block,
                                       hidden=dense, dropout=dropout), seed)


def vgg16(
    n_classes: int = 1000,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> VGG16:
    """VGG16 with torchvision's exact module layout, so its weight files load unchanged.

    ``features.0`` ... ``features.30`` (13 convolutions with in-place ReLUs, 5 max pools),
    ``avgpool`` (``AdaptiveAvgPool2d((7, 7))``), ``classifier.0`` ... ``classifier.6``
    (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear). The adaptive pool lets inputs
    from 32×32 upwards through; ImageNet weights expect 3×224×224.

    Parameters
    ----------
    n_classes : int
        Logits of ``classifier.6``; must match the weights file when one is given.
    weights : path or state dict, optional
        A torchvision VGG16 ``state_dict`` saved with ``torch.save`` (e.g.
        ``vgg16-397923af.pth``). Loaded with ``weights_only=True`` and ``strict=True``.
        Without it the weights are initialised as torchvision does, from ``seed``.
    seed : int
        Seed of the initial weights when ``weights`` is ``None``.

    Returns
    -------
    VGG16
        In training mode (dropout active): call ``.eval()`` before analysing.

    Raises
    ------
    ModelError
        When the weights file is missing, not a state dict, or does not fit the layout.

    Example
    -------
    >>> model = vgg16(weights="~/models/vgg16-397923af.pth").eval()  # doctest: +SKIP
    """
    if weights is None:
        with seeded(seed):
            model = VGG16(int(n_classes))
            model.init_weights()
    else:
        state = _load_state_dict(weights)
        # Skip the (slow, pointless) random initialisation of 138 M parameters.
        with torch.device("meta"):
            model = VGG16(int(n_classes))
        model = model.to_empty(device="cpu")
        _load_strict(model, state, f"VGG16 weights {_describe(weights)}",
                     hint="pass n_classes matching the weights (vgg16(n_classes=...)).")
    # The weights file is not part of the spec: checkpoints hold the weights of a run.
    return remember(model, "vgg16", dict(n_classes=n_classes), seed)


def _describe(weights: object) -> str:
    return repr(str(weights)) if isinstance(weights, (str, os.PathLike)) else "(state dict)"


def torch_load(path: str | os.PathLike[str], map_location: Any = "cpu", what: str = "Checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` whose failures name the file and the fix.

    See :func:`neuralatlas.zoo.checkpoints.read_state_dict`, which this reads through.

    Raises
    ------
    ModelError
    """
    from neuralatlas.zoo.checkpoints import _torch_load

    return _torch_load(Path(path), map_location, trust_pickle=False, what=what)


def _load_state_dict(weights: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> Mapping[str, Any]:
    from neuralatlas.zoo.checkpoints import read_state_dict, unwrap_state_dict

    if isinstance(weights, Mapping):
        return unwrap_state_dict(weights)
    return read_state_dict(weights)


def _load_strict(model: nn.Module, state: Mapping[str, Any], what: str, hint: str = "") -> None:
    """``load_state_dict(strict=True)`` with a message that names the keys and shapes at fault."""
    from neuralatlas.zoo.checkpoints import load_strict

    load_strict(model, state, what, hint)
