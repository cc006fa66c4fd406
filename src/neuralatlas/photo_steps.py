"""Moved (since 0.2): the steps for a pretrained ImageNet model now live in :mod:`neuralatlas.steps`.

They are :mod:`neuralatlas.steps.unit_cards`, :mod:`neuralatlas.steps.photo_attribution` and
:mod:`neuralatlas.steps.deepdream`.

The old names keep working for one release, with a DeprecationWarning (through the root
table :data:`neuralatlas._moved.MOVED`).
"""

from __future__ import annotations

from neuralatlas._moved import moved_attribute_getter, moved_names

__all__ = moved_names(__name__)

__getattr__ = moved_attribute_getter(__name__)
