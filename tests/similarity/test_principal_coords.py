"""principal_coords: the Gram-matrix path for tall inputs equals the SVD; it falls back when
the input is ill-conditioned, keeping the SVD's rank cut."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.similarity import base
from featgeom.similarity.base import principal_coords


def _svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LAPACK's thin SVD of the centered (and power-of-two rescaled) ``a`` principal_coords reads."""
    u, s, _ = np.linalg.svd(base.centered(a, "x"), full_matrices=False)
    return u, s


def test_tall_well_conditioned_input_uses_the_gram_path_and_equals_the_svd(monkeypatch) -> None:
    a = np.random.default_rng(51).standard_normal((400, 30)) * np.linspace(1.0, 20.0, 30)
    calls = []
    gram = base._gram_coords
    monkeypatch.setattr(base, "_gram_coords", lambda c: calls.append(c.shape) or gram(c))
    u, s = principal_coords(a, "x")
    assert calls == [(400, 30)]
    u_svd, s_svd = _svd(a)
    np.testing.assert_allclose(s, s_svd, rtol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(u * u_svd, axis=0)), 1.0, atol=1e-10)  # same up to sign
    np.testing.assert_allclose(u.T @ u, np.eye(30), atol=1e-12)
    np.testing.assert_allclose(u.sum(axis=0), 0.0, atol=1e-10)


def test_ill_conditioned_tall_input_falls_back_to_the_svd_rank_cut() -> None:
    rng = np.random.default_rng(52)
    a = rng.standard_normal((300, 20))
    a[:, 10:] = a[:, :10] @ rng.standard_normal((10, 10))  # rank 10
    assert base._gram_coords(a - a.mean(axis=0)) is None
    u, s = principal_coords(a, "x")
    _, s_svd = _svd(a)
    assert u.shape == (300, 10)
    np.testing.assert_array_equal(s, s_svd[:10])


@pytest.mark.parametrize("condition", [10.0, 1e5])
def test_condition_limit_decides_the_path(condition: float) -> None:
    rng = np.random.default_rng(53)
    q, _ = np.linalg.qr(rng.standard_normal((200, 5)))
    c = (q - q.mean(axis=0)) * np.geomspace(condition, 1.0, 5)
    assert (base._gram_coords(c) is None) == (condition > base._GRAM_MAX_CONDITION)
