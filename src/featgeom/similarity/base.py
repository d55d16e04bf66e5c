"""Shared input handling for the similarity metrics: paired-row checks, centering, thin PCA.

Convention everywhere: ``x`` has shape (n_items, dim_x), ``y`` has shape (n_items, dim_y), row i of
``x`` is paired with row i of ``y``; rows are items, columns are features.
"""

from __future__ import annotations

import numpy as np

from featgeom.checks import as_matrix, check_same_rows
from featgeom.errors import DataError, ShapeError


def is_integer(value: object) -> bool:
    """True for Python/NumPy integers, False for bools, floats and everything else."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def paired_inputs(x: object, y: object, *, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``x`` (n, dim_x) and ``y`` (n, dim_y) as finite float64 arrays with n >= min_rows.

    Raises ShapeError (not 2-D, empty, row counts differ, too few rows) or DataError (NaN/inf).
    """
    xa = as_matrix(x, "x")
    ya = as_matrix(y, "y")
    check_same_rows(xa, ya)
    if xa.shape[0] < min_rows:
        raise ShapeError(f"x, y: need at least {min_rows} paired rows, got {xa.shape[0]}")
    return xa, ya


def centered(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a - mean(a, axis=0)``; DataError if all rows of ``a`` are identical."""
    if np.all(a == a[0]):
        raise DataError(f"{name}: all rows are identical, so it has no variance to compare")
    return a - a.mean(axis=0)


def principal_coords(a: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Thin SVD of the column-centered ``a`` (n, d), cut to its numerical rank r.

    Returns ``(u, s)``: u (n, r) orthonormal left singular vectors (principal directions in item
    space, each with zero mean) and s (r,) singular values in descending order, so that
    ``u * s`` are the principal-component scores of ``a``.
    """
    u, s, _ = np.linalg.svd(centered(a, name), full_matrices=False)
    rank = int(np.count_nonzero(s > s[0] * max(a.shape) * np.finfo(np.float64).eps))
    return u[:, :rank], s[:rank]
