"""Pairing from a ground-truth correspondence matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from featgeom.checks import as_matrix, check_finite
from featgeom.errors import DataError, ShapeError
from featgeom.match._validate import choice, preview, threshold
from featgeom.match.pairing import Pairing, kept

TIES = ("error", "lowest", "drop")


def pair_by_correspondence(
    c: object,
    *,
    ties: str = "error",
    min_weight: float | None = None,
    keep_a: object = None,
    keep_b: object = None,
) -> Pairing:
    """Each A latent with the B latent of largest weight in its row of ``c``.

    c (n_a, n_b), scipy.sparse or dense: C[i, j] = 1 when feature i of A is feature j of B, a
    weight in (0, 1) for mixtures, 0 otherwise. Rows with no positive weight among the kept
    columns have no partner and are left out. A row whose largest weight is shared by several
    columns is a tie: ``ties`` = 'error' (DataError naming the rows), 'lowest' (the lowest
    column) or 'drop' (left out). ``min_weight`` drops pairs of smaller weight.
    """
    ties = choice(ties, TIES, "ties")
    thr = threshold(min_weight, "min_weight")
    m = _weights(c)
    keep_r = kept(keep_a, m.shape[0], np.arange(m.shape[0]), "keep_a", "A")
    keep_c = kept(keep_b, m.shape[1], np.arange(m.shape[1]), "keep_b", "B")
    rows, cols, vals = m.row, m.col, m.data
    ok = keep_r[rows] & keep_c[cols]
    rows, cols, vals = rows[ok], cols[ok], vals[ok]
    if rows.size == 0:
        raise DataError(
            "C: has no positive weight between kept latents (keep_a/keep_b); nothing to pair"
        )
    rows, cols, vals = _row_max(rows, cols, vals, ties)
    strong = vals >= thr
    if not strong.any():
        raise DataError(
            f"min_weight={thr:g}: no pair reaches it (best {vals.max():.4g}); nothing left to pair"
        )
    return Pairing(rows[strong], cols[strong], vals[strong], "many_to_one", "weight")


def _row_max(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, ties: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's largest weight (lowest column first), rows sorted; tied rows per ``ties``."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.r_[True, rows[1:] != rows[:-1]]
    tied = np.r_[~first[1:] & (vals[1:] == vals[:-1]), False] & first
    if tied.any() and ties == "error":
        raise DataError(
            f"C: row(s) {preview(rows[tied])} share their largest weight between columns; "
            "pass ties='lowest' or ties='drop'"
        )
    pick = first & ~tied if ties == "drop" else first
    if not pick.any():
        raise DataError("ties='drop': every row with a partner is tied; nothing left to pair")
    return rows[pick], cols[pick], vals[pick]


def _weights(c: object) -> sp.coo_array:
    """``c`` as a canonical COO array of positive weights; shape, finiteness and [0, 1] checked."""
    if sp.issparse(c):
        if c.ndim != 2 or 0 in c.shape:
            raise ShapeError(f"C: expected a non-empty 2-D matrix (n_a, n_b), got shape {c.shape}")
        m = sp.coo_array(c, dtype=np.float64, copy=True)
        m.sum_duplicates()
        check_finite(m.data, "C")
    else:
        m = sp.coo_array(as_matrix(c, "C"))
    if m.nnz and (m.data.min() < 0 or m.data.max() > 1):
        raise DataError(
            f"C: weights must lie in [0, 1]; found values from {m.data.min():g} to {m.data.max():g}"
        )
    m.eliminate_zeros()
    return m
