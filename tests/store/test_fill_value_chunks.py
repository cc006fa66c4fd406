"""Chunks whose values all equal the fill value must still be written.

zarr keeps ``write_empty_chunks`` out of the array metadata, so an array reopened from its
group deletes a chunk that becomes all fill value. A dead ReLU layer, zero gradients or a
chunk of class-0 labels would then look like a lost chunk to the integrity check, and every
resume would recompute it.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

import neuralatlas as na
from neuralatlas.store import ActivationStore


class _Zeros(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int):
        return torch.full((4,), -1.0 - i), 0          # every label 0, the fill value of labels


def test_all_fill_value_chunks_are_written_and_resume_finds_nothing_missing(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()                          # negative inputs: the ReLU is dead everywhere
    out = tmp_path / "z.zarr"
    store = na.capture(model, _Zeros(), out=out, batch_size=8, chunk_rows=8, gradients=True,
                       target=lambda o, y: o.sum(1), device="cpu")
    assert np.all(np.asarray(store.activations("1")) == 0)
    assert np.all(np.asarray(store.gradients("0")) == 0)
    files = sorted(p.name for p in (out / "acts" / "1").glob("c.*"))
    assert files == ["c.0.0", "c.1.0", "c.2.0"]        # every chunk is on disk, zeros or not
    assert ActivationStore.open(out).check_integrity().ok
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no "recomputing N chunk(s)" on resume
        na.capture(model, _Zeros(), out=out, batch_size=8, chunk_rows=8, gradients=True,
                   target=lambda o, y: o.sum(1), device="cpu")
