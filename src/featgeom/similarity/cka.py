"""Linear CKA: centered kernel alignment with linear kernels (Kornblith, Norouzi, Lee & Hinton
2019, "Similarity of Neural Network Representations Revisited"; HSIC from Gretton et al. 2005,
"Measuring Statistical Dependence with Hilbert-Schmidt Norms").
"""

from __future__ import annotations

import numpy as np

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
