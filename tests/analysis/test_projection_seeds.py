"""Neighbourhood hit over several t-SNE seeds: the range the figure and the findings show."""

from __future__ import annotations

import numpy as np
import pytest


def _arrays(n=60):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    centres = rng.normal(scale=4.0, size=(3, 8))
    clear = centres[labels] + rng.normal(size=(n, 8))          # separated classes
    noisy = centres[labels] * 0.15 + rng.normal(size=(n, 8))    # mostly noise
    return {"noisy": noisy, "clear": clear}, labels


def test_extra_seeds_give_the_range_of_neighbourhood_hit_with_the_kept_run_inside():
    from neuralatlas.analysis.projection import project
    from neuralatlas.analysis.projection.embedding import embed
    from neuralatlas.analysis.quality import neighborhood_hit

    arrays, labels = _arrays()
    one = project(arrays, labels=labels, method="tsne", n_samples=None, seed=0)
    three = project(arrays, labels=labels, method="tsne", n_samples=None, seed=0, seeds=3)
    for layer in ("noisy", "clear"):
        q = three.quality[(layer, None)]
        # the kept run is the one-seed run, unchanged, and lies inside the range
        np.testing.assert_array_equal(three.coordinates[(layer, None)], one.coordinates[(layer, None)])
        assert q["neighborhood_hit"] == one.quality[(layer, None)]["neighborhood_hit"]
        assert q["nh_min"] <= q["neighborhood_hit"] <= q["nh_max"] and q["nh_seeds"] == 3
        # the extra runs are independent embeddings with seeds 1 and 2, on the same samples
        extra = [
            neighborhood_hit(embed(arrays[layer][three.rows], "tsne", seed=s, pca_dims=None), labels[three.rows], k=6)
            for s in (1, 2)
        ]
        assert q["nh_mean"] == pytest.approx(np.mean([q["neighborhood_hit"], *extra]))
        assert q["nh_min"] == pytest.approx(min(q["neighborhood_hit"], *extra))
    assert three.quality[("clear", None)]["nh_min"] > three.quality[("noisy", None)]["nh_max"]
    assert "nh_min" not in one.quality[("clear", None)] and three.params["seeds"] == 3


def test_seeds_must_be_a_positive_integer_and_pca_needs_none():
    from neuralatlas.analysis.projection import project
    from neuralatlas.errors import NeuralAtlasError

    arrays, labels = _arrays()
    with pytest.raises(NeuralAtlasError, match="seeds=0"):
        project(arrays, labels=labels, method="pca", seeds=0)
    pca = project(arrays, labels=labels, method="pca", n_samples=None, seeds=3)
    assert "nh_min" not in pca.quality[("clear", None)]   # deterministic: one run says it all


def test_quality_figure_draws_the_range_and_findings_say_it(tmp_path):
    from neuralatlas.analysis.projection import project
    from neuralatlas.plots.projection import projection_quality

    arrays, labels = _arrays()
    res = project(arrays, labels=labels, method="tsne", n_samples=None, seeds=3)
    fig = projection_quality(res)
    nh = fig.axes[0]
    bars = [c for c in nh.collections if c.__class__.__name__ == "LineCollection"]
    assert len(bars) == 1 and len(bars[0].get_segments()) == 2
    lo_hi = sorted((min(s[:, 1]), max(s[:, 1])) for s in bars[0].get_segments())
    expected = sorted((res.quality[(k, None)]["nh_min"], res.quality[(k, None)]["nh_max"]) for k in ("noisy", "clear"))
    np.testing.assert_allclose(lo_hi, expected)
    assert [t.get_text() for t in nh.get_legend().get_texts()] == ["mean, range over 3 seeds"]

    from neuralatlas.report.collect import AnalysisOutput, ModelInfo
    from neuralatlas.report.findings import model_findings

    model = ModelInfo("m", tmp_path)
    model.analyses["projection"] = AnalysisOutput("projection", "m", tmp_path, tmp_path, res.summary())
    [text] = [f.text for f in model_findings(model) if f.topic == "projection"]
    q = res.quality[("clear", None)]
    assert f"Over 3 seeds the hit spans {q['nh_min']:.3f}–{q['nh_max']:.3f}" in text
