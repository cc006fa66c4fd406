"""Hugging Face models from a folder on disk (``save_pretrained`` output), offline.

``model: {hf: path/to/dir, task: sequence-classification}`` in a config builds
``AutoModelForSequenceClassification.from_pretrained(dir, local_files_only=True)``. Nothing is
downloaded. ``transformers`` is an optional dependency: ``pip install 'neuralatlas[text]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from neuralatlas.errors import did_you_mean
from neuralatlas.zoo.errors import ModelError
from neuralatlas.zoo.models import remember, seeded

#: ``task`` names and the transformers Auto class each loads; ``None`` is the bare encoder/decoder.
TASKS: dict[str, str] = {
    "base": "AutoModel",
    "feature-extraction": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "question-answering": "AutoModelForQuestionAnswering",
    "image-classification": "AutoModelForImageClassification",
}

#: What ``build`` and ``model.json`` call this builder.
SPEC = "neuralatlas.zoo.hf:hf_model"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelError("A Hugging Face model folder needs the transformers package, which is not installed:"
                         " pip install 'neuralatlas[text]'.") from None
    return transformers


def is_hf_model(model: Any) -> bool:
    """Whether ``model`` is a transformers ``PreTrainedModel`` (without importing transformers)."""
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers")
               for c in type(model).__mro__)


def hf_model(path: str | os.PathLike[str], task: str | None = None, *, seed: int = 0, **kwargs: Any) -> nn.Module:
    """Load a Hugging Face model saved in a folder, without the network.

    Parameters
    ----------
    path : path
        A folder with ``config.json`` and the weights (``model.safetensors`` or
        ``pytorch_model.bin``), as ``model.save_pretrained(path)`` writes it.
    task : str, optional
        A key of :data:`TASKS` (``"sequence-classification"``, ``"causal-lm"``, ...), or the
        name of a transformers class (``"AutoModelForMaskedLM"``, ``"BertModel"``). Default:
        ``AutoModel`` (the base model: hidden states, no task head).
    seed : int
        Seeds the initialisation of weights the folder lacks (a new task head).
    **kwargs
        Passed to ``from_pretrained`` (e.g. ``num_labels=3`` for a new classification head).

    Returns
    -------
    torch.nn.Module
        In eval mode. It remembers how it was built, so a run folder can rebuild it.

    Raises
    ------
    ModelError
        Without transformers (naming the extra to install), for a folder without
        ``config.json``, an unknown task, or weights that fail to load.

    Example
    -------
    >>> net = hf_model("models/all-MiniLM-L6-v2")                       # doctest: +SKIP
    >>> clf = hf_model("models/bert-tiny", task="sequence-classification", num_labels=3)  # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        what = "does not exist" if not folder.exists() else "has no config.json"
        raise ModelError(f"Hugging Face model folder {str(folder)!r} {what}; pass the folder that"
                         " model.save_pretrained(folder) wrote (config.json and the weights).")
    transformers = _transformers()
    class_name = TASKS.get(task or "base", task or "AutoModel")
    cls = getattr(transformers, class_name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelError(f"Unknown Hugging Face task {task!r}.{did_you_mean(str(task), TASKS)} Tasks:"
                         f" {', '.join(TASKS)}, or the name of a transformers class such as"
                         " 'AutoModelForSequenceClassification'.")
    try:
        with seeded(seed):
            model = cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except Exception as err:  # transformers raises OSError, ValueError, KeyError, ...
        raise ModelError(f"Cannot load {class_name} from {str(folder)!r}: {type(err).__name__}: {err}") from err
    model.eval()
    return remember(model, SPEC, {"path": str(folder), "task": task, **kwargs}, seed)
