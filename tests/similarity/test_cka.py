"""Linear CKA: hand-computed case, both computation forms, invariances, planted truth, null."""

from __future__ import annotations

import math

import numpy as np
import pytest

from featgeom.similarity import linear_cka

from .helpers import INVARIANT_TRANSFORMS, anisotropic, random_orthogonal


def test_hand_computed_four_items() -> None:
    # Both sides already centered. X^T X = 2 I, Y^T Y = diag(8, 2), Y^T X = diag(4, 2):
    # CKA = (16 + 4) / (||2 I||_F ||diag(8, 2)||_F) = 20 / (2 sqrt2 sqrt68) = 10 / sqrt(136).
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert linear_cka(x, y) == pytest.approx(10 / math.sqrt(136), abs=1e-12)


@pytest.mark.parametrize("dims", [(25, 12), (8, 6)])
def test_both_forms_match_the_hsic_definition(rng, dims: tuple[int, int]) -> None:
    # (25, 12) >= 10 items takes the Gram path, (8, 6) the feature path; both must equal
    # <HKH, HLH>_F / (||HKH||_F ||HLH||_F) with K = x x^T, L = y y^T, H = I - 11^T / n.
    x, y = rng.standard_normal((10, dims[0])), rng.standard_normal((10, dims[1]))
    h = np.eye(10) - 1 / 10
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    expected = np.sum(k * l) / (np.linalg.norm(k) * np.linalg.norm(l))
    assert linear_cka(x, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", sorted(INVARIANT_TRANSFORMS))
def test_invariances(related, rng, name: str) -> None:
    x, y = related
    base = linear_cka(x, y)
    transform = INVARIANT_TRANSFORMS[name]
    assert linear_cka(transform(x, rng), y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, transform(y, rng)) == pytest.approx(base, abs=1e-10)


def test_non_invariances(related, rng) -> None:
    x, y = related
    assert abs(linear_cka(anisotropic(x, rng), y) - linear_cka(x, y)) > 1e-3
    assert linear_cka(x, y[rng.permutation(len(y))]) < linear_cka(x, y) - 0.2


def test_planted_truth_is_one(related, rng) -> None:
    x, _ = related
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    embed = random_orthogonal(12, rng)[:8]  # (8, 12) orthonormal rows: rotate into a larger dim
    assert linear_cka(x, 3.0 * x @ embed - 1.0) == pytest.approx(1.0, abs=1e-12)


def test_independent_inputs_give_the_small_expected_value() -> None:
    # For independent Gaussian X (n, p), Y (n, q): E||Y^T X||^2 ~ n' p q and
    # E||X^T X||^2 ~ n' p (n' + p) with n' = n - 1 after centering, so
    # CKA ~ sqrt(p q / ((n' + p)(n' + q))): small but not 0.
    rng = np.random.default_rng(12)
    n, p, q = 100, 5, 5
    values = [
        linear_cka(rng.standard_normal((n, p)), rng.standard_normal((n, q))) for _ in range(300)
    ]
    expected = math.sqrt(p * q / ((n - 1 + p) * (n - 1 + q)))
    assert np.mean(values) == pytest.approx(expected, rel=0.05)
