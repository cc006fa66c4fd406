"""Figures: pure functions ``(result, *, ax=None, ...) -> matplotlib Figure``; no computing, no I/O.

One module per analysis; the figure functions are re-exported here.
"""

from __future__ import annotations

from neuralatlas.plots.style import class_colors, save_figure, symmetric_limits

__all__ = ["class_colors", "save_figure", "symmetric_limits"]
