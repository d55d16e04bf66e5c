"""Calibration and power of compare's nulls on trained SAEs of planted-truth models.

The whole procedure as users run it (``featgeom.compare.compare``: encode, correlate, pair in every mode,
score the similarity metrics, null): 200 independent replicate families whose two members share
no feature, one TopK SAE per member, 6 independent sets of 2,000 shared inputs each, 19
permutations per null (so under H0 P(p <= 0.05) = 1/20 exactly for the valid null). The default
null must give a false-positive rate in [0.03, 0.07] for every pairing mode and metric over the
1,200 comparisons (binomial sd 0.0063, so a calibrated test stays inside with probability > 0.998
per cell), and over the 200 SAE pairs' first comparisons alone within their binomial 99.9%
interval; the paper's shuffled-pairing Test 1 (run on the first input set) must still fail on
many_to_one, so it cannot silently become the default again. Power: related members (70% and
100% shared) give p < 0.01 (SVCCA on mutual pairs: p < 0.05).
"""

import numpy as np
import pytest

from featgeom.match import MODES
from .calibration_pairs import Replicate, collect

SIMILARITIES = ("svcca", "svcca_legacy", "rsa", "cka", "procrustes")
N_PAIRS, N_SETS, SAMPLES = 200, 6, 2_000  # the comparisons dominate its cost: ~0.64 s per set of 3,000


@pytest.fixture(scope="module")
def independent():
    # the five metrics checked here only (debiased_cka and mutual_knn have their own calibration test,
    # tests/compare/test_compare_metrics.py; scoring all seven costs this fixture ~1.3x the time)
    return collect([Replicate(seed, 0.0, N_SETS, 19, ("repair", "shuffle"), metrics=SIMILARITIES, samples=SAMPLES)
                    for seed in range(N_PAIRS)])


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_default_null_is_calibrated_for_every_mode_and_metric(independent, mode):
    for metric in SIMILARITIES:
        p = independent["repair", mode, metric]
        assert p.shape == (N_PAIRS, N_SETS)
        rate = float(np.mean(p <= 0.05))
        assert 0.03 <= rate <= 0.07, (mode, metric, rate)
        # the first input set alone: one p-value per independent SAE pair (binomial 99.9% interval)
        assert 0.01 <= float(np.mean(p[:, 0] <= 0.05)) <= 0.11, (mode, metric)


@pytest.mark.slow
def test_the_papers_shuffle_null_fails_on_many_to_one(independent):
    for metric in ("svcca", "cka", "procrustes"):
        assert np.mean(independent["shuffle", "many_to_one", metric] <= 0.05) > 0.5, metric


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [0.7, 1.0])
def test_default_null_has_power_on_related_members(overlap):
    """10 independent families sharing 70% / 100% of features, 3,000 shared inputs, 199
    permutations (p >= 1/200). Every metric but the legacy top-1 SVCCA rejects at p < 0.01 in every
    family and mode, except SVCCA on mutual pairs, the weakest: mutual pairs of unrelated SAEs
    already reach SVCCA ~0.75, so its null sits high. It must reject at p < 0.05 in at least 9 of
    the 10 families (measured with the comparisons' own sampling salt: 10 / 10 at 70% shared, 9 / 10
    at 100%, the tenth at p = 0.065; before that salt 10 / 10 at both)."""
    p = collect([Replicate(seed, overlap, 1, 199, ("repair",)) for seed in range(1000, 1010)])
    for mode in MODES:
        for metric in ("rsa", "cka", "procrustes", "svcca"):
            if (mode, metric) == ("mutual", "svcca"):
                assert np.sum(p["repair", mode, metric] < 0.05) >= 9, (overlap, mode, metric)
            else:
                assert np.all(p["repair", mode, metric] < 0.01), (overlap, mode, metric)
