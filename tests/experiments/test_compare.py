import json

import numpy as np
import pytest
import torch

from featgeom.errors import ConfigError, ShapeError
from featgeom.experiments import GroundTruth, compare
from featgeom.family import FamilyConfig, build_family


class LinearSAE:
    """A minimal SAELens-style SAE: encode(x) = relu((x - b) W_dec^T - t), decoder rows W_dec."""

    def __init__(self, w_dec: np.ndarray, bias: np.ndarray, threshold: float = 1.0):
        self.W_dec = torch.from_numpy(np.asarray(w_dec, dtype=np.float32))
        self.b = torch.from_numpy(np.asarray(bias, dtype=np.float32))
        self.t = threshold

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b) @ self.W_dec.T - self.t)


@pytest.fixture(scope="module")
def fam(tiny_world):
    cfg = FamilyConfig.from_dict({"world": tiny_world.config.to_dict(),
                                  "variants": [{"name": "same"}, {"name": "rot", "basis_rotation_angle": 60}]})
    return build_family(cfg, world=tiny_world)


@pytest.fixture(scope="module")
def batch(fam):
    return fam.sample(6000, seed=5, with_features=True)


def oracle(fam, name):
    m = fam.member(name)
    return LinearSAE(m.feature_vectors, m.bias)


def test_identical_members_are_fully_universal(fam, batch):
    result = compare(oracle(fam, "base"), oracle(fam, "same"), batch.hidden["base"], batch.hidden["same"],
                     n_perm=99, ground_truth=GroundTruth.from_family(fam, "base", "same", batch.features))
    mutual = result.pairings["mutual"]
    assert mutual["svcca"]["observed"] == pytest.approx(1.0, abs=1e-6)
    assert mutual["svcca"]["p_value"] == pytest.approx(1 / 100)
    assert mutual["mean_corr"] == pytest.approx(1.0, abs=1e-6)
    gt = result.ground_truth
    assert gt["gt_mcc"] == pytest.approx(1.0, abs=1e-6)
    assert gt["correspondence_accuracy"]["mutual"] == 1.0
    assert gt["universality_gap"] == pytest.approx(1.0 - gt["empirical_mcc"])
    json.loads(result.to_json())


def test_rotation_keeps_activation_pairing_but_not_raw_cosines(fam, batch):
    result = compare(oracle(fam, "base"), oracle(fam, "rot"), batch.hidden["base"], batch.hidden["rot"],
                     n_perm=99, ground_truth=GroundTruth.from_family(fam, "base", "rot", batch.features))
    mutual = result.pairings["mutual"]
    assert result.ground_truth["correspondence_accuracy"]["mutual"] == 1.0
    assert mutual["svcca"]["observed"] == pytest.approx(1.0, abs=1e-5)  # rotation invariant
    assert mutual["svcca"]["p_value"] < 0.05
    assert result.ground_truth["mcc_a"] == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs(fam, batch):
    sae = oracle(fam, "base")
    with pytest.raises(ShapeError, match="acts_a"):
        compare(sae, sae, batch.hidden["base"][:10], batch.hidden["base"][:9])
    with pytest.raises(ConfigError, match="modes"):
        compare(sae, sae, batch.hidden["base"], batch.hidden["base"], modes=("closest",))


def test_top_k_path_reports_missing_empirical_mcc_explicitly(fam, batch, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["featgeom.experiments.compare"], "FULL_MATRIX_LIMIT", 1)
    result = compare(oracle(fam, "base"), oracle(fam, "same"), batch.hidden["base"], batch.hidden["same"],
                     n_perm=19, ground_truth=GroundTruth.from_family(fam, "base", "same", batch.features))
    gt = result.ground_truth
    assert gt["empirical_mcc"] is None and gt["universality_gap"] is None
    assert "top-k" in gt["empirical_mcc_unavailable"]
    assert gt["correspondence_accuracy"]["mutual"] == 1.0
    json.loads(result.to_json())
