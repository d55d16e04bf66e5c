"""RSA: hand-computed RDMs, invariances per RDM kind, planted truth, null, sub-sampling, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.similarity import rsa

from .helpers import INVARIANT_TRANSFORMS, anisotropic, random_orthogonal


def test_hand_computed_euclidean_three_items() -> None:
    # D_x = (d01, d02, d12) = (1, 3, 2); D_y = (4, 1, 3).
    # Spearman: ranks (1, 3, 2) vs (3, 1, 2) -> centered (-1, 1, 0) . (1, -1, 0) / 2 = -1.
    # Pearson: centered D_x = (-1, 1, 0), centered D_y = (4/3, -5/3, 1/3);
    # dot = -3, norms sqrt2 and sqrt(42)/3 -> -9/sqrt(84).
    x = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    y = np.array([[0.0, 0.0], [0.0, 4.0], [0.0, 1.0]])
    assert rsa(x, y) == pytest.approx(-1.0, abs=1e-12)
    assert rsa(x, y, compare="pearson") == pytest.approx(-9 / math.sqrt(84), abs=1e-12)


def test_hand_computed_correlation_rdm() -> None:
    # x rows (1,2,3), (3,2,1), (1,2,4): corr(x0, x1) = -1 -> d = 2;
    # with x2 centered (-4/3, -1/3, 5/3), corr(x0, x2) = 3 / (sqrt2 sqrt(42)/3) = c = 9/sqrt(84)
    # and corr(x1, x2) = -c,
    # so D_x = (2, 1 - c, 1 + c). y rows (1,2,3), (1,2,3), (3,2,1): D_y = (0, 2, 2).
    # Pearson: centered D_x = (2/3, -1/3 - c, -1/3 + c), centered D_y = (-4/3, 2/3, 2/3);
    # dot = -8/9 - 4/9 = -4/3, |D_x|^2 = 2/3 + 2c^2, |D_y|^2 = 8/3.
    x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 4.0]])
    y = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    c = 9 / math.sqrt(84)
    expected = (-4 / 3) / math.sqrt((2 / 3 + 2 * c**2) * (8 / 3))
    assert rsa(x, y, rdm="correlation", compare="pearson") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("compare", ["spearman", "pearson"])
@pytest.mark.parametrize("name", sorted(INVARIANT_TRANSFORMS))
def test_euclidean_invariances(related, rng, name: str, compare: str) -> None:
    x, y = related
    base = rsa(x, y, compare=compare)
    transform = INVARIANT_TRANSFORMS[name]
    assert rsa(transform(x, rng), y, compare=compare) == pytest.approx(base, abs=1e-10)
    assert rsa(x, transform(y, rng), compare=compare) == pytest.approx(base, abs=1e-10)


def _per_item_scale(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return a * rng.uniform(0.5, 2.0, (len(a), 1))


@pytest.mark.parametrize("name", ["rotation", "permute_dims", "isotropic_scale", "per_item_scale"])
def test_cosine_invariances(related, rng, name: str) -> None:
    x, y = related
    transforms = {**INVARIANT_TRANSFORMS, "per_item_scale": _per_item_scale}
    base = rsa(x, y, rdm="cosine")
    assert rsa(transforms[name](x, rng), y, rdm="cosine") == pytest.approx(base, abs=1e-10)


@pytest.mark.parametrize("name", ["permute_dims", "per_item_affine"])
def test_correlation_invariances(related, rng, name: str) -> None:
    x, y = related
    transforms = {
        "permute_dims": INVARIANT_TRANSFORMS["permute_dims"],
        "per_item_affine": lambda a, r: _per_item_scale(a, r) + r.normal(size=(len(a), 1)),
    }
    base = rsa(x, y, rdm="correlation")
    assert rsa(transforms[name](x, rng), y, rdm="correlation") == pytest.approx(base, abs=1e-10)


def test_non_invariances(related, rng) -> None:
    x, y = related
    assert abs(rsa(anisotropic(x, rng), y) - rsa(x, y)) > 1e-3
    assert abs(rsa(x + 3.0, y, rdm="cosine") - rsa(x, y, rdm="cosine")) > 1e-3
    rotated = x @ random_orthogonal(8, rng)
    assert abs(rsa(rotated, y, rdm="correlation") - rsa(x, y, rdm="correlation")) > 1e-3
    assert rsa(x, y[rng.permutation(len(y))]) < rsa(x, y) - 0.2


@pytest.mark.parametrize("rdm", ["euclidean", "cosine", "correlation"])
def test_planted_truth_is_one(related, rng, rdm: str) -> None:
    x, _ = related
    assert rsa(x, x, rdm=rdm) == pytest.approx(1.0, abs=1e-12)
    assert rsa(x, x, rdm=rdm, compare="pearson") == pytest.approx(1.0, abs=1e-12)
    if rdm != "correlation":
        assert rsa(x, 2.0 * x @ random_orthogonal(8, rng), rdm=rdm) == pytest.approx(1.0, abs=1e-12)


def test_independent_inputs_give_near_zero() -> None:
    rng = np.random.default_rng(11)
    values = [rsa(rng.standard_normal((30, 5)), rng.standard_normal((30, 4))) for _ in range(200)]
    assert abs(np.mean(values)) < 0.02
    assert np.max(np.abs(values)) < 0.35


def test_subsampling_is_seeded_and_matches_exact_rsa_on_the_drawn_items(rng) -> None:
    x = rng.standard_normal((40, 5))
    y = x @ rng.standard_normal((5, 3)) + rng.standard_normal((40, 3))
    items = np.sort(np.random.default_rng(3).choice(40, size=20, replace=False))
    assert rsa(x, y, max_items=20, seed=3) == pytest.approx(rsa(x[items], y[items]), abs=1e-12)
    assert rsa(x, y, max_items=20, seed=3) == rsa(x, y, max_items=20, seed=3)
    assert rsa(x, y, max_items=20, seed=4) != rsa(x, y, max_items=20, seed=3)
    # n <= max_items: exact, the seed is unused
    assert rsa(x, y, max_items=40, seed=4) == rsa(x, y, seed=3)


def test_errors(related) -> None:
    x, y = related
    constant_row = x.copy()
    constant_row[7] = 2.5
    with pytest.raises(DataError, match="x: row 7 is constant"):
        rsa(constant_row, y, rdm="correlation")
    zero_row = y.copy()
    zero_row[3] = 0.0
    with pytest.raises(DataError, match="y: row 3 is all zeros"):
        rsa(x, zero_row, rdm="cosine")
    with pytest.raises(DataError, match="y: all pairwise dissimilarities are equal"):
        rsa(x, np.ones_like(y))
    simplex = np.eye(4)  # all items equidistant: the RDM is constant up to rounding
    with pytest.raises(DataError, match="x: all pairwise dissimilarities are equal"):
        rsa(simplex, simplex[:, :3] + np.arange(4.0)[:, None] ** 2)
    with pytest.raises(ConfigError, match="rdm: unknown dissimilarity 'manhattan'"):
        rsa(x, y, rdm="manhattan")
    with pytest.raises(ConfigError, match="compare: unknown comparison 'kendall'"):
        rsa(x, y, compare="kendall")
    for bad in (2, 0, 10.0, True):
        with pytest.raises(ConfigError, match="max_items"):
            rsa(x, y, max_items=bad)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="at least 3 paired rows"):
        rsa(x[:2], y[:2])
