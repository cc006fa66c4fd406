"""Architecture tests run tiny models: one thread is faster than two fighting for
two shared cores (thread start-up dominates an 8×8 forward), so use one and restore after."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
