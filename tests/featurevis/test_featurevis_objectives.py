"""Objectives: values checked by hand on known tensors, composition, errors."""

from __future__ import annotations

import pytest
import torch

from neuralatlas.errors import AnalysisError
from neuralatlas.featurevis import objectives as O
from neuralatlas.featurevis.objectives import INPUT, OUTPUT


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "conv": torch.randn(4, 6, 5, 5, generator=g),
        "fc": torch.randn(4, 7, generator=g),
        "tok": torch.randn(4, 3, 7, generator=g),
        OUTPUT: torch.randn(4, 10, generator=g),
        INPUT: torch.rand(4, 1, 8, 8, generator=g),
    }


def test_unit_objectives_read_the_right_numbers(tensors):
    conv, fc, tok, logits = tensors["conv"], tensors["fc"], tensors["tok"], tensors[OUTPUT]
    torch.testing.assert_close(O.channel("conv", 2)(tensors), conv[:, 2].mean((1, 2)))
    torch.testing.assert_close(O.channel("fc", 3)(tensors), fc[:, 3])
    torch.testing.assert_close(O.channel("tok", 5)(tensors), tok[:, :, 5].mean(1))
    torch.testing.assert_close(O.neuron("conv", 1)(tensors), conv[:, 1, 2, 2])
    torch.testing.assert_close(O.neuron("conv", 1, x=4, y=0)(tensors), conv[:, 1, 0, 4])
    torch.testing.assert_close(O.neuron("fc", 6)(tensors), fc[:, 6])
    torch.testing.assert_close(O.class_logit(7)(tensors), logits[:, 7])
    torch.testing.assert_close(O.layer("conv")(tensors), conv.pow(2).flatten(1).mean(1))


def test_a_sequence_of_units_gives_image_i_unit_i(tensors):
    obj = O.channel("conv", [5, 0, 3, 3])
    assert obj.n_images == 4
    assert obj.image_labels(4) == ["conv:5", "conv:0", "conv:3", "conv:3"]
    expected = torch.stack([tensors["conv"][i, u].mean() for i, u in enumerate([5, 0, 3, 3])])
    torch.testing.assert_close(obj(tensors), expected)
    logits = O.class_logit(range(4))
    torch.testing.assert_close(logits(tensors), tensors[OUTPUT].diagonal()[:4])


def test_arithmetic_composes_values_and_names(tensors):
    a, b = O.channel("conv", 5), O.channel("conv", 1)
    obj = a - 0.5 * b
    assert obj.name == "channel(conv, 5) - 0.5 * channel(conv, 1)"
    torch.testing.assert_close(obj(tensors), a(tensors) - 0.5 * b(tensors))
    torch.testing.assert_close((2 * a + b / 4 - 1)(tensors), 2 * a(tensors) + b(tensors) / 4 - 1)
    torch.testing.assert_close((-a)(tensors), -a(tensors))
    torch.testing.assert_close(sum([a, b])(tensors), a(tensors) + b(tensors))
    assert obj.keys == {"conv"}
    assert (a + O.class_logit(1)).layers == ["conv"]
    assert (a - (a + b)).name == "channel(conv, 5) - (channel(conv, 5) + channel(conv, 1))"


def test_image_counts_combine_or_refuse():
    many = O.channel("conv", range(4))
    assert (many + O.channel("conv", 2)).n_images == 4
    assert (many - 0.1 * O.diversity("conv")).n_images == 4
    assert (O.channel("conv", 1) + O.layer("conv")).n_images == 1
    with pytest.raises(AnalysisError, match="same number of images"):
        many + O.class_logit(range(3))
    with pytest.raises(AnalysisError, match="weighted by numbers"):
        many * O.layer("conv")


def test_unit_out_of_range_names_the_valid_range(tensors):
    with pytest.raises(AnalysisError, match=r"0\.\.5"):
        O.channel("conv", 6)(tensors)
    with pytest.raises(AnalysisError, match="outside"):
        O.neuron("conv", 0, x=9)(tensors)
    with pytest.raises(AnalysisError, match="empty"):
        O.channel("conv", [])


def test_diversity_is_minus_mean_similarity():
    same = {"c": torch.ones(3, 2, 4, 4)}
    torch.testing.assert_close(O.diversity("c")(same), -torch.ones(3))
    # Two images whose Gram matrices are orthogonal (each excites a different channel).
    x = torch.zeros(2, 2, 3, 3)
    x[0, 0], x[1, 1] = 1.0, 1.0
    torch.testing.assert_close(O.diversity("c")({"c": x}), torch.zeros(2))
    dense = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    sim = 1 / 2 ** 0.5
    torch.testing.assert_close(O.diversity("d")({"d": dense}), torch.tensor([-sim, -sim]))


def test_regularisers_match_hand_values():
    x = torch.zeros(1, 1, 2, 3)
    x[0, 0, 0] = torch.tensor([0.0, 1.0, 0.0])
    t = {INPUT: x}
    # |dx|: row 0 has 1, 1; row 1 zeros -> mean over 4 = 0.5; |dy|: 0, 1, 0 -> 1/3.
    torch.testing.assert_close(O.total_variation()(t), torch.tensor([0.5 + 1 / 3]))
    torch.testing.assert_close(O.l1(0.5)(t), torch.tensor([0.5]))
    torch.testing.assert_close(O.l2()(t), torch.tensor([(1 / 6) ** 0.5]))


def test_short_text_forms():
    assert O.as_objective("conv2:5").name == "channel(conv2, 5)"
    assert O.as_objective("block1.conv1:3").name == "channel(block1.conv1, 3)"
    assert O.as_objective("logit:3").name == "class_logit(3)"
    assert O.as_objective("layer:conv2").name == "layer(conv2)"
    assert O.as_objective("neuron:fc1:2").name == "neuron(fc1, 2)"
    with pytest.raises(AnalysisError, match="LAYER:CHANNEL"):
        O.as_objective("conv2")
