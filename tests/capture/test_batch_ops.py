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
