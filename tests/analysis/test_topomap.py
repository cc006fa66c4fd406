"""Topomaps: planted structure recovered by every layout, quality vs random, images, spread, CLI."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.interpolate import griddata
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from neuralatlas.analysis.naps import contrastive_naps, naps
from neuralatlas.analysis.topomap import (
    METHODS,
    TopomapLayout,
    Topomaps,
    assign_to_sites,
    disc_sites,
    grid_sites,
    layout_quality,
    map_similarity,
    spread_disc,
    topomaps,
    unit_profiles,
    unit_values,
)
from neuralatlas.errors import AnalysisError
from neuralatlas.store import ActivationStore


def _two_blocks(n=48, features=30, seed=0):
    """Units in two blocks whose profiles are correlated within a block."""
    rng = np.random.default_rng(seed)
    block = np.repeat([0, 1], [n // 2, n - n // 2])
    centres = rng.normal(size=(2, features))
    return centres[block] * 2.0 + rng.normal(size=(n, features)), block


def _same_block_neighbours(xy, block, k=5):
    idx = cKDTree(xy).query(xy, k=k + 1)[1][:, 1:]
    return float((block[idx] == block[:, None]).mean())


@pytest.mark.parametrize("method", METHODS)
def test_every_layout_recovers_a_planted_structure(method):
    profiles, block = _two_blocks()
    layout = TopomapLayout(method=method, seed=0).fit(profiles)
    xy = layout.coordinates_
    assert xy.shape == (len(profiles), 2) and np.all((xy >= 0) & (xy <= 1))
    q = layout.quality_
    assert q["spearman"] > q["random_spearman"] + 0.3
    assert q["knn"] > 2 * q["random_knn"]
    assert q["trustworthiness"] > q["random_trustworthiness"] + 0.15
    # the blocks sit side by side: a unit's map neighbours are (nearly all) of its own block
    assert _same_block_neighbours(xy, block) > 0.8
    # same seed, same layout
    again = TopomapLayout(method=method, seed=0).fit(profiles)
    np.testing.assert_array_equal(again.coordinates_, xy)


def test_grid_puts_every_unit_in_its_own_cell():
    profiles, _ = _two_blocks(n=47)
    layout = TopomapLayout(method="grid", seed=3, base="pca", resolution=28).fit(profiles)
    assert layout.side_ == 7
    cells = layout.cells_[:, 0] * layout.side_ + layout.cells_[:, 1]
    assert len(np.unique(cells)) == 47
    assert len(np.unique(layout.coordinates_, axis=0)) == 47
    values = np.arange(47, dtype=float)
    image = layout.transform(values)
    # every unit paints exactly its cell (4 x 4 pixels); the two empty cells stay NaN
    for unit in range(47):
        r, c = layout.cells_[unit]
        np.testing.assert_array_equal(image[4 * r:4 * r + 4, 4 * c:4 * c + 4], unit)
    assert np.isnan(image).sum() == 2 * 16


def test_images_interpolate_linearly_and_mask_outside_the_hull():
    rng = np.random.default_rng(4)
    profiles, _ = _two_blocks(n=40)
    layout = TopomapLayout(method="som", seed=0, resolution=32).fit(profiles)
    values = rng.normal(size=(3, 40))
    images = layout.transform(values)
    assert images.shape == (3, 32, 32)
    centres = (np.arange(32) + 0.5) / 32
    gx, gy = np.meshgrid(centres, centres)
    for g in range(3):
        ref = griddata(layout.coordinates_, values[g], (gx, gy), method="linear")
        np.testing.assert_array_equal(np.isnan(images[g]), np.isnan(ref))
        np.testing.assert_allclose(images[g][~np.isnan(ref)], ref[~np.isnan(ref)], atol=1e-5)
    # outside the disc of units: NaN, never a silent 0
    assert np.isnan(images[:, 0, 0]).all() and np.isnan(images[:, -1, -1]).all()
    nearest = TopomapLayout(method="som", seed=0, resolution=32, interpolation="nearest").fit(profiles)
    near = nearest.transform(values)
    np.testing.assert_array_equal(np.isnan(near), np.isnan(images))
    pixel = np.minimum((nearest.coordinates_ * 32).astype(int), 31)
    inside = nearest.mask_[pixel[:, 1], pixel[:, 0]]
    owner = cKDTree(nearest.coordinates_).query((pixel + 0.5) / 32)[1]
    np.testing.assert_allclose(near[0][pixel[inside, 1], pixel[inside, 0]], values[0][owner[inside]], rtol=1e-6)


def test_spread_fills_a_disc_without_overlaps_and_keeps_neighbours():
    rng = np.random.default_rng(5)
    # three tight clumps and some coincident points
    pts = np.concatenate([rng.normal(c, 0.01, size=(700, 2)) for c in ((0, 0), (1, 0), (0, 1))])
    pts[:20] = pts[0]
    xy = spread_disc(pts, seed=0)
    assert np.linalg.norm(xy - 0.5, axis=1).max() <= 0.5 + 1e-12
    nearest = cKDTree(xy).query(xy, k=2)[0][:, 1]
    assert nearest.min() > 0.5 * np.sqrt(np.pi * 0.25 / len(xy))      # half the even spacing
    clump = np.repeat([0, 1, 2], 700)
    assert _same_block_neighbours(xy, clump, k=8) > 0.95
    np.testing.assert_array_equal(spread_disc(pts, seed=0), xy)


def _box(points, sites):
    """The points stretched onto the sites' bounding box (what the assignment compares)."""
    return (points - points.min(0)) / np.ptp(points, 0) * np.ptp(sites, 0) + sites.min(0)


def test_bisection_assignment_is_exact_on_small_problems_and_close_on_large_ones():
    rng = np.random.default_rng(6)
    pts = rng.random((200, 2))
    sites, _ = grid_sites(200)
    idx = assign_to_sites(pts, sites)
    assert len(np.unique(idx)) == 200
    cost = cdist(_box(pts, sites), sites, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    np.testing.assert_allclose(cost[np.arange(200), idx].sum(), cost[rows, cols].sum())
    pts = rng.random((900, 2)) ** 2                                      # uneven density
    sites = disc_sites(900)
    idx = assign_to_sites(pts, sites, leaf=128)
    assert len(np.unique(idx)) == 900
    cost = cdist(_box(pts, sites), sites, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    assert cost[np.arange(900), idx].sum() < 1.5 * cost[rows, cols].sum()


def test_quality_of_a_perfect_and_a_random_layout():
    xy = np.random.default_rng(7).random((150, 2))
    q = layout_quality(xy, xy)
    assert q["spearman"] == pytest.approx(1.0) and q["knn"] == pytest.approx(1.0)
    assert abs(q["random_spearman"]) < 0.1 and q["random_knn"] < 0.2


def test_profiles_and_values_follow_innspect():
    v = np.random.default_rng(8).normal(size=(4, 5, 3, 2))
    v[:, :, 0, 0] = 0.0                                  # a position zero for every unit and group
    p = unit_profiles(v)
    assert p.shape == (5, 4 * 3 * 2 - 4)
    np.testing.assert_allclose(unit_values(v), v.mean(axis=(2, 3)))
    np.testing.assert_allclose(unit_profiles(v[:, :, 1, 1]), v[:, :, 1, 1].T)


def test_topomaps_of_naps_save_load_and_figures(tmp_path):
    from neuralatlas.plots import layout_quality_figure, topomap_image, topomap_layout, topomap_overview

    rng = np.random.default_rng(9)
    n = 300
    labels = rng.integers(0, 4, n)
    slope = np.linspace(-1, 1, 16)[None, :, None, None]
    conv = rng.normal(size=(n, 16, 3, 3)).astype(np.float32) + labels[:, None, None, None] * slope
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"conv": conv, "tiny": conv[:, :2, 0, 0]},
                                        labels=labels)
    maps = topomaps(contrastive_naps(naps(store)), method="grid", base="pca", resolution=16)
    assert maps.layers == ["conv"] and "tiny" in maps.skipped
    assert maps.images["conv"].shape == (4, 16, 16) and maps.kind == "contrastive"
    back = Topomaps.load(maps.save(tmp_path / "topomap"))
    np.testing.assert_array_equal(back.images["conv"], maps.images["conv"])
    assert back.quality == maps.quality and back.groups == maps.groups
    fig = topomap_overview(back)
    assert len([a for a in fig.axes if a.images]) == 4
    assert topomap_image(back, "conv", "2").axes
    assert topomap_layout(back, "conv").axes
    assert layout_quality_figure({"grid": back.quality["conv"]}).axes


def test_layout_errors_are_clear():
    profiles, _ = _two_blocks(n=10)
    with pytest.raises(AnalysisError, match="Did you mean 'umap'"):
        TopomapLayout(method="uamp").fit(profiles)
    with pytest.raises(AnalysisError, match="at least 3 units"):
        TopomapLayout(method="som").fit(profiles[:2])
    with pytest.raises(AnalysisError, match="not fitted"):
        TopomapLayout().transform(np.zeros(10))
    layout = TopomapLayout(method="grid", base="pca").fit(profiles)
    with pytest.raises(AnalysisError, match=r"\[n_groups, 10\]"):
        layout.transform(np.zeros((2, 9)))
    with pytest.raises(AnalysisError, match="NaN"):
        TopomapLayout(method="som").fit(np.full((5, 3), np.nan))


def _capture_conv(model, data, out):
    from neuralatlas import capture

    return capture(model, data, layers=["conv2"], out=out, gradients=False, batch_size=128)


def test_trained_cnn_class_maps_differ_more_than_untrained(trained_cnn_run, untrained_cnn, tmp_path):
    """The last conv layer of the trained digits CNN tells the classes apart on its topomap."""
    from neuralatlas.plots import topomap_overview

    untrained_store = _capture_conv(untrained_cnn, trained_cnn_run.test, tmp_path / "u.zarr")
    scores = {}
    for name, store in (("trained", trained_cnn_run.store), ("untrained", untrained_store)):
        result = naps(store, layers=["conv2"])
        contrast = contrastive_naps(result)
        raw_maps = topomaps(result, method="som", seed=0)
        contrast_maps = topomaps(contrast, method="som", seed=0)
        v, c = unit_values(result.values("conv2")), unit_values(contrast.values("conv2"))
        scores[name] = {"similarity": raw_maps.quality["conv2"]["map_similarity"],
                        "contrast": float(np.linalg.norm(c) / np.linalg.norm(v)),
                        "images": contrast_maps}
    # per-class maps are less alike after training, and the class-specific part is larger
    assert 1 - scores["trained"]["similarity"] > 2 * (1 - scores["untrained"]["similarity"])
    assert scores["trained"]["contrast"] > 1.3 * scores["untrained"]["contrast"]
    # the contrastive maps of different classes are different images
    imgs = scores["trained"]["images"].images["conv2"]
    assert map_similarity(imgs) < 0.5
    fig = topomap_overview(scores["trained"]["images"])
    assert len([a for a in fig.axes if a.images]) == 10


@pytest.mark.slow  # a fresh interpreter
def test_a_numpy_only_user_never_imports_torch(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import neuralatlas as na
        from neuralatlas.analysis.topomap import topomaps
        rng = np.random.default_rng(0)
        store = na.ActivationStore.from_arrays({str(tmp_path / 's.zarr')!r},
            {{"conv": rng.normal(size=(60, 16, 4, 4)).astype("float32")}},
            labels=rng.integers(0, 3, 60), gradients={{"conv": rng.normal(size=(60, 16, 4, 4)).astype("float32")}})
        result = na.naps(store, align="gradient")
        maps = topomaps(na.contrastive_naps(result), method="som")
        layout = na.TopomapLayout(method="grid", base="pca").fit(maps.values["conv"].T)
        assert maps.images["conv"].shape[0] == 3 and layout.coordinates_.shape == (16, 2)
        # a TensorFlow user's path: iNNtrospect's output folder (channels-last .npy batches)
        import json, pathlib
        folder = pathlib.Path({str(tmp_path / 'innspect')!r})
        for layer, shape in (("layer000", (4, 4, 5)), ("layer001", (3,))):
            (folder / "acts" / layer).mkdir(parents=True)
            for g in ("a", "b"):
                np.save(folder / "acts" / layer / f"{{g}}.npy", rng.normal(size=(6, *shape)).astype("float32"))
        (folder / "group_name_to_files.json").write_text(json.dumps({{"a": ["a.npy"], "b": ["b.npy"]}}))
        imported = na.import_innspect_output(folder, out=folder / "acts.zarr")
        assert na.naps(imported, by="group").values("layer000").shape == (2, 5, 4, 4)
        assert "torch" not in sys.modules, "torch was imported"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


@pytest.mark.slow  # trains and runs the CLI end to end
def test_cli_naps_and_topomap_write_results_and_figures(tmp_path):
    from typer.testing import CliRunner

    from neuralatlas.cli import app

    rng = np.random.default_rng(10)
    run = tmp_path / "run"
    n = 200
    labels = rng.integers(0, 3, n)
    conv = rng.normal(size=(n, 6, 4, 4)).astype(np.float32) + labels[:, None, None, None]
    ActivationStore.from_arrays(run / "acts.zarr", {"conv": conv, "fc": conv.reshape(n, -1)[:, :10]},
                                labels=labels, gradients={"conv": rng.normal(size=conv.shape).astype(np.float32)})
    runner = CliRunner()
    done = runner.invoke(app, ["naps", str(run), "--align", "gradient"])
    assert done.exit_code == 0, done.output
    assert (run / "results" / "naps" / "naps.json").exists()
    assert (run / "figures" / "naps" / "conv_maps.png").exists()
    done = runner.invoke(app, ["topomap", str(run), "--layout", "grid", "--contrastive", "--no-individual"])
    assert done.exit_code == 0, done.output
    assert (run / "results" / "topomap" / "grid" / "arrays.npz").exists()
    assert (run / "results" / "topomap" / "quality.json").exists()
    assert (run / "figures" / "topomap" / "grid" / "overview.pdf").exists()
    done = runner.invoke(app, ["naps", str(run), "--by", "colour"])
    assert done.exit_code == 1 and "no such column" in done.output
    # streamed in small blocks: the same NAPs; a limit that is not a size is named, nothing lost
    before = (run / "results" / "naps" / "values.npz").read_bytes()
    done = runner.invoke(app, ["naps", str(run), "--memory-limit", "lots"])
    assert done.exit_code == 1 and "memory_limit='lots' is not a size" in done.output
    assert (run / "results" / "naps" / "values.npz").read_bytes() == before
    done = runner.invoke(app, ["naps", str(run), "--align", "gradient", "--memory-limit", "64KiB", "--no-figures"])
    assert done.exit_code == 0, done.output
    with np.load(run / "results" / "naps" / "values.npz") as small, np.load(io.BytesIO(before)) as whole:
        np.testing.assert_allclose(small["l0"], whole["l0"], rtol=1e-6, atol=1e-6)


def test_topomaps_report_only_measures_that_can_vary(tmp_path):
    """Contrastive maps cancel across classes (map similarity ≈ −1/(C−1) whatever the layer),
    small layers cannot be laid out, and an input layer is drawn on its own pixel grid."""
    from neuralatlas.analysis.topomap import sums_to_zero

    rng = np.random.default_rng(4)
    n = 400
    labels = rng.integers(0, 5, n)
    wide = rng.normal(size=(n, 20)).astype(np.float32) + labels[:, None] * np.linspace(-1, 1, 20)
    pixels = rng.random((n, 1, 4, 6)).astype(np.float32) + (labels[:, None, None, None] == 2)
    store = ActivationStore.from_arrays(tmp_path / "s.zarr", {"input": pixels, "wide": wide,
                                                              "small": wide[:, :15]}, labels=labels)
    plain = topomaps(naps(store), method="grid", base="pca", resolution=16)
    contrast = topomaps(contrastive_naps(naps(store)), method="grid", base="pca", resolution=16)
    for maps in (plain, contrast):
        assert "small" in maps.skipped and "15" in maps.skipped["small"]
        assert maps.layers == ["input", "wide"]
        assert maps.quality["input"]["layout"] == "pixel grid"
        # the input map is the class-mean image itself, on its 4 × 6 grid
        assert maps.images["input"].shape == (5, 4, 6)
    np.testing.assert_allclose(plain.images["input"][2], pixels[labels == 2, 0].mean(0), rtol=1e-5)
    assert sums_to_zero(contrast.images["wide"]) and not sums_to_zero(plain.images["wide"])
    assert "map_similarity" not in contrast.quality["wide"]
    assert -1 < plain.quality["wide"]["map_similarity"] < 1
    # knn compares 10 neighbours among 20 units: it can and does differ from a random layout
    assert plain.quality["wide"]["knn"] != plain.quality["wide"]["random_knn"]
    tiny = topomaps(naps(store), layers=["small"], method="grid", base="pca", resolution=8, min_units=3)
    assert "knn" in tiny.quality["small"]
    from neuralatlas.analysis.topomap import layout_quality
    assert "knn" not in layout_quality(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), k=10)
