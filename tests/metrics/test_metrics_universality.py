"""Cross-model scores: cross-MCC, gt-MCC, gap, correspondence accuracy, AST and FES."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import activation_correlation
from featgeom.metrics import (
    angular_tolerance,
    correspondence_accuracy,
    cross_mcc,
    functional_equivalence,
    functional_equivalence_details,
    gt_mcc,
    universality_gap,
)


def test_cross_mcc_by_hand() -> None:
    corr = np.array([[0.9, 0.1, 0.3], [0.2, -0.8, 0.85]])
    # best 1-1 matching: (0, 0) + (1, 2) = 1.75 beats (0, 0) + (1, 1) = 1.7
    assert cross_mcc(corr) == pytest.approx(1.75 / 2)
    assert cross_mcc(corr.T) == pytest.approx(1.75 / 2)


def test_cross_mcc_counts_dead_latents_as_zero(make_acts, rng) -> None:
    acts_a = make_acts(800, 4, 0.3)
    acts_a[:, 2] = 0.0  # dead in A
    acts_b = 3.0 * acts_a[:, [3, 0, 1, 2]]  # B = A permuted (B's latent 3 dead too)
    result = activation_correlation(acts_a, acts_b)
    assert cross_mcc(result) == pytest.approx(3 / 4)
    assert cross_mcc(result.matrix) == pytest.approx(1.0)  # alive latents only
    perm_a, perm_b = rng.permutation(4), rng.permutation(4)
    permuted = activation_correlation(acts_a[:, perm_a], acts_b[:, perm_b])
    assert cross_mcc(permuted) == pytest.approx(cross_mcc(result))
    with pytest.raises(ConfigError, match="top_k"):
        cross_mcc(activation_correlation(acts_a, acts_b, top_k=1))


def test_cross_mcc_of_independent_latents_is_low(make_acts) -> None:
    result = activation_correlation(make_acts(2000, 20, 0.2), make_acts(2000, 20, 0.2))
    assert cross_mcc(result) < 0.1


def test_cross_mcc_bad_inputs() -> None:
    with pytest.raises(DataError, match="corr"):
        cross_mcc(np.array([[1.5, 0.0]]))
    with pytest.raises(DataError, match="corr"):
        cross_mcc(np.array([[np.nan, 0.0]]))


def _shared_fraction(rng: np.random.Generator, make_acts, n_shared: int, n: int = 4000):
    """A's activations (n, 50); B copies A's first n_shared columns, the rest independent."""
    acts_a = make_acts(n, 50, 0.2)
    acts_b = make_acts(n, 50, 0.2)
    acts_b[:, :n_shared] = acts_a[:, :n_shared]
    return acts_a, acts_b


def test_gt_mcc_identical_members_is_one(make_acts) -> None:
    acts = make_acts(1000, 30, 0.2)
    assert gt_mcc(acts, acts, sp.identity(30, format="csr")) == pytest.approx(1.0)
    perm = np.random.default_rng(0).permutation(30)
    c = sp.csr_array((np.ones(30), (np.arange(30), np.argsort(perm))), shape=(30, 30))
    assert gt_mcc(acts, acts[:, perm], c) == pytest.approx(1.0)  # relabelled features


@pytest.mark.parametrize("r", [0.0, 0.3, 0.7])
def test_gt_mcc_tracks_the_shared_fraction(rng, make_acts, r) -> None:
    n_shared = int(r * 50)
    acts_a, acts_b = _shared_fraction(rng, make_acts, n_shared)
    everything = sp.identity(50, format="csr")  # C claims all 50 correspond
    assert gt_mcc(acts_a, acts_b, everything) == pytest.approx(r, abs=0.02)
    only_shared = sp.csr_array(np.diag((np.arange(50) < n_shared).astype(float)))
    assert gt_mcc(acts_a, acts_b, only_shared) == pytest.approx(r, abs=1e-12)  # rest unmatched
    sparse_value = gt_mcc(sp.csr_array(acts_a), sp.csc_array(acts_b), everything)
    assert sparse_value == pytest.approx(gt_mcc(acts_a, acts_b, everything), abs=1e-10)


def test_gt_mcc_maximizes_correspondence_weight(make_acts) -> None:
    acts_a = make_acts(2000, 2, 0.3)
    acts_b = acts_a[:, ::-1].copy()  # B0 = A1, B1 = A0
    c = np.array([[1.0, 0.6], [0.7, 0.0]])  # cross pairing weighs 1.3 > 1.0
    assert gt_mcc(acts_a, acts_b, c) == pytest.approx(1.0)
    assert gt_mcc(acts_a, acts_b, np.array([[1.0, 0.6], [0.3, 0.9]])) < 0.1  # diagonal wins


def test_gt_mcc_rectangular_and_undefined(make_acts) -> None:
    acts_a = make_acts(500, 3, 0.3)
    acts_b = np.hstack([acts_a, make_acts(500, 2, 0.3)])  # B has 2 extra unique features
    c = sp.csr_array(np.eye(3, 5))
    assert gt_mcc(acts_a, acts_b, c) == pytest.approx(1.0)  # min(3, 5) = 3 slots
    acts_a[:, 1] = 0.0  # feature 1 of A never fires in this sample
    with pytest.raises(DataError, match="undefined"):
        gt_mcc(acts_a, acts_b, c)
    assert gt_mcc(acts_a, acts_b, c, undefined_as_zero=True) == pytest.approx(2 / 3, abs=0.01)
    with pytest.raises(ShapeError, match="c has shape"):
        gt_mcc(acts_a, acts_b, np.eye(3))
    with pytest.raises(DataError, match="c:"):
        gt_mcc(acts_a, acts_b, -np.eye(3, 5))
    with pytest.raises(ShapeError, match="true_acts_a.*true_acts_b"):
        gt_mcc(acts_a[:10], acts_b, c)


def test_universality_gap() -> None:
    assert universality_gap(0.9, 0.6) == pytest.approx(0.3)
    with pytest.raises(DataError, match="empirical"):
        universality_gap(0.9, float("nan"))


def test_correspondence_accuracy_by_hand() -> None:
    c = sp.csr_array(np.array([[1.0, 0.0, 0.0], [0.0, 0.4, 0.6], [0.0, 0.0, 0.0]]))
    feature_of_a = np.array([0, 1, -1, 2])
    feature_of_b = np.array([0, 2, 1])
    idx_a, idx_b = [0, 1, 1, 2, 3], [0, 1, 2, 0, 0]
    # pair scores: C[0,0]=1, C[1,2]=0.6, C[1,1]=0.4, unassigned -> 0, C[2,0]=0
    plain = correspondence_accuracy(idx_a, idx_b, feature_of_a, feature_of_b, c)
    assert plain == pytest.approx(3 / 5)
    weighted = correspondence_accuracy(idx_a, idx_b, feature_of_a, feature_of_b, c, weighted=True)
    assert weighted == pytest.approx((1 + 0.6 + 0.4) / 5)
    dense = correspondence_accuracy(idx_a, idx_b, feature_of_a, feature_of_b, c.toarray())
    assert dense == pytest.approx(3 / 5)
    assert correspondence_accuracy([2], [0], feature_of_a, feature_of_b, c) == 0.0  # unassigned


def test_correspondence_accuracy_bad_inputs() -> None:
    c = np.eye(2)
    with pytest.raises(DataError, match="feature_of_a"):
        correspondence_accuracy([0], [0], [5], [0], c)
    with pytest.raises(DataError, match="idx_b"):
        correspondence_accuracy([0], [3], [0], [0], c)
    with pytest.raises(ShapeError, match="idx_a"):
        correspondence_accuracy([0, 0], [0], [0], [0], c)
    with pytest.raises(DataError, match="idx_a"):
        correspondence_accuracy([0.5], [0], [0], [0], c)


def _at_angle(rng: np.random.Generator, x: np.ndarray, degrees: float) -> np.ndarray:
    """A unit vector at exactly ``degrees`` from unit x."""
    v = rng.standard_normal(x.size)
    v -= (v @ x) * x
    v /= np.linalg.norm(v)
    t = np.radians(degrees)
    return np.cos(t) * x + np.sin(t) * v


def test_angular_tolerance_by_hand(rng) -> None:
    x = np.eye(8)[:5]
    y = np.stack([_at_angle(rng, xi, a) for xi, a in zip(x, [3, 8, 12, 30, 19.9])])
    y[1] *= -4.0  # sign and scale are ignored
    got = angular_tolerance(x, y)
    assert got == pytest.approx({5: 0.2, 10: 0.4, 15: 0.6, 20: 0.8})
    assert angular_tolerance(x, y, degrees=(12, 90)) == pytest.approx({12: 0.6, 90: 1.0})
    with pytest.raises(ShapeError, match="x has shape"):
        angular_tolerance(x, y[:4])
    with pytest.raises(ConfigError, match="degrees"):
        angular_tolerance(x, y, degrees=(-1,))


def test_functional_equivalence(rng, make_acts) -> None:
    acts_a = make_acts(1000, 6, 0.3)
    acts_b = np.hstack([2.0 * acts_a[:, :3] + 1.0, make_acts(1000, 3, 0.3)])
    assert functional_equivalence(acts_a, acts_b, [0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert abs(functional_equivalence(acts_a, acts_b, [3, 4, 5], [3, 4, 5])) < 0.1
    x = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]])
    y = np.array([[4.0], [3.0], [2.0], [1.0]])
    # corr(x0, y0) = -1; corr(x1, y0) = -0.447...
    assert functional_equivalence(x, y, [0, 1], [0, 0]) == pytest.approx(
        (-1 + np.corrcoef(x[:, 1], y[:, 0])[0, 1]) / 2)
    sparse = functional_equivalence(sp.csr_array(acts_a), sp.csr_array(acts_b), [0, 4], [0, 4])
    assert sparse == pytest.approx(functional_equivalence(acts_a, acts_b, [0, 4], [0, 4]))


def test_functional_equivalence_undefined_pairs(make_acts) -> None:
    acts_a = make_acts(500, 3, 0.3)
    acts_b = acts_a.copy()
    acts_b[:, 1] = 0.0  # dead
    acts_b[:, 2] = 7.0  # constant
    with pytest.raises(DataError, match="skip_undefined"):
        functional_equivalence(acts_a, acts_b, [0, 1, 2], [0, 1, 2])
    details = functional_equivalence_details(acts_a, acts_b, [0, 1, 2], [0, 1, 2],
                                             skip_undefined=True)
    assert details.value == pytest.approx(1.0) and details.n_skipped == 2
    assert np.isnan(details.per_pair[1:]).all()
    with pytest.raises(DataError, match="constant"):
        functional_equivalence(acts_a, acts_b, [1], [1], skip_undefined=True)
    with pytest.raises(ShapeError, match="no pairs"):
        functional_equivalence(acts_a, acts_b, [], [])
