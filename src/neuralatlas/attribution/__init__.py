"""Attribution with captum as the engine: one call for every method, over a whole data set.

Sanity checks (Adebayo et al. 2018) and faithfulness curves (deletion / insertion) come with it.
"""

from __future__ import annotations

from neuralatlas.attribution.dataset import attribute_dataset
from neuralatlas.attribution.faithfulness import FaithfulnessResult, deletion_curves
from neuralatlas.attribution.integrated import choose_internal_batch_size, completeness, rows_per_pass
from neuralatlas.attribution.methods import ALIASES, METHODS, attribute, resolve_method
from neuralatlas.attribution.result import Attribution
from neuralatlas.attribution.sanity import SanityResult, sanity_check, spearman_rows, ssim_rows
from neuralatlas.attribution.targets import cosine_to, last_token_logits, mean_pool, probe_logit

__all__ = ["ALIASES", "METHODS", "Attribution", "FaithfulnessResult", "SanityResult", "attribute",
           "attribute_dataset", "choose_internal_batch_size", "completeness", "cosine_to", "deletion_curves",
           "last_token_logits", "mean_pool", "probe_logit", "resolve_method",
           "rows_per_pass", "sanity_check", "spearman_rows", "ssim_rows"]
