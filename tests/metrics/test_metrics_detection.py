"""Latents as feature detectors (precision/recall/F-beta/accuracy) and the dead latent rate."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import (
    DetectionAccumulator,
    dead_latent_rate,
    dead_latents,
    detection_scores,
    f_beta,
)

FEATURES = np.eye(2)
DECODER = np.array([[1.0, 0.1], [0.0, -2.0]])  # latent 0 -> feature 0, latent 1 -> feature 1


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    feature_acts = np.array([[1.0, 0.0], [1.0, 2.0], [0.0, 0.0], [0.5, 1.0], [0.0, 0.0]])
    latent_acts = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, -1.0], [0.0, 0.0]])
    return latent_acts, feature_acts


def test_detection_by_hand() -> None:
    # latent 0 vs feature 0: TP 2 (rows 0, 3), FP 1 (row 2), FN 1 (row 1), TN 1
    # latent 1 vs feature 1: TP 2 (rows 1, 3; -1 counts as firing), FP 0, FN 0, TN 3
    got = detection_scores(*_hand_case(), DECODER, FEATURES, per_latent=True)
    per = got["per_latent"]
    np.testing.assert_array_equal(per["tp"], [2, 2])
    np.testing.assert_array_equal(per["fp"], [1, 0])
    np.testing.assert_array_equal(per["fn"], [1, 0])
    np.testing.assert_array_equal(per["tn"], [1, 3])
    np.testing.assert_array_equal(per["feature"], [0, 1])
    assert got["precision"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["recall"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["accuracy"] == pytest.approx((3 / 5 + 1) / 2)
    for key, b in (("f0.5", 0.5), ("f1", 1.0), ("f2", 2.0)):
        p = r = 2 / 3
        f_b = (1 + b * b) * p * r / (b * b * p + r)
        assert got[key] == pytest.approx((f_b + 1) / 2), key


def test_f_beta_weights_precision_and_recall() -> None:
    # latent 0 fires on every row: P = 2/4, R = 1 -> F2 > F1 > F0.5
    feature_acts = np.array([[1.0], [1.0], [0.0], [0.0]])
    latent_acts = np.ones((4, 1))
    got = detection_scores(latent_acts, feature_acts, [[1.0]], [[1.0]], betas=(0.5, 1, 2, 3))
    p, r = 0.5, 1.0
    for b in (0.5, 1.0, 2.0, 3.0):
        assert got[f"f{b:g}"] == pytest.approx((1 + b * b) * p * r / (b * b * p + r))
    assert got["f2"] > got["f1"] > got["f0.5"]


def test_undefined_scores_are_zero() -> None:
    # a dead latent whose feature never fires: P, R, F undefined -> 0; accuracy 1
    got = detection_scores(np.zeros((3, 1)), np.zeros((3, 1)), [[1.0]], [[1.0]])
    assert (got["precision"], got["recall"], got["f1"], got["accuracy"]) == (0, 0, 0, 1)


def test_planted_perfect_detectors(rng, features, plant, make_acts) -> None:
    decoder, perm = plant(features)
    feature_acts = make_acts(300, 40, 0.1)
    latent_acts = 2.5 * feature_acts[:, perm]  # latent i fires exactly with feature perm[i]
    got = detection_scores(latent_acts, feature_acts, decoder, features)
    for key in ("precision", "recall", "f0.5", "f1", "f2", "accuracy"):
        assert got[key] == pytest.approx(1.0), key
    shuffled = detection_scores(latent_acts[rng.permutation(300)], feature_acts, decoder, features)
    assert shuffled["f1"] < 0.3  # firing no longer aligned with the features


def test_streaming_equals_one_batch(features, plant, make_acts) -> None:
    decoder, _ = plant(features)
    feature_acts, latent_acts = make_acts(500, 40, 0.1), make_acts(500, 40, 0.1)
    whole = detection_scores(latent_acts, feature_acts, decoder, features, per_latent=True)
    acc = DetectionAccumulator(decoder, features)
    for start in range(0, 500, 128):
        rows = slice(start, start + 128)
        acc.add_batch(sp.csr_array(latent_acts[rows]), feature_acts[rows])  # mixed kinds
    streamed = acc.compute(per_latent=True)
    for key in ("precision", "recall", "f1", "f0.5", "f2", "accuracy"):
        assert streamed[key] == pytest.approx(whole[key], abs=1e-12), key
    np.testing.assert_array_equal(streamed["per_latent"]["tp"], whole["per_latent"]["tp"])


def test_detection_bad_inputs() -> None:
    latent_acts, feature_acts = _hand_case()
    with pytest.raises(ShapeError, match="latent_acts"):
        detection_scores(latent_acts[:, :1], feature_acts, DECODER, FEATURES)
    with pytest.raises(ShapeError, match="feature_acts"):
        detection_scores(latent_acts, feature_acts[:, :1], DECODER, FEATURES)
    with pytest.raises(ShapeError, match="latent_acts.*feature_acts"):
        detection_scores(latent_acts[:3], feature_acts, DECODER, FEATURES)
    with pytest.raises(DataError, match="feature_acts"):
        detection_scores(latent_acts, feature_acts * np.nan, DECODER, FEATURES)
    with pytest.raises(ShapeError, match="decoder.*features"):
        detection_scores(latent_acts, feature_acts, DECODER, np.eye(3))
    with pytest.raises(ConfigError, match="betas"):
        detection_scores(latent_acts, feature_acts, DECODER, FEATURES, betas=(0,))
    with pytest.raises(DataError, match="no samples"):
        DetectionAccumulator(DECODER, FEATURES).compute()


def test_dead_latent_rate(make_acts) -> None:
    acts = make_acts(200, 10, 0.2)
    acts[:, [2, 5, 7]] = 0.0
    acts[0, 5] = -0.1  # negative but active: alive
    assert dead_latent_rate(acts) == pytest.approx(2 / 10)
    stored_zeros = sp.csr_array((np.zeros(3), (np.arange(3), [2, 2, 7])), shape=(200, 10))
    assert dead_latent_rate(sp.csr_array(acts) + stored_zeros) == pytest.approx(2 / 10)
    assert dead_latent_rate(np.zeros((4, 3))) == 1.0
    with pytest.raises(ShapeError, match="latent_acts"):
        dead_latent_rate(np.zeros((0, 3)))
    with pytest.raises(DataError, match="latent_acts"):
        dead_latent_rate(np.full((2, 2), np.inf))


def test_f_beta_by_hand() -> None:
    # P = 0.5, R = 1: F1 = 1 / 1.5, F2 = 5 * 0.5 / (4 * 0.5 + 1), F0.5 = 1.25 * 0.5 / 1.125
    assert f_beta(0.5, 1.0) == pytest.approx(2 / 3)
    assert f_beta(0.5, 1.0, 2.0) == pytest.approx(2.5 / 3)
    assert f_beta(0.5, 1.0, 0.5) == pytest.approx(0.625 / 1.125)
    assert f_beta(0.0, 0.0) == 0.0
    assert isinstance(f_beta(0.5, 1.0), float)
    got = f_beta(np.array([1.0, 0.0, 0.25]), np.array([1.0, 0.5, 0.75]), 1.0)
    np.testing.assert_allclose(got, [1.0, 0.0, 2 * 0.25 * 0.75 / 1.0])
    np.testing.assert_allclose(f_beta(np.array([0.2, 0.8]), 0.5), [2 * 0.1 / 0.7, 2 * 0.4 / 1.3])


def test_f_beta_is_the_detection_f_score() -> None:
    got = detection_scores(*_hand_case(), DECODER, FEATURES, per_latent=True)["per_latent"]
    for beta, key in ((0.5, "f0.5"), (1.0, "f1"), (2.0, "f2")):
        np.testing.assert_allclose(f_beta(got["precision"], got["recall"], beta), got[key])


def test_f_beta_errors() -> None:
    with pytest.raises(ConfigError, match="beta"):
        f_beta(0.5, 0.5, 0.0)
    with pytest.raises(ConfigError, match="beta"):
        f_beta(0.5, 0.5, True)
    with pytest.raises(DataError, match="precision"):
        f_beta(1.5, 0.5)
    with pytest.raises(DataError, match="recall"):
        f_beta(0.5, np.nan)
    with pytest.raises(ShapeError, match="precision"):
        f_beta(np.ones(3), np.ones(2))


def test_dead_latents_mask() -> None:
    acts = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -2.0]])
    np.testing.assert_array_equal(dead_latents(acts), [True, False, False])
    np.testing.assert_array_equal(dead_latents(sp.csr_array(acts)), [True, False, False])
