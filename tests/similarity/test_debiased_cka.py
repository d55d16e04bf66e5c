"""Debiased linear CKA: hand-computed case, the n x n definition, invariances, planted truth,
unbiasedness under independence, and a calibrated null with power."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import DataError, ShapeError
from featgeom.similarity import debiased_linear_cka, linear_cka
from featgeom.stats import null_test

from .helpers import INVARIANT_TRANSFORMS, anisotropic, random_orthogonal


def test_hand_computed_orthogonal_signs() -> None:
    # x = (1, -1, 1, -1), y = (1, 1, -1, -1): K~ and L~ (diagonals zeroed) give
    # tr(K~ K~) = 12, 1'K~1 = -4, K~1 = (-1, -1, -1, -1), so HSIC_u(K, K) = [12 + 16/6 - 4] / 4 = 8/3;
    # the same for L; tr(K~ L~) = sum_{i != j} z_i z_j = -4 with z = x * y, so
    # HSIC_u(K, L) = [-4 + 16/6 - 4] / 4 = -4/3 and dCKA = -1/2 (plain linear CKA is 0 here).
    x = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    y = np.array([[1.0], [1.0], [-1.0], [-1.0]])
    assert debiased_linear_cka(x, y) == pytest.approx(-0.5, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(0.0, abs=1e-12)


def test_matches_the_n_by_n_definition(related) -> None:
    x, y = related

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        n = a.shape[0]
        k, l = a @ a.T, b @ b.T
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        one = np.ones(n)
        return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))

    expected = hsic(x, y) / np.sqrt(hsic(x, x) * hsic(y, y))
    assert debiased_linear_cka(x, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", sorted(INVARIANT_TRANSFORMS))
def test_invariances(related, rng, name: str) -> None:
    x, y = related
    base = debiased_linear_cka(x, y)
    transform = INVARIANT_TRANSFORMS[name]
    assert debiased_linear_cka(transform(x, rng), y) == pytest.approx(base, abs=1e-10)
    assert debiased_linear_cka(x, transform(y, rng)) == pytest.approx(base, abs=1e-10)


def test_non_invariances(related, rng) -> None:
    x, y = related
    assert abs(debiased_linear_cka(anisotropic(x, rng), y) - debiased_linear_cka(x, y)) > 1e-3
    assert debiased_linear_cka(x, y[rng.permutation(len(y))]) < debiased_linear_cka(x, y) - 0.2


def test_planted_truth_is_one(related, rng) -> None:
    x, _ = related
    assert debiased_linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    embed = random_orthogonal(12, rng)[:8]
    assert debiased_linear_cka(x, 3.0 * x @ embed - 1.0) == pytest.approx(1.0, abs=1e-12)


def test_independent_inputs_are_centred_near_zero_unlike_plain_cka() -> None:
    rng = np.random.default_rng(12)
    pairs = [(rng.standard_normal((100, 20)), rng.standard_normal((100, 20))) for _ in range(300)]
    debiased = np.array([debiased_linear_cka(x, y) for x, y in pairs])
    plain = np.array([linear_cka(x, y) for x, y in pairs])
    assert abs(debiased.mean()) < 3 * debiased.std() / np.sqrt(len(pairs))  # unbiased: mean 0 within 3 SE
    assert plain.mean() > 0.15  # plain CKA ~ sqrt(p q / ((n' + p)(n' + q))) = 0.17 here


def test_null_is_calibrated_on_independence_and_has_power(rng) -> None:
    """Shuffle null (null_test with the metric as a callable): false-positive rate at 0.05 in
    [0.03, 0.07] over 1,000 independent pairs; p < 0.05 for every planted related pair."""
    p_values = []
    for _ in range(1000):
        x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
        p_values.append(null_test(debiased_linear_cka, x, y, n_perm=49, seed=int(rng.integers(2**31))).p_value)
    rate = np.mean(np.asarray(p_values) <= 0.05)
    assert 0.03 <= rate <= 0.07, rate
    for _ in range(20):
        x = rng.standard_normal((30, 4))
        y = x[:, :3] + 0.7 * rng.standard_normal((30, 3))
        assert null_test(debiased_linear_cka, x, y, n_perm=49, seed=1).p_value < 0.05


def test_bad_input() -> None:
    with pytest.raises(ShapeError, match="at least 4 paired rows"):
        debiased_linear_cka(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(DataError, match="all rows are identical"):
        debiased_linear_cka(np.ones((6, 2)), np.arange(12.0).reshape(6, 2))
