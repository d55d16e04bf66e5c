"""Pairing rules on top-k lists: exact, or refused with a DataError.

Only the listed entries of M (n_rows, n_cols) are known. An unlisted entry (i, j) is in neither
row i's nor column j's list, so M[i, j] <= min(row_bound[i], col_bound[j]) (the k-th listed
scores). Each rule uses that bound to certify that its choice is the one the full matrix gives;
where it cannot, and the unknown entries could still reach the threshold, it raises a
DataError naming the latents and the fixes (a larger top_k, a higher threshold, the full matrix).
Ties are ranked as in ``_dense`` among listed entries only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom.errors import DataError
from featgeom.match._topk import TopK
from featgeom.match._validate import preview

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Context:
    """What refusals need: the rule, the list length, the threshold and the latent ids."""

    mode: str
    k: int
    thr_name: str
    thr: float
    ids_a: np.ndarray
    ids_b: np.ndarray

    def refuse(self, what: str, bound: float) -> DataError:
        """The DataError for a choice that unlisted scores (up to ``bound``) could overturn."""
        return DataError(
            f"pair(mode={self.mode!r}) from top_k={self.k} results: {what} may lie outside the "
            f"stored lists (unlisted scores reach up to {bound:.4g}); pass {self.thr_name} > "
            f"{bound:.4g}, a larger top_k, or the full matrix"
        )


def pair_topk(top: TopK, mode: str, keep_r: np.ndarray, keep_c: np.ndarray, ctx: Context) -> Triple:
    """(rows, cols, scores) chosen by ``mode`` (any but 'hungarian') among kept rows/columns."""
    i, j, v = top.edges()
    ok = keep_r[i] & keep_c[j]
    i, j, v = i[ok], j[ok], v[ok]
    row_bound = np.where(keep_r, top.row_bound(), -np.inf)
    col_bound = np.where(keep_c, top.col_bound(), -np.inf)
    if mode == "greedy":
        return _greedy((i, j, v), (keep_r, keep_c), (row_bound, col_bound), ctx)
    row_cap = np.minimum(row_bound, col_bound.max())  # unlisted (i, j) <= min(rb_i, cb_j)
    col_cap = np.minimum(col_bound, row_bound.max())
    if mode == "one_to_many":
        cols, rows, vals = _best_per_row((j, i, v), col_cap, ctx, ("A", "B"))
        return rows, cols, vals
    rows, cols, vals = _best_per_row((i, j, v), row_cap, ctx, ("B", "A"))
    if mode == "mutual":
        col_best, row_of_col, _ = _best_per_row((j, i, v), col_cap, ctx, ("A", "B"))
        best_row = np.full(col_bound.size, -1)
        best_row[col_best] = row_of_col
        agree = best_row[cols] == rows
        rows, cols, vals = rows[agree], cols[agree], vals[agree]
    return rows, cols, vals


def _best_per_row(edges: Triple, bound: np.ndarray, ctx: Context, sides: tuple[str, str]) -> Triple:
    """Each row's best listed entry (highest score, then lowest column), certified by ``bound``.

    ``edges`` = (rows, cols, scores); ``bound`` (n_rows,) caps each row's unlisted scores;
    ``sides`` = (partner side, row side) for messages. Rows without a listed entry are left out.
    """
    i, j, v = edges
    order = np.lexsort((j, -v, i))
    first = order[np.r_[True, i[order][1:] != i[order][:-1]]] if order.size else order
    best = np.full(bound.size, -np.inf)
    best[i[first]] = v[first]
    unsure = np.flatnonzero((best < bound) & (bound >= ctx.thr))
    if unsure.size:
        ids = ctx.ids_a if sides[1] == "A" else ctx.ids_b
        what = f"the best {sides[0]} partner of {sides[1]} latent(s) {preview(ids[unsure])}"
        raise ctx.refuse(what, float(bound[unsure].max()))
    return i[first], j[first], v[first]


def _greedy(
    edges: Triple,
    keep: tuple[np.ndarray, np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    ctx: Context,
) -> Triple:
    """Take listed entries from the highest down while each is certified the largest remaining.

    ``keep`` and ``bounds`` are the (rows, columns) masks and bounds. The largest remaining
    unlisted entry is at most min(max row bound, max column bound) over free rows and columns.
    """
    i, j, v = edges
    order = np.lexsort((j, i, -v)).tolist()
    rows, cols, vals = i.tolist(), j.tolist(), v.tolist()
    free_row, free_col = keep[0].tolist(), keep[1].tolist()
    row_cap, col_cap = _FreeMax(bounds[0]), _FreeMax(bounds[1])
    taken: list[int] = []
    for e in order:
        a, b = rows[e], cols[e]
        if not (free_row[a] and free_col[b]):
            continue
        bound = min(row_cap.value(free_row), col_cap.value(free_col))
        if vals[e] < bound and bound >= ctx.thr:
            raise ctx.refuse(f"greedy pair #{len(taken) + 1}", bound)
        if vals[e] < ctx.thr:
            break
        taken.append(e)
        free_row[a] = free_col[b] = False
    else:
        bound = min(row_cap.value(free_row), col_cap.value(free_col))
        if -np.inf < bound and bound >= ctx.thr:
            raise ctx.refuse(f"greedy pair #{len(taken) + 1}", bound)
    picked = np.array(taken, dtype=np.int64)
    return i[picked], j[picked], v[picked]


class _FreeMax:
    """Running maximum of ``bound`` over the entries still free (entries only ever leave)."""

    def __init__(self, bound: np.ndarray) -> None:
        self._bound = bound.tolist()
        self._order = np.argsort(-bound, kind="stable").tolist()
        self._pos = 0

    def value(self, free: list[bool]) -> float:
        """max(bound[k] for free k), or -inf when none is free."""
        while self._pos < len(self._order) and not free[self._order[self._pos]]:
            self._pos += 1
        return self._bound[self._order[self._pos]] if self._pos < len(self._order) else -np.inf
