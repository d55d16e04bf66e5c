"""Blockwise top-k selection from a score matrix that is never materialized whole.

A score matrix M (n_rows, n_cols) is described by a block function ``block(start, stop, out)``
that writes the dense rows M[start:stop] into ``out`` (stop - start, n_cols). :func:`both_sides`
runs it over row blocks of M and of M^T and keeps, for every row and every column, its k best
scores. One buffer is reused for all blocks; a few MiB keeps it in cache, which is several
times faster than large blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

BlockFn = Callable[[int, int, np.ndarray], None]


@dataclass(frozen=True)
class TopK:
    """Both-sided top-k lists of a score matrix M (n_rows, n_cols), positions 0-based.

    row_idx, row_val: (n_rows, k_r) columns holding each row's k_r largest scores, best first.
    col_idx, col_val: (n_cols, k_c) rows holding each column's k_c largest scores, best first.
    Ties are ordered by lower index first; ties at the k-th place are cut arbitrarily.
    """

    row_idx: np.ndarray
    row_val: np.ndarray
    col_idx: np.ndarray
    col_val: np.ndarray

    @property
    def k(self) -> int:
        """The requested list length (the longer side's k; a side shorter than k is complete)."""
        return max(self.row_idx.shape[1], self.col_idx.shape[1])

    def row_bound(self) -> np.ndarray:
        """(n_rows,) upper bound on each row's unlisted scores: its k-th score, -inf if complete."""
        return _bound(self.row_val, self.col_idx.shape[0])

    def col_bound(self) -> np.ndarray:
        """(n_cols,) upper bound on each column's unlisted scores, as :meth:`row_bound`."""
        return _bound(self.col_val, self.row_idx.shape[0])

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Listed entries (i, j, M[i, j]) from both sides, each (i, j) once."""
        n_rows, k_r = self.row_idx.shape
        n_cols, k_c = self.col_idx.shape
        i = np.concatenate([np.repeat(np.arange(n_rows), k_r), self.col_idx.ravel()])
        j = np.concatenate([self.row_idx.ravel(), np.repeat(np.arange(n_cols), k_c)])
        v = np.concatenate([self.row_val.ravel(), self.col_val.ravel()])
        _, first = np.unique(i * n_cols + j, return_index=True)
        return i[first], j[first], v[first]


def _bound(val: np.ndarray, n_other: int) -> np.ndarray:
    """Last listed score per list of ``val`` (n, k); -inf where the list covers all n_other."""
    if val.shape[1] >= n_other:
        return np.full(val.shape[0], -np.inf)
    return val[:, -1].copy()


def both_sides(
    rows: BlockFn, cols: BlockFn, shape: tuple[int, int], k: int, block_bytes: int
) -> TopK:
    """Top-k of M by rows (``rows`` fills M[s:e]) and by columns (``cols`` fills M^T[s:e])."""
    n_rows, n_cols = shape
    row_idx, row_val = topk_rows(rows, n_rows, n_cols, k, block_bytes)
    col_idx, col_val = topk_rows(cols, n_cols, n_rows, k, block_bytes)
    return TopK(row_idx, row_val, col_idx, col_val)


def topk_rows(
    block: BlockFn, n_rows: int, n_cols: int, k: int, block_bytes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_rows, min(k, n_cols)) columns and scores of each row's largest entries, best first."""
    k = min(k, n_cols)
    idx = np.empty((n_rows, k), dtype=np.int64)
    val = np.empty((n_rows, k), dtype=np.float64)
    buffer = np.empty((min(block_rows(n_cols, block_bytes), n_rows), n_cols))
    for start, stop in row_blocks(n_rows, n_cols, block_bytes):
        out = buffer[: stop - start]
        block(start, stop, out)
        idx[start:stop], val[start:stop] = select_topk(out, k)
    return idx, val


def block_rows(n_cols: int, block_bytes: int) -> int:
    """Rows of n_cols float64 entries in one block of about ``block_bytes`` (at least 1)."""
    return max(1, block_bytes // (8 * n_cols))


def row_blocks(n_rows: int, n_cols: int, block_bytes: int) -> Iterator[tuple[int, int]]:
    """Row ranges [start, stop) covering range(n_rows), :func:`block_rows` rows each."""
    step = block_rows(n_cols, block_bytes)
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


def select_topk(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest entries of ``d`` (r, n), best first, lower column first among ties."""
    if k == 1:
        idx = d.argmax(axis=1)[:, None]
    elif k >= d.shape[1]:
        idx = np.argsort(-d, axis=1, kind="stable")
    else:
        part = np.sort(np.argpartition(-d, k - 1, axis=1)[:, :k], axis=1)
        order = np.argsort(-np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(d, idx, axis=1)
