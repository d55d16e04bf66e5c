"""Calibration: with no shared structure, P(p < 0.05) must be about 0.05.

With n_perm = 199 and exchangeable rows, p < 0.05 exactly when at most 8 of the 199 null
scores reach the observed one, which has probability 9/200 = 0.045. Over 1500 independent
(x, y) pairs the observed fraction has standard deviation ~0.0054, so [0.03, 0.07] is a
generous but meaningful band (it fails for a null that ignores the +1 correction or is
mis-specified, e.g. one that re-samples x as well as y's pairing).
"""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.stats import null_test


@pytest.mark.parametrize("metric", ["svcca", "svcca_legacy", "cka", "procrustes", "rsa"])
def test_shuffle_null_is_calibrated(metric: str) -> None:
    rng = np.random.default_rng(31)
    n_pairs = 1500 if metric != "rsa" else 1000
    p_values = np.empty(n_pairs)
    for i in range(n_pairs):
        x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 5))
        p_values[i] = null_test(metric, x, y, n_perm=199, seed=i).p_value
    assert 0.03 <= np.mean(p_values < 0.05) <= 0.07
    assert p_values.min() == pytest.approx(1 / 200) or p_values.min() > 1 / 200  # never 0


def test_subset_null_is_calibrated_for_a_random_subset() -> None:
    # x, y are a random paired subset of pools with no structure: Test 2 must not fire.
    # n_perm = 99: P(p < 0.05) = 4/100 exactly; 600 pairs give a standard deviation of ~0.008.
    rng = np.random.default_rng(32)
    p_values = []
    for i in range(600):
        pool_x, pool_y = rng.standard_normal((60, 4)), rng.standard_normal((60, 3))
        pick = rng.choice(60, size=15, replace=False)
        res = null_test(
            "cka", pool_x[pick], pool_y[pick], kind="subset", n_perm=99, seed=i,
            pool_x=pool_x, pool_y=pool_y,
        )
        p_values.append(res.p_value)
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.08
