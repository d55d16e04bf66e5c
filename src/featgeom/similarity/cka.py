"""Linear CKA: centered kernel alignment with linear kernels (Kornblith, Norouzi, Lee & Hinton
2019, "Similarity of Neural Network Representations Revisited"; HSIC from Gretton et al. 2005,
"Measuring Statistical Dependence with Hilbert-Schmidt Norms").
"""

from __future__ import annotations

import numpy as np

from featgeom.errors import DataError
from featgeom.similarity.base import centered, paired_inputs


def linear_cka(x: object, y: object) -> float:
    """Linear CKA of paired rows x (n, dim_x) and y (n, dim_y), in [0, 1].

    Formula, with X and Y column-centered:
    CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)        (feature form, used when both dims < n)
        = <K, L>_F / (||K||_F ||L||_F), K = X X^T, L = Y Y^T (Gram form, used otherwise).
    Both are the same number; the choice only keeps the intermediate matrices small.

    Invariant to: orthogonal transforms, isotropic scaling and translation of either side,
    permutation of dims. Not invariant to: general (anisotropic) invertible linear maps, or
    re-pairing of rows. 1 for identical inputs; independent random inputs give a small positive
    value, roughly sqrt(dx dy / ((n + dx)(n + dy))), not 0.

    Raises ShapeError for mismatched or fewer than 2 rows, DataError for NaN/inf or a side whose
    rows are all identical.
    """
    xa, ya = paired_inputs(x, y, min_rows=2)
    xc, yc = centered(xa, "x"), centered(ya, "y")
    if max(xc.shape[1], yc.shape[1]) < xc.shape[0]:
        kxx, kyy = xc.T @ xc, yc.T @ yc
        hsic = np.sum((yc.T @ xc) ** 2)
    else:
        kxx, kyy = xc @ xc.T, yc @ yc.T
        hsic = np.sum(kxx * kyy)
    return float(hsic / (np.linalg.norm(kxx) * np.linalg.norm(kyy)))


def debiased_linear_cka(x: object, y: object) -> float:
    """Debiased linear CKA of paired rows x (n, dim_x) and y (n, dim_y), n >= 4: CKA with every
    HSIC replaced by the unbiased estimator of Song, Smola, Gretton, Bedo & Borgwardt (2012,
    "Feature Selection via Dependence Maximization", Theorem 2), as used for CKA by Nguyen,
    Raghu & Kornblith (2021) and Murphy, Zylberberg & Fyshe (2024).

    Formula, with linear kernels K = X X^T and L = Y Y^T whose diagonals are set to zero (K~, L~)
    and 1 the all-ones vector:

        HSIC_u(K, L) = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))
        dCKA = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))

    computed in O(n (dim_x + dim_y) min(dim_x, dim_y)) without forming K or L:
    tr(K~ L~) = ||X^T Y||_F^2 - sum_i |x_i|^2 |y_i|^2, 1^T K~ 1 = |sum_i x_i|^2 - sum_i |x_i|^2,
    K~ 1 = X (X^T 1) - (|x_i|^2)_i. HSIC_u is an unbiased estimate of ||Cov(x, y)||_F^2, so unlike
    :func:`linear_cka` it is centred near 0 (not near sqrt(dx dy / ((n + dx)(n + dy)))) for
    independent sides, and may be slightly negative; 1 for identical inputs.

    Invariant to: orthogonal transforms, isotropic scaling and translation of either side,
    permutation of dims. Not invariant to: general (anisotropic) invertible linear maps, or
    re-pairing of rows.

    Raises ShapeError for mismatched or fewer than 4 rows, DataError for NaN/inf or a side whose
    rows are all identical (its HSIC_u(K, K) is 0 or negative: no variance to compare).
    """
    xa, ya = paired_inputs(x, y, min_rows=4)
    xc, yc = centered(xa, "x"), centered(ya, "y")  # translation-invariant anyway; centering keeps sums small
    hxy = _unbiased_hsic(xc, yc)
    hxx, hyy = _unbiased_hsic(xc, xc), _unbiased_hsic(yc, yc)
    for h, name in ((hxx, "x"), (hyy, "y")):
        if not h > 0:
            raise DataError(f"{name}: its unbiased HSIC with itself is {h:.3g} (<= 0): no variance to compare")
    return float(hxy / np.sqrt(hxx * hyy))


def _unbiased_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC_u of the linear kernels of x (n, dx) and y (n, dy) (formula in :func:`debiased_linear_cka`)."""
    n = x.shape[0]
    nx, ny = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    trace = np.sum((x.T @ y) ** 2) - nx @ ny
    kx1 = x @ x.sum(axis=0) - nx  # K~ 1
    ly1 = y @ y.sum(axis=0) - ny  # L~ 1
    return float((trace + kx1.sum() * ly1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (kx1 @ ly1))
                 / (n * (n - 3)))
