"""Pairing rules on a dense score matrix M (n_rows, n_cols).

Each rule returns (rows, cols) of the chosen pairs. Ties go to the lower index: entries are
ranked by value, then row, then column.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

Rule = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
_COLUMN_BLOCK = 64  # rows per block of column_argmax


def column_argmax(m: np.ndarray) -> np.ndarray:
    """(n_cols,) ``m.argmax(axis=0)`` (first row among ties), computed over blocks of rows.

    NumPy's argmax along axis 0 of a C-ordered matrix walks it column by column (about 20x-200x
    slower than along rows measured here at 4,096 x 8,192); a running maximum over row blocks reads
    it in order and re-scans only the columns a block improves.
    """
    best = np.full(m.shape[1], -np.inf)
    index = np.zeros(m.shape[1], dtype=np.intp)
    for start in range(0, m.shape[0], _COLUMN_BLOCK):
        block = m[start:start + _COLUMN_BLOCK]
        top = block.max(axis=0)
        better = np.flatnonzero(top > best)
        if better.size:
            index[better] = start + block[:, better].argmax(axis=0)
            best[better] = top[better]
    return index


def many_to_one(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row with its best column: (i, argmax_j M[i, j]); columns may repeat."""
    return np.arange(m.shape[0]), m.argmax(axis=1)


def one_to_many(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every column with its best row: (argmax_i M[i, j], j); rows may repeat."""
    return column_argmax(m), np.arange(m.shape[1])


def mutual(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) where j is the best column of row i and i the best row of column j."""
    best_col, best_row = m.argmax(axis=1), column_argmax(m)
    rows = np.flatnonzero(best_row[best_col] == np.arange(m.shape[0]))
    return rows, best_col[rows]


def hungarian(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-1 assignment of min(n_rows, n_cols) pairs maximizing sum M[i, j] (scipy's LSA)."""
    rows, cols = linear_sum_assignment(m, maximize=True)
    return rows, cols


def greedy(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Take the largest remaining entry, remove its row and column; repeat until a side runs out.

    Computed in rounds: every pair that is the best of both its row and its column among the
    remaining ones is exactly a pair the sequential rule takes next, so each round takes them all
    and only rows/columns whose best partner was taken are rescanned.
    """
    work = np.array(m, dtype=np.float64)
    free_row = np.ones(m.shape[0], dtype=bool)
    free_col = np.ones(m.shape[1], dtype=bool)
    best_col, best_row = work.argmax(axis=1), column_argmax(work)
    taken_rows, taken_cols = [], []
    while True:
        rows = np.flatnonzero(free_row)
        cols = best_col[rows]
        dominant = best_row[cols] == rows
        taken_rows.append(rows[dominant])
        taken_cols.append(cols[dominant])
        free_row[rows[dominant]] = False
        free_col[cols[dominant]] = False
        if not (free_row.any() and free_col.any()):
            break
        work[rows[dominant], :] = -np.inf
        work[:, cols[dominant]] = -np.inf
        stale_rows = rows[~dominant][~free_col[cols[~dominant]]]
        best_col[stale_rows] = work[stale_rows].argmax(axis=1)
        open_cols = np.flatnonzero(free_col)
        stale_cols = open_cols[~free_row[best_row[open_cols]]]
        best_row[stale_cols] = column_argmax(work[:, stale_cols])
    return np.concatenate(taken_rows), np.concatenate(taken_cols)


RULES: dict[str, Rule] = {
    "many_to_one": many_to_one,
    "one_to_many": one_to_many,
    "mutual": mutual,
    "greedy": greedy,
    "hungarian": hungarian,
}
