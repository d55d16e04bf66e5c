"""Ground-truth metrics: SAE features against planted true features, and across two models.

* recovery: :func:`mcc`, :func:`match_to_features`, :func:`uniqueness`, :func:`abs_cosine`,
  :func:`feature_assignment`, :func:`soft_mcc` (SA-MCC), :func:`latents_per_feature` /
  :func:`superposition_exploitation`; across seeds :func:`per_seed_mcc`,
  :func:`decomposition_diversity` (DD, std of the seeds' MCC to the truth) and
  :func:`seed_disagreement` (1 - mean pairwise decoder MCC).
* spectrum: :func:`architecture_specific_response` (:class:`ArchitectureResponse`, ASR).
* detection: :func:`detection_scores` / :class:`DetectionAccumulator` (latents as feature
  detectors), :func:`f_beta`, :func:`dead_latents`, :func:`dead_latent_rate`.
* dead: :func:`dead_latent_transitions` (:class:`DeadLatentTransitions`),
  :func:`dead_latent_stability` (DLS), :func:`dead_latent_recovery` (DLRec).
* universality: :func:`cross_mcc` (per latent), :func:`empirical_mcc` (per feature slot),
  :func:`gt_mcc`, :func:`universality_gap`, :func:`universality_gap_details`
  (:class:`UniversalityGap`), :func:`correspondence_accuracy`, :func:`angular_tolerance` (AST),
  :func:`functional_equivalence` (FES).
* structure: :func:`hierarchy_recovery` (HRS), :func:`subspace_coherence` (SCS).
* coverage: :func:`coverage`, :func:`coverage_fraction`, :func:`covered`,
  :func:`covered_by_each`, :func:`undiscovered` / :func:`discovery_gap`,
  :func:`coverage_by_rarity` / :func:`coverage_by_depth` (:class:`GroupCoverage`).
* agreement: :func:`architecture_agreement` (AAS), :func:`complementary_coverage` (CC),
  :func:`ensemble_gain`, :func:`pairwise_coverage`.
* levels: :func:`universality_levels` (L1-L6).
* pareto: :func:`pareto_front`.
* registry: :data:`GROUND_TRUTH` of :class:`GroundTruthMetric`, :func:`ground_truth_metric`,
  :func:`register_ground_truth`.

Conventions: decoder / direction matrices are (n_items, d) rows; activations are
(n_samples, n_items), dense or scipy.sparse; a correspondence C (N_a, N_b) is 1 where feature i
of A is feature j of B, a weight in (0, 1) for mixtures, 0 otherwise. Torch tensors are accepted
(detached to NumPy). Bad input raises a :class:`~featgeom.errors.FeatgeomError` naming the argument.
"""

from featgeom.metrics.agreement import (
    architecture_agreement,
    complementary_coverage,
    ensemble_gain,
    pairwise_coverage,
)
from featgeom.metrics.coverage import (
    GroupCoverage,
    coverage,
    coverage_by_depth,
    coverage_by_rarity,
    coverage_fraction,
    covered,
    covered_by_each,
    discovery_gap,
    undiscovered,
)
from featgeom.metrics.dead import (
    DeadLatentTransitions,
    dead_latent_recovery,
    dead_latent_stability,
    dead_latent_transitions,
)
from featgeom.metrics.detection import (
    DetectionAccumulator,
    dead_latent_rate,
    dead_latents,
    detection_scores,
    f_beta,
)
from featgeom.metrics.levels import (
    LEVELS,
    LevelThresholds,
    UniversalityLevels,
    universality_levels,
)
from featgeom.metrics.pareto import pareto_front
from featgeom.metrics.recovery import (
    abs_cosine,
    decomposition_diversity,
    feature_assignment,
    latents_per_feature,
    match_to_features,
    mcc,
    per_seed_mcc,
    seed_disagreement,
    soft_mcc,
    superposition_exploitation,
    uniqueness,
)
from featgeom.metrics.registry import (
    GROUND_TRUTH,
    GroundTruthMetric,
    ground_truth_metric,
    register_ground_truth,
)
from featgeom.metrics.spectrum import (
    ArchitectureResponse,
    architecture_specific_response,
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
    "GROUND_TRUTH",
    "LEVELS",
    "ArchitectureResponse",
    "DeadLatentTransitions",
    "DetectionAccumulator",
    "FunctionalEquivalence",
    "GroundTruthMetric",
    "GroupCoverage",
    "LevelThresholds",
    "UniversalityGap",
    "UniversalityLevels",
    "abs_cosine",
    "angular_tolerance",
    "architecture_agreement",
    "architecture_specific_response",
    "complementary_coverage",
    "correspondence_accuracy",
    "coverage",
    "coverage_by_depth",
    "coverage_by_rarity",
    "coverage_fraction",
    "covered",
    "covered_by_each",
    "cross_mcc",
    "dead_latent_rate",
    "dead_latent_recovery",
    "dead_latent_stability",
    "dead_latent_transitions",
    "dead_latents",
    "decomposition_diversity",
    "detection_scores",
    "discovery_gap",
    "empirical_mcc",
    "ensemble_gain",
    "f_beta",
    "feature_assignment",
    "functional_equivalence",
    "functional_equivalence_details",
    "ground_truth_metric",
    "gt_mcc",
    "hierarchy_recovery",
    "latents_per_feature",
    "match_to_features",
    "mcc",
    "pairwise_coverage",
    "pareto_front",
    "per_seed_mcc",
    "register_ground_truth",
    "seed_disagreement",
    "soft_mcc",
    "subspace_coherence",
    "superposition_exploitation",
    "undiscovered",
    "uniqueness",
    "universality_gap",
    "universality_gap_details",
    "universality_levels",
]
