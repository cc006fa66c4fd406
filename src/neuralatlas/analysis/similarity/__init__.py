"""Representational similarity: linear and RBF CKA, RSA, and linear probes per layer.

How alike are two representations of the same samples — two layers of one model, one layer
at two training epochs, or the layers of two models? And how much of the label can a linear
read-out find in each layer?

* **Linear CKA** (centred kernel alignment; Kornblith, Norouzi, Lee and Hinton, 2019) is
  computed *exactly in feature space*::

      CKA(X, Y) = ‖YcᵀXc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)

  with Xc, Yc the column-centred ``[n, d]`` activations. Only the cross-product matrices are
  needed, so the store is read chunk by chunk and the cost is O(n·d²) time and O(d²) memory
  — not the O(n²·d) time and O(n²) memory of the n×n Gram form (``HSIC(K, L)`` with
  ``K = XXᵀ``), which gives the same number. Centring is exact: each streamed block is
  shifted by the first block's column means (which keeps float64 accumulators far from
  cancellation), sums and cross-products are accumulated, and the mean is corrected at the
  end: ``C = Σ(z−s)ᵀ(z−s) − S Sᵀ / n``.

  **Memory.** The d×d accumulators of every layer of one pass are float64: a layer of
  width d costs ``8·d²`` bytes (d = 4,096 → 128 MiB; d = 16,384 → 2 GiB). All layers of a
  layer×layer matrix are concatenated so one symmetric product (BLAS ``syrk``) per block
  gives every pair; when the concatenation does not fit in ``memory_limit`` the layers are
  split into groups and the group pairs are done in separate passes. A *single* layer
  whose ``8·d²`` exceeds half the budget (very wide conv maps, e.g. 64×112×112) cannot be
  done exactly in feature space. Its pairs use the Gram form instead: exactly, on every
  sample, when one n×n float64 Gram per layer (``8·n²`` bytes each) fits the budget;
  otherwise on a seeded subsample of ``subsample`` samples (an estimate, with a warning).
  Pass ``pool="mean"`` to average conv maps over space instead (d = channels), the usual
  choice for wide CNNs. With ``method="auto"`` (default) the exact Gram form is also used
  when its Grams fit and it is the cheaper of the two: it costs about n²·D/2 against
  n·D²/2 for the D summed widths of a pass, so it wins when n < D (few samples, wide
  layers, e.g. 450 digits through a CNN). Both forms give the same value to float64
  rounding; ``method="feature"`` forces streaming.

* **RBF CKA** uses Gaussian kernels on a seeded subsample (the n×n Gram form is
  unavoidable for a non-linear kernel); the bandwidth is ``threshold`` × the median
  pairwise distance (Kornblith et al.'s choice, with ``threshold=1``).
* **RSA** (Kriegeskorte, Mur and Bandettini, 2008): each layer's representational
  dissimilarity matrix (RDM; correlation distance ``1 − r`` between the samples'
  activation vectors by default) on a seeded subsample, compared by the Spearman rank
  correlation of the RDMs' upper triangles.
* **Linear probes** (Alain and Bengio, 2016): cross-validated accuracy of a logistic
  regression on each layer's standardised activations (PCA-reduced first when a layer is
  wider than ``max_features``), seeded folds.

Every function works on a store (streaming) or on arrays; :func:`similarity` computes the
lot for a run and :class:`SimilarityResult` saves it into ``results/similarity/``.
"""

from __future__ import annotations

from neuralatlas._moved import moved_attribute_getter
from neuralatlas.analysis.similarity.cka import CKA_METHODS, cka_matrix, epoch_cka_matrix, linear_cka, rbf_cka
from neuralatlas.analysis.similarity.covariance import layer_covariance
from neuralatlas.analysis.similarity.probes import linear_probes
from neuralatlas.analysis.similarity.result import ProbeResult, SimilarityMatrix, SimilarityResult
from neuralatlas.analysis.similarity.rsa import rdm, rsa, rsa_matrix

# private names other modules imported from here before the split; kept for them
from neuralatlas.analysis.similarity.sources import (  # noqa: F401,E501,I001
    DEFAULT_SUBSAMPLE,
    POOLS,
    RSA_METRICS,
    SimilarityWarning,
    _as_store,
    _resolve_layers,
    _Source,
    _store_sources,
    check_same_samples,
)
from neuralatlas.analysis.similarity.suite import similarity
from neuralatlas.analysis.streaming import default_memory_limit

__all__ = [
    "CKA_METHODS",
    "DEFAULT_SUBSAMPLE",
    "POOLS",
    "RSA_METRICS",
    "SimilarityWarning",
    "ProbeResult",
    "SimilarityMatrix",
    "SimilarityResult",
    "check_same_samples",
    "cka_matrix",
    "default_memory_limit",
    "epoch_cka_matrix",
    "layer_covariance",
    "linear_cka",
    "linear_probes",
    "rbf_cka",
    "rdm",
    "rsa",
    "rsa_matrix",
    "similarity",
]


# ``run_similarity``, ``save_figures`` (and ``_STEP_PARAMS``) moved to neuralatlas.steps.similarity (0.2)
__getattr__ = moved_attribute_getter(__name__)
