"""Moved: the adversarial run-folder step is :mod:`neuralatlas.steps.adversarial` (since 0.2).

``from neuralatlas.adversarial.runfolder import attack_run`` keeps working for one release,
with a DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "attack_run":
        warnings.warn("neuralatlas.adversarial.runfolder.attack_run is deprecated since 0.2; use "
                      "neuralatlas.steps.adversarial.attack_run", DeprecationWarning, stacklevel=2)
        from neuralatlas.steps.adversarial import attack_run  # deprecated shim: upward import, until 0.3

        return attack_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
