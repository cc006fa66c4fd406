"""Moved: the similarity step is :mod:`neuralatlas.steps.similarity` (since 0.2).

``run_similarity`` and ``save_figures`` keep working from here (and from
``neuralatlas.analysis.similarity``) for one release, with a DeprecationWarning (through the
root table :data:`neuralatlas._moved.MOVED`).
"""

from __future__ import annotations

from neuralatlas._moved import moved_attribute_getter

__getattr__ = moved_attribute_getter(__name__)
