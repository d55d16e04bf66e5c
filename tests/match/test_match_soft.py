"""soft_correspondence: S in [0, 1], marginals <= 1, near-permutations, low-temperature limit."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError
from featgeom.match import activation_correlation, pair, soft_correspondence


def test_entries_in_unit_interval_and_marginals_at_most_one(rng):
    corr = np.tanh(rng.standard_normal((40, 55)))
    for t in [0.01, 0.1, 1.0, 10.0]:
        s = soft_correspondence(corr, temperature=t, unmatched_score=-0.5)
        assert s.shape == (40, 55)
        assert s.min() >= 0.0 and s.max() <= 1.0
        assert s.sum(axis=1).max() <= 1.0 + 1e-12 and s.sum(axis=0).max() <= 1.0 + 1e-12


def test_permutation_structured_input_gives_near_permutation(rng):
    n = 200
    perm = rng.permutation(n)
    corr = 0.8 * np.eye(n)[perm] + 0.05 * rng.standard_normal((n, n))
    s = soft_correspondence(corr)
    on = np.eye(n)[perm].astype(bool)
    assert s[on].min() > 0.99
    assert s[~on].max() < 0.01
    np.testing.assert_array_equal(s.argmax(axis=1), perm)


def test_low_temperature_limit_is_mutual_pairing_above_unmatched_score(rng):
    corr = (rng.permutation(300) / 150.0 - 1.0).reshape(15, 20)  # distinct, gaps >= 1/150
    s = soft_correspondence(corr, temperature=1e-4, unmatched_score=0.305)
    mutual = pair(corr, mode="mutual", min_corr=0.305)
    hard = np.zeros_like(corr)
    hard[mutual.idx_a, mutual.idx_b] = 1.0
    np.testing.assert_allclose(s, hard, atol=1e-6)


def test_result_input_covers_all_latents_with_dead_ones_unmatched(planted):
    a, b, perm = planted
    b = b.copy()
    b[:, 0] = 0.0
    res = activation_correlation(a, b)
    s = soft_correspondence(res)
    assert s.shape == (30, 45)
    assert np.all(s[:, 0] == 0.0)
    np.testing.assert_array_equal(s.argmax(axis=1), perm)
    with pytest.raises(ConfigError, match="full matrix"):
        soft_correspondence(activation_correlation(a, b, top_k=2))


@pytest.mark.parametrize(
    ("corr", "kwargs", "error"),
    [
        (np.eye(3), {"temperature": 0.0}, ConfigError),
        (np.eye(3), {"temperature": float("inf")}, ConfigError),
        (np.eye(3), {"unmatched_score": float("nan")}, ConfigError),
        (np.array([[np.inf, 0.0]]), {}, DataError),
    ],
)
def test_bad_inputs_raise(corr, kwargs, error):
    with pytest.raises(error):
        soft_correspondence(corr, **kwargs)
