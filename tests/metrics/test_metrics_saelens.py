"""Agreement with SAELens's synthetic evals (mcc, uniqueness, classification metrics)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.metrics import detection_scores, mcc, uniqueness

torch = pytest.importorskip("torch")
evals = pytest.importorskip("sae_lens.synthetic.evals")

SHAPES = [(50, 40, 16), (30, 60, 16), (40, 40, 64)]  # (n_latents, N, d)


def _tensors(rng: np.random.Generator, n: int, big_n: int, d: int):
    decoder = torch.tensor(rng.standard_normal((n, d)), dtype=torch.float64)
    features = torch.tensor(rng.standard_normal((big_n, d)), dtype=torch.float64)
    return decoder, features


@pytest.mark.parametrize(("n", "big_n", "d"), SHAPES)
def test_mcc_and_uniqueness_match_saelens(rng, n, big_n, d) -> None:
    decoder, features = _tensors(rng, n, big_n, d)
    decoder[: n // 2] += 3 * features[: n // 2].roll(1, dims=0)  # some real structure
    expected = evals.mean_correlation_coefficient(decoder, features)
    assert mcc(decoder, features) == pytest.approx(expected, abs=1e-6)
    assert mcc(decoder.numpy(), features.numpy()) == pytest.approx(expected, abs=1e-6)
    expected_u = evals.feature_uniqueness(decoder, features)
    assert uniqueness(decoder, features) == pytest.approx(expected_u, abs=1e-6)


def test_mcc_accepts_parameters_and_float32(rng) -> None:
    decoder = torch.nn.Parameter(torch.randn(24, 12, generator=torch.Generator().manual_seed(0)))
    features = torch.tensor(rng.standard_normal((20, 12)), dtype=torch.float32)
    expected = evals.mean_correlation_coefficient(decoder.detach(), features)
    assert mcc(decoder, features) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_classification_metrics_match_saelens(rng, make_acts, sparse) -> None:
    decoder, features = _tensors(rng, 30, 20, 16)
    decoder[:10] = 2 * features[:10]  # latents 0-9 point at features 0-9
    feature_acts = make_acts(400, 20, 0.15)
    latent_acts = make_acts(400, 30, 0.15)
    latent_acts[:, :10] = feature_acts[:, :10] * (rng.random((400, 10)) < 0.8)  # good detectors
    latent_acts[:, 10] *= -1.0  # negative-but-active (AbsTopK-like) latent
    latent_acts[:, 11] = 0.0  # dead latent
    feature_acts[:, 3] = 0.0  # a feature that never fires
    expected = evals.compute_classification_metrics(
        torch.tensor(latent_acts), torch.tensor(feature_acts), decoder, features
    )
    la, fa = (sp.csr_array(latent_acts), sp.csr_array(feature_acts)) if sparse else (
        latent_acts, feature_acts)
    got = detection_scores(la, fa, decoder, features)
    assert got["precision"] == pytest.approx(expected.precision, abs=1e-6)
    assert got["recall"] == pytest.approx(expected.recall, abs=1e-6)
    assert got["f1"] == pytest.approx(expected.f1_score, abs=1e-6)
    assert got["accuracy"] == pytest.approx(expected.accuracy, abs=1e-6)
