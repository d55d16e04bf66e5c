"""Orthogonal Procrustes similarity: hand-computed case, link to the Procrustes distance,
invariances, planted truth, random-matrix null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from featgeom.similarity import procrustes

from .helpers import INVARIANT_TRANSFORMS, anisotropic, random_orthogonal


def test_hand_computed_four_items() -> None:
    # Both sides centered; ||X||_F^2 = 4, ||Y||_F^2 = 10; X^T Y = diag(4, 2), nuclear norm 6;
    # similarity = 6 / (2 sqrt10) = 3 / sqrt10.
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert procrustes(x, y) == pytest.approx(3 / math.sqrt(10), abs=1e-12)


def test_one_minus_similarity_is_half_the_squared_procrustes_distance(related) -> None:
    x, y = related  # dims 8 and 6: pad y with two zero columns
    xs = (x - x.mean(axis=0)) / np.linalg.norm(x - x.mean(axis=0))
    ys = (y - y.mean(axis=0)) / np.linalg.norm(y - y.mean(axis=0))
    ys = np.hstack([ys, np.zeros((len(ys), 2))])
    q, _ = orthogonal_procrustes(ys, xs)
    distance_sq = np.linalg.norm(xs - ys @ q) ** 2
    assert distance_sq == pytest.approx(2 * (1 - procrustes(x, y)), abs=1e-12)


@pytest.mark.parametrize("name", sorted(INVARIANT_TRANSFORMS))
def test_invariances(related, rng, name: str) -> None:
    x, y = related
    base = procrustes(x, y)
    transform = INVARIANT_TRANSFORMS[name]
    assert procrustes(transform(x, rng), y) == pytest.approx(base, abs=1e-10)
    assert procrustes(x, transform(y, rng)) == pytest.approx(base, abs=1e-10)


def test_non_invariances(related, rng) -> None:
    x, y = related
    assert abs(procrustes(anisotropic(x, rng), y) - procrustes(x, y)) > 1e-3
    assert procrustes(x, y[rng.permutation(len(y))]) < procrustes(x, y) - 0.2


def test_planted_truth_is_one(related, rng) -> None:
    x, _ = related
    assert procrustes(x, x) == pytest.approx(1.0, abs=1e-12)
    embed = random_orthogonal(12, rng)[:8]  # (8, 12) orthonormal rows: rotate into a larger dim
    assert procrustes(x, 0.5 * x @ embed + 4.0) == pytest.approx(1.0, abs=1e-12)


def test_independent_inputs_follow_the_quarter_circle_law() -> None:
    # Independent Gaussian X, Y (n, d), centered and unit-normalised: X^T Y ~ W / (d sqrt(n - 1))
    # with W a (d, d) standard Gaussian matrix, whose mean singular value is ~ 8 sqrt(d) / (3 pi)
    # (quarter-circle law), so the similarity is ~ (8 / (3 pi)) sqrt(d / (n - 1)).
    rng = np.random.default_rng(13)
    n, d = 400, 8
    values = [
        procrustes(rng.standard_normal((n, d)), rng.standard_normal((n, d))) for _ in range(200)
    ]
    assert np.mean(values) == pytest.approx(8 / (3 * math.pi) * math.sqrt(d / (n - 1)), rel=0.06)
