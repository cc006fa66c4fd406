"""Adversarial examples (FGSM, PGD) and what they do to a model's representations."""

from __future__ import annotations

from neuralatlas.adversarial.attacks import (
                                             ATTACKS,
                                             NORMS,
                                             AttackResult,
                                             RobustnessCurve,
                                             attack,
                                             fgsm,
                                             pgd,
                                             robustness_curve,
)
from neuralatlas.adversarial.representations import capture_adversarial

__all__ = ["ATTACKS", "NORMS", "AttackResult", "RobustnessCurve", "attack", "capture_adversarial", "fgsm", "pgd",
           "robustness_curve"]
