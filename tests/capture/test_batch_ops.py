"""Gradient targets: a named target that cannot mean what it says is an error naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import neuralatlas as na
from neuralatlas.capture.batch_ops import target_values
from neuralatlas.data import ArrayDataset
from neuralatlas.errors import CaptureError


def test_label_target_beyond_the_logits_is_named_not_a_torch_index_error(tmp_path):
    # before: RuntimeError "index 4 is out of bounds for dimension 1 with size 2" from gather
    # (on CUDA a device-side assert): the data's five classes do not fit a two-logit model
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.normal(size=(10, 3)).astype(np.float32), np.arange(10) % 5, classes=list("abcde"))
    model = nn.Linear(3, 2)
    for target in ("label", "loss"):
        with pytest.raises(CaptureError, match="a label is 4 and the model output has 2 classes"):
            na.capture(model, data, out=tmp_path / f"{target}.zarr", gradients=True, target=target)


def test_label_target_in_range_is_the_label_logit():
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert target_values("label", logits, torch.tensor([2, 0])).tolist() == [3.0, 4.0]


class Tokens(nn.Module):
    """Token ids to per-token states ``[B, T, D]``; called as model(**{input_ids, attention_mask})."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 4)
        self.proj = nn.Linear(4, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.emb(input_ids)).mean(1)


class Pairs(torch.utils.data.Dataset):
    """Items ({input_ids, attention_mask}, label) from fixed arrays."""

    def __init__(self, ids: np.ndarray, mask: np.ndarray) -> None:
        self.ids, self.mask = ids, mask

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return {"input_ids": torch.tensor(self.ids[i]), "attention_mask": torch.tensor(self.mask[i])}, 0


@pytest.mark.parametrize("side", ["right", "left"])
def test_first_and_last_token_are_the_real_ones_under_either_padding(tmp_path, side):
    # before: last_token took position mask.sum() - 1, under left padding (decoder LMs) a pad
    # or a middle token; first_token took position 0, under left padding a pad
    rng = np.random.default_rng(0)
    lengths = np.array([2, 5, 3, 1])
    width = 5
    real = np.arange(width)[None] < lengths[:, None]
    mask = (real if side == "right" else real[:, ::-1]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(1, 20, (4, width)), 0)
    torch.manual_seed(0)
    model = Tokens().eval()
    with torch.no_grad():
        states = model.proj(model.emb(torch.from_numpy(ids))).numpy()
    first = np.argmax(mask, 1)
    last = width - 1 - np.argmax(mask[:, ::-1], 1)
    for mode, pos in (("last_token", last), ("first_token", first)):
        store = na.capture(model, Pairs(ids, mask), layers=["proj"], reduce=mode, out=tmp_path / f"{mode}.zarr")
        np.testing.assert_allclose(np.asarray(store.activations("proj")), states[np.arange(4), pos], atol=1e-6)


def test_first_token_of_a_layer_with_other_positions_than_the_mask_is_position_0():
    """A layer longer than the mask (a prepended token): the mask's positions are not its own."""
    from neuralatlas.capture.batch_ops import apply_reduction

    t = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)  # 4 positions
    left_padded = torch.tensor([[0, 0, 1], [0, 1, 1]])              # a mask of 3
    np.testing.assert_array_equal(apply_reduction(t, "first_token", left_padded).numpy(), t[:, 0].numpy())
    same_length = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    np.testing.assert_array_equal(apply_reduction(t, "first_token", same_length).numpy(),
                                  t[torch.arange(2), torch.tensor([2, 1])].numpy())
