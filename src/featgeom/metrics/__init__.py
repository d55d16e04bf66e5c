"""Ground-truth metrics: SAE features against planted true features, and across two models.

* recovery: :func:`mcc`, :func:`match_to_features`, :func:`uniqueness`, :func:`abs_cosine`,
  :func:`feature_assignment`, :func:`decomposition_diversity`, :func:`soft_mcc` (SA-MCC),
  :func:`latents_per_feature` / :func:`superposition_exploitation`.
* detection: :func:`detection_scores` / :class:`DetectionAccumulator` (latents as feature
  detectors), :func:`dead_latent_rate`.
* universality: :func:`cross_mcc` (per latent), :func:`empirical_mcc` (per feature slot),
  :func:`gt_mcc`, :func:`universality_gap`, :func:`universality_gap_details`
  (:class:`UniversalityGap`), :func:`correspondence_accuracy`, :func:`angular_tolerance` (AST),
  :func:`functional_equivalence` (FES).
* structure: :func:`hierarchy_recovery` (HRS), :func:`subspace_coherence` (SCS).
* coverage: :func:`coverage`, :func:`coverage_fraction`, :func:`covered`.
* levels: :func:`universality_levels` (L1-L6).

Conventions: decoder / direction matrices are (n_items, d) rows; activations are
(n_samples, n_items), dense or scipy.sparse; a correspondence C (N_a, N_b) is 1 where feature i
of A is feature j of B, a weight in (0, 1) for mixtures, 0 otherwise. Torch tensors are accepted
(detached to NumPy). Bad input raises a :class:`~featgeom.errors.FeatgeomError` naming the argument.
"""

from featgeom.metrics.coverage import coverage, coverage_fraction, covered
from featgeom.metrics.detection import DetectionAccumulator, dead_latent_rate, detection_scores
from featgeom.metrics.levels import (
    LEVELS,
    LevelThresholds,
    UniversalityLevels,
    universality_levels,
)
from featgeom.metrics.recovery import (
    abs_cosine,
    decomposition_diversity,
    feature_assignment,
    latents_per_feature,
    match_to_features,
    mcc,
    soft_mcc,
    superposition_exploitation,
    uniqueness,
)
from featgeom.metrics.structure import hierarchy_recovery, subspace_coherence
from featgeom.metrics.universality import (
    FunctionalEquivalence,
    UniversalityGap,
    angular_tolerance,
    correspondence_accuracy,
    cross_mcc,
    empirical_mcc,
    functional_equivalence,
    functional_equivalence_details,
    gt_mcc,
    universality_gap,
    universality_gap_details,
)

__all__ = [
    "LEVELS",
    "DetectionAccumulator",
    "FunctionalEquivalence",
    "LevelThresholds",
    "UniversalityGap",
    "UniversalityLevels",
    "abs_cosine",
    "angular_tolerance",
    "correspondence_accuracy",
    "coverage",
    "coverage_fraction",
    "covered",
    "cross_mcc",
    "dead_latent_rate",
    "decomposition_diversity",
    "detection_scores",
    "empirical_mcc",
    "feature_assignment",
    "functional_equivalence",
    "functional_equivalence_details",
    "gt_mcc",
    "hierarchy_recovery",
    "latents_per_feature",
    "match_to_features",
    "mcc",
    "soft_mcc",
    "subspace_coherence",
    "superposition_exploitation",
    "uniqueness",
    "universality_gap",
    "universality_gap_details",
    "universality_levels",
]
