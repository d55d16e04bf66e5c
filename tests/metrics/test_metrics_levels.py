"""Multi-level universality L1-L6."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import LEVELS, LevelThresholds, universality_levels


def _orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, d)))[0]


def _clustered(rng: np.random.Generator, n_clusters: int = 4, size: int = 25, d: int = 32):
    """Latent directions in tight clusters (members = centre + 0.3 noise), and cluster ids."""
    centres = rng.standard_normal((n_clusters, d))
    labels = np.repeat(np.arange(n_clusters), size)
    return centres[labels] + 0.3 * rng.standard_normal((labels.size, d)), labels


def test_rotated_decoder_is_all_level_1(rng) -> None:
    dec_a, _ = _clustered(rng)
    n = dec_a.shape[0]
    ids = np.arange(n)
    perm = rng.permutation(n)  # B's latents in another order
    dec_b = np.empty_like(dec_a)
    dec_b[perm] = 2.0 * dec_a @ _orthogonal(rng, 32)
    got = universality_levels(dec_a, dec_b, ids, perm, np.zeros(n))
    assert got.fractions == {"L1": 1.0, "L2": 0.0, "L3": 0.0, "L4": 0.0, "L5": 0.0, "L6": 0.0}
    np.testing.assert_allclose(got.cos, 1.0)
    assert np.isnan(got.neighbourhood_svcca).all()  # not needed for L1 pairs


def test_different_hidden_dims_are_aligned(rng) -> None:
    dec_a, _ = _clustered(rng)
    isometry = np.linalg.qr(rng.standard_normal((48, 32)))[0].T  # (32, 48)
    ids = np.arange(dec_a.shape[0])
    got = universality_levels(dec_a, dec_a @ isometry, ids, ids, np.zeros(ids.size))
    assert got.fractions["L1"] == 1.0


def _shared_local_geometry(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A: 4 clusters of 25 latents, cluster c random in its own 8-dim subspace S_c of R^32
    (mutually orthogonal, so a latent's neighbours are in its cluster). B: each cluster moved
    by its own isometry into ONE shared 8-dim subspace: every neighbourhood keeps its geometry
    exactly, but no single rotation of R^32 can align the directions."""
    basis = _orthogonal(rng, 32).T
    coords = rng.standard_normal((4, 25, 8))
    dec_a = np.vstack([coords[c] @ basis[8 * c: 8 * c + 8] for c in range(4)])
    dec_b = np.vstack([coords[c] @ _orthogonal(rng, 8) @ basis[:8] for c in range(4)])
    return dec_a, dec_b


def test_each_level_is_reached(rng) -> None:
    dec_a, local = _shared_local_geometry(rng)
    n = dec_a.shape[0]
    ids = np.arange(n)
    got = universality_levels(dec_a, local, ids, ids, np.zeros(n))
    assert got.fractions["L3"] > 0.9
    np.testing.assert_allclose(got.neighbourhood_svcca[got.level == 3], 1.0)
    unrelated = rng.standard_normal(dec_a.shape)
    high_corr = np.full(n, 0.9)
    assert universality_levels(dec_a, unrelated, ids, ids, high_corr).fractions["L4"] > 0.9
    same = np.ones(n, dtype=bool)
    got = universality_levels(dec_a, unrelated, ids, ids, np.full(n, np.nan), same_category=same)
    assert got.fractions["L5"] > 0.9 and got.fractions["L6"] < 0.1
    got = universality_levels(dec_a, unrelated, ids, ids, np.zeros(n))
    assert got.fractions["L6"] > 0.9
    noise = rng.standard_normal(dec_a.shape) * np.linalg.norm(dec_a, axis=1, keepdims=True)
    noisy = dec_a + 0.7 * noise / np.sqrt(32)  # |cos| ~ 0.82 with the original
    assert universality_levels(dec_a, noisy, ids, ids, np.zeros(n)).fractions["L2"] > 0.9


def test_first_level_wins_and_fractions_sum_to_one(rng) -> None:
    dec_a, _ = _clustered(rng)
    n = dec_a.shape[0]
    dec_b = dec_a.copy()
    dec_b[:10] = rng.standard_normal((10, 32))  # a few unrelated pairs
    same = np.ones(n, dtype=bool)
    got = universality_levels(dec_a, dec_b, np.arange(n), np.arange(n), np.ones(n),
                              same_category=same)
    assert (got.level[10:] == 1).all()  # also correlated and same category, but L1 first
    assert (got.level[:10] >= 3).all()
    assert sum(got.fractions.values()) == pytest.approx(1.0)
    assert list(got.fractions) == list(LEVELS)
    strict = LevelThresholds(identical_cos=1.1, similar_cos=1.1, neighbourhood_svcca=1.1,
                             activation_corr=1.1)
    relaxed = universality_levels(dec_a, dec_b, np.arange(n), np.arange(n), np.ones(n),
                                  same_category=same, thresholds=strict)
    assert relaxed.fractions["L5"] == 1.0


def test_levels_bad_inputs(rng) -> None:
    dec, _ = _clustered(rng)
    ids = np.arange(100)
    with pytest.raises(ShapeError, match="k_nn"):
        universality_levels(dec, dec, ids[:20], ids[:20], np.zeros(20))
    with pytest.raises(ConfigError, match="svcca_dims"):
        universality_levels(dec, dec, ids, ids, np.zeros(100), k_nn=2, svcca_dims=3)
    with pytest.raises(ShapeError, match="act_corr"):
        universality_levels(dec, dec, ids, ids, np.zeros(99))
    with pytest.raises(DataError, match="act_corr"):
        universality_levels(dec, dec, ids, ids, np.full(100, np.inf))
    with pytest.raises(DataError, match="same_category"):
        universality_levels(dec, dec, ids, ids, np.zeros(100), same_category=np.ones(100))
    with pytest.raises(DataError, match="idx_b"):
        universality_levels(dec, dec[:50], ids, ids, np.zeros(100))
