"""Moved: the adversarial run-folder step is :mod:`neuralatlas.steps.adversarial` (since 0.2).

``from neuralatlas.adversarial.runfolder import attack_run`` keeps working for one release,
with a DeprecationWarning (through the root table :data:`neuralatlas._moved.MOVED`).
"""

from __future__ import annotations

from neuralatlas._moved import moved_attribute_getter

__getattr__ = moved_attribute_getter(__name__)
