"""Capture an iNNtrospect corpus: its images through a PyTorch model into an ActivationStore.

Reading the corpus is the store's (:func:`neuralatlas.store.innspect.read_innspect_corpus`);
running a model over it is capture's, so the function lives here (it was
``neuralatlas.store.import_innspect_corpus`` before 0.2, which still works, with a warning).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralatlas.store.core import ActivationStore
from neuralatlas.store.innspect import read_innspect_corpus


def import_innspect_corpus(corpus_csv: str | Path, model: Any, out: str | Path, *,
                           layers: str | Sequence[str] | None = None, gradients: bool = True,
                           target: Any = "prediction", channels_last: bool = True,
                           classes: Sequence[str] | None = None, **capture_kwargs: Any) -> ActivationStore:
    """Capture a PyTorch ``model`` over an iNNtrospect corpus into a store at ``out``.

    iNNtrospect's own step (TensorFlow) records activations and the gradient of the predicted
    class's logit; the defaults here do the same (``target="prediction"``). The corpus groups
    become the sample table's ``group`` column, so ``naps(store, by="group")`` gives
    iNNtrospect's NAPs.

    Example
    -------
    >>> store = import_innspect_corpus("corpus/corpus.csv", model, out="run/acts.zarr")  # doctest: +SKIP
    """
    from neuralatlas.capture import capture

    data = read_innspect_corpus(corpus_csv, channels_last=channels_last, classes=classes)
    return capture(model, data, layers=layers, out=out, gradients=gradients, target=target,
                   groups=data.groups, **capture_kwargs)
