"""Neighbourhood hit and trustworthiness: hand-computed cases and scikit-learn's reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness

from neuralatlas.analysis.quality import continuity, neighborhood_hit, trustworthiness
from neuralatlas.errors import AnalysisError


def test_neighborhood_hit_hand_computed():
    # 1-D points, k = 2. Per point (neighbours -> same-label fraction):
    #   0(a): 1,2 -> a,b = 1/2     1(a): 0,2 -> a,b = 1/2     2(b): 1,0 -> a,a = 0
    #  10(b): 11,12 -> b,a = 1/2  11(b): 10,12 -> b,a = 1/2  12(a): 11,10 -> b,b = 0
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    labels = np.array([0, 0, 1, 1, 1, 0])
    per_point = neighborhood_hit(points, labels, k=2, per_point=True)
    np.testing.assert_allclose(per_point, [0.5, 0.5, 0.0, 0.5, 0.5, 0.0])
    assert neighborhood_hit(points, labels, k=2) == pytest.approx(1 / 3)


def test_neighborhood_hit_pure_and_mixed_clusters():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 2))
    b = rng.normal(size=(40, 2)) + 100.0
    pts = np.vstack([a, b])
    assert neighborhood_hit(pts, np.repeat([0, 1], 40)) == 1.0          # k = 6 default
    # labels alternating inside each cluster: about half the neighbours agree
    assert 0.3 < neighborhood_hit(pts, np.arange(80) % 2) < 0.7


def test_neighborhood_hit_excludes_the_point_itself_with_duplicates():
    pts = np.zeros((5, 2))                     # all identical: every neighbour is a twin
    assert neighborhood_hit(pts, [0, 0, 0, 0, 0], k=3) == 1.0
    assert neighborhood_hit(pts, [0, 1, 1, 1, 1], k=4, per_point=True)[0] == 0.0


@pytest.mark.parametrize("k", [1, 5, 7, 20])
def test_trustworthiness_matches_sklearn(k):
    rng = np.random.default_rng(k)
    high = rng.normal(size=(300, 12))
    low = high[:, :2] + 0.3 * rng.normal(size=(300, 2))
    assert trustworthiness(high, low, k=k) == pytest.approx(sk_trustworthiness(high, low, n_neighbors=k), abs=1e-12)
    # continuity is trustworthiness with the two spaces swapped
    assert continuity(high, low, k=k) == pytest.approx(sk_trustworthiness(low, high, n_neighbors=k), abs=1e-12)


def test_trustworthiness_of_a_perfect_embedding_is_one():
    x = np.random.default_rng(0).normal(size=(100, 3))
    assert trustworthiness(x, x) == pytest.approx(1.0)
    assert trustworthiness(x, 5.0 * x + 2.0) == pytest.approx(1.0)     # similarity transform keeps ranks


def test_quality_errors_name_the_problem():
    with pytest.raises(AnalysisError, match="k=10 is not possible with 5 points"):
        neighborhood_hit(np.zeros((5, 2)), np.zeros(5), k=10)
    with pytest.raises(AnalysisError, match="5 points but 4 labels"):
        neighborhood_hit(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(AnalysisError, match="NaN"):
        neighborhood_hit(np.full((5, 2), np.nan), np.zeros(5), k=2)
    with pytest.raises(AnalysisError, match="same points"):
        trustworthiness(np.zeros((10, 3)), np.zeros((9, 2)))


def test_trustworthiness_precomputed_equals_sklearn_and_ties_take_the_best_rank():
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 5))
    low = x[:, :2] + 0.5 * rng.normal(size=(90, 2))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    ours = trustworthiness(d, low, k=6, precomputed=True)
    assert ours == pytest.approx(sk_trustworthiness(d, low, n_neighbors=6, metric="precomputed"), abs=1e-12)
    assert ours == pytest.approx(trustworthiness(x, low, k=6), abs=1e-12)
    # exact ties (quantised data): the value is the same whatever order the points are stored in
    q = np.round(x[:, :2])
    order = rng.permutation(90)
    assert trustworthiness(q, low, k=6) == pytest.approx(trustworthiness(q[order], low[order], k=6), abs=1e-12)
    # ... and never below scikit-learn's argsort-order ranks
    assert trustworthiness(q, low, k=6) >= sk_trustworthiness(q, low, n_neighbors=6) - 1e-12
    with pytest.raises(AnalysisError, match="square distance matrix"):
        trustworthiness(x, low, precomputed=True)
