"""Shared input handling of the similarity metrics: paired rows, rescaling, centering, thin PCA.

Convention everywhere: ``x`` has shape (n_items, dim_x), ``y`` has shape (n_items, dim_y), row i of
``x`` is paired with row i of ``y``; rows are items, columns are features.

Every metric is invariant to isotropic scaling of either side (each docstring says so), so each
side is rescaled by a power of two before anything is squared (:func:`rescaled`): inputs of any
finite magnitude, 1e-300 or 1e300, give the value their unscaled copy gives, with no overflow,
underflow, NaN or LinAlgError, and ordinary inputs give the same value as without rescaling (a
power-of-two factor is exact in floating point and cancels out of every metric).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from featgeom.checks import as_matrix, check_same_rows
from featgeom.errors import DataError, ShapeError

_GRAM_MAX_CONDITION = 1e3  # principal_coords uses the Gram matrix up to this s_max / s_min


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


def rescaled(a: np.ndarray) -> np.ndarray:
    """``a * 2**-e``, with e the binary exponent of max |a| (max |a| = m 2**e, 0.5 <= m < 1).

    So max |result| lies in [0.5, 1): squares, sums and products of the entries can neither
    overflow nor underflow to zero. Multiplying by a power of two only shifts exponents, so it is
    exact (only entries below ~1e-308 times the largest one, negligible next to it, lose bits).
    An all-zero ``a`` is returned unchanged.
    """
    peak = float(np.max(np.abs(a)))
    if peak == 0.0:
        return a
    return np.ldexp(a, -int(np.frexp(peak)[1]))


def centered(a: np.ndarray, name: str) -> np.ndarray:
    """``a - mean(a, axis=0)``, rescaled (:func:`rescaled`) before and after centering.

    The result is c / 2**e for the exact centered c and some integer e, with max |entry| in
    [0.5, 1): every metric here is invariant to that factor. DataError if all rows of ``a`` are
    identical (then c = 0).
    """
    if np.all(a == a[0]):
        raise DataError(f"{name}: all rows are identical, so it has no variance to compare")
    a = rescaled(a)
    return rescaled(a - a.mean(axis=0))


def principal_coords(a: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Thin SVD of the column-centered ``a`` (n, d), cut to its numerical rank r.

    Returns ``(u, s)``: u (n, r) orthonormal left singular vectors (principal directions in item
    space, each with zero mean) and s (r,) singular values in descending order, so that
    ``u * s`` are the principal-component scores of ``a``, up to the power-of-two factor of
    :func:`centered` (s is proportional to the singular values of the centered ``a``). Tall,
    well-conditioned inputs go through the (d, d) Gram matrix (see :func:`_gram_coords`);
    everything else through LAPACK's SVD, cut where s <= s[0] * max(n, d) * eps.
    """
    c = centered(a, name)
    if takes_gram_route(c.shape):
        coords = _gram_coords(c)
        if coords is not None:
            return coords
    u, s, _ = np.linalg.svd(c, full_matrices=False)
    rank = numerical_rank(s, a.shape)
    return u[:, :rank], s[:rank]


def takes_gram_route(shape: tuple[int, int]) -> bool:
    """Whether :func:`principal_coords` tries the Gram matrix for a centered (n, d): n >= 2 d."""
    return shape[0] >= 2 * shape[1]


def gram_is_stable(lam_min: Any, lam_max: Any) -> bool:
    """Whether the Gram route's eigenvalues are accurate enough: lam_min > lam_max /
    _GRAM_MAX_CONDITION^2 (condition number of the centered matrix below _GRAM_MAX_CONDITION)."""
    return bool(lam_min > lam_max / _GRAM_MAX_CONDITION**2)


def numerical_rank(s: Any, shape: tuple[int, int]) -> int:
    """Number of singular values s (descending; NumPy or torch) above s[0] * max(n, d) * eps_64."""
    return int((s > s[0] * max(shape) * np.finfo(np.float64).eps).sum())


def _gram_coords(c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(u, s) of a centered tall c (n, d) from c^T c = V diag(s^2) V^T and u = c V / s.

    Two matrix products and a (d, d) eigen-decomposition instead of an SVD of the whole (n, d)
    array. Eigenvalue rounding (~ eps s_max^2) puts a relative error of ~ eps (s_max / s_i)^2 on
    s_i and u_i, so this is used only when s_max / s_min <= _GRAM_MAX_CONDITION (errors <= 1e-10;
    full rank); otherwise None, and the caller uses the SVD.
    """
    with blas_single_thread():
        lam, v = np.linalg.eigh(c.T @ c)
    if not gram_is_stable(lam[0], lam[-1]):
        return None
    s, v = np.sqrt(lam[::-1]), v[:, ::-1]
    return (c @ v) / s, s


def blas_single_thread() -> Any:
    """Context manager limiting BLAS to one thread, process-wide, while it lasts.

    LAPACK's decompositions of small (<= a few thousand) matrices run level-2 BLAS in many short
    calls; multi-threaded OpenBLAS slows those down 2-100x on a busy machine (measured here).
    """
    return _controller().limit(limits=1, user_api="blas")


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()
