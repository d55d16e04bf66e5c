"""Orthogonal Procrustes similarity (Schoenemann 1966, "A generalized solution of the orthogonal
Procrustes problem"; as a representation metric: Ding, Denain & Steinhardt 2021, "Grounding
Representation Similarity with Statistical Testing", and Williams et al. 2021, "Generalized Shape
Metrics on Neural Representations").
"""

from __future__ import annotations

import numpy as np

from featgeom.similarity.base import centered, paired_inputs


def procrustes(x: object, y: object) -> float:
    """Orthogonal Procrustes similarity of paired rows x (n, dim_x) and y (n, dim_y), in [0, 1].

    Formula: center columns, scale each side to unit Frobenius norm (X, Y), zero-pad the smaller
    dim; similarity = max over orthogonal Q of trace(X^T Y Q) = ||X^T Y||_* (nuclear norm, the
    sum of singular values of the (dim_x, dim_y) matrix X^T Y; padding adds only zero singular
    values, so it is implicit here).
    Link to distances: the squared Procrustes distance min_Q ||X - Y Q||_F^2 = 2 (1 - similarity),
    and the angular shape distance of Williams et al. is arccos(similarity).

    Invariant to: orthogonal transforms, isotropic scaling and translation of either side,
    permutation of dims. Not invariant to: anisotropic invertible linear maps, or re-pairing of
    rows. 1 exactly when y is a rotated, scaled, shifted copy of x.

    Raises ShapeError for mismatched or fewer than 2 rows, DataError for NaN/inf or a side whose
    rows are all identical.
    """
    xa, ya = paired_inputs(x, y, min_rows=2)
    xc, yc = centered(xa, "x"), centered(ya, "y")
    xs, ys = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    return float(np.linalg.svd(xs.T @ ys, compute_uv=False).sum())
