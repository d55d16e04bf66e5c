"""Coverage of true features by one SAE and by two, the discovery gap of a set of SAEs, and
coverage by firing-rarity decile and hierarchy depth."""

from __future__ import annotations

import numpy as np
import pytest

import featgeom.metrics._common as common
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import (
    coverage,
    coverage_by_depth,
    coverage_by_rarity,
    coverage_fraction,
    covered,
    covered_by_each,
    discovery_gap,
    undiscovered,
)


def test_coverage_by_hand() -> None:
    features = np.eye(3)
    decoder_a = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.2], [0.5, 0.5, 0.5]])  # covers 0, 1
    decoder_b = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -3.0]])  # covers 1, 2
    np.testing.assert_array_equal(covered(decoder_a, features), [True, True, False])
    assert coverage_fraction(decoder_a, features) == pytest.approx(2 / 3)
    assert coverage_fraction(decoder_a, features, threshold=0.99) == pytest.approx(1 / 3)
    got = coverage(decoder_a, decoder_b, features)
    third = pytest.approx(1 / 3)
    assert got == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3), "overlap": third,
                   "unique_a": third, "unique_b": third, "union": 1.0}


def test_coverage_planted_random_and_partial(rng, features, plant) -> None:
    decoder, _ = plant(features)
    assert coverage_fraction(decoder, features) == 1.0
    assert coverage_fraction(rng.standard_normal((200, 64)), features) == 0.0
    got = coverage(decoder[:25], decoder[15:], features)  # rows 15-24 in both
    assert got["overlap"] == pytest.approx(10 / 40)
    assert got["unique_a"] == pytest.approx(15 / 40)
    assert got["unique_b"] == pytest.approx(15 / 40)
    assert got["overlap"] + got["unique_a"] + got["unique_b"] == pytest.approx(got["union"])


def test_coverage_across_spaces(rng, features, plant) -> None:
    isometry = np.linalg.qr(rng.standard_normal((80, 64)))[0].T  # (64, 80), orthonormal rows
    decoder, _ = plant(features)
    got = coverage(decoder[:30], decoder[10:] @ isometry, features, features_b=features @ isometry)
    assert got["overlap"] == pytest.approx(20 / 40) and got["union"] == 1.0


def test_coverage_blocked(rng, features, monkeypatch) -> None:
    decoder = features + 0.15 * rng.standard_normal(features.shape)
    whole = covered(decoder, features, threshold=0.6)
    monkeypatch.setattr(common, "_BLOCK_BYTES", 8 * 40 * 3)
    np.testing.assert_array_equal(covered(decoder, features, threshold=0.6), whole)
    assert 0 < whole.sum() < 40


def test_coverage_bad_inputs(features) -> None:
    with pytest.raises(ShapeError, match="decoder_b"):
        coverage(features, features[:, :10], features)
    with pytest.raises(ShapeError, match="features_b"):
        coverage(features, features, features, features_b=features[:5])
    with pytest.raises(ConfigError, match="threshold"):
        coverage_fraction(features, features, threshold=1.2)
    with pytest.raises(ShapeError, match="decoder"):
        coverage_fraction(np.zeros((0, 64)), features)


DECODER_A = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.2]])  # covers features 0, 1 of eye(3)
DECODER_B = np.array([[0.0, 1.0, 0.0]])  # covers 1


def test_discovery_gap_by_hand() -> None:
    features = np.eye(3)
    np.testing.assert_array_equal(covered_by_each([DECODER_A, DECODER_B], features),
                                  [[True, True, False], [False, True, False]])
    np.testing.assert_array_equal(undiscovered([DECODER_A, DECODER_B], features),
                                  [False, False, True])
    assert discovery_gap([DECODER_A, DECODER_B], features) == pytest.approx(1 / 3)
    assert discovery_gap([DECODER_B], features) == pytest.approx(2 / 3)
    assert discovery_gap([DECODER_A, np.array([[0.0, 0.0, -1.0]])], features) == 0.0


def test_discovery_gap_planted(rng, features, plant) -> None:
    decoder, perm = plant(features)
    seeds = [decoder[:10], decoder[5:20], decoder[18:25]]  # together rows 0-24
    missing = np.ones(40, dtype=bool)
    missing[perm[:25]] = False
    np.testing.assert_array_equal(undiscovered(seeds, features), missing)
    assert discovery_gap(seeds, features) == pytest.approx(15 / 40)
    assert discovery_gap([decoder], features) == pytest.approx(1 - coverage_fraction(decoder,
                                                                                     features))
    assert discovery_gap([rng.standard_normal((100, 64))], features) == 1.0


def test_discovery_gap_bad_inputs(features) -> None:
    with pytest.raises(ShapeError, match=r"decoders\[1\]"):
        discovery_gap([features, features[:, :5]], features)
    with pytest.raises(ShapeError, match="decoders"):
        discovery_gap([], features)


def test_coverage_by_rarity_by_hand() -> None:
    prob = [0.5, 0.1, 0.1, 0.9, 0.3, 0.2, 0.05, 0.7, 0.6, 0.4]
    hit = [True, False, True, True, False, False, False, True, True, False]
    # ascending (stable): 6, 1, 2, 5, 4, 9, 0, 8, 7, 3 -> bins {6,1} {2,5} {4,9} {0,8} {7,3};
    # the tie at 0.1 straddles bins 0 and 1, index 1 first
    got = coverage_by_rarity(prob, hit, n_bins=5)
    np.testing.assert_array_equal(got.group, np.arange(5))
    np.testing.assert_array_equal(got.n_features, [2] * 5)
    np.testing.assert_array_equal(got.n_recovered, [0, 1, 0, 2, 2])
    np.testing.assert_allclose(got.fraction, [0, 0.5, 0, 1, 1])
    np.testing.assert_allclose(got.bounds, [[0.05, 0.1], [0.1, 0.2], [0.3, 0.4], [0.5, 0.6],
                                            [0.7, 0.9]])
    uneven = coverage_by_rarity(np.arange(11.0), np.arange(11) % 2 == 0)  # 11 features, deciles
    np.testing.assert_array_equal(uneven.n_features, [2] + [1] * 9)
    np.testing.assert_allclose(uneven.fraction, [0.5, 1, 0, 1, 0, 1, 0, 1, 0, 1])


def test_coverage_by_rarity_planted(rng, features, plant) -> None:
    prob = rng.permutation(np.geomspace(1e-4, 0.3, 40))
    decoder, perm = plant(features)
    common = np.argsort(prob)[20:]  # the SAE finds only the 20 most frequent features
    keep = np.isin(perm, common)
    got = coverage_by_rarity(prob, covered(decoder[keep], features))
    np.testing.assert_array_equal(got.n_features, [4] * 10)
    np.testing.assert_array_equal(got.fraction, [0.0] * 5 + [1.0] * 5)
    assert np.all(got.bounds[1:, 0] > got.bounds[:-1, 1])  # distinct probabilities: no overlap


def test_coverage_by_depth() -> None:
    got = coverage_by_depth([2, 0, 1, 1, 2, 2], [False, True, True, False, False, True])
    np.testing.assert_array_equal(got.group, [0, 1, 2])
    np.testing.assert_array_equal(got.n_features, [1, 2, 3])
    np.testing.assert_array_equal(got.n_recovered, [1, 1, 1])
    np.testing.assert_allclose(got.fraction, [1, 0.5, 1 / 3])
    assert got.bounds is None


def test_coverage_by_depth_planted(features, plant) -> None:
    depth = np.repeat([0, 1, 2, 3], 10)  # features 0-9 roots, 10-19 children, ...
    decoder, perm = plant(features)
    got = coverage_by_depth(depth, covered(decoder[perm < 25], features))  # finds 0-24
    np.testing.assert_allclose(got.fraction, [1.0, 1.0, 0.5, 0.0])


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: coverage_by_rarity([0.1, -0.2], [True, True], n_bins=2), DataError,
         "firing_prob"),
        (lambda: coverage_by_rarity([0.1, np.nan], [True, True], n_bins=2), DataError,
         "firing_prob"),
        (lambda: coverage_by_rarity([0.1, 0.2], [True], n_bins=2), ShapeError, "recovered"),
        (lambda: coverage_by_rarity([0.1, 0.2], [1, 2], n_bins=2), DataError, "recovered"),
        (lambda: coverage_by_rarity([0.1, 0.2], [True, True]), ShapeError, "n_bins"),
        (lambda: coverage_by_rarity([0.1, 0.2], [True, True], n_bins=0), ConfigError, "n_bins"),
        (lambda: coverage_by_depth([0.0, 1.0], [True, True]), DataError, "depth"),
        (lambda: coverage_by_depth([0, -1], [True, True]), DataError, "depth"),
        (lambda: coverage_by_depth([[0, 1]], [True, True]), ShapeError, "depth"),
        (lambda: coverage_by_depth([0, 1, 2], [True, True]), ShapeError, "recovered"),
    ],
    ids=["negative", "nan", "length", "not-bool", "too-few", "zero-bins", "float-depth",
         "negative-depth", "2-d-depth", "depth-length"],
)
def test_grouped_coverage_bad_inputs(call, error, name) -> None:
    with pytest.raises(error, match=name):
        call()
