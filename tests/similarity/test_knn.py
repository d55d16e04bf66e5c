"""Mutual k-NN alignment: hand-computed case, invariances per neighbour metric, planted truth,
the chance level k / (n - 1), and a calibrated null with power."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.similarity import mutual_knn
from featgeom.stats import null_test

from .helpers import anisotropic, random_orthogonal


def test_hand_computed_points_on_a_line() -> None:
    # x at 0, 1, 3, 7 and y at 0, 1, 10, 11 (k = 1, euclidean): nearest neighbours
    # x: 0->1, 1->0, 2->1, 3->2; y: 0->1, 1->0, 2->3, 3->2: items 0, 1, 3 agree -> 3/4.
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    y = np.array([[0.0], [1.0], [10.0], [11.0]])
    assert mutual_knn(x, y, k=1, metric="euclidean") == pytest.approx(0.75)
    # k = 2: x: 0->{1,2}, 1->{0,2}, 2->{1,0}, 3->{2,1}; y: 0->{1,2}, 1->{0,2}, 2->{3,1}, 3->{2,1}
    # shared 2 + 2 + 1 + 2 = 7 of 8.
    assert mutual_knn(x, y, k=2, metric="euclidean") == pytest.approx(7 / 8)


def test_ties_break_by_index() -> None:
    # In x item 1 is equally far from 0 and 2; broken by the smaller index its neighbour is 0, as
    # in y (where 0 is strictly nearer), so all four items agree (by the larger index: 3/4).
    x = np.array([[0.0], [1.0], [2.0], [10.0]])
    y = np.array([[0.0], [1.0], [3.0], [10.0]])
    assert mutual_knn(x, y, k=1, metric="euclidean") == 1.0


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_shared_invariances(related, rng, metric: str) -> None:
    x, y = related
    base = mutual_knn(x, y, k=5, metric=metric)
    for transform in (lambda a: a @ random_orthogonal(a.shape[1], rng), lambda a: 3.7 * a,
                      lambda a: a[:, rng.permutation(a.shape[1])]):
        assert mutual_knn(transform(x), y, k=5, metric=metric) == pytest.approx(base, abs=1e-12)
        assert mutual_knn(x, transform(y), k=5, metric=metric) == pytest.approx(base, abs=1e-12)


def test_metric_specific_invariances_and_non_invariances(related, rng) -> None:
    x, y = related
    shift = x + 10.0 * rng.standard_normal(x.shape[1])
    per_item = x * rng.uniform(0.2, 5.0, size=(x.shape[0], 1))
    assert mutual_knn(shift, y, k=5, metric="euclidean") == pytest.approx(mutual_knn(x, y, k=5, metric="euclidean"))
    assert mutual_knn(per_item, y, k=5, metric="cosine") == pytest.approx(mutual_knn(x, y, k=5, metric="cosine"))
    assert mutual_knn(shift, y, k=5, metric="cosine") != pytest.approx(mutual_knn(x, y, k=5, metric="cosine"))
    assert mutual_knn(per_item, y, k=5, metric="euclidean") != pytest.approx(
        mutual_knn(x, y, k=5, metric="euclidean"))
    for metric in ("cosine", "euclidean"):
        assert mutual_knn(anisotropic(x, rng), y, k=5, metric=metric) != pytest.approx(
            mutual_knn(x, y, k=5, metric=metric))
        assert mutual_knn(x, y[rng.permutation(len(y))], k=5, metric=metric) < mutual_knn(x, y, k=5, metric=metric)


def test_planted_truth_is_one(related, rng) -> None:
    x, _ = related
    embed = random_orthogonal(12, rng)[:8]
    assert mutual_knn(x, 2.0 * x @ embed, k=7) == 1.0


def test_independent_inputs_sit_at_the_chance_level() -> None:
    rng = np.random.default_rng(3)
    n, k = 80, 8
    values = [mutual_knn(rng.standard_normal((n, 6)), rng.standard_normal((n, 6)), k=k) for _ in range(300)]
    assert np.mean(values) == pytest.approx(k / (n - 1), rel=0.05)


@pytest.mark.slow  # 1,000 null tests of 49 permutations: ~40 s on 2 cores
def test_null_is_calibrated_on_independence_and_has_power(rng) -> None:
    """Shuffle null with mutual_knn as a callable: false-positive rate at 0.05 in [0.03, 0.07]
    over 1,000 independent pairs; p < 0.05 for every planted related pair. (The score takes
    n k + 1 values and ties count against the observation, so with few items the test is
    conservative: 0.028 at 30 items; 80 make the null fine enough.)"""
    p_values = []
    for _ in range(1000):
        x, y = rng.standard_normal((80, 4)), rng.standard_normal((80, 3))
        p_values.append(null_test(mutual_knn, x, y, n_perm=49, seed=int(rng.integers(2**31)),
                                  metric_kwargs={"k": 5}).p_value)
    rate = np.mean(np.asarray(p_values) <= 0.05)
    assert 0.03 <= rate <= 0.07, rate
    for _ in range(20):
        x = rng.standard_normal((80, 4))
        y = x[:, :3] + 0.5 * rng.standard_normal((80, 3))
        assert null_test(mutual_knn, x, y, n_perm=49, seed=1, metric_kwargs={"k": 5}).p_value < 0.05


def test_bad_input() -> None:
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ConfigError, match=r"k: must be an integer in \[1, n - 2\] = \[1, 8\]"):
        mutual_knn(x, x, k=9)
    with pytest.raises(ConfigError, match="k: must be an integer"):
        mutual_knn(x, x, k=2.5)
    with pytest.raises(ConfigError, match="metric: unknown 'manhattan'"):
        mutual_knn(x, x, k=3, metric="manhattan")
    with pytest.raises(ShapeError, match="at least 3 paired rows"):
        mutual_knn(x[:2], x[:2], k=1)
    zero = x.copy()
    zero[4] = 0
    with pytest.raises(DataError, match="x: row 4 is all zeros"):
        mutual_knn(zero, x, k=3)
