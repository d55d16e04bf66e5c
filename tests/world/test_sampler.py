"""Unit tests of the fast sampler's pieces (the equivalence with SAELens is tested separately)."""

import numpy as np
import pytest

from scipy.special import ndtr

from featgeom.errors import ConfigError
from featgeom.world import sampler as sampler_module
from featgeom.world.sampler import FeatureBatch, SamplingLaw, below_upper_tail, bernoulli_grid


def test_bernoulli_grid_rates_and_independence():
    rng = np.random.default_rng(0)
    p = np.array([0.0, 0.003, 0.05, 0.5, 0.97, 1.0])
    n = 200_000
    rows, cols = bernoulli_grid(p, n, rng)
    counts = np.bincount(cols, minlength=p.size)
    se = np.sqrt(n * p * (1 - p)) + 1e-12
    assert counts[0] == 0 and counts[-1] == n
    assert np.all(np.abs(counts[1:-1] - n * p[1:-1]) < 5 * se[1:-1])
    assert rows.min() >= 0 and rows.max() < n
    # no duplicate (row, col) and successes spread uniformly over rows
    keys = rows * p.size + cols
    assert np.unique(keys).size == keys.size
    mid = rows[cols == 3]
    assert abs(np.mean(mid < n / 2) - 0.5) < 0.01


def test_bernoulli_grid_extends_when_budget_runs_out():
    # with n small and p near 1 every row needs drawing; budgets are exceeded and extended
    rng = np.random.default_rng(1)
    rows, cols = bernoulli_grid(np.array([0.999, 0.9]), 50, rng)
    assert np.bincount(cols, minlength=2)[0] >= 45


def test_sampler_is_deterministic_and_seed_dependent(tiny_world):
    a = tiny_world.sampler(seed=3).sample_features(500)
    b = tiny_world.sampler(seed=3).sample_features(500)
    c = tiny_world.sampler(seed=4).sample_features(500)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)
    assert not np.array_equal(a.to_dense(), c.to_dense())


def test_workers_are_deterministic_and_split_the_batch(tiny_world):
    a, b = tiny_world.sampler(seed=3, workers=2), tiny_world.sampler(seed=3, workers=2)
    first, second = a.sample_features(1001), b.sample_features(1001)
    assert first.shape == (1001, tiny_world.num_features)
    assert np.array_equal(first.indptr, second.indptr) and np.array_equal(first.values, second.values)
    # part p of call i is drawn with seed (seed, i, p): the worker's half equals a direct draw
    direct = a.law.draw(501, np.random.default_rng(np.random.SeedSequence(3, spawn_key=(0, 1))))
    np.testing.assert_array_equal(first.to_dense()[500:], direct.to_dense())
    assert not np.array_equal(a.sample_features(1001).to_dense(), first.to_dense())  # next call, new draws
    a.close()
    b.close()


def test_hidden_is_acts_times_vectors_plus_bias(tiny_world):
    hidden, batch = tiny_world.sampler(seed=0).sample(300)
    expected = batch.to_dense() @ tiny_world.feature_vectors + tiny_world.bias
    np.testing.assert_allclose(hidden, expected, atol=1e-4)
    assert hidden.shape == (300, tiny_world.hidden_dim)
    assert np.all(batch.values > 0)


def test_feature_batch_views_agree():
    batch = FeatureBatch.from_coo(np.array([1, 0, 1]), np.array([2, 1, 0]), np.array([3.0, 1.0, 2.0]), (3, 4))
    np.testing.assert_array_equal(batch.to_dense(), [[0, 1, 0, 0], [2, 0, 3, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(batch.l0(), [1, 2, 0])
    np.testing.assert_array_equal(batch.rows, [0, 1, 1])


def test_bad_sample_count_and_workers(tiny_world):
    with pytest.raises(ConfigError, match="n: number of samples"):
        tiny_world.sampler().sample_features(0)
    with pytest.raises(ConfigError, match="workers"):
        tiny_world.sampler(workers=0)


def test_below_upper_tail_gives_the_same_booleans_as_ndtr():
    rng = np.random.default_rng(2)
    u = np.concatenate([rng.normal(0, 3, 200_000), rng.uniform(-15, 15, 50_000), [-np.inf, -30, 30, np.inf],
                        -9 + 1e-3 * rng.integers(0, 18_001, 10_000)])  # grid points themselves
    exact = ndtr(-u)
    # levels right at Q(u) (inside every bracket), and spread over [0, 1]
    level = np.concatenate([exact[:100_000] * (1 + rng.uniform(-1e-9, 1e-9, 100_000)), rng.random(u.size - 100_000)])
    np.testing.assert_array_equal(below_upper_tail(level, u), level < exact)


def test_dense_check_finds_every_candidate_value_and_violation(tiny_world, monkeypatch):
    monkeypatch.setattr(sampler_module, "_CHUNK", 128)  # several chunks, the last one partial
    law = SamplingLaw(tiny_world)
    rng = np.random.default_rng(3)
    n = 1000
    eps = rng.standard_normal((n, law.factor.shape[1]), dtype=np.float32)
    rows, local = bernoulli_grid(law.candidate_prob, n, rng)
    cand_a, v_rows, v_local, v_a = law._dense_check(eps, rows, local)
    a = eps @ law.top_factor_t  # (n, N_top) brute force
    np.testing.assert_allclose(cand_a, a[rows, local], rtol=1e-5, atol=1e-5)
    hit = a > law.violation_level
    hit[rows, local] = False
    expected = set(zip(*np.nonzero(hit)))
    assert len(expected) > 0
    assert set(zip(v_rows.tolist(), v_local.tolist())) == expected
    np.testing.assert_allclose(v_a, a[v_rows, v_local], rtol=1e-5, atol=1e-5)
