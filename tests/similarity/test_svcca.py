"""SVCCA: hand-computed case, invariances, planted truth, analytic nulls, legacy top-1, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.similarity import SVCCAResult, svcca, svcca_details

from .helpers import INVARIANT_TRANSFORMS, anisotropic, random_orthogonal


def test_hand_computed_four_items() -> None:
    # x: centered, Sx^2 = (8, 2): u_x1 = (1, -1, 0, 0)/sqrt2, u_x2 = (0, 0, 1, -1)/sqrt2.
    # y: centered, orthogonal columns, Sy^2 = (12, 2):
    #    u_y1 = (3, -1, -1, -1)/sqrt12, u_y2 = (0, 1, -1, 0)/sqrt2.
    # variance 0.99 keeps both directions on each side (0.8 and 12/14 < 0.99).
    # Centered item space 1^perp is 3-D, so the two 2-D planes share a line: rho_1 = 1.
    # rho_2 is the cosine between their normals inside 1^perp:
    #    n_x = (1, 1, -1, -1)/2, n_y = (0, 1, 1, -2)/sqrt6 -> rho_2 = 2 / (2 sqrt6) = 1/sqrt6.
    # Legacy top-1: |u_x1 . u_y1| = (3 + 1)/(sqrt2 sqrt12) = sqrt(2/3).
    x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([[3.0, 0.0], [-1.0, 1.0], [-1.0, -1.0], [-1.0, 0.0]])
    res = svcca_details(x, y)
    assert isinstance(res, SVCCAResult)
    assert (res.kx, res.ky) == (2, 2)
    np.testing.assert_allclose(res.correlations, [1.0, 1 / math.sqrt(6)], atol=1e-12)
    assert res.value == pytest.approx((1 + 1 / math.sqrt(6)) / 2, abs=1e-12)
    assert svcca(x, y, legacy_top1=True) == pytest.approx(math.sqrt(2 / 3), abs=1e-12)
    assert svcca(x, y, k=1) == pytest.approx(math.sqrt(2 / 3), abs=1e-12)


def test_variance_keeps_fewest_directions_reaching_threshold(rng: np.random.Generator) -> None:
    # Build x = U diag(s) V^T with explained-variance shares 0.50, 0.30, 0.15, 0.04, 0.01.
    g = rng.standard_normal((40, 5))
    u = np.linalg.qr(g - g.mean(axis=0))[0]  # orthonormal, zero-mean item-space directions
    x = (u * np.sqrt([50.0, 30.0, 15.0, 4.0, 1.0])) @ random_orthogonal(5, rng)
    y = rng.standard_normal((40, 5))
    kept = {v: svcca_details(x, y, variance=v).kx for v in (0.5, 0.8, 0.81, 0.95, 0.99, 1.0)}
    assert kept == {0.5: 1, 0.8: 2, 0.81: 3, 0.95: 3, 0.99: 4, 1.0: 5}
    assert svcca_details(x, y, k=2).kx == 2


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("name", sorted(INVARIANT_TRANSFORMS))
@pytest.mark.parametrize("side", ["x", "y"])
def test_invariances(related, rng, name: str, side: str, legacy: bool) -> None:
    x, y = related
    base = svcca(x, y, legacy_top1=legacy)
    transform = INVARIANT_TRANSFORMS[name]
    moved = (transform(x, rng), y) if side == "x" else (x, transform(y, rng))
    assert svcca(*moved, legacy_top1=legacy) == pytest.approx(base, abs=1e-10)


def test_invertible_map_invariance_only_when_all_directions_kept(related, rng) -> None:
    x, y = related
    warped = anisotropic(y, rng)
    # k = 6 = rank(y) keeps y's whole column space: on that side SVCCA is plain CCA, invariant
    # to invertible linear maps.
    assert svcca(x, warped, k=6) == pytest.approx(svcca(x, y, k=6), abs=1e-10)
    # with truncation the map changes which directions are kept, hence the score.
    assert abs(svcca(x, warped, variance=0.9) - svcca(x, y, variance=0.9)) > 1e-3


def test_breaking_the_pairing_lowers_the_score(related, rng) -> None:
    x, y = related
    assert svcca(x, y[rng.permutation(len(y))]) < svcca(x, y) - 0.2


def test_planted_truth_is_one(related, rng) -> None:
    x, _ = related
    assert svcca(x, x) == pytest.approx(1.0, abs=1e-10)
    assert svcca(x, x @ random_orthogonal(8, rng)) == pytest.approx(1.0, abs=1e-10)
    embed = random_orthogonal(12, rng)[:8]  # (8, 12) orthonormal rows: rotate into a larger dim
    assert svcca(x, 2.0 * x @ embed + 1.0) == pytest.approx(1.0, abs=1e-10)
    assert svcca(x, x, legacy_top1=True) == pytest.approx(1.0, abs=1e-10)


def test_legacy_top1_null_matches_uniform_unit_vectors() -> None:
    # For independent Gaussian data, PC1 directions are uniform on the unit sphere of the
    # centered item space R^(n-1), so E|corr(PC1_x, PC1_y)| = E|u . v| over that sphere
    # = Gamma(m/2) / (sqrt(pi) Gamma((m+1)/2)), m = n - 1 (about sqrt(2/(pi n))).
    rng = np.random.default_rng(7)
    n, m = 100, 99
    values = [
        svcca(rng.standard_normal((n, 6)), rng.standard_normal((n, 4)), legacy_top1=True)
        for _ in range(400)
    ]
    expected = math.exp(math.lgamma(m / 2) - math.lgamma((m + 1) / 2)) / math.sqrt(math.pi)
    assert expected == pytest.approx(math.sqrt(2 / (math.pi * n)), rel=0.02)
    assert np.mean(values) == pytest.approx(expected, rel=0.08)


def test_full_svcca_null_matches_random_subspaces() -> None:
    # Independent Gaussian data have Haar-random principal subspaces of 1^perp (dim n - 1), so
    # E sum(rho^2) = E ||Qx^T Qy||_F^2 = kx ky / (n - 1).
    rng = np.random.default_rng(8)
    n, k = 50, 3
    sums = []
    for _ in range(400):
        res = svcca_details(rng.standard_normal((n, 6)), rng.standard_normal((n, 5)), k=k)
        sums.append(float(np.sum(res.correlations**2)))
    assert np.mean(sums) == pytest.approx(k * k / (n - 1), rel=0.08)


def test_legacy_top1_misses_shared_directions_with_different_ordering(rng) -> None:
    # Five shared latent directions, with variances in opposite orders on the two sides:
    # correct SVCCA keeps all five and finds them (1.0); top-1 compares z1 with z5 (about 0).
    z = rng.standard_normal((500, 5))
    z = np.linalg.qr(z - z.mean(axis=0))[0]  # exactly uncorrelated latents
    x = z * np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    y = (z * np.array([1.0, 2.0, 3.0, 4.0, 5.0])) @ random_orthogonal(5, rng)
    assert svcca(x, y) == pytest.approx(1.0, abs=1e-10)
    assert svcca(x, y, legacy_top1=True) < 1e-10


def test_errors(related) -> None:
    x, y = related
    with pytest.raises(ShapeError, match=r"k: 7 exceeds min\(n_items - 1, dim\) = 6 for y"):
        svcca(x, y, k=7)
    with pytest.raises(ShapeError, match=r"k: 5 exceeds min\(n_items - 1, dim\) = 4"):
        svcca(x[:5], y[:5], k=5)
    low_rank = x[:, :2] @ np.ones((2, 8))  # rank 1 (after centering): k=2 would keep noise
    with pytest.raises(DataError, match="k: 2 exceeds the numerical rank 1 of x"):
        svcca(low_rank, y, k=2)
    with pytest.raises(ConfigError, match="variance"):
        svcca(x, y, variance=0.0)
    with pytest.raises(ConfigError, match="variance"):
        svcca(x, y, variance=1.5)
    with pytest.raises(ConfigError, match="variance"):
        svcca(x, y, variance="high")  # type: ignore[arg-type]
    for bad_k in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="k: must be a positive integer"):
            svcca(x, y, k=bad_k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="legacy_top1"):
        svcca(x, y, k=2, legacy_top1=True)
