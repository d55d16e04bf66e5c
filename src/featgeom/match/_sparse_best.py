"""Exact best partner (top-1) of every latent on both sides, read off the sparse cross product.

With S = A^T B (n_a, n_b) and the alive latents' row scales r_i = 1 / (n sd_a_i), column scales
c_j = 1 / sd_b_j and z = mean / sd, the blockwise finish (``correlation._CorrBlocks.block``)
computes every correlation as

    corr_ij = (-z_i) * z_j + S_ij * (r_i * c_j)     (entries S stores)
    corr_ij = (-z_i) * z_j                          (entries S does not store)

so the best partner of A latent i is the better of (a) its best stored entry and (b) its best
unstored entry, the unstored column j with the largest (-z_i) * z_j: the smallest z_j when
z_i > 0, the largest when z_i < 0, any (all products are +-0) when z_i == 0. Rounding is
monotone, so along a fixed preference order of the columns (z ascending or descending, equal z
by lower id; plain id order when z_i == 0) the products never increase, and (b) is the first
column in that order that row i does not store (the "mex" of its stored columns' ranks).
Products of unequal z can round to the same value (e.g. latents that fire once have equal z up
to rounding); then the lowest unstored id among all positions with that product wins, found
with a range-minimum table. The same holds for B's columns against A's rows.

Work: a few streaming passes over the entries of S, in chunks of columns that stay in cache
(no (n_a, n_b) block, no transpose of S), plus per latent O(log) work; each side's preference
orders are sorted once. Values are bit-identical to the dense finish (the same floating-point
expressions; the transposed block's products are the same by commutativity and sign symmetry of
rounding) and ties go to the lower id, as ``_topk.select_topk`` (np.argmax) does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Preference kinds of a latent's partner order, from the sign of the latent's own z.
_ZERO, _POSITIVE, _NEGATIVE = 0, 1, 2
# Ranks below this are tracked per latent in a small table; a latent whose first _CAP preferred
# partners are all stored (e.g. one that fires in nearly every sample) gets an exact sort instead.
_CAP = 16
# Entries of S per chunk of columns: temporaries of a few MiB stay in cache.
_CHUNK = 1 << 17


@dataclass(frozen=True)
class Axis:
    """One side's statistics, indexed by latent id (0 for latents that are not alive).

    n: latent count; alive: sorted alive ids; alive_mask (n,); neg_z = -z, z; scale: r (side A)
    or c (side B); kind (n,): _ZERO / _POSITIVE / _NEGATIVE from the sign of z (alive only);
    uniform: the one kind of every alive latent, or None; orders (3, n_alive): alive ids in the
    preference order a partner of each kind uses; ranks (3, n): position of each id in
    ``orders`` (a huge value for latents that are not alive); group_end (3, n_alive): the first
    later position whose z differs (n_alive if none); min_ids[k][l][p]: the lowest id among
    orders[k][p : p + 2**l] (a sparse table for range minima).
    """

    n: int
    alive: np.ndarray
    alive_mask: np.ndarray
    neg_z: np.ndarray
    z: np.ndarray
    scale: np.ndarray
    kind: np.ndarray
    uniform: int | None
    orders: np.ndarray
    ranks: np.ndarray
    group_end: np.ndarray
    min_ids: tuple[list[np.ndarray], ...]

    @classmethod
    def build(cls, n: int, alive: np.ndarray, z: np.ndarray, scale: np.ndarray) -> Axis:
        """From alive ids and their z and scale values (as the dense finish computes them)."""
        full_z, full_scale = np.zeros(n), np.zeros(n)
        full_z[alive], full_scale[alive] = z, scale
        mask = np.zeros(n, dtype=bool)
        mask[alive] = True
        kind = np.zeros(n, dtype=np.int8)
        kind[alive[z > 0]] = _POSITIVE
        kind[alive[z < 0]] = _NEGATIVE
        kinds = np.unique(kind[alive])
        ids = np.arange(alive.size)
        orders = np.empty((3, alive.size), dtype=np.int64)
        orders[_ZERO] = alive
        orders[_POSITIVE] = alive[np.lexsort((ids, z))]  # partner z_i > 0: smallest z_j first
        orders[_NEGATIVE] = alive[np.lexsort((ids, -z))]  # partner z_i < 0: largest z_j first
        ranks = np.full((3, n), np.iinfo(np.int64).max // 4, dtype=np.int64)
        group_end = np.full((3, alive.size), alive.size, dtype=np.int64)
        for k in range(3):
            ranks[k, orders[k]] = ids
            zs = full_z[orders[k]]
            change = np.flatnonzero(zs[1:] != zs[:-1]) + 1
            nxt = np.searchsorted(change, ids, side="right")
            group_end[k] = np.append(change, alive.size)[nxt]
        uniform = int(kinds[0]) if kinds.size == 1 else None
        min_ids = tuple(_range_min_table(orders[k]) for k in range(3))
        return cls(n, alive, mask, -full_z, full_z, full_scale, kind, uniform, orders, ranks, group_end, min_ids)

    def lowest_id(self, kind: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """min(orders[kind[q]][start[q] : stop[q]]) for each query q (non-empty ranges)."""
        level = np.floor(np.log2(stop - start)).astype(np.int64)
        out = np.empty(start.size, dtype=np.int64)
        for k in np.unique(kind):
            for lev in np.unique(level[kind == k]):
                q = np.flatnonzero((kind == k) & (level == lev))
                table = self.min_ids[k][lev]
                out[q] = np.minimum(table[start[q]], table[stop[q] - (1 << lev)])
        return out


def _range_min_table(ids: np.ndarray) -> list[np.ndarray]:
    """Sparse table: level l holds min(ids[p : p + 2**l]) for every p with p + 2**l <= len(ids)."""
    levels = [ids]
    width = 1
    while 2 * width <= ids.size:
        prev = levels[-1]
        levels.append(np.minimum(prev[:-width], prev[width:]))
        width *= 2
    return levels


@dataclass(frozen=True)
class Best:
    """Best partner id (-1: none) and its unclipped correlation (-inf: none) per latent id."""

    idx: np.ndarray
    val: np.ndarray


# (owner ids, ranks) of all stored entries owned by the given latents of one side.
StoredOf = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class _Hits:
    """Entries (owner, partner, value) collected chunk by chunk."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, owner: np.ndarray, partner: np.ndarray, value: np.ndarray) -> None:
        self.parts.append((owner, partner, value))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return tuple(np.concatenate([p[k] for p in self.parts]) for k in range(3))  # type: ignore[return-value]


def best_partners(cross: sp.csc_array, a: Axis, b: Axis) -> tuple[Best, Best]:
    """(best B partner of every A latent, best A partner of every B latent) of S = ``cross``.

    ``cross`` (a.n, b.n) in CSC with no duplicate entries (as scipy's product gives it); only
    alive latents are partners, and only the results of alive latents are meaningful.
    """
    indptr, rows, data = cross.indptr, cross.indices, cross.data
    counts = np.diff(indptr)
    cap_a, cap_b = min(_CAP, b.alive.size), min(_CAP, a.alive.size)
    row_top = np.full(a.n, -np.inf)
    row_hits, col_hits = _Hits(), _Hits()
    row_near, col_near = _Hits(), _Hits()  # (owner, rank, unused) of entries ranked below the cap
    masked = a.alive.size < a.n or b.alive.size < b.n
    for c0, c1 in _column_chunks(indptr, _CHUNK):
        e0, e1 = indptr[c0], indptr[c1]
        if e0 == e1:
            continue
        cnt, r_ = counts[c0:c1], rows[e0:e1]
        local = indptr[c0 : c1 + 1] - e0
        vals = np.take(a.neg_z, r_)
        vals *= np.repeat(b.z[c0:c1], cnt)
        scale = np.take(a.scale, r_)
        scale *= np.repeat(b.scale[c0:c1], cnt)
        scale *= data[e0:e1]
        vals += scale
        if masked:
            vals[~(np.take(a.alive_mask, r_) & np.repeat(b.alive_mask[c0:c1], cnt))] = -np.inf
        # B side: each column lies whole in this chunk.
        top = np.full(c1 - c0, -np.inf)
        filled = np.flatnonzero(cnt)
        top[filled] = np.maximum.reduceat(vals, local[filled])
        hit = np.flatnonzero(vals == np.repeat(top, cnt))
        col_hits.add(_col_of(local, hit) + c0, r_[hit], vals[hit])
        # A side: running maxima; entries equal to the running maximum include the final ones.
        np.maximum.at(row_top, r_, vals)
        hit = np.flatnonzero(vals == np.take(row_top, r_))
        row_hits.add(r_[hit], _col_of(local, hit) + c0, vals[hit])
        # ranks of each entry's partner in its owner's preference order
        if a.uniform is not None:
            rank = np.repeat(b.ranks[a.uniform, c0:c1], cnt)
        else:
            rank = b.ranks[np.take(a.kind, r_), np.repeat(np.arange(c0, c1), cnt)]
        near = np.flatnonzero(rank < cap_a)
        row_near.add(r_[near], rank[near], rank[near])
        if b.uniform is not None:
            rank = np.take(a.ranks[b.uniform], r_)
        else:
            rank = a.ranks[np.repeat(b.kind[c0:c1], cnt), r_]
        near = np.flatnonzero(rank < cap_b)
        col_near.add(_col_of(local, near) + c0, rank[near], rank[near])
    owner, partner, value = row_hits.arrays()
    final = value == row_top[owner]
    row_stored = _lowest_first(owner[final], partner[final], value[final], a.n)
    col_stored = _lowest_first(*col_hits.arrays(), b.n)

    def stored_of_a(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wanted = np.zeros(a.n, dtype=bool)
        wanted[ids] = True
        e = np.flatnonzero(np.take(wanted, rows))
        own = rows[e]
        return own, b.ranks[a.kind[own], _col_of(indptr, e)]

    def stored_of_b(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = counts[ids]
        own = np.repeat(ids, size)
        e = np.repeat(indptr[ids] - np.cumsum(size) + size, size) + np.arange(size.sum())
        return own, a.ranks[b.kind[own], rows[e]]

    row_unstored = _unstored_best(row_near.arrays()[:2], cap_a, a, b, stored_of_a)
    col_unstored = _unstored_best(col_near.arrays()[:2], cap_b, b, a, stored_of_b)
    return _combine(row_stored, row_unstored), _combine(col_stored, col_unstored)


def _column_chunks(indptr: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """Column ranges [c0, c1) of about ``chunk`` entries each (at least one column)."""
    n_cols = indptr.size - 1
    cuts = np.unique(np.searchsorted(indptr, np.arange(0, indptr[-1], chunk), side="right") - 1)
    bounds = np.unique(np.concatenate([[0], cuts, [n_cols]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _col_of(indptr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Column of each entry position, from the column pointers."""
    return np.searchsorted(indptr, positions, side="right") - 1


def _lowest_first(owner: np.ndarray, other: np.ndarray, val: np.ndarray, n: int) -> Best:
    """Per owner id, the entry of lowest ``other`` among the given (maximal) entries."""
    order = np.lexsort((other, owner))
    owner, other, val = owner[order], other[order], val[order]
    first = np.r_[True, owner[1:] != owner[:-1]] if owner.size else np.zeros(0, dtype=bool)
    idx, best = np.full(n, -1, dtype=np.int64), np.full(n, -np.inf)
    idx[owner[first]], best[owner[first]] = other[first], val[first]
    return Best(idx, best)


def _unstored_best(near: tuple[np.ndarray, np.ndarray], cap: int, side: Axis, other: Axis, stored_of: StoredOf) -> Best:
    """Each ``side`` latent's best partner among the ``other`` latents it does not store.

    near: (owner, rank) of the stored entries whose partner ranks below ``cap`` in the owner's
    preference order. The first unstored position (mex) holds the best value u; a later
    position can tie with it only through rounding (products of unequal z), and then the lowest
    unstored id among all positions whose product equals u wins (:func:`_ties`).
    """
    n_other = other.alive.size
    table = np.zeros((side.n, cap + 1), dtype=bool)
    table[near[0], near[1]] = True
    mex = np.argmin(table, axis=1).astype(np.int64)  # first rank not stored (<= cap)
    deep = np.flatnonzero((mex == cap) & (cap < n_other) & side.alive_mask)
    if deep.size:
        mex[deep] = _exact_mex(deep, side.n, stored_of)
    idx, val = np.full(side.n, -1, dtype=np.int64), np.full(side.n, -np.inf)
    live = side.alive[mex[side.alive] < n_other]
    kind = side.kind[live].astype(np.int64)
    pos = mex[live]
    idx[live] = other.orders[kind, pos]
    val[live] = side.neg_z[live] * other.z[idx[live]]
    after = other.group_end[kind, pos]
    open_ = np.flatnonzero((kind != _ZERO) & (after < n_other))
    nxt = other.orders[kind[open_], after[open_]]
    tied = open_[side.neg_z[live[open_]] * other.z[nxt] == val[live[open_]]]
    if tied.size:
        ids = live[tied]
        idx[ids] = _ties(ids, kind[tied], pos[tied], val[ids], (near, cap), side, other, stored_of)
    return Best(idx, val)


def _ties(
    ids: np.ndarray,
    kind: np.ndarray,
    first: np.ndarray,
    u: np.ndarray,
    near: tuple[tuple[np.ndarray, np.ndarray], int],
    side: Axis,
    other: Axis,
    stored_of: StoredOf,
) -> np.ndarray:
    """Lowest unstored partner id at the positions whose product equals u, for latents ``ids``.

    kind, first (the mex), u: per latent; near = ((owner, rank) of the entries ranked below
    cap, cap). Products never increase along the order, so those positions are first..end-1
    (end by bisection); the stored ones split that range into intervals whose lowest ids come
    from the range-minimum table.
    """
    n_other = other.alive.size
    neg_z = side.neg_z[ids]
    lo, hi = first.copy(), np.full(ids.size, n_other, dtype=np.int64)  # product(lo) == u; end in (lo, hi]
    while True:
        busy = hi - lo > 1
        if not busy.any():
            break
        mid = (lo + hi) // 2
        same = neg_z * other.z[other.orders[kind, np.minimum(mid, n_other - 1)]] == u
        lo = np.where(busy & same, mid, lo)
        hi = np.where(busy & ~same, mid, hi)
    end = hi
    slot = np.full(side.n, -1, dtype=np.int64)
    slot[ids] = np.arange(ids.size)
    (owner, r), cap = near
    if np.any(end > cap):  # the entries ranked below cap do not cover every range
        owner, r = stored_of(ids)
    t = slot[owner]
    keep = t >= 0
    t, r = t[keep], r[keep]
    inside = (r > first[t]) & (r < end[t])
    t, r = t[inside], r[inside]
    order = np.lexsort((r, t))
    t, r = t[order], r[order]
    last_of_t = np.r_[t[1:] != t[:-1], True] if t.size else np.zeros(0, dtype=bool)
    stop_after = np.where(last_of_t, end[t], np.r_[r[1:], 0] if r.size else r)
    lead_stop = end.copy()
    firsts = np.r_[True, t[1:] != t[:-1]] if t.size else np.zeros(0, dtype=bool)
    lead_stop[t[firsts]] = r[firsts]
    q_t = np.concatenate([np.arange(ids.size), t])
    q_start = np.concatenate([first, r + 1])
    q_stop = np.concatenate([lead_stop, stop_after])
    ok = q_start < q_stop
    q_t, q_start, q_stop = q_t[ok], q_start[ok], q_stop[ok]
    best = np.full(ids.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, q_t, other.lowest_id(kind[q_t], q_start, q_stop))
    return best


def _exact_mex(ids: np.ndarray, n: int, stored_of: StoredOf) -> np.ndarray:
    """The first rank not stored for each latent in ``ids`` (exact, by sorting its entries)."""
    own, r = stored_of(ids)
    order = np.lexsort((r, own))
    own, r = own[order], r[order]
    starts = np.searchsorted(own, ids)
    position = np.arange(own.size) - np.repeat(starts, np.diff(np.append(starts, own.size)))
    prefix = np.bincount(own[r == position], minlength=n)  # matches form a prefix per latent
    return prefix[ids]


def _combine(stored: Best, unstored: Best) -> Best:
    """The better of the two candidates per latent; equal values go to the lower partner id."""
    has_s, has_u = stored.idx >= 0, unstored.idx >= 0
    has_s &= stored.val > -np.inf
    take_s = has_s & (
        ~has_u | (stored.val > unstored.val) | ((stored.val == unstored.val) & (stored.idx < unstored.idx))
    )
    return Best(np.where(take_s, stored.idx, unstored.idx), np.where(take_s, stored.val, unstored.val))
