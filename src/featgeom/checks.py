"""Input checks shared by every stage: turn bad arrays into clear featgeom errors.

Each check returns a clean float64 (or requested dtype) NumPy array, or raises a
:class:`~featgeom.errors.FeatgeomError` subclass whose message names the argument.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from featgeom.errors import DataError, ShapeError


def to_numpy(x: object) -> object:
    """A torch tensor (duck-typed by ``detach`` and ``cpu``; torch is never imported) as a NumPy
    array, detached from autograd (so ``requires_grad`` is fine) and moved to the CPU; anything
    else unchanged. The one place where featgeom turns tensors into arrays."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    return x


def as_matrix(x: object, name: str, dtype: type = np.float64) -> np.ndarray:
    """Return ``x`` (array-like or torch tensor) as a finite 2-D array of shape (n_items, dim).

    Raises ShapeError when ``x`` is not 2-D or has no rows/columns, DataError on NaN/inf.
    """
    try:
        arr = np.asarray(to_numpy(x), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.ndim != 2:
        raise ShapeError(f"{name}: expected a 2-D array (n_items, dim), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"{name}: array is empty (shape {arr.shape})")
    check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise DataError naming ``name`` and the count of bad entries if ``arr`` has NaN or inf."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(f"{name}: contains {bad} NaN or infinite value(s)")


def check_same_rows(x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("x", "y")) -> None:
    """Raise ShapeError unless ``x`` and ``y`` have the same number of rows (paired items)."""
    if x.shape[0] != y.shape[0]:
        raise ShapeError(
            f"{names[0]} has {x.shape[0]} rows but {names[1]} has {y.shape[0]}: "
            "paired inputs need the same number of rows"
        )


def as_activations(x: object, name: str) -> np.ndarray | sp.csr_array:
    """Activations (n_samples, n_items): a finite float64 array (from an array-like or torch
    tensor), or a float64 CSR copy with duplicates summed and no stored zeros (sparse inputs stay
    sparse)."""
    if not sp.issparse(x):
        return as_matrix(x, name)
    if x.ndim != 2 or 0 in x.shape:
        raise ShapeError(f"{name}: expected a non-empty 2-D matrix, got shape {x.shape}")
    m = sp.csr_array(x, dtype=np.float64, copy=True)
    check_finite(m.data, name)
    m.sum_duplicates()
    m.eliminate_zeros()
    return m
