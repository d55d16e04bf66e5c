"""Pareto front of configurations in (MSE, MCC, F1) space (task 2.1)."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import pareto_front


def _brute_force(points: np.ndarray) -> np.ndarray:
    """Indices of points no other point weakly beats everywhere and strictly somewhere."""
    keep = [i for i, p in enumerate(points)
            if not any(np.all(q >= p) and np.any(q > p) for q in points)]
    return np.array(keep, dtype=np.int64)


def test_by_hand() -> None:
    # (MSE, MCC): p2 is beaten by p1 (lower MSE, higher MCC); p0 and its copy p3 both stay
    points = np.array([[0.1, 0.5], [0.2, 0.9], [0.3, 0.8], [0.1, 0.5], [0.05, 0.4]])
    np.testing.assert_array_equal(pareto_front(points, (False, True)), [0, 1, 3, 4])
    np.testing.assert_array_equal(pareto_front(points, True), [1, 2])  # both maximized
    np.testing.assert_array_equal(pareto_front(points, False), [4])  # both minimized
    assert pareto_front(points[:1]).tolist() == [0]
    assert pareto_front(np.zeros((0, 2))).tolist() == []  # no points, no front


def test_planted_front(rng) -> None:
    # points on the positive unit sphere are mutually non-dominated; shrunken copies are beaten
    front = np.abs(rng.standard_normal((30, 3)))
    front /= np.linalg.norm(front, axis=1, keepdims=True)
    inside = front[rng.integers(0, 30, 50)] * rng.uniform(0.1, 0.95, (50, 1))
    order = rng.permutation(80)
    points = np.vstack([front, inside])[order]
    expected = np.sort(np.flatnonzero(order < 30))
    np.testing.assert_array_equal(pareto_front(points), expected)
    # as (MSE, MCC, F1): negate the MSE column and minimize it instead
    flipped = points * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(pareto_front(flipped, (False, True, True)), expected)


def test_matches_brute_force(rng) -> None:
    points = rng.integers(0, 5, (60, 3)).astype(float)  # many ties and duplicates
    np.testing.assert_array_equal(pareto_front(points), _brute_force(points))


def test_errors() -> None:
    points = np.ones((3, 2))
    with pytest.raises(ShapeError, match="maximize"):
        pareto_front(points, (True, True, False))
    with pytest.raises(ConfigError, match="maximize"):
        pareto_front(points, (1, 0))
    with pytest.raises(ConfigError, match="maximize"):
        pareto_front(points, "max")
    with pytest.raises(DataError, match="points"):
        pareto_front([[np.nan, 1.0]])
    with pytest.raises(ShapeError, match="points"):
        pareto_front(np.ones(3))
