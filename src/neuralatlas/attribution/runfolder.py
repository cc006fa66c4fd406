"""Helpers of attribution on a run's model: its token-embedding layer, a spread of its layers.

The run-folder step that was here (``attribute_run``, ``load_run_data``) is
:mod:`neuralatlas.steps.attribution`; the old names keep working for one release with a
DeprecationWarning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralatlas._moved import moved_attribute_getter
from neuralatlas.errors import AnalysisError

EMBEDDING_NAMES = ("word_embeddings", "wte", "embed_tokens", "tok_embeddings", "token_embedding")


def embedding_layer(model: Any) -> str:
    """The name of the model's token-embedding layer (what text attribution explains through)."""
    from torch import nn

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if not names:
        raise AnalysisError(f"{type(model).__name__} has no nn.Embedding layer; pass layer=... (the layer that"
                            " turns token ids into vectors).")
    for wanted in EMBEDDING_NAMES:
        hits = [n for n in names if n.split(".")[-1] == wanted]
        if hits:
            return hits[0]
    return names[0]


SANITY_TEXT_LAYERS = 8  # layers randomised (cascading) in the sanity check of a text model


def spread_layers(model: Any, k: int) -> list[str]:
    """``k`` of the model's layers with weights, evenly spread from first to last (both kept)."""
    from neuralatlas.attribution.sanity import randomisable_layers

    names = randomisable_layers(model)
    if len(names) <= k:
        return names
    picks = np.unique(np.round(np.linspace(0, len(names) - 1, k)).astype(int))
    return [names[i] for i in picks]


# the run-folder step moved up to neuralatlas.steps.attribution (0.2): its old names, by the root table
__getattr__ = moved_attribute_getter(__name__)
