"""Example instances of the similarity and projection result classes, for the conformance test.

Small (no embedding is run), hostile where they can be: layer, run and class names are
:data:`HOSTILE` (HTML that would run if shown unescaped), and values a real run can leave
undefined (CKA of a constant layer, an unscored embedding) are NaN, which strict JSON writes as
``null`` and the loaders read back as NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neuralatlas.results import Result

HOSTILE = "<img src=x onerror=alert(1)>"
_rng = np.random.default_rng(1)


def similarity_matrix() -> Result:
    from neuralatlas.analysis.similarity import SimilarityMatrix

    values = np.array([[1.0, 0.4, np.nan], [0.4, 1.0, np.nan], [np.nan, np.nan, np.nan]])
    return SimilarityMatrix(values, ["fc1", HOSTILE, "dead"], ["fc1", HOSTILE, "dead"], "linear_cka",
                            title=f"linear CKA between layers of {HOSTILE}", notes=["exact"], method="feature")


def probe_result() -> Result:
    from neuralatlas.analysis.similarity import ProbeResult

    return ProbeResult(["fc1", HOSTILE], np.array([0.5, np.nan]), np.array([0.1, 0.0]), [8, 4096], [None, 128],
                       0.25, 5, 400, seed=3, name=HOSTILE)


def similarity_result() -> Result:
    from neuralatlas.analysis.similarity import SimilarityMatrix, SimilarityResult

    lin = similarity_matrix()
    epochs = SimilarityMatrix(np.array([[1.0, 0.7], [0.7, 1.0]]), ["epoch 0", "epoch 1"], ["epoch 0", "epoch 1"],
                              "linear_cka", "epoch", "epoch", f"{HOSTILE}: linear CKA between epochs")
    info = {"store": f"runs/{HOSTILE}/acts.zarr", "other": None, "n_samples": 400, "layers": lin.rows,
            "settings": {"epoch": None, "pool": None, "subsample": 400, "metric": "correlation", "cv": 5,
                         "max_features": 128, "seed": 0}}
    return SimilarityResult({"linear_cka": lin, f"epoch_cka/{HOSTILE}": epochs}, probe_result(), None, info)


def projection() -> Result:
    from neuralatlas.analysis.projection import Projection

    n = 12
    coords = {("fc1", None): _rng.normal(size=(n, 2)), (HOSTILE, None): _rng.normal(size=(n, 2))}
    quality = {("fc1", None): {"neighborhood_hit": 0.8, "trustworthiness": np.nan},
               (HOSTILE, None): {"neighborhood_hit": 0.6, "trustworthiness": 0.9}}
    labels = np.arange(n) % 3
    return Projection(coords, rows=np.arange(n), index=np.arange(n) + 100, labels=labels,
                      predictions={None: (labels + 1) % 3}, quality=quality, classes=["a", HOSTILE, "c"],
                      method="pca", params={"n": n, "seed": 0, "align": True, "pca_dims": "auto"})


def neuron_projection() -> Result:
    from neuralatlas.analysis.projection import NeuronProjection

    dead = np.zeros(9, bool)
    dead[4] = True
    return NeuronProjection(_rng.normal(size=(9, 2)), layer=HOSTILE, epoch=2, dead=dead,
                            quality={"trustworthiness": np.nan}, method="tsne",
                            params={"n": 50, "seed": 0, "pool": "mean", "metric": "abs_correlation"})


EXAMPLES: dict[str, Callable[[], Result]] = {
    "similarity_matrix": similarity_matrix,
    "probe_result": probe_result,
    "similarity_result": similarity_result,
    "projection": projection,
    "neuron_projection": neuron_projection,
}
