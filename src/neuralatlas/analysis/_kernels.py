"""Fused grouped-moment kernel for NAPs: one pass over a block instead of one per statistic.

With numba (installed with umap-learn) each row is read once and its values go to the group
sums, sums of squares, and the unit max / min / active count / total together: about
6 GiB/s on one core here, the speed of reading the store from the page cache. Without numba
the caller falls back to numpy passes over cache-sized slices (about 3x slower).
"""

from __future__ import annotations

import numpy as np

try:  # numba is optional: umap-learn brings it, but the numpy path must stand alone
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None

# "nnan"/"ninf" are left out on purpose: the max/min accumulators start at ±inf.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def _grouped_moments(x, raw, codes, shift, s1, s2, mx, mn, active, total, threshold, do_std, do_stats):
    """Add block ``x`` [rows, units] (float32) to the float64 group sums of ``codes``.

    ``s1[g] += x - shift`` and, with ``do_std``, ``s2[g] += (x - shift)²``; rows with a
    negative code go to no group. With ``do_stats`` the unit statistics take ``raw`` (the
    unaligned values; ``x`` itself when nothing was aligned): running max and min, the count
    of values above ``threshold``, and the float64 total.
    """
    rows, units = x.shape
    for r in range(rows):
        g = codes[r]
        xr = x[r]
        if g >= 0:
            a = s1[g]
            if do_std:
                b = s2[g]
                for u in range(units):
                    d = np.float64(xr[u]) - shift[u]
                    a[u] += d
                    b[u] += d * d
            else:
                for u in range(units):
                    a[u] += np.float64(xr[u]) - shift[u]
        if do_stats:
            vr = raw[r]
            for u in range(units):
                v = vr[u]
                mx[u] = max(mx[u], v)
                mn[u] = min(mn[u], v)
                active[u] += np.int64(v > threshold)
                total[u] += v


# One thread: the other core reads the next block meanwhile. A parallel kernel (prange over
# unit tiles) was 1.3x faster alone but 1.2-1.7x slower in the pipeline, starving the reader.
grouped_moments = (njit(cache=True, nogil=True, fastmath=_FASTMATH)(_grouped_moments)
                   if njit is not None else None)
