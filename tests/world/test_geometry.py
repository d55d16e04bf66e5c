import numpy as np
import pytest
import torch

from featgeom.errors import DataError
from featgeom.world.geometry import frustration_grad, max_abs_cos, orthogonalize, reduce_coherence, rho_mm


def naive_rho(v):
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    g = np.abs(u @ u.T)
    np.fill_diagonal(g, 0)
    return g.max(axis=1).mean()


def test_rho_mm_hand_case():
    # e1, e2 orthogonal; e3 = (e1 + e2)/sqrt2 has |cos| 1/sqrt2 with both -> every max is 1/sqrt2
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert rho_mm(v) == pytest.approx(1 / np.sqrt(2))


def test_rho_mm_chunked_equals_naive_and_is_scale_and_sign_invariant():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((301, 17))
    assert rho_mm(v, chunk_size=64) == pytest.approx(naive_rho(v), abs=1e-6)
    scaled = v * rng.uniform(0.1, 10, size=(301, 1)) * rng.choice([-1, 1], size=(301, 1))
    assert rho_mm(scaled) == pytest.approx(rho_mm(v), abs=1e-6)


def test_rho_mm_rejects_bad_input():
    with pytest.raises(DataError, match="zero row"):
        max_abs_cos(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(DataError, match="NaN"):
        rho_mm(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_frustration_grad_matches_autograd_of_saelens_loss():
    torch.manual_seed(0)
    e = torch.randn(40, 8, dtype=torch.float64, requires_grad=True)
    gram = e @ e.T
    off = gram - torch.diag(torch.diag(gram))
    loss = off.pow(2).sum() + 40 * (torch.diag(gram) - 1).pow(2).sum()
    loss.backward()
    assert torch.allclose(frustration_grad(e.detach()), e.grad, atol=1e-9)


def test_orthogonalize_matches_saelens():
    from sae_lens.synthetic.feature_dictionary import orthogonalize_embeddings

    torch.manual_seed(1)
    e = torch.randn(200, 24)
    ours = orthogonalize(e, steps=50, lr=0.01)
    theirs = orthogonalize_embeddings(e, num_steps=50, lr=0.01, chunk_size=64)
    assert torch.allclose(ours, theirs, atol=5e-5)


def test_orthogonalize_keeps_frozen_rows():
    torch.manual_seed(2)
    e = torch.nn.functional.normalize(torch.randn(50, 10), dim=1)
    frozen = torch.zeros(50, dtype=torch.bool)
    frozen[:20] = True
    out = orthogonalize(e, steps=30, lr=0.01, frozen=frozen)
    assert torch.equal(out[:20], e[:20])
    assert not torch.allclose(out[20:], e[20:])


def test_reduce_coherence_lowers_rho_mm():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((120, 16)).astype(np.float32)
    out = reduce_coherence(v, steps=100)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert rho_mm(out) < rho_mm(v) - 0.1
