"""What the steps for a pretrained ImageNet model share: whether they apply, and saying why not."""

from __future__ import annotations

from typing import Any

from neuralatlas.steps._common import write_summary


def skip(ctx: Any, analysis: str, reason: str, reporter: Any) -> dict[str, Any]:
    """A step that does not apply to this model: say why, in the summary and on screen."""
    reporter.message(f"{ctx.name}: {analysis} skipped: {reason}")
    return write_summary(ctx.results_dir(analysis), {"skipped": reason})


def photo_model(ctx: Any) -> str | None:
    """Why the photo steps do not apply to this model (``None``: they do)."""
    from neuralatlas.zoo.efficientnet import model_card

    card = model_card(ctx.model)
    if card is None or card.input_shape[0] != 3:
        return "needs an RGB photo classifier with a model card (e.g. efficientnet_lite0)"
    return None
