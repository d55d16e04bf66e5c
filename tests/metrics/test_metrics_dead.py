"""Dead-latent stability (DLS) and recovery (DLRec) across checkpoints (task 6.1)."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import DataError, ShapeError
from featgeom.metrics import (
    dead_latent_rate,
    dead_latent_recovery,
    dead_latent_stability,
    dead_latent_transitions,
    dead_latents,
)


def _masks(n: int, *dead_sets: set[int]) -> np.ndarray:
    out = np.zeros((len(dead_sets), n), dtype=bool)
    for t, dead in enumerate(dead_sets):
        out[t, sorted(dead)] = True
    return out


def test_by_hand() -> None:
    masks = _masks(5, {0, 1, 2}, {0, 1, 3}, {0})
    got = dead_latent_transitions(masks)
    np.testing.assert_array_equal(got.dead, [3, 3, 1])
    np.testing.assert_array_equal(got.stayed, [2, 1])  # {0, 1}, {0}
    np.testing.assert_array_equal(got.revived, [1, 2])  # {2}, {1, 3}
    np.testing.assert_array_equal(got.died, [1, 0])  # {3}, none
    np.testing.assert_allclose(got.stability, [2 / 3, 1.0])
    np.testing.assert_allclose(got.recovery, [1 / 3, 2 / 3])
    assert dead_latent_stability(masks) == pytest.approx((2 / 3 + 1) / 2)
    assert dead_latent_recovery(masks) == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_undefined_steps_are_nan_and_skipped() -> None:
    masks = _masks(4, set(), {1}, {1, 2})
    got = dead_latent_transitions(masks)
    np.testing.assert_allclose(got.stability, [0.0, 0.5])  # {1} newly dead, then 1 of {1, 2}
    assert np.isnan(got.recovery[0]) and got.recovery[1] == 0.0
    assert dead_latent_recovery(masks) == 0.0  # mean over the defined step only
    alive = np.zeros((3, 4), dtype=int)  # 0/1 integers are accepted
    assert np.isnan(dead_latent_stability(alive)) and np.isnan(dead_latent_recovery(alive))


def test_planted_checkpoints(make_acts, rng) -> None:
    # 100 latents; 30 die by checkpoint 1, 10 more by 2 (dying early, none revived), then a
    # re-initialization at checkpoint 3 revives 20 of the 40
    dead_sets = [set(), set(range(30)), set(range(40)), set(range(20, 40))]
    masks = []
    for dead in dead_sets:
        acts = make_acts(2000, 100, 0.05)
        acts[:, sorted(dead)] = 0.0
        masks.append(dead_latents(acts))
        assert dead_latent_rate(acts) == pytest.approx(len(dead) / 100)
    masks = np.stack(masks)
    np.testing.assert_array_equal(masks, _masks(100, *dead_sets))
    got = dead_latent_transitions(masks)
    np.testing.assert_allclose(got.stability, [0.0, 30 / 40, 1.0])
    np.testing.assert_allclose(got.recovery, [np.nan, 0.0, 20 / 40])
    assert dead_latent_stability(masks[1:3]) == pytest.approx(0.75)  # plan: dead at t2, dead at t1
    assert dead_latent_recovery(masks) == pytest.approx(0.25)
    shuffled = np.stack([rng.permutation(m) for m in masks])  # dead latents chosen at random
    assert dead_latent_stability(shuffled) < dead_latent_stability(masks)


@pytest.mark.parametrize(
    ("masks", "error"),
    [
        (np.zeros(5, dtype=bool), ShapeError),
        (np.zeros((1, 5), dtype=bool), ShapeError),
        (np.zeros((2, 0), dtype=bool), ShapeError),
        (np.full((2, 3), 2), DataError),
        (np.full((2, 3), "x"), DataError),
    ],
    ids=["1-d", "one-checkpoint", "no-latents", "not-0-1", "strings"],
)
def test_errors(masks, error) -> None:
    with pytest.raises(error, match="masks"):
        dead_latent_stability(masks)
