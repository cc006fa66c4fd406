"""Ready-made ``output=`` and ``target=`` functions for models without class logits.

:func:`~neuralatlas.attribution.attribute` explains one score per sample. For a classifier
that is a logit; for other models it is something the user defines on the output:

- ``output=last_token_logits``: a causal LM's ``[B, T, vocab]`` logits at each sample's
  last real position (from the attention mask), as ``[B, vocab]`` class scores; then
  ``target="prediction"`` explains the predicted next token (fixed from the real input) and
  ``target=<id>`` a chosen one.
- ``target=cosine_to(reference)``: the cosine similarity of a sentence encoder's
  mean-pooled embedding (over real tokens) to a reference vector, e.g. another sentence's
  embedding or a topic centroid.
- ``target=probe_logit(head, k)``: the ``k``-th logit of a probe (a linear layer) on the
  pooled embedding.

Every function here takes ``(output, inputs)`` (``output=``) or ``(output, labels, inputs)``
(``target=``) as :func:`attribute` passes them, and works batched and differentiably.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from neuralatlas.capture.hooks import select_tensor
from neuralatlas.errors import AnalysisError


def _hidden(output: Any, what: str) -> torch.Tensor:
    """``last_hidden_state`` (or the one tensor) of an encoder's output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) or hasattr(output, "last_hidden_state"):
        value = output["last_hidden_state"] if isinstance(output, Mapping) and "last_hidden_state" in output \
            else getattr(output, "last_hidden_state", None)
        if isinstance(value, torch.Tensor):
            return value
    return select_tensor(output, what=what)


def _mask(inputs: Any, like: torch.Tensor) -> torch.Tensor:
    if isinstance(inputs, Mapping) and "attention_mask" in inputs:
        return inputs["attention_mask"].to(like.dtype)
    return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device)


def mean_pool(hidden: torch.Tensor, inputs: Any) -> torch.Tensor:
    """``[B, D]`` mean of ``[B, T, D]`` hidden states over real tokens (the attention mask).

    This is sentence-transformers' pooling for all-MiniLM-L6-v2 (before its normalisation).
    """
    if hidden.dim() != 3:
        raise AnalysisError(f"mean pooling needs [batch, tokens, dim] hidden states; got {list(hidden.shape)}."
                            " Pass output='last_hidden_state' (or the tensor of token states).")
    m = _mask(inputs, hidden).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def last_token_logits(output: Any, inputs: Any) -> torch.Tensor:
    """``[B, vocab]`` next-token logits at each sample's last real position.

    For ``output=`` of a causal LM (``[B, T, vocab]`` logits, e.g. GPT-2): the last real
    position is the last 1 of the attention mask (right or left padding alike), or the
    final position without a mask.
    """
    logits = select_tensor(output, what="language model output")  # "logits" of a ModelOutput
    if logits.dim() != 3:
        raise AnalysisError(f"last_token_logits needs [batch, tokens, vocab] logits; got {list(logits.shape)}.")
    if isinstance(inputs, Mapping) and "attention_mask" in inputs:
        m = inputs["attention_mask"].to(torch.long)
        positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
        last = torch.where(m != 0, positions, torch.full_like(positions, -1)).amax(1).clamp_min(0)
    else:
        last = torch.full((logits.shape[0],), logits.shape[1] - 1, dtype=torch.long, device=logits.device)
    return logits[torch.arange(logits.shape[0], device=logits.device), last]


def cosine_to(reference: Any, pool: Callable[[torch.Tensor, Any], torch.Tensor] = mean_pool) -> Callable:
    """A ``target=`` function: cosine similarity of the pooled embedding to ``reference``.

    Parameters
    ----------
    reference : tensor or array ``[D]`` (or ``[B, D]``, one per sample)
        The vector compared with, e.g. the mean embedding of a topic's sentences.
    pool : callable(hidden, inputs) -> [B, D]
        How token states become one vector (default :func:`mean_pool` over real tokens).

    Examples
    --------
    >>> ref = sentence_embeddings[test.labels == 2].mean(0)                       # doctest: +SKIP
    >>> attribute(encoder, test, "ig", layer="embeddings.word_embeddings", target=cosine_to(ref))  # doctest: +SKIP
    """
    ref = torch.as_tensor(reference, dtype=torch.float32)

    def cosine_similarity(output: Any, labels: Any, inputs: Any) -> torch.Tensor:
        pooled = pool(_hidden(output, "encoder output"), inputs)
        r = ref.to(pooled.device, pooled.dtype)
        if r.shape[-1] != pooled.shape[-1]:
            raise AnalysisError(f"reference has {r.shape[-1]} dimensions, the pooled embedding {pooled.shape[-1]}.")
        return torch.nn.functional.cosine_similarity(pooled, r.expand_as(pooled), dim=-1)

    return cosine_similarity


def probe_logit(head: nn.Module, index: int, pool: Callable[[torch.Tensor, Any], torch.Tensor] = mean_pool
                ) -> Callable:
    """A ``target=`` function: logit ``index`` of ``head`` (a probe) on the pooled embedding."""
    def logit(output: Any, labels: Any, inputs: Any) -> torch.Tensor:
        return head(pool(_hidden(output, "encoder output"), inputs))[:, int(index)]

    logit.__name__ = f"probe_logit_{int(index)}"
    return logit
