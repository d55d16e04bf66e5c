"""`compare` on a device: the torch path (run here with device="cpu") gives the NumPy path's pairs and
p-values, and its similarities, null means and stds and ground-truth metrics to rounding."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from featgeom.errors import ConfigError
from featgeom.compare import GroundTruth, compare
from featgeom.compare import SIMILARITY_METRICS
from featgeom.family import FamilyConfig, build_family

METRIC_TOL = 1e-9  # float64 on both paths
NULL_TOL = {"repair": 1e-9, "shuffle": 1e-5}  # the shuffle null runs in float32 by default


class NoisySAE:
    """encode(x) = relu(x W^T - t) with W = true directions plus noise: an imperfect SAE."""

    def __init__(self, features: np.ndarray, noise: float, seed: int, threshold: float = 1.0):
        rng = np.random.default_rng(seed)
        w = features + noise * rng.standard_normal(features.shape)
        self.W_dec = torch.from_numpy((w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32))
        self.t = threshold

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W_dec.T - self.t)


@pytest.fixture(scope="module")
def fam(tiny_world):
    cfg = FamilyConfig.from_dict({"world": tiny_world.config.to_dict(),
                                  "variants": [{"name": "part", "feature_overlap_ratio": 0.75}]})
    return build_family(cfg, world=tiny_world)


@pytest.fixture(scope="module")
def batch(fam):
    return fam.sample(3000, seed=11, with_features=True, members=["base", "part"])


def _both(fam, batch, **options):
    """compare of two noisy SAEs on base vs part, on the NumPy path and on the torch path (CPU)."""
    results = []
    for device in (None, "cpu"):
        sae_a = NoisySAE(fam.member("base").feature_vectors, 0.3, seed=1)
        sae_b = NoisySAE(fam.member("part").feature_vectors, 0.3, seed=2)
        truth = GroundTruth.from_family(fam, "base", "part", batch.features)
        results.append(compare(sae_a, sae_b, batch.hidden["base"], batch.hidden["part"], ground_truth=truth,
                               device=device, **options))
    return results


def _assert_same(numpy_result, torch_result, nulls):
    assert numpy_result.dead == torch_result.dead
    for mode, want in numpy_result.pairings.items():
        got = torch_result.pairings[mode]
        np.testing.assert_array_equal(torch_result.pairs[mode].idx_a, numpy_result.pairs[mode].idx_a)
        np.testing.assert_array_equal(torch_result.pairs[mode].idx_b, numpy_result.pairs[mode].idx_b)
        assert got["n_pairs"] == want["n_pairs"]
        assert got["mean_corr"] == pytest.approx(want["mean_corr"], abs=1e-12)
        for metric in SIMILARITY_METRICS:
            assert got[metric]["observed"] == pytest.approx(want[metric]["observed"], abs=METRIC_TOL), (mode, metric)
            for null in nulls:
                g, w = got[metric]["nulls"][null], want[metric]["nulls"][null]
                assert g["p_value"] == w["p_value"], (mode, metric, null)
                assert g["null_mean"] == pytest.approx(w["null_mean"], abs=NULL_TOL[null]), (mode, metric, null)
                assert g["null_std"] == pytest.approx(w["null_std"], abs=NULL_TOL[null]), (mode, metric, null)
    for key, want in numpy_result.ground_truth.items():
        got = torch_result.ground_truth[key]
        if isinstance(want, dict):
            assert got == pytest.approx(want, abs=1e-9), key
        elif isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-9), key
        else:
            assert got == want, key


def test_torch_path_equals_numpy_path_with_both_nulls(fam, batch):
    numpy_result, torch_result = _both(fam, batch, n_perm=39, nulls=("repair", "shuffle"))
    p_values = [numpy_result.pairings[m][k]["nulls"][n]["p_value"] for m in numpy_result.pairings
                for k in SIMILARITY_METRICS for n in ("repair", "shuffle")]
    assert len(set(p_values)) > 1  # not a degenerate case where every p is the minimum
    _assert_same(numpy_result, torch_result, ("repair", "shuffle"))


def test_torch_path_equals_numpy_path_on_top_k_partners(fam, batch, monkeypatch):
    monkeypatch.setattr(sys.modules["featgeom.compare"], "FULL_MATRIX_LIMIT", 1)
    numpy_result, torch_result = _both(fam, batch, n_perm=19, modes=("many_to_one", "one_to_many", "mutual"))
    assert numpy_result.ground_truth["empirical_mcc"] is None  # only each latent's best partner was kept
    _assert_same(numpy_result, torch_result, ("repair",))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_without_cuda_is_refused_before_encoding(fam, batch):
    sae = NoisySAE(fam.member("base").feature_vectors, 0.3, seed=1)
    with pytest.raises(ConfigError, match="^device: 'cuda' asked for"):
        compare(sae, sae, batch.hidden["base"], batch.hidden["base"], n_perm=19, device="cuda")
