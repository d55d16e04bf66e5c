"""Fast exact sampler of a world's feature activations (the same law as SAELens's sampler).

SAELens's ``ActivationGenerator`` (+ hierarchy modifier) draws, per sample, a Gaussian copula
g = eps F^T + eta * sqrt(diag) over all N features (eps ~ N(0, I_r), eta ~ N(0, I_N)), fires
feature i when g_i > t_i = Phi^-1(1 - p_i), draws magnitudes relu(mean_i + std_i z), then
applies the hierarchy (children gated or scaled by parents, one uniformly chosen survivor per
mutually exclusive sibling group).  Only ~L0 of N features end up active, so we sample lazily,
using that the features are independent *given eps*:

1. top-level features (no parent): candidates eta_i > c_i are drawn sparsely (geometric gaps,
   eps-free), then accepted with P(eta_i > u_i | eta_i > c_i) where u_i = (t_i - eps.F_i)/s_i.
   The constant c_i is chosen per feature so that u_i < c_i is rare; when it happens (found by
   one dense check of eps.F_i > t_i - s_i c_i, a GEMM over cache-sized chunks of rows) a
   non-candidate fires with the exact remaining probability P(u_i < eta_i <= c_i | eta_i <= c_i).
   Each acceptance U < Q(u) (Q = 1 - Phi) is decided by a table bracket of Q, with ndtr only
   when U falls inside the bracket.  The result is exact, not approximate.
2. children are evaluated only under active parents, level by level, with their own fresh eta;
   mutual exclusion and parent scaling follow SAELens's order (exclusion among raw-active
   children of an active parent, then gating/scaling by the parent's final value).

Children of inactive parents, whose draws SAELens makes and then discards, are never drawn;
this changes no probability.  Tests compare firing rates, magnitudes, co-firing and hierarchy
constraints against SAELens's own sampler (``tests/world/test_sampler_equivalence.py``).
"""

from __future__ import annotations

import multiprocessing
import warnings
import weakref
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import ndtr

from featgeom.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from featgeom.world.build import World

_CHUNK = 128  # rows per dense check of eps . F (the C x N_top float32 block stays in L2 / L3)


@dataclass(frozen=True)
class FeatureBatch:
    """Sparse feature activations of one batch in CSR form, column indices sorted within rows.

    indptr (n_samples + 1,), indices (nnz,) int32 feature ids, values (nnz,) float32 all > 0.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_coo(cls, rows: np.ndarray, features: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> FeatureBatch:
        """Build from unique (row, feature, value) triplets in any order (O(nnz + n) counting sort)."""
        csr = sp.coo_matrix((values.astype(np.float32), (rows, features)), shape=shape).tocsr()
        csr.sort_indices()
        return cls(csr.indptr, csr.indices, csr.data, shape)

    @classmethod
    def vstack(cls, batches: list[FeatureBatch]) -> FeatureBatch:
        """Concatenate batches of the same number of features along the sample axis."""
        offsets = np.cumsum([0] + [b.indices.size for b in batches[:-1]])
        indptr = np.concatenate([[0]] + [b.indptr[1:] + off for b, off in zip(batches, offsets)])
        return cls(indptr, np.concatenate([b.indices for b in batches]), np.concatenate([b.values for b in batches]),
                   (sum(b.shape[0] for b in batches), batches[0].shape[1]))

    @property
    def rows(self) -> np.ndarray:
        """Row index of every stored value, (nnz,) int64."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def l0(self) -> np.ndarray:
        """Number of active features per sample, (n_samples,)."""
        return np.diff(self.indptr)

    def to_scipy(self) -> sp.csr_matrix:
        """scipy.sparse CSR matrix of shape (n_samples, n_features) (shares memory)."""
        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=self.shape)

    def to_dense(self) -> np.ndarray:
        """Dense (n_samples, n_features) float32 array."""
        return self.to_scipy().toarray()

    def hidden(self, vectors: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """acts @ vectors + bias, shape (n_samples, d), via a sparse CSR x dense product."""
        with warnings.catch_warnings():  # torch flags sparse CSR support as beta
            warnings.simplefilter("ignore", UserWarning)
            t_csr = torch.sparse_csr_tensor(
                torch.from_numpy(self.indptr.astype(np.int64)), torch.from_numpy(self.indices.astype(np.int64)),
                torch.from_numpy(self.values), size=self.shape, check_invariants=False,
            )
        out = torch.sparse.mm(t_csr, torch.from_numpy(vectors))
        out += torch.from_numpy(bias)
        return out.numpy()


class SamplingLaw:
    """The precomputed law of a world's feature activations; ``draw(n, rng)`` samples it.

    Holds only what sampling needs (no feature directions), so it is cheap to send to workers.
    """

    def __init__(self, world: World) -> None:
        self.num_features = world.num_features
        self.prob = world.firing_probabilities.astype(np.float64)
        self.mean = world.mean_magnitudes
        self.std = world.std_magnitudes
        self.correlated = world.correlation_factor is not None
        if self.correlated:
            self.factor = world.correlation_factor
            self.diag_sqrt = np.sqrt(world.correlation_diag.astype(np.float64))
            # float32 erfinv exactly as SAELens computes its thresholds
            p32 = torch.from_numpy(world.firing_probabilities)
            self.threshold = (np.sqrt(2) * torch.erfinv(1 - 2 * p32)).numpy().astype(np.float64)
        self._init_children(world)
        self._init_top_level(world.parent)

    def _init_children(self, world: World) -> None:
        """Dense per-parent child tables: row parent_rank[p] of child_table lists p's children
        (-1 padded to the largest branching), with their copula factors, thresholds and scales."""
        parent = world.parent
        self.me_children = world.me_children
        self.scale_children = world.scale_children
        counts = np.bincount(parent[parent >= 0], minlength=self.num_features)
        parents = np.flatnonzero(counts)
        self.parent_rank = np.full(self.num_features, -1, dtype=np.int64)
        self.parent_rank[parents] = np.arange(parents.size)
        order = np.argsort(parent, kind="stable")
        children = order[parent[order] >= 0]  # grouped by parent, ascending index
        first = np.concatenate([[0], np.cumsum(counts)])[parent[children]]
        table = np.full((parents.size, int(counts.max(initial=0))), -1, dtype=np.int64)
        table[self.parent_rank[parent[children]], np.arange(children.size) - first] = children
        self.child_table = table
        valid = table >= 0
        safe = np.where(valid, table, 0)
        if self.correlated:
            self.child_factor = np.where(valid[..., None], self.factor[safe], 0).astype(np.float32)
            self.child_threshold = np.where(valid, self.threshold[safe], np.inf)
            self.child_diag_sqrt = self.diag_sqrt[safe]
        else:
            self.child_prob = np.where(valid, self.prob[safe], 0.0)

    def _init_top_level(self, parent: np.ndarray) -> None:
        """Candidate thresholds c_i of the top-level features (no parent, p > 0)."""
        top = np.flatnonzero((parent < 0) & (self.prob > 0))
        self.top = top
        if not self.correlated:
            self.candidate_prob = self.prob[top]
            return
        self.top_factor_t = np.ascontiguousarray(self.factor[top].T)  # (r, N_top)
        sigma = np.linalg.norm(self.factor[top].astype(np.float64), axis=1)
        t, s = self.threshold[top], self.diag_sqrt[top]
        # violation = eps.F_i above k sigma_i; pick k minimising E[candidates + violations]
        ks = np.linspace(1.0, 6.0, 51)
        c_grid = (t[None, :] - ks[:, None] * sigma[None, :]) / s[None, :]
        cost = ndtr(-c_grid) + ndtr(-ks)[:, None]
        k = ks[np.argmin(cost, axis=0)]
        self.top_threshold, self.top_diag_sqrt = t, s
        self.violation_level = (k * sigma).astype(np.float32)
        self.candidate_prob = ndtr(-(t - k * sigma) / s)

    # --------------------------------------------------------------- sampling
    def draw(self, n: int, rng: np.random.Generator) -> FeatureBatch:
        """Feature activations of n samples, drawn from the world's law with ``rng``."""
        eps = rng.standard_normal((n, self.factor.shape[1]), dtype=np.float32) if self.correlated else None
        rows, feats = self._fire_top_level(n, eps, rng)
        values = self._magnitudes(feats, rng)
        keep = values > 0
        rows, feats, values = rows[keep], feats[keep], values[keep]
        parts = [(rows, feats, values)]
        while rows.size:
            rows, feats, values = self._next_level(rows, feats, values, eps, rng)
            parts.append((rows, feats, values))
        rows, feats, values = (np.concatenate(p) for p in zip(*parts))
        return FeatureBatch.from_coo(rows, feats, values, (n, self.num_features))

    def _magnitudes(self, feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """relu(mean_i + std_i z), z ~ N(0, 1), one per event."""
        z = rng.standard_normal(feats.size, dtype=np.float32)
        return np.maximum(self.mean[feats] + z * self.std[feats], 0.0)

    def _fire_top_level(self, n: int, eps: np.ndarray | None, rng: np.random.Generator):
        """(rows, features) of the top-level features that fire (module docstring, step 1)."""
        rows, local = bernoulli_grid(self.candidate_prob, n, rng)
        if not self.correlated:
            return rows, self.top[local]
        cand_a, v_rows, v_local, v_a = self._dense_check(eps, rows, local)
        q_c = self.candidate_prob  # Q(c_i), Q(x) = P(eta > x)
        # candidate (eta > c): fires w.p. Q(u) / Q(c)               <=> U Q(c) < Q(u)
        # non-candidate with u < c: w.p. P(u < eta <= c | eta <= c)  <=> U (1 - Q(c)) + Q(c) < Q(u)
        level = np.concatenate([rng.random(rows.size) * q_c[local],
                                rng.random(v_rows.size) * (1 - q_c[v_local]) + q_c[v_local]])
        both = np.concatenate([local, v_local])
        u = (self.top_threshold[both] - np.concatenate([cand_a, v_a])) / self.top_diag_sqrt[both]
        fire = below_upper_tail(level, u)
        return np.concatenate([rows, v_rows])[fire], self.top[both[fire]]

    def _dense_check(self, eps: np.ndarray, rows: np.ndarray, local: np.ndarray):
        """a_ri = eps_r . F_i at the candidates (rows, local), and every non-candidate (r, i) with
        a_ri > k_i sigma_i (a violation: u_ri < c_i) as (rows, local, a).

        One (C, N_top) GEMM per chunk of C = _CHUNK rows (small enough to stay in cache);
        candidates are grouped by chunk with a stable radix sort of their chunk index.
        """
        n, n_top = eps.shape[0], self.top.size
        chunk_of = (rows // _CHUNK).astype(np.min_scalar_type(n // _CHUNK))
        order = np.argsort(chunk_of, kind="stable")
        bounds = np.searchsorted(chunk_of[order], np.arange(-(-n // _CHUNK) + 1))
        cand_a = np.empty(rows.size, dtype=np.float32)
        buf = np.empty((min(n, _CHUNK), n_top), dtype=np.float32)
        found = []
        for c in range(bounds.size - 1):
            start = c * _CHUNK
            a = np.matmul(eps[start:start + _CHUNK], self.top_factor_t, out=buf[:min(n - start, _CHUNK)])
            idx = order[bounds[c]:bounds[c + 1]]
            flat = (rows[idx] - start) * n_top + local[idx]
            a_flat = a.ravel()
            cand_a[idx] = a_flat.take(flat)
            hit = a > self.violation_level
            hit.ravel()[flat] = False
            v = np.flatnonzero(hit)
            found.append((v + start * n_top, a_flat.take(v)))
        v_flat = np.concatenate([f[0] for f in found])
        v_rows, v_local = np.divmod(v_flat, n_top)
        return cand_a, v_rows, v_local, np.concatenate([f[1] for f in found])

    def _next_level(self, rows: np.ndarray, feats: np.ndarray, values: np.ndarray, eps: np.ndarray | None,
                    rng: np.random.Generator):
        """Children of the active (row, parent) events: fire, magnitudes, exclusion, scaling."""
        rank = self.parent_rank[feats]
        has = rank >= 0
        rows, parents, parent_vals, rank = rows[has], feats[has], values[has], rank[has]
        if self.correlated:  # fire iff eta > u = (t - eps . F_child) / s, eta ~ N(0, 1); padding has t = inf
            a = np.einsum("ek,ejk->ej", eps.take(rows, axis=0), self.child_factor.take(rank, axis=0))
            u = (self.child_threshold.take(rank, axis=0) - a) / self.child_diag_sqrt.take(rank, axis=0)
            fired = rng.standard_normal(u.shape) > u
        else:
            fired = rng.random((rank.size, self.child_table.shape[1])) < self.child_prob.take(rank, axis=0)
        event, slot = np.nonzero(fired)  # row-major: sorted by parent event
        child = self.child_table[rank[event], slot]
        vals = self._magnitudes(child, rng)
        active = vals > 0
        event, child, vals = event[active], child[active], vals[active]
        survive = self._mutual_exclusion(event, parents, rng)
        event, child, vals = event[survive], child[survive], vals[survive]
        p = parents[event]
        scale = np.where(self.scale_children[p], parent_vals[event] / self.mean[p], 1.0)
        return rows[event], child, (vals * scale).astype(np.float32)

    def _mutual_exclusion(self, event: np.ndarray, parents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Mask keeping, per parent event with exclusive children, one uniformly random active child.

        ``event`` is sorted (children are generated parent event by parent event), so each group
        is a contiguous run; the survivor is the child with the largest uniform score.
        """
        keep = np.ones(event.size, dtype=bool)
        idx = np.flatnonzero(self.me_children[parents[event]])
        if idx.size == 0:
            return keep
        groups = event[idx]
        starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
        score = rng.random(idx.size)
        best = np.maximum.reduceat(score, starts)
        keep[idx] = score == np.repeat(best, np.diff(np.append(starts, idx.size)))
        return keep


class FastSampler:
    """Exact sparse sampler for a :class:`~featgeom.world.build.World` (see module docstring).

    ``sample_features(n)`` -> FeatureBatch; ``sample(n)`` -> (hidden (n, d) float32, FeatureBatch).
    Call i splits its n samples into ``workers`` parts; part p is drawn with the generator seeded by
    (seed, i, p), in a forked worker process when workers > 1 (workers only run NumPy/SciPy code).
    Same world, seed, workers and sequence of calls -> same numbers, whichever process drew them.
    """

    def __init__(self, world: World, seed: int | np.random.SeedSequence = 0, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {workers}")
        self.world = world
        self.law = SamplingLaw(world)
        self.seed = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
        self.workers = workers
        self._calls = 0
        self._pool: ProcessPoolExecutor | None = None

    def sample(self, n: int) -> tuple[np.ndarray, FeatureBatch]:
        """Hidden activations (n, d) = acts @ feature_vectors + bias, and the feature activations."""
        batch = self.sample_features(n)
        return batch.hidden(self.world.feature_vectors, self.world.bias), batch

    def sample_features(self, n: int) -> FeatureBatch:
        """Feature activations of n samples, drawn from the world's law."""
        if n < 1:
            raise ConfigError(f"n: number of samples must be >= 1, got {n}")
        sizes = [size for size in np.diff(np.linspace(0, n, self.workers + 1).astype(int)) if size > 0]
        seeds = [np.random.SeedSequence(self.seed.entropy, spawn_key=(*self.seed.spawn_key, self._calls, p))
                 for p in range(len(sizes))]
        self._calls += 1
        if len(sizes) == 1:
            return self.law.draw(sizes[0], np.random.default_rng(seeds[0]))
        return FeatureBatch.vstack(list(self._executor().map(_draw_in_worker, sizes, seeds)))

    def state(self) -> dict[str, int]:
        """Position in the stream (JSON-ready): the next call's index fixes all its seeds."""
        return {"calls": self._calls}

    def set_state(self, state: dict[str, int]) -> None:
        """Continue from a position returned by :meth:`state`."""
        self._calls = int(state["calls"])

    def close(self) -> None:
        """Shut down the worker processes (if any)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_init_worker, initargs=(self.law,))
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool


_WORKER_LAW: SamplingLaw | None = None


def _init_worker(law: SamplingLaw) -> None:
    """Worker start: keep the law, and one BLAS thread per worker (the workers already fill the
    cores; a multi-threaded BLAS in each would oversubscribe them, measured 1.7x slower)."""
    from threadpoolctl import threadpool_limits

    global _WORKER_LAW
    _WORKER_LAW = law
    threadpool_limits(1, user_api="blas")


def _draw_in_worker(n: int, seed: np.random.SeedSequence) -> FeatureBatch:
    return _WORKER_LAW.draw(n, np.random.default_rng(seed))


_TAIL_STEP = 1e-3
_TAIL_X0 = -9.0
_TAIL_Q = np.concatenate([[1.0], ndtr(-(_TAIL_X0 + _TAIL_STEP * np.arange(18_001))), [0.0]])  # Q(-inf), Q(x_k), Q(inf)


def below_upper_tail(level: np.ndarray, u: np.ndarray) -> np.ndarray:
    """level < Q(u) elementwise, Q(u) = P(N(0, 1) > u) = ndtr(-u), the same booleans as computing ndtr.

    Q is decreasing, so for u in [x_j, x_j+1] of the grid x_j = -9 + 0.001 j it lies between the
    tabulated Q(x_j+1) and Q(x_j) (beyond the grid: between 0 or 1 and the end value); ndtr is
    evaluated only where ``level`` falls inside that bracket (a fraction ~ 0.4e-3 / spread of level).
    """
    j = np.clip(np.floor((u - _TAIL_X0) / _TAIL_STEP), -1, _TAIL_Q.size - 3).astype(np.int64)
    high, low = _TAIL_Q.take(j + 1), _TAIL_Q.take(j + 2)
    out = level < low
    unsure = np.flatnonzero((level >= low) & (level < high))
    out[unsure] = level[unsure] < ndtr(-u[unsure])
    return out


def bernoulli_grid(prob: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All (row, j) with independent X_rj ~ Bernoulli(prob_j), rows 0..n-1, drawn sparsely.

    Successes of column j sit at cumulative sums of geometric gaps G ~ Geom(prob_j)
    (P(G = g) = (1 - p)^(g-1) p, drawn as floor(log(1 - U) / log(1 - p)) + 1); cost
    O(n * sum(prob) + len(prob)) instead of O(n * len(prob)).  Each round draws mean + 2 sd + 2
    gaps for every column that has not yet passed row n - 1.  Returns (rows, columns), int64.
    """
    cols = np.flatnonzero(prob > 0)
    p = prob[cols].astype(np.float64)
    with np.errstate(divide="ignore"):
        log_q = np.log1p(-p)  # -inf when p == 1: every gap is 1
    last = np.full(cols.size, -1, dtype=np.int64)  # position of the last success drawn so far
    active = np.arange(cols.size)
    out_rows, out_cols = [], []
    while active.size:
        left = n - 1 - last[active]
        mean = left * p[active]
        counts = np.minimum(np.ceil(mean + 2 * np.sqrt(mean) + 2), left).astype(np.int64)
        owner = np.repeat(active, counts)
        ratio = np.minimum(np.log1p(-rng.random(owner.size)) / log_q[owner], n)  # >= 0; capped: no overflow
        gaps = ratio.astype(np.int64) + 1
        csum = np.cumsum(gaps)
        ends = np.cumsum(counts) - 1
        starts = ends - counts + 1
        pos = csum + np.repeat(last[active] - csum[starts] + gaps[starts], counts)
        ok = pos < n
        out_rows.append(pos[ok])
        out_cols.append(owner[ok])
        last[active] = pos[ends]
        active = active[last[active] < n - 1]
    return np.concatenate(out_rows), cols[np.concatenate(out_cols)]
