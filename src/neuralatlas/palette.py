"""The colour maps of neuralatlas, by matplotlib name: one scheme for figures and HTML alike.

Below every package, so that what colours without drawing (the token heat map as HTML in
:mod:`neuralatlas.token_html`) uses the same maps as the figures of
:mod:`neuralatlas.plots` (which re-exports these from :mod:`neuralatlas.plots.style`).
"""

from __future__ import annotations

__all__ = ["DIVERGING", "MAGNITUDE", "SEQUENTIAL"]

DIVERGING = "RdBu_r"      # signed values (contrastive NAPs, gradients, signed attributions)
SEQUENTIAL = "viridis"    # non-negative values (activations, importances)
MAGNITUDE = "magma"       # |attribution|, saliency
