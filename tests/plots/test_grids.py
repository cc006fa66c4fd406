"""Figure grids with spare cells: zip(strict=...) must pair the items, not the grid's cells."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402


def test_naps_maps_with_a_ragged_last_row(tmp_path):
    # 7 groups on rows of 5: the grid has 3 spare cells, which stay hidden
    from neuralatlas.analysis.naps import naps
    from neuralatlas.plots.naps import naps_maps
    from neuralatlas.store import ActivationStore

    rng = np.random.default_rng(0)
    labels = np.arange(70) % 7
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"conv": rng.random((70, 2, 4, 4), dtype=np.float32)},
                                        labels=labels, classes=[f"c{i}" for i in range(7)], chunk_rows=16)
    result = naps(store, by="label")
    fig = naps_maps(result, "conv")
    visible = [a for a in fig.axes if a.get_visible() and a.images]
    assert len(visible) == 7
    for a, name, m in zip(visible, result.groups, result.values("conv").mean(1), strict=True):
        assert a.get_title().startswith(name) or name in a.get_title()
        np.testing.assert_allclose(a.images[0].get_array(), m)
