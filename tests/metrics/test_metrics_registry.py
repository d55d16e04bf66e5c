"""The registry of ground-truth metrics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from featgeom import metrics
from featgeom.errors import ConfigError
from featgeom.metrics import (
    GROUND_TRUTH,
    GroundTruthMetric,
    ground_truth_metric,
    register_ground_truth,
)
from featgeom.metrics.registry import UNITS

# exported callables that are helpers or variants, not scores of their own
NOT_METRICS = {
    "abs_cosine", "match_to_features", "feature_assignment", "covered", "covered_by_each",
    "undiscovered", "per_seed_mcc", "dead_latents", "dead_latent_transitions", "f_beta",
    "pareto_front", "universality_gap_details", "functional_equivalence_details",
    "ground_truth_metric", "register_ground_truth",
}
PLAN_NAMES = {
    "mcc", "uniqueness", "soft_mcc", "superposition_exploitation", "latents_per_feature",
    "detection_scores", "dead_latent_rate", "cross_mcc", "empirical_mcc", "gt_mcc",
    "universality_gap", "correspondence_accuracy", "angular_tolerance", "functional_equivalence",
    "hierarchy_recovery", "subspace_coherence", "coverage", "universality_levels",
    "decomposition_diversity", "seed_disagreement", "architecture_agreement",
    "complementary_coverage", "architecture_specific_response", "dead_latent_stability",
    "dead_latent_recovery", "discovery_gap", "coverage_by_rarity", "coverage_by_depth",
}


def test_every_exported_metric_is_registered() -> None:
    functions = {n for n in metrics.__all__
                 if callable(getattr(metrics, n)) and not isinstance(getattr(metrics, n), type)}
    assert functions - NOT_METRICS == set(GROUND_TRUTH)
    assert PLAN_NAMES <= set(GROUND_TRUTH)


def test_entries_are_consistent() -> None:
    for name, metric in GROUND_TRUTH.items():
        assert metric.name == name == metric.function.__name__
        assert metric.function is getattr(metrics, name)
        assert metric.unit in UNITS
        assert metric.higher_is_better in (True, False, None)
        assert metric.label and metric.description and "\n" not in metric.description
    units = {n: m.unit for n, m in GROUND_TRUTH.items()}
    assert units["mcc"] == "sae" and units["cross_mcc"] == "pair"
    assert units["decomposition_diversity"] == "set" and units["architecture_agreement"] == "pair"
    assert GROUND_TRUTH["dead_latent_rate"].higher_is_better is False


def test_lookup_and_registration() -> None:
    assert ground_truth_metric("mcc").function is metrics.mcc
    with pytest.raises(ConfigError, match="unknown ground-truth metric 'nope'.*mcc"):
        ground_truth_metric("nope")
    with pytest.raises(ConfigError, match="already|registered"):
        register_ground_truth(GROUND_TRUTH["mcc"])
    extra = GroundTruthMetric("max_cos", "max |cos|", "sae", lambda d, f: float(np.max(d @ f.T)),
                              "largest cosine", True)
    try:
        assert register_ground_truth(extra) is extra
        assert ground_truth_metric("max_cos").function(np.eye(2), np.eye(2)) == 1.0
    finally:
        del GROUND_TRUTH["max_cos"]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        (("x", "X", "model", len, "d", True), "unit"),
        (("", "X", "sae", len, "d", True), "name"),
        (("x", "X", "sae", "len", "d", True), "function"),
        (("x", "X", "sae", len, "d", 1), "higher_is_better"),
    ],
    ids=["unit", "name", "function", "higher"],
)
def test_bad_metric_fields(fields, name) -> None:
    with pytest.raises(ConfigError, match=name):
        GroundTruthMetric(*fields)


def test_register_rejects_non_metrics() -> None:
    with pytest.raises(ConfigError, match="metric"):
        register_ground_truth(metrics.mcc)


def test_metric_is_frozen() -> None:
    with pytest.raises(AttributeError):
        GROUND_TRUTH["mcc"].unit = "pair"


def test_registry_import_is_cheap() -> None:
    code = ("import sys, featgeom.metrics.registry; "
            "heavy = [m for m in ('torch', 'sae_lens', 'sklearn', 'matplotlib') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
