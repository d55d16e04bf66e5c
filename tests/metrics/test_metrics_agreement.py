"""Agreement and complementarity of the true features several SAEs recover (tasks 2.1, 6.2, 6.3)."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import (
    architecture_agreement,
    complementary_coverage,
    coverage,
    ensemble_gain,
    pairwise_coverage,
)

FEATURES = np.eye(4)
A = np.array([[3.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 1.0, 0.1]])  # covers 0, 1, 2
B = np.array([[0, 1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1.0], [0.5, 0.5, 0.5, 0.5]])  # 1, 2, 3
C = np.array([[0, 1.0, 0, 0]])  # covers 1


def test_by_hand() -> None:
    assert architecture_agreement(A, B, FEATURES) == pytest.approx(2 / 4)  # {1, 2} of {0..3}
    assert complementary_coverage([A, B], FEATURES) == pytest.approx(2 / 4)  # {0, 3}
    assert ensemble_gain([A, B], FEATURES) == pytest.approx(4 / 4 - 3 / 4)
    # three SAEs: union {0..3}, intersection {1}
    assert complementary_coverage([A, B, C], FEATURES) == pytest.approx(3 / 4)
    assert ensemble_gain([A, B, C], FEATURES) == pytest.approx(1 / 4)
    assert ensemble_gain([A, C], FEATURES) == 0.0  # C adds nothing to A
    rows = pairwise_coverage([A, B, C], FEATURES, names=["topk", "l1", "mp"])
    assert [(r["a"], r["b"]) for r in rows] == [("topk", "l1"), ("topk", "mp"), ("l1", "mp")]
    assert rows[0] == {"a": "topk", "b": "l1", "n_features": 4, "covered_a": 3, "covered_b": 3,
                       "overlap": 2, "unique_a": 1, "unique_b": 1, "union": 4}
    assert (rows[2]["overlap"], rows[2]["unique_a"], rows[2]["unique_b"]) == (1, 2, 0)


def test_threshold_changes_what_counts() -> None:
    tilted = np.array([[1.0, 0.6, 0, 0]])  # |cos| with feature 0 = 0.857
    assert architecture_agreement(tilted, A, FEATURES, threshold=0.8) == pytest.approx(1 / 3)
    assert architecture_agreement(tilted, A, FEATURES, threshold=0.9) == 0.0


def test_planted_sets(features, plant, rng) -> None:
    decoder, _ = plant(features)
    a, b = decoder[:25], decoder[15:]  # 25 and 25 features, 10 shared, 40 in the union
    assert architecture_agreement(a, b, features) == pytest.approx(10 / 40)
    assert architecture_agreement(a, decoder, features) == pytest.approx(25 / 40)
    assert architecture_agreement(decoder, decoder[::-1], features) == 1.0
    assert complementary_coverage([a, b], features) == pytest.approx(30 / 40)
    got = coverage(a, b, features)
    assert complementary_coverage([a, b], features) == pytest.approx(
        got["unique_a"] + got["unique_b"])
    assert ensemble_gain([a, b], features) == pytest.approx(15 / 40)
    row = pairwise_coverage([a, b], features)[0]
    assert (row["overlap"], row["unique_a"], row["unique_b"], row["union"]) == (10, 15, 15, 40)
    assert row["overlap"] / row["n_features"] == pytest.approx(got["overlap"])
    noise = rng.standard_normal((200, 64))  # covers nothing at 0.9
    assert architecture_agreement(decoder, noise, features) == 0.0
    assert np.isnan(architecture_agreement(noise, noise[::2], features))


def test_errors() -> None:
    with pytest.raises(ShapeError, match="decoder_b"):
        architecture_agreement(A, B[:, :3], FEATURES)
    with pytest.raises(ShapeError, match=r"decoders\[1\]"):
        complementary_coverage([A, B[:, :3]], FEATURES)
    with pytest.raises(DataError, match=r"decoders\[0\]"):
        complementary_coverage([np.full((2, 4), np.nan), B], FEATURES)
    with pytest.raises(ShapeError, match="decoders"):
        complementary_coverage([A], FEATURES)
    with pytest.raises(ShapeError, match="features"):
        ensemble_gain([A, B], FEATURES[0])
    with pytest.raises(ShapeError, match="decoders"):
        ensemble_gain(5, FEATURES)
    with pytest.raises(ConfigError, match="threshold"):
        ensemble_gain([A, B], FEATURES, threshold=1.5)
    with pytest.raises(ShapeError, match="names"):
        pairwise_coverage([A, B], FEATURES, names=["only one"])
