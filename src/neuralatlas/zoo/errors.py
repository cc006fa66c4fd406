"""The error the zoo raises when a model cannot be built, described or loaded."""

from __future__ import annotations

from neuralatlas.errors import ModelError

__all__ = ["ModelError"]
