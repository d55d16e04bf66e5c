"""One registry of the ground-truth metrics in :mod:`featgeom.metrics`.

Each :class:`GroundTruthMetric` names a function and says what it scores:

* unit 'sae': one SAE against its own world's true features (or one SAE's latents alone);
* unit 'pair': two SAEs (of two models, or two architectures on one world) with a
  correspondence or shared truth;
* unit 'set': several SAEs, e.g. seeds or architectures (or a table of their runs).

higher_is_better: True / False, or None for descriptive scores (distributions, diversity,
agreement) where neither direction is "better". Helpers that are not scores themselves
(abs_cosine, match_to_features, feature_assignment, covered, covered_by_each, undiscovered,
per_seed_mcc, dead_latents, dead_latent_transitions, f_beta, pareto_front, the *_details
variants) are not registered. Importing this module imports only NumPy / SciPy code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from featgeom.errors import ConfigError
from featgeom.metrics.agreement import (
    architecture_agreement,
    complementary_coverage,
    ensemble_gain,
    pairwise_coverage,
)
from featgeom.metrics.coverage import (
    coverage,
    coverage_by_depth,
    coverage_by_rarity,
    coverage_fraction,
    discovery_gap,
)
from featgeom.metrics.dead import dead_latent_recovery, dead_latent_stability
from featgeom.metrics.detection import dead_latent_rate, detection_scores
from featgeom.metrics.levels import universality_levels
from featgeom.metrics.recovery import (
    decomposition_diversity,
    latents_per_feature,
    mcc,
    seed_disagreement,
    soft_mcc,
    superposition_exploitation,
    uniqueness,
)
from featgeom.metrics.spectrum import architecture_specific_response
from featgeom.metrics.structure import hierarchy_recovery, subspace_coherence
from featgeom.metrics.universality import (
    angular_tolerance,
    correspondence_accuracy,
    cross_mcc,
    empirical_mcc,
    functional_equivalence,
    gt_mcc,
    universality_gap,
)

UNITS = ("sae", "pair", "set")


@dataclass(frozen=True)
class GroundTruthMetric:
    """A registered ground-truth metric: ``name`` (registry key, the function's name), ``label``
    (short display name, e.g. "MCC"), ``unit`` (one of :data:`UNITS`), ``function``,
    ``description`` (one line: formula and plan task), ``higher_is_better``."""

    name: str
    label: str
    unit: str
    function: Callable[..., object]
    description: str
    higher_is_better: bool | None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name: expected a non-empty string, got {self.name!r}")
        if self.unit not in UNITS:
            raise ConfigError(f"unit: expected one of {', '.join(UNITS)}; got {self.unit!r}")
        if not callable(self.function):
            raise ConfigError(f"function: {self.name} needs a callable, got {self.function!r}")
        if not (self.higher_is_better is None or isinstance(self.higher_is_better, bool)):
            raise ConfigError(
                f"higher_is_better: expected True, False or None, got {self.higher_is_better!r}"
            )


GROUND_TRUTH: dict[str, GroundTruthMetric] = {}


def register_ground_truth(metric: GroundTruthMetric) -> GroundTruthMetric:
    """Add ``metric`` to :data:`GROUND_TRUTH` under its name; ConfigError if the name is taken."""
    if not isinstance(metric, GroundTruthMetric):
        raise ConfigError(f"metric: expected a GroundTruthMetric, got {type(metric).__name__}")
    if metric.name in GROUND_TRUTH:
        raise ConfigError(f"metric: a ground-truth metric named {metric.name!r} is already registered")
    GROUND_TRUTH[metric.name] = metric
    return metric


def ground_truth_metric(name: str) -> GroundTruthMetric:
    """The registered metric called ``name``; ConfigError listing the names otherwise."""
    try:
        return GROUND_TRUTH[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(GROUND_TRUTH))
        raise ConfigError(f"name: unknown ground-truth metric {name!r}; known: {known}") from None


def _add(
    function: Callable[..., object], label: str, unit: str, higher: bool | None, text: str
) -> None:
    register_ground_truth(GroundTruthMetric(function.__name__, label, unit, function, text, higher))


# one SAE against its world's truth
_add(mcc, "MCC", "sae", True,
     "mean |cos| over the Hungarian matching of decoder rows to true features (3.1)")
_add(uniqueness, "uniqueness", "sae", True,
     "distinct best-matching features / n_latents (SAELens feature_uniqueness)")
_add(soft_mcc, "SA-MCC", "sae", True,
     "(1/N) sum_j min(1, sum_i S_ij |cos_ij|) over a soft correspondence S (3.4)")
_add(latents_per_feature, "latents per feature", "sae", None,
     "(N,) fewest greedy latents whose span reaches cos >= target with each feature (3.2)")
_add(superposition_exploitation, "SES", "sae", None,
     "mean latents_per_feature over reconstructed features; 1 = no splitting (3.2)")
_add(detection_scores, "detection", "sae", True,
     "mean precision / recall / F_beta / accuracy of latents detecting their matched feature (5.1)")
_add(dead_latent_rate, "DLR", "sae", False,
     "latents that never fire / n_latents (6.1)")
_add(dead_latent_stability, "DLS", "sae", None,
     "mean_t |D_t & D_t+1| / |D_t+1|: dead latents that were already dead (6.1)")
_add(dead_latent_recovery, "DLRec", "sae", True,
     "mean_t |D_t - D_t+1| / |D_t|: revival rate of dead latents (6.1)")
_add(hierarchy_recovery, "HRS", "sae", True,
     "parent-child feature pairs whose latents are decoder k-nearest neighbours (4.1)")
_add(subspace_coherence, "SCS", "sae", True,
     "within - between: mean decoder |cos| of same- minus different-category latents (4.2)")
_add(coverage_fraction, "coverage", "sae", True,
     "|S| / N, S = features with some decoder row |cos| >= threshold (6.2)")
_add(coverage_by_rarity, "coverage by rarity", "sae", True,
     "recovered fraction per firing-probability decile, rarest first (6.5)")
_add(coverage_by_depth, "coverage by depth", "sae", True,
     "recovered fraction per hierarchy depth (6.5, 6.6)")

# two SAEs
_add(cross_mcc, "cross-MCC", "pair", True,
     "Hungarian-matched mean |corr| between latents of SAE A and SAE B (1.3)")
_add(empirical_mcc, "empirical MCC", "pair", True,
     "top min(m, K) matched |corr| of alive latents / m feature slots, gt_mcc's unit (1.3)")
_add(gt_mcc, "GT-MCC", "pair", None,
     "oracle cross-MCC of the two models' true features: the ceiling (1.3)")
_add(universality_gap, "UG", "pair", False,
     "gt_mcc - empirical_mcc: the ceiling the SAEs miss (1.3)")
_add(correspondence_accuracy, "correspondence accuracy", "pair", True,
     "latent pairs whose true features correspond under C (1.3)")
_add(angular_tolerance, "AST", "pair", True,
     "fraction of paired rows within theta degrees, per theta (2.3)")
_add(functional_equivalence, "FES", "pair", True,
     "mean Pearson r of paired latents' activations (2.3)")
_add(universality_levels, "universality levels", "pair", None,
     "fraction of latent pairs at each level L1-L6 (7.1)")
_add(coverage, "coverage overlap", "pair", None,
     "a, b, overlap, unique_a, unique_b, union of two SAEs' covered sets, / N (6.2)")
_add(architecture_agreement, "AAS", "pair", None,
     "|S_a & S_b| / |S_a | S_b| (Jaccard of recovered sets) (2.1)")

# several SAEs
_add(decomposition_diversity, "DD", "set", None,
     "std over seeds (ddof=1) of each SAE's MCC to the truth (3.1)")
_add(seed_disagreement, "seed disagreement", "set", None,
     "1 - mean pairwise decoder MCC between seeds (no truth needed)")
_add(complementary_coverage, "CC", "set", None,
     "(|union S_k| - |intersection S_k|) / N; a pair: |S_a xor S_b| / N (2.1)")
_add(ensemble_gain, "ensemble gain", "set", None,
     "|union S_k| / N - max_k |S_k| / N (6.3)")
_add(pairwise_coverage, "pairwise coverage", "set", None,
     "overlap / unique / union counts for every pair of SAEs (6.2)")
_add(discovery_gap, "discovery gap", "set", False,
     "1 - |union S_k| / N: features no SAE of the set captures (6.1)")
_add(architecture_specific_response, "ASR", "set", None,
     "m[a, l] - mean_b m[b, l] and slope of MCC vs rho_mm minus mean slope (3.1)")
