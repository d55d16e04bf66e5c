"""MCC, matching, uniqueness, assignment, decomposition diversity, seed disagreement, SA-MCC and
superposition exploitation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import gammaln

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import (
    abs_cosine,
    decomposition_diversity,
    feature_assignment,
    latents_per_feature,
    match_to_features,
    mcc,
    per_seed_mcc,
    seed_disagreement,
    soft_mcc,
    superposition_exploitation,
    uniqueness,
)

SQRT_HALF = np.sqrt(0.5)


def test_mcc_by_hand() -> None:
    # |cos| = [[1, 0], [1/sqrt2, 1/sqrt2]]: the matching takes (0, 0) and (1, 1).
    decoder = np.array([[2.0, 0.0], [1.0, 1.0]])
    features = np.eye(2)
    assert mcc(decoder, features) == pytest.approx((1 + SQRT_HALF) / 2)
    lat, feat, cos = match_to_features(decoder, features)
    np.testing.assert_array_equal(lat, [0, 1])
    np.testing.assert_array_equal(feat, [0, 1])
    np.testing.assert_allclose(cos, [1.0, SQRT_HALF])


def test_mcc_rectangular_averages_over_smaller_side() -> None:
    features = np.eye(3)
    decoder = np.array([[0.0, 0.0, 5.0]])  # one latent: mean over min(1, 3) = 1 pair
    assert mcc(decoder, features) == pytest.approx(1.0)
    assert mcc(features, decoder) == pytest.approx(1.0)
    lat, feat, _ = match_to_features(features, decoder)
    assert (lat.tolist(), feat.tolist()) == ([2], [0])


def test_planted_decoder_recovers_everything(features, plant) -> None:
    decoder, perm = plant(features)
    assert mcc(decoder, features) == pytest.approx(1.0)
    lat, feat, cos = match_to_features(decoder, features)
    np.testing.assert_array_equal(feat, perm[lat])
    np.testing.assert_allclose(cos, 1.0)
    assert uniqueness(decoder, features) == 1.0
    np.testing.assert_array_equal(feature_assignment(decoder, features), perm)
    np.testing.assert_array_equal(feature_assignment(decoder, features, mode="argmax"), perm)


def test_mcc_invariances(features, rng) -> None:
    decoder = features[:30] + 0.04 * rng.standard_normal((30, 64))
    base = mcc(decoder, features)
    assert 0.5 < base < 1.0
    q, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    variants = {
        "permuted latents": (decoder[rng.permutation(30)], features),
        "permuted features": (decoder, features[rng.permutation(40)]),
        "sign flips": (decoder * rng.choice([-1.0, 1.0], 30)[:, None], features),
        "row scaling": (decoder * rng.uniform(0.1, 10.0, 30)[:, None], features),
        "rotation of both": (decoder @ q, features @ q),
    }
    for name, (dec, feats) in variants.items():
        assert mcc(dec, feats) == pytest.approx(base, abs=1e-12), name


def test_mcc_changes_when_one_row_moves(features, plant) -> None:
    decoder, _ = plant(features)
    decoder[7] = np.ones(64)  # no longer any feature (|cos| ~ 0.1 with each)
    assert mcc(decoder, features) < 1.0 - 0.5 / 40


def test_mcc_of_random_single_pairs_matches_the_analytic_mean(rng) -> None:
    # For independent uniform directions in R^d, E|cos| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
    d, trials = 16, 3000
    values = [mcc(rng.standard_normal((1, d)), rng.standard_normal((1, d))) for _ in range(trials)]
    expected = np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi)
    assert np.mean(values) == pytest.approx(expected, abs=4 * np.std(values) / np.sqrt(trials))


def test_mcc_of_random_decoder_is_low(features, rng) -> None:
    value = mcc(rng.standard_normal((40, 64)), features)
    assert 0.1 < value < 0.35  # above the unmatched mean |cos| ~ 0.1, far below 1


def test_uniqueness_by_hand() -> None:
    features = np.eye(3)
    decoder = np.array([[1.0, 0.1, 0.0], [0.9, 0.0, 0.2], [0.0, -1.0, 0.0]])
    assert uniqueness(decoder, features) == pytest.approx(2 / 3)


def test_feature_assignment_modes_and_floor() -> None:
    features = np.eye(3)
    decoder = np.array([[1.0, 0.1, 0.0], [0.9, 0.0, 0.2], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    np.testing.assert_array_equal(feature_assignment(decoder, features, mode="argmax"),
                                  [0, 0, 0, 1])
    hungarian = feature_assignment(decoder, features)
    assert sorted(hungarian[hungarian >= 0].tolist()) == [0, 1, 2]  # 3 of 4 latents assigned
    floored = feature_assignment(decoder, features, min_cos=0.5)
    assert set(floored.tolist()) <= {-1, 0, 1, 2} and floored[2] == -1  # zero row: cos 0
    with pytest.raises(ConfigError, match="mode"):
        feature_assignment(decoder, features, mode="best")
    with pytest.raises(ConfigError, match="min_cos"):
        feature_assignment(decoder, features, min_cos=1.5)


def test_abs_cosine_shape_and_zero_rows() -> None:
    cos = abs_cosine(np.array([[0.0, 0.0], [0.0, -3.0]]), np.eye(2))
    np.testing.assert_allclose(cos, [[0.0, 0.0], [0.0, 1.0]])


def test_decomposition_diversity_by_hand() -> None:
    # seeds 0.6, 0.8, 1.0: mean 0.8, squared deviations 0.04 + 0 + 0.04
    assert decomposition_diversity([0.6, 0.8, 1.0]) == pytest.approx(np.sqrt(0.08 / 2))
    assert decomposition_diversity([0.6, 0.8, 1.0], ddof=0) == pytest.approx(np.sqrt(0.08 / 3))
    assert decomposition_diversity(np.full(3, 0.7)) == pytest.approx(0.0, abs=1e-15)
    assert decomposition_diversity([0.9], ddof=0) == 0.0


def test_decomposition_diversity_planted_seeds(features, plant, rng) -> None:
    # three perfect seeds: no diversity; replacing seed rows with noise spreads the MCCs apart
    perfect = [plant(features)[0] for _ in range(3)]
    np.testing.assert_allclose(per_seed_mcc(perfect, features), 1.0)
    assert decomposition_diversity(per_seed_mcc(perfect, features)) == pytest.approx(0, abs=1e-12)
    spread = []
    for n_noise in (0, 10, 20):
        dec = plant(features)[0]
        dec[:n_noise] = rng.standard_normal((n_noise, 64))
        spread.append(dec)
    scores = per_seed_mcc(spread, features)
    assert scores[0] > scores[1] > scores[2]
    assert decomposition_diversity(scores) == pytest.approx(np.std(scores, ddof=1))
    assert decomposition_diversity(scores) > 0.1
    # equal MCC, different features: DD is 0 but the seeds disagree
    halves = [features[:20], features[20:]]
    assert decomposition_diversity(per_seed_mcc(halves, features)) == pytest.approx(0, abs=1e-12)
    assert seed_disagreement(halves) > 0.5


def test_decomposition_diversity_errors(features) -> None:
    with pytest.raises(ShapeError, match="seed_mcc"):
        decomposition_diversity([0.5])  # ddof=1 needs two seeds
    with pytest.raises(ShapeError, match="seed_mcc"):
        decomposition_diversity(np.ones((2, 2)))
    with pytest.raises(DataError, match="seed_mcc"):
        decomposition_diversity([0.5, 1.2])
    with pytest.raises(DataError, match="seed_mcc"):
        decomposition_diversity([0.5, np.nan])
    with pytest.raises(ConfigError, match="ddof"):
        decomposition_diversity([0.5, 0.6], ddof=2)
    with pytest.raises(ShapeError, match=r"decoders\[0\]"):
        per_seed_mcc([features[:, :10]], features)
    with pytest.raises(ShapeError, match="decoders"):
        per_seed_mcc([], features)


def test_seed_disagreement(features, plant, rng) -> None:
    seeds = [plant(features)[0] for _ in range(3)]
    assert seed_disagreement(seeds) == pytest.approx(0.0, abs=1e-12)
    noisy = [features, rng.standard_normal((40, 64)), rng.standard_normal((50, 64))]
    expected = 1 - np.mean([mcc(noisy[0], noisy[1]), mcc(noisy[0], noisy[2]),
                            mcc(noisy[1], noisy[2])])
    assert seed_disagreement(noisy) == pytest.approx(expected)
    with pytest.raises(ShapeError, match="decoders"):
        seed_disagreement([features])
    with pytest.raises(ShapeError, match=r"decoders\[1\]"):
        seed_disagreement([features, features[:, :10]])


def test_soft_mcc_by_hand() -> None:
    cos = np.array([[0.6, 0.0], [0.8, 0.1], [0.0, 1.0]])
    s = np.array([[0.5, 0.0], [0.5, 0.0], [0.0, 1.0]])
    # feature 0: min(1, 0.5 * 0.6 + 0.5 * 0.8) = 0.7; feature 1: 1.0
    assert soft_mcc(s, cos) == pytest.approx((0.7 + 1.0) / 2)
    assert soft_mcc(sp.csr_array(s), -cos) == pytest.approx(0.85)  # sparse S, signs ignored
    split = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert soft_mcc(split, cos) == pytest.approx(1.0)  # 0.6 + 0.8 capped at 1


def test_soft_mcc_equals_one_for_a_perfect_permutation(features, plant) -> None:
    decoder, perm = plant(features)
    s = np.zeros((40, 40))
    s[np.arange(40), perm] = 1.0
    assert soft_mcc(s, abs_cosine(decoder, features)) == pytest.approx(1.0)
    assert soft_mcc(s[::-1], abs_cosine(decoder, features)) < 0.2  # wrong correspondence


def test_soft_mcc_rejects_bad_weights() -> None:
    with pytest.raises(DataError, match="s:"):
        soft_mcc(np.full((2, 2), 1.5), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="cos"):
        soft_mcc(np.ones((2, 3)), np.ones((2, 2)))


def _orthonormal(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, n)))
    return q.T


def test_superposition_exploitation_counts_a_split_feature_as_two(rng) -> None:
    basis = _orthonormal(rng, 21, 32)
    features, spare = basis[:20], basis[20]
    decoder = features.copy()
    decoder[0] = (features[0] + spare) * SQRT_HALF  # feature 0 split into two latents at 45°
    decoder = np.vstack([decoder, (features[0] - spare) * SQRT_HALF])
    counts = latents_per_feature(decoder, features)
    assert counts[0] == 2 and np.all(counts[1:] == 1)
    assert superposition_exploitation(decoder, features) == pytest.approx((2 + 19) / 20)


def test_superposition_exploitation_three_way_split_and_unreached(rng) -> None:
    basis = _orthonormal(rng, 6, 16)
    f = basis[0]
    # three latents, each at |cos| 1/sqrt3 with f; their span contains f
    decoder = np.stack([f + basis[1] + basis[2], f - basis[1] + basis[2], f - 2 * basis[2]])
    assert latents_per_feature(decoder, f[None]).tolist() == [3]
    assert latents_per_feature(decoder, f[None], max_latents=2).tolist() == [0]
    with pytest.raises(DataError, match="features"):
        superposition_exploitation(decoder, f[None], max_latents=2)
    with pytest.raises(ConfigError, match="target"):
        latents_per_feature(decoder, f[None], target=0.0)


def test_superposition_exploitation_is_one_for_planted(features, plant) -> None:
    decoder, _ = plant(features)
    assert superposition_exploitation(decoder, features) == 1.0
