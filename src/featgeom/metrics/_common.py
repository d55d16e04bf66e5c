"""Input handling shared by the metrics: decoder/feature matrices, activations, ids, blocks.

Errors name the offending argument. Zero rows are kept: like SAELens's ``cosine_similarities``
(norms clamped at 1e-8; :func:`featgeom.formulas.unit_rows` with ``zero_rows="keep"``) a zero
row has cosine 0 with every other row.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp

from featgeom.checks import as_matrix, to_numpy
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.formulas import unit_rows

_BLOCK_BYTES = 32 << 20  # size of one dense float64 block of a row-blocked computation

Acts = np.ndarray | sp.csr_array


def same_dim(x: np.ndarray, y: np.ndarray, names: tuple[str, str]) -> None:
    """ShapeError unless x and y have the same number of columns (they live in one space)."""
    if x.shape[1] != y.shape[1]:
        raise ShapeError(
            f"{names[0]} has dimension {x.shape[1]} but {names[1]} has {y.shape[1]}: "
            "rows must live in the same space"
        )


def abs_cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|cos| (n_x, n_y) between the rows of x (n_x, d) and y (n_y, d); zero rows give 0
    (:func:`featgeom.formulas.unit_rows` keeping them)."""
    return np.abs(unit_rows(x, zero_rows="keep") @ unit_rows(y, zero_rows="keep").T)


def row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Slices of rows such that a (rows, n_cols) float64 block stays near 32 MiB."""
    step = max(1, _BLOCK_BYTES // (8 * max(n_cols, 1)))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def columns(x: Acts, n: int, name: str, what: str) -> None:
    """ShapeError unless ``x`` has ``n`` columns, one per ``what``."""
    if x.shape[1] != n:
        raise ShapeError(f"{name}: has {x.shape[1]} columns but there are {n} {what}")


def ids(x: object, n: int, name: str, *, allow_unassigned: bool = False) -> np.ndarray:
    """``x`` as a 1-D int64 array of ids in [0, n) (or -1 where ``allow_unassigned``)."""
    arr = np.asarray(to_numpy(x))
    if arr.ndim != 1:
        raise ShapeError(f"{name}: expected a 1-D array of ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    low = -1 if allow_unassigned else 0
    bad = (arr < low) | (arr >= n)
    if bad.any():
        raise DataError(
            f"{name}: {int(bad.sum())} id(s) outside [{low}, {n}), e.g. {int(arr[bad][0])}"
        )
    return arr


def labels(x: object, n: int, name: str) -> np.ndarray:
    """``x`` as (n,) int64 category labels >= 0, or -1 = unlabelled."""
    arr = ids(x, np.iinfo(np.int64).max, name, allow_unassigned=True)
    if arr.size != n:
        raise ShapeError(f"{name}: has {arr.size} labels but there are {n} latents")
    return arr


def pair_ids(
    idx_a: object, idx_b: object, n_a: int, n_b: int, names: tuple[str, str] = ("idx_a", "idx_b")
) -> tuple[np.ndarray, np.ndarray]:
    """Paired ids (idx_a[k] <-> idx_b[k]): same non-zero length, each in range."""
    a, b = ids(idx_a, n_a, names[0]), ids(idx_b, n_b, names[1])
    if a.size != b.size:
        raise ShapeError(
            f"{names[0]} has {a.size} ids but {names[1]} has {b.size}: pairs need both"
        )
    if a.size == 0:
        raise ShapeError(f"{names[0]}, {names[1]}: no pairs given")
    return a, b


def probability(value: object, name: str, *, open_low: bool = False) -> float:
    """``value`` as a float in [0, 1] ((0, 1] when ``open_low``), else ConfigError."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and 0 <= float(value) <= 1
    if not ok or (open_low and float(value) == 0):
        side = "(0, 1]" if open_low else "[0, 1]"
        raise ConfigError(f"{name}: expected a number in {side}, got {value!r}")
    return float(value)


def positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def vector(x: object, name: str, *, n: int | None = None, what: str = "items") -> np.ndarray:
    """``x`` as a finite non-empty 1-D float64 array (of ``n`` entries, one per ``what``)."""
    try:
        arr = np.asarray(to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ShapeError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ShapeError(f"{name}: has {arr.size} entries but there are {n} {what}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or infinite values")
    return arr


def bool_array(x: object, name: str, ndim: int) -> np.ndarray:
    """``x`` (bool, or numbers that are all 0 or 1) as a non-empty ``ndim``-D bool array."""
    arr = np.asarray(to_numpy(x))
    if arr.ndim != ndim or arr.size == 0:
        raise ShapeError(f"{name}: expected a non-empty {ndim}-D boolean array, got {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{name}: expected booleans (or 0/1), got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        raise DataError(f"{name}: expected booleans (or 0/1), found other values")
    return arr == 1


def matrices(xs: object, name: str, least: int) -> list[np.ndarray]:
    """``xs`` (a list, tuple or other iterable of matrices) as float64 matrices, at least
    ``least`` of them; errors name ``name[k]``."""
    if isinstance(xs, (str, bytes)) or not hasattr(xs, "__iter__"):
        raise ShapeError(f"{name}: expected a sequence of (n, d) matrices, got {type(xs).__name__}")
    mats = [as_matrix(x, f"{name}[{k}]") for k, x in enumerate(xs)]
    if len(mats) < least:
        raise ShapeError(f"{name}: need at least {least} matrices, got {len(mats)}")
    return mats
