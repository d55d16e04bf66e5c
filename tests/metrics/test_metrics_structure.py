"""Hierarchy recovery (HRS) and subspace coherence (SCS)."""

from __future__ import annotations

import numpy as np
import pytest

import featgeom.metrics._common as common
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics import hierarchy_recovery, subspace_coherence


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _tree_features(rng: np.random.Generator, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """4 roots, 3 children each, 2 grandchildren per child (40 features) in d dims.

    Every feature has a fresh orthonormal direction e; a child is parent + 0.3 e, a
    grandchild parent + 0.5 e (normalized), so each feature's parent is its nearest feature:
    cos(child, root) = 0.958 > cos(child, sibling) = 0.917 > cos(child, grandchild) = 0.894.
    """
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0].T
    feats, parent = [], []

    def add(vec: np.ndarray, par: int) -> int:
        feats.append(_unit(vec))
        parent.append(par)
        return len(feats) - 1

    for _ in range(4):
        root = add(basis[len(feats)], -1)
        for _ in range(3):
            child = add(feats[root] + 0.3 * basis[len(feats)], root)
            for _ in range(2):
                add(feats[child] + 0.5 * basis[len(feats)], child)
    return np.array(feats), np.array(parent)


def test_hrs_by_hand() -> None:
    e = np.eye(3)
    f0, f2 = e[0], _unit(e[1] + 0.1 * e[0])
    f1 = _unit(e[0] + 2 * e[1])  # child of f0, but nearer to f2
    features, parent = np.stack([f0, f1, f2]), np.array([-1, 0, -1])
    assert hierarchy_recovery(features, features, parent) == 0.0
    assert hierarchy_recovery(features, features, parent, k=2) == 1.0
    near = np.stack([f0, _unit(e[0] + 0.3 * e[1]), e[2]])
    assert hierarchy_recovery(near, near, parent) == 1.0


def test_hrs_ties_favour_the_parent() -> None:
    features = np.stack([np.eye(3)[0], _unit(np.array([1.0, 1.0, 0.0])), np.eye(3)[1]])
    assert hierarchy_recovery(features, features, np.array([-1, 0, -1])) == 1.0


def test_hrs_planted_and_random(rng, plant) -> None:
    features, parent = _tree_features(rng)
    decoder, _ = plant(features)
    assert hierarchy_recovery(decoder, features, parent) == 1.0
    random_value = hierarchy_recovery(rng.standard_normal((40, 64)), features, parent)
    assert random_value < 0.25  # chance ~ 1/39 per pair
    values = [hierarchy_recovery(rng.standard_normal((40, 64)), features, parent, k=k)
              for k in (1, 39)]
    assert values[1] == 1.0  # every other latent is among the 39 nearest


def test_hrs_skips_unmatched_features(rng) -> None:
    features, parent = _tree_features(rng)
    keep = np.r_[0:7]  # root 0, child 1, its grandchildren 2-3, child 4, its grandchildren 5-6
    assert hierarchy_recovery(features[keep], features, parent) == 1.0
    with pytest.raises(DataError, match="parent"):
        hierarchy_recovery(features[[0]], features, parent)  # one latent: no pair matched


def test_hrs_bad_inputs(rng) -> None:
    features, parent = _tree_features(rng)
    with pytest.raises(ShapeError, match="parent"):
        hierarchy_recovery(features, features, parent[:-1])
    with pytest.raises(DataError, match="parent"):
        hierarchy_recovery(features, features, np.full(40, -1))
    with pytest.raises(DataError, match="parent"):
        hierarchy_recovery(features, features, np.arange(40))
    with pytest.raises(DataError, match="parent"):
        hierarchy_recovery(features, features, np.full(40, 40))
    with pytest.raises(ConfigError, match="k"):
        hierarchy_recovery(features, features, parent, k=0)
    with pytest.raises(ShapeError, match="decoder.*features"):
        hierarchy_recovery(features[:, :10], features, parent)


def _assert_same_scs(got: dict, expected: dict) -> None:
    for key in ("score", "within", "between"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["per_category"] == pytest.approx(expected["per_category"], abs=1e-12)


def test_scs_by_hand() -> None:
    r = np.sqrt(0.5)
    decoder = np.array([[1.0, 0.0], [r, r], [0.0, 1.0], [0.0, -2.0], [1.0, 1.0]])
    got = subspace_coherence(decoder, np.array([0, 0, 1, 1, -1]))
    # within: (0,1) = r, (2,3) = 1; between: (0,2) = 0, (0,3) = 0, (1,2) = r, (1,3) = r
    assert got["within"] == pytest.approx((r + 1) / 2)
    assert got["between"] == pytest.approx(r / 2)
    assert got["score"] == pytest.approx(0.5)
    assert got["per_category"] == pytest.approx({0: r, 1: 1.0})


def test_scs_planted_clusters_and_random_labels(rng) -> None:
    centres = _unit(rng.standard_normal((5, 32)))
    labels = np.repeat(np.arange(5), 12)
    decoder = centres[labels] + 0.4 * _unit(rng.standard_normal((60, 32)))
    got = subspace_coherence(decoder, labels)
    assert got["score"] > 0.5
    shuffled = subspace_coherence(decoder, rng.permutation(labels))
    assert abs(shuffled["score"]) < 0.1
    perm = rng.permutation(60)
    _assert_same_scs(subspace_coherence(decoder[perm], labels[perm]), got)


def test_scs_bad_inputs() -> None:
    decoder = np.eye(4)
    with pytest.raises(ShapeError, match="categories"):
        subspace_coherence(decoder, np.array([0, 0, 1]))
    with pytest.raises(DataError, match="categories"):
        subspace_coherence(decoder, np.array([0, 0, 0, -1]))  # no between pair
    with pytest.raises(DataError, match="categories"):
        subspace_coherence(decoder, np.array([0, 1, 2, 3]))  # no within pair
    with pytest.raises(DataError, match="categories"):
        subspace_coherence(decoder, np.array([0, 0, 1, -2]))
    with pytest.raises(DataError, match="categories"):
        subspace_coherence(decoder, np.array([0.0, 0.5, 1.0, 1.0]))


def test_blocked_computation_gives_the_same_answers(rng, monkeypatch) -> None:
    features, parent = _tree_features(rng)
    decoder = features + 0.3 * rng.standard_normal(features.shape) / 8
    labels = np.arange(40) % 4
    whole = (hierarchy_recovery(decoder, features, parent), subspace_coherence(decoder, labels))
    monkeypatch.setattr(common, "_BLOCK_BYTES", 8 * 64 * 3)  # 3 rows per block
    blocked = (hierarchy_recovery(decoder, features, parent), subspace_coherence(decoder, labels))
    assert blocked[0] == whole[0]
    _assert_same_scs(blocked[1], whole[1])
