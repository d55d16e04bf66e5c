"""Empirical MCC per feature slot and the universality gap on one footing with gt-MCC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, FeatgeomError
from featgeom.match import activation_correlation
from featgeom.metrics import (
    UniversalityGap,
    cross_mcc,
    empirical_mcc,
    gt_mcc,
    universality_gap_details,
)

# Hungarian on |corr|: (0,0) 0.9 + (1,1) 0.8 + (2,3) 0.6 = 2.3 beats e.g. (0,0) + (1,3) 0.4 +
# (2,1) 0.5 = 1.8 or (0,0) + (1,1) + (2,2) 0.2 = 1.9. Matched |corr| sorted: 0.9, 0.8, 0.6.
HAND = np.array(
    [
        [0.9, 0.1, -0.2, 0.0],
        [0.3, -0.8, 0.1, 0.4],
        [0.0, 0.5, 0.2, -0.6],
    ]
)


def test_empirical_mcc_by_hand() -> None:
    assert empirical_mcc(HAND, 2) == pytest.approx((0.9 + 0.8) / 2)  # best 2 of 3 matched
    assert empirical_mcc(HAND, 3) == pytest.approx(2.3 / 3)  # = cross_mcc here
    assert cross_mcc(HAND) == pytest.approx(2.3 / 3)
    assert empirical_mcc(HAND, 4) == pytest.approx(2.3 / 4)  # one slot without a pair
    assert empirical_mcc(HAND.T, 2) == pytest.approx(0.85)


def test_gap_details_by_hand() -> None:
    # m = 2, gt 0.95: s = 2, empirical 0.85, gap 0.1, imperfection mean(0.1, 0.2) = 0.15;
    # (0.95 - 1) + 0 / 2 + (2 / 2) * 0.15 = 0.1.
    d = universality_gap_details(0.95, HAND, 2)
    assert isinstance(d, UniversalityGap)
    assert (d.matched_slots, d.missing_slots, d.n_units) == (2, 0, 2)
    assert d.empirical_mcc == pytest.approx(0.85)
    assert d.universality_gap == pytest.approx(0.1)
    assert d.imperfection == pytest.approx(0.15)
    assert d.dead_a is None and d.dead_b is None  # dense matrix: dead latents unknown
    # m = 4, gt 1: s = 3, missing 1, empirical 2.3 / 4 = 0.575, gap 0.425,
    # imperfection (0.1 + 0.2 + 0.4) / 3; 0 + 1 / 4 + (3 / 4) * 0.7 / 3 = 0.25 + 0.175 = 0.425.
    d = universality_gap_details(1.0, HAND, 4)
    assert (d.matched_slots, d.missing_slots) == (3, 1)
    assert d.empirical_mcc == pytest.approx(0.575)
    assert d.universality_gap == pytest.approx(0.425)
    assert d.imperfection == pytest.approx(0.7 / 3)
    as_dict = json.loads(json.dumps(d.as_dict()))
    assert as_dict["universality_gap"] == pytest.approx(0.425) and as_dict["dead_a"] is None


def _sae_acts(rng: np.random.Generator, make_acts, true: np.ndarray) -> np.ndarray:
    """160 latents: the 128 true features, 22 extra alive latents, 10 dead; columns shuffled."""
    acts = np.hstack([true, make_acts(true.shape[0], 22, 0.2), np.zeros((true.shape[0], 10))])
    return acts[:, rng.permutation(160)]


def test_identical_members_with_identical_saes_have_no_gap(rng, make_acts) -> None:
    true = make_acts(1500, 128, 0.2)
    gt = gt_mcc(true, true, sp.identity(128, format="csr"))
    assert gt == pytest.approx(1.0)
    acts_a = _sae_acts(rng, make_acts, true)
    acts_b = 2.0 * acts_a[:, rng.permutation(160)]  # the same SAE, latents relabelled
    result = activation_correlation(acts_a, acts_b)
    assert cross_mcc(result) == pytest.approx(150 / 160)  # per latent: the dead rate shows
    assert empirical_mcc(result, 128) == pytest.approx(1.0)
    d = universality_gap_details(gt, result, 128)
    assert d.universality_gap == pytest.approx(0.0, abs=1e-12)
    assert (d.matched_slots, d.missing_slots, d.dead_a, d.dead_b) == (128, 0, 10, 10)
    assert d.imperfection == pytest.approx(0.0, abs=1e-12)


def test_identity_matrix_over_alive_latents() -> None:
    corr = np.eye(150)  # 150 alive latents of 160 per side, identical SAEs
    assert empirical_mcc(corr, 128) == 1.0
    d = universality_gap_details(1.0, corr, 128)
    assert d.universality_gap == 0.0 and d.imperfection == 0.0 and d.missing_slots == 0


def test_fewer_alive_latents_than_slots_is_penalised_by_missing_slots(make_acts) -> None:
    base = make_acts(1500, 150, 0.2)
    acts_a = np.hstack([base[:, :100], np.zeros((1500, 60))])  # only 100 alive latents
    acts_b = np.hstack([base, np.zeros((1500, 10))])  # 150 alive
    result = activation_correlation(acts_a, acts_b)
    m = 128
    assert empirical_mcc(result, m) == pytest.approx(1 - 28 / m)
    d = universality_gap_details(1.0, result, m)
    assert (d.matched_slots, d.missing_slots, d.dead_a, d.dead_b) == (100, 28, 60, 10)
    assert d.universality_gap == pytest.approx(28 / m)
    assert d.imperfection == pytest.approx(0.0, abs=1e-12)


def _related(make_acts, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """A (n, 12) and B (n, 15): B's first 8 latents are noisy copies of A's, the rest unrelated."""
    acts_a = make_acts(n, 12, 0.3)
    acts_b = make_acts(n, 15, 0.3)
    acts_b[:, :8] = acts_a[:, :8] + 0.5 * make_acts(n, 8, 0.3)
    return acts_a, acts_b


@pytest.mark.parametrize("n_units", [5, 10, 12, 20])
def test_invariant_to_permuting_latents(rng, make_acts, n_units) -> None:
    acts_a, acts_b = _related(make_acts)
    result = activation_correlation(acts_a, acts_b)
    pa, pb = rng.permutation(12), rng.permutation(15)
    permuted = activation_correlation(acts_a[:, pa], acts_b[:, pb])
    assert empirical_mcc(permuted, n_units) == pytest.approx(empirical_mcc(result, n_units))
    dense = result.matrix
    assert empirical_mcc(dense[pa][:, pb], n_units) == pytest.approx(empirical_mcc(dense, n_units))
    assert empirical_mcc(dense.T, n_units) == pytest.approx(empirical_mcc(dense, n_units))
    got = universality_gap_details(0.7, permuted, n_units).as_dict()
    assert got == pytest.approx(universality_gap_details(0.7, result, n_units).as_dict())


@pytest.mark.parametrize("n_units", [1, 4, 12, 30])
def test_decomposition_identity(rng, make_acts, n_units) -> None:
    acts_a, acts_b = _related(make_acts)
    result = activation_correlation(acts_a, acts_b)
    for gt in (0.0, rng.uniform(), 1.0):
        d = universality_gap_details(gt, result, n_units)
        assert d.universality_gap == d.gt_mcc - d.empirical_mcc  # exactly
        assert d.empirical_mcc == empirical_mcc(result, n_units)
        assert d.matched_slots + d.missing_slots == n_units
        assert d.matched_slots == min(n_units, 12)
        m, s = d.n_units, d.matched_slots
        parts = (d.gt_mcc - 1) + d.missing_slots / m + (s / m) * d.imperfection
        assert d.universality_gap == pytest.approx(parts, abs=1e-12)
        assert 0.0 <= d.imperfection <= 1.0 and 0.0 <= d.empirical_mcc <= 1.0


def test_bad_inputs(make_acts) -> None:
    acts_a, acts_b = _related(make_acts, 300)
    top_k = activation_correlation(acts_a, acts_b, top_k=2)
    with pytest.raises(ConfigError, match="top_k"):
        empirical_mcc(top_k, 5)
    with pytest.raises(ConfigError, match="top_k"):
        universality_gap_details(1.0, top_k, 5)
    for bad in (0, -3, 2.5, True, "4", None):
        with pytest.raises(ConfigError, match="n_units"):
            empirical_mcc(HAND, bad)
        with pytest.raises(ConfigError, match="n_units"):
            universality_gap_details(1.0, HAND, bad)
    with pytest.raises(DataError, match=r"corr.*\[-1, 1\]"):
        empirical_mcc(np.array([[1.5, 0.0]]), 1)
    with pytest.raises(DataError, match=r"corr.*\[-1, 1\]"):
        universality_gap_details(1.0, np.array([[0.2, -1.2]]), 1)
    with pytest.raises(DataError, match="corr"):
        empirical_mcc(np.array([[np.nan, 0.0]]), 1)
    with pytest.raises(FeatgeomError, match="corr"):
        empirical_mcc(np.zeros(3), 1)  # not a matrix
    for gt in (1.5, -0.1, float("nan"), "1", True):
        with pytest.raises(DataError, match="gt"):
            universality_gap_details(gt, HAND, 2)
