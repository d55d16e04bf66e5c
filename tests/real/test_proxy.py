"""Superposition proxy: covariance-spectrum decay statistics (featgeom.real.proxy, plan task 3.6)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.real.proxy import (
    CovarianceAccumulator,
    layer_spectra,
    member_spectra,
    spectrum_from_eigenvalues,
    spectrum_stats,
)

SCALAR_KEYS = ("participation_ratio", "pr_fraction", "effective_rank", "top_decile_variance", "alpha")


def _data_with_spectrum(eigenvalues: np.ndarray, n: int = 4000, seed: int = 0) -> np.ndarray:
    """Rows whose sample covariance is exactly diag(eigenvalues): whitened Gaussian draw, rescaled."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, eigenvalues.size))
    z -= z.mean(axis=0)
    chol = np.linalg.cholesky(z.T @ z / (n - 1))
    white = z @ np.linalg.inv(chol).T  # sample covariance exactly I
    return white * np.sqrt(eigenvalues) + 3.0  # an offset the centring removes


def test_hand_computed_diagonal_case():
    lam = np.array([4.0, 2.0, 1.0, 1.0])
    s = spectrum_stats(_data_with_spectrum(lam))
    assert s["participation_ratio"] == pytest.approx(64 / 22, rel=1e-9)  # (8)^2 / (16 + 4 + 1 + 1)
    assert s["pr_fraction"] == pytest.approx(64 / 22 / 4, rel=1e-9)
    p = lam / 8
    assert s["effective_rank"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert s["top_decile_variance"] == pytest.approx(0.5, rel=1e-9)  # ceil(4 / 10) = 1 eigenvalue of 8
    np.testing.assert_allclose(s["eigenvalues"], lam, rtol=1e-9)
    assert s["d"] == 4 and s["n"] == 4000


def test_alpha_recovers_a_planted_power_law():
    lam = np.arange(1, 101, dtype=float) ** -1.3
    s = spectrum_from_eigenvalues(lam)
    assert s["alpha"] == pytest.approx(1.3, abs=1e-9) and s["alpha_r2"] == pytest.approx(1.0)
    assert (s["alpha_k_min"], s["alpha_k_max"]) == (5, 50)
    flat = spectrum_from_eigenvalues(np.ones(100))
    assert flat["alpha"] == pytest.approx(0.0, abs=1e-12) and flat["participation_ratio"] == pytest.approx(100)
    assert flat["effective_rank"] == pytest.approx(100)


def test_invariant_to_rotation_and_scale_but_not_to_per_dimension_rescaling():
    rng = np.random.default_rng(1)
    lam = np.arange(1, 17, dtype=float) ** -0.8
    x = _data_with_spectrum(lam, n=3000, seed=2)
    base = spectrum_stats(x)
    q = special_ortho_group.rvs(16, random_state=3)
    for y in (x @ q.T, 7.5 * x, 0.01 * (x @ q.T)):
        other = spectrum_stats(y)
        for key in SCALAR_KEYS:
            assert other[key] == pytest.approx(base[key], rel=1e-7), key
    warped = spectrum_stats(x * rng.uniform(0.2, 3.0, size=16))
    assert abs(warped["participation_ratio"] - base["participation_ratio"]) > 0.05
    assert abs(warped["alpha"] - base["alpha"]) > 0.01


def test_streaming_equals_one_batch_even_with_a_large_offset():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 8)) * np.arange(1, 9) + 1e4  # raw sums of x x^T would cancel badly
    acc = CovarianceAccumulator()
    for chunk in np.array_split(x.astype(np.float32), 7):
        acc.add_batch(chunk)
    acc.add_batch(np.zeros((0, 8)))
    ref = np.cov(x.astype(np.float32).astype(np.float64), rowvar=False)
    np.testing.assert_allclose(acc.covariance(), ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(acc.mean, x.astype(np.float32).mean(axis=0, dtype=np.float64), rtol=1e-12)
    one = spectrum_stats(x.astype(np.float32))
    assert acc.compute()["participation_ratio"] == pytest.approx(one["participation_ratio"], rel=1e-9)


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ShapeError, match="acts"):
        spectrum_stats(np.ones(5))
    with pytest.raises(DataError, match="NaN"):
        spectrum_stats(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(DataError, match="at least 2 rows"):
        spectrum_stats(np.ones((1, 3)))
    with pytest.raises(DataError, match="constant"):
        spectrum_stats(np.ones((10, 3)))
    with pytest.raises(ConfigError, match="fit_range"):
        spectrum_stats(np.random.default_rng(0).standard_normal((10, 3)), fit_range=(0.5, 0.2))
    acc = CovarianceAccumulator(3)
    with pytest.raises(ShapeError, match="columns"):
        acc.add_batch(np.ones((2, 4)))


class FakeActivationSet:
    """The duck type layer_spectra reads: .layers and .iter_layer(l) yielding float32 chunks."""

    def __init__(self, data: dict[int, np.ndarray]) -> None:
        self.data = data
        self.layers = tuple(data)
        self.calls: list[int] = []

    def iter_layer(self, layer: int):
        self.calls.append(layer)
        yield from np.array_split(self.data[layer].astype(np.float32), 5)


def test_layer_spectra_streams_each_layer():
    lam_fast = np.arange(1, 33, dtype=float) ** -2.0
    lam_flat = np.arange(1, 33, dtype=float) ** -0.3
    fake = FakeActivationSet({1: _data_with_spectrum(lam_fast, 2000, 0), 3: _data_with_spectrum(lam_flat, 2000, 1)})
    rows = layer_spectra(fake)
    assert [r["layer"] for r in rows] == [1, 3] and fake.calls == [1, 3]
    assert rows[0]["n"] == 2000
    assert rows[0]["alpha"] == pytest.approx(2.0, rel=1e-3) and rows[1]["alpha"] == pytest.approx(0.3, rel=1e-3)
    assert rows[0]["participation_ratio"] < rows[1]["participation_ratio"]
    assert [r["layer"] for r in layer_spectra(fake, layers=[3])] == [3]
    with pytest.raises(ConfigError, match="layers: layer 2"):
        layer_spectra(fake, layers=[2])
    with pytest.raises(ConfigError, match="acts_set"):
        layer_spectra(object())


def _family(num_features: int, seed: int):
    from featgeom.family.config import FamilyConfig
    from featgeom.family.family import build_family
    from featgeom.world.config import preset

    cfg = preset("tiny")
    roots = 2 if num_features < 128 else 4 * num_features // 128  # the forest must fit in num_features
    cfg = cfg.with_changes(num_features=num_features, seed=seed, hierarchy=replace(cfg.hierarchy, roots=roots))
    return build_family(FamilyConfig(world=cfg))


def test_member_spectra_flatten_as_superposition_grows():
    """Same hidden_dim 32, 64 -> 128 -> 256 features: rho_mm rises and the spectrum flattens
    (PR up, alpha down).  Seeds 0, 1, 2 all gave this order (20k samples): PR 10.6/16.0/20.4,
    alpha 1.23/0.84/0.66 at rho_mm 0.385/0.452/0.497 (seed 0)."""
    rows = [member_spectra(_family(n, seed=0), n_samples=8000, seed=0)[0] for n in (64, 128, 256)]
    rho = [r["rho_mm"] for r in rows]
    assert rho[0] < rho[1] < rho[2]
    pr = [r["participation_ratio"] for r in rows]
    alpha = [r["alpha"] for r in rows]
    assert pr[0] < pr[1] < pr[2] and alpha[0] > alpha[1] > alpha[2], (rho, pr, alpha)
    assert all(r["hidden_dim"] == 32 and r["member"] == "base" and r["n"] == 8000 for r in rows)


def test_member_spectra_rows_match_direct_samples():
    fam = _family(64, seed=1)
    row = member_spectra(fam, members=["base"], n_samples=3000, seed=5, batch_size=1000)[0]
    hidden = fam.sample(3000, seed=5, batch_size=1000).hidden["base"]
    direct = spectrum_stats(hidden)
    assert row["participation_ratio"] == pytest.approx(direct["participation_ratio"], rel=1e-9)
    assert row["rho_mm"] == pytest.approx(fam.member("base").rho_mm)
    with pytest.raises(ConfigError, match="n_samples"):
        member_spectra(fam, n_samples=1)


def test_rho_mm_raised_by_geometry_alone_steepens_the_spectrum():
    """Same 128 features, directions pushed together (superposition_delta +0.1): rho_mm rises but
    the variance concentrates (PR down, alpha up), the opposite of adding features.  The proxy
    tracks how many features share the dimensions, not rho_mm as such.  Seeds 0 / 1: PR 15.95 ->
    11.43 / 14.75 -> 10.95, alpha 0.84 -> 1.06 / 0.92 -> 1.18 at rho_mm 0.45 -> 0.55."""
    from featgeom.family.config import FamilyConfig, VariantSpec
    from featgeom.family.family import build_family
    from featgeom.world.config import preset

    fam = build_family(FamilyConfig(world=preset("tiny"), variants=[VariantSpec(name="dense", superposition_delta=0.1)]))
    base, dense = member_spectra(fam, n_samples=8000, seed=0)
    assert dense["rho_mm"] > base["rho_mm"] + 0.08
    assert dense["participation_ratio"] < base["participation_ratio"] - 2.0
    assert dense["alpha"] > base["alpha"] + 0.1
