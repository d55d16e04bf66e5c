"""Coverage of true features by one SAE and by two."""

from __future__ import annotations

import numpy as np
import pytest

import featgeom.metrics._common as common
from featgeom.errors import ConfigError, ShapeError
from featgeom.metrics import coverage, coverage_fraction, covered


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
