"""Built-in analyses computed by hand: the basis rotation of an SAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featgeom.errors import ConfigError
from featgeom.experiments.analyses import rotated_sae
from featgeom.family.construct import rotation_matrix


class TinySAE(torch.nn.Module):
    """encode(x) = relu((x - b_dec) W_enc + b_enc), decode(z) = z W_dec + b_dec (SAELens's layout)."""

    def __init__(self, d: int, width: int, extra: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W_enc = torch.nn.Parameter(torch.randn(d, width, generator=g))
        self.W_dec = torch.nn.Parameter(torch.randn(width, d, generator=g))
        self.b_enc = torch.nn.Parameter(torch.randn(width, generator=g))
        self.b_dec = torch.nn.Parameter(torch.randn(d, generator=g))
        if extra:
            self.scale = torch.nn.Parameter(torch.ones(d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.b_dec


def test_a_rotated_sae_computes_on_rotated_inputs_what_the_sae_computes_on_the_originals():
    sae, d = TinySAE(8, 12).double(), 8
    q = rotation_matrix(d, 40.0, np.random.default_rng(1))
    turned = rotated_sae(sae, q)
    x = torch.randn(50, d, dtype=torch.float64)
    x_rot = x @ torch.as_tensor(q).T
    with torch.no_grad():
        assert torch.allclose(turned.encode(x_rot), sae.encode(x), atol=1e-12)
        assert torch.allclose(turned.decode(turned.encode(x_rot)), sae.decode(sae.encode(x)) @ torch.as_tensor(q).T,
                              atol=1e-12)
        cos = torch.nn.functional.cosine_similarity(turned.W_dec, sae.W_dec, dim=1)
    assert cos.numpy() == pytest.approx(np.cos(np.radians(40.0)), abs=1e-9)  # every decoder row moved by 40 degrees
    assert torch.equal(turned.b_enc, sae.b_enc) and not torch.equal(turned.W_dec, sae.W_dec)


def test_a_parameter_of_unknown_layout_is_refused():
    with pytest.raises(ConfigError, match="parameter scale of shape \\(8,\\) has the model's dimension 8"):
        rotated_sae(TinySAE(8, 12, extra=True), rotation_matrix(8, 10.0, np.random.default_rng(0)))


def test_chance_mcc_is_a_random_decoders_mcc_kept_per_width_features_and_seed(monkeypatch):
    from featgeom.experiments import analyses
    from featgeom.metrics import mcc

    features = np.random.default_rng(3).standard_normal((40, 12)).astype(np.float32)
    expected = mcc(np.random.default_rng(7).standard_normal((50, 12)), features)
    monkeypatch.setattr(analyses, "_CHANCE_MCC", {})
    assert analyses.chance_mcc(50, features, 7) == expected
    calls = []
    monkeypatch.setattr("featgeom.metrics.mcc", lambda *a: calls.append(a) or 0.0)
    assert analyses.chance_mcc(50, features.copy(), 7) == expected and calls == []  # kept
    analyses.chance_mcc(50, features, 8), analyses.chance_mcc(51, features, 7), analyses.chance_mcc(50, features[1:], 7)
    assert len(calls) == 3  # another seed, width or feature set is computed afresh
