"""Pearson correlation between the latents of two SAEs from sufficient statistics.

For activations A (n, n_a) and B (n, n_b) over the same n samples we accumulate, batch by batch,

    sums s_i = sum_t A_ti,  squares q_i = sum_t A_ti^2  (same for B),  cross S = A^T B (n_a, n_b),

where S is a sparse-sparse product (SAE activations have only tens of nonzeros per row), and
finish with

    corr_ij = (S_ij - n mu_i mu_j) / (n sd_i sd_j) = S_ij / (n sd_i sd_j) - z_i z_j,  z = mu / sd.

The dense (n_a, n_b) matrix is built one block of rows at a time; with ``top_k`` only each
latent's best partners are kept, so memory is O(nnz(S) + block) rather than O(n_a n_b).
(Batches that are not sparse, e.g. Gaussian test data, go through BLAS into a dense S instead.)
Latents that never fire (dead) or never change (constant) have no correlation: they are listed
in the result and left out of the matrix, never given a 0 or NaN.

``device=None`` (the default) runs all of it in NumPy / SciPy, featgeom's reference. With a torch
device (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``) the input checks and per-latent
statistics still run here on the host, and the finish (and, for :class:`PermutedCorrelation`, the
cross product of every permutation) runs on the device in float64
(:mod:`featgeom.match._torch_correlation`): the same correlations up to the rounding of S's sums
(~1e-15), hence the same partners except where two candidates tie to within that rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from featgeom.checks import as_activations, check_same_rows, to_numpy
from featgeom.device import optional_device
from featgeom.errors import DataError, ShapeError
from featgeom.match._sparse_best import Axis, best_partners
from featgeom.match._topk import TopK, both_sides
from featgeom.match._validate import positive_int, preview

if TYPE_CHECKING:
    import torch

    from featgeom.match._torch_correlation import DeviceActivations, DeviceFinish

Batch = np.ndarray | sp.csr_array

# Sparse A^T B costs ~sum_t nnz(A_t) nnz(B_t) scattered updates; BLAS costs n n_a n_b FLOPs at a
# much higher rate. Past this ratio of the two, a batch's cross-product goes through BLAS.
_DENSE_CROSS_RATIO = 32
# Rows per batch of a dense in-memory input: about this many bytes of float64.
_DENSE_BATCH_BYTES = 64 << 20
# |mean| / std above which raw-moment variances and covariances lose more than ~1e-7.
_MAX_MEAN_TO_STD = 1e4
# Largest |activation| of an alive latent must lie in this range: beyond it, squares and cross
# products in the raw moments overflow or underflow float64 (1e140^2 * 1e28 samples < 1.8e308).
_MAGNITUDES = (1e-140, 1e140)
# Fewest samples a pairing by correlation (and a null over it) accepts. Over n samples the
# correlation of two unrelated latents spreads ~ 1/sqrt(n) around 0 and the best of N candidate
# partners reaches ~ sqrt(2 ln N / n), so with fewer samples chance correlations of 0.1-1 swamp
# real ones (a latent active on one sample correlates 1 with every latent active only there).
# 100 samples also leave 100! distinct sample permutations, far more than any null draws.
MIN_SAMPLES = 100


@dataclass(frozen=True)
class CorrelationResult:
    """Pearson correlations between the alive latents of A and B.

    alive_a, alive_b: sorted latent ids that have a correlation; rows/columns of ``matrix``.
    dead_*: latents never active (all zero); constant_*: active but with zero variance.
    matrix: (len(alive_a), len(alive_b)) correlations, or None when ``top_k`` was given.
    top_b_for_a, top_corr_for_a: (len(alive_a), k) ids of each A latent's k best B partners and
    their correlations, best first, k = min(top_k, len(alive_b)); top_a_for_b, top_corr_for_b:
    the same for each B latent. Ties at the k-th place are cut arbitrarily.
    Correlations are clipped to [-1, 1] (a guard against rounding).
    """

    n_samples: int
    n_latents_a: int
    n_latents_b: int
    alive_a: np.ndarray
    alive_b: np.ndarray
    dead_a: np.ndarray
    dead_b: np.ndarray
    constant_a: np.ndarray
    constant_b: np.ndarray
    matrix: np.ndarray | None = None
    top_k: int | None = None
    top_b_for_a: np.ndarray | None = None
    top_corr_for_a: np.ndarray | None = None
    top_a_for_b: np.ndarray | None = None
    top_corr_for_b: np.ndarray | None = None


@dataclass(frozen=True)
class _Side:
    """Finished statistics of one side: alive ids, excluded ids, mean and std of alive latents."""

    alive: np.ndarray
    dead: np.ndarray
    constant: np.ndarray
    mean: np.ndarray
    sd: np.ndarray


class _Moments:
    """Running per-latent count of nonzeros, sum, sum of squares, min and max of one side."""

    def __init__(self, n_latents: int) -> None:
        self.n_latents = n_latents
        self.total = np.zeros(n_latents)
        self.total_sq = np.zeros(n_latents)
        self.active = np.zeros(n_latents, dtype=np.int64)
        self.low = np.full(n_latents, np.inf)
        self.high = np.full(n_latents, -np.inf)

    def update(self, x: Batch) -> None:
        """Add a batch (rows, n_latents), dense or CSR without explicit zeros."""
        if isinstance(x, np.ndarray):
            self.total += x.sum(axis=0)
            self.total_sq += np.einsum("ij,ij->j", x, x)
            count = np.count_nonzero(x, axis=0)
            low, high = x.min(axis=0), x.max(axis=0)
        else:
            cols, data = x.indices, x.data
            self.total += np.bincount(cols, data, self.n_latents)
            self.total_sq += np.bincount(cols, data * data, self.n_latents)
            count = np.bincount(cols, minlength=self.n_latents)
            low, high = np.zeros(self.n_latents), np.zeros(self.n_latents)
            full = count == x.shape[0]  # no implicit zero in this column
            low[full], high[full] = np.inf, -np.inf
            np.minimum.at(low, cols, data)
            np.maximum.at(high, cols, data)
        self.active += count
        np.minimum(self.low, low, out=self.low)
        np.maximum(self.high, high, out=self.high)

    def finish(self, n: int, name: str) -> _Side:
        """Split latents into alive/dead/constant; mean and std (population) of alive ones.

        DataError when an alive latent's largest |activation| lies outside _MAGNITUDES (its
        moments would over- or underflow) or its mean dwarfs its std (raw moments too inexact).
        """
        alive = np.flatnonzero(self.high > self.low)
        dead = np.flatnonzero(self.active == 0)
        constant = np.flatnonzero((self.active > 0) & (self.high == self.low))
        if alive.size == 0:
            raise DataError(
                f"{name}: all {self.n_latents} latents are dead ({dead.size}) or constant "
                f"({constant.size}) over {n} samples, so no correlation is defined"
            )
        peak = np.maximum(np.abs(self.low[alive]), np.abs(self.high[alive]))
        extreme = alive[(peak < _MAGNITUDES[0]) | (peak > _MAGNITUDES[1])]
        if extreme.size:
            raise DataError(
                f"{name}: latent(s) {preview(extreme)} have activations of magnitude "
                f"{peak[np.searchsorted(alive, extreme[0])]:.3g}, outside [{_MAGNITUDES[0]:g}, "
                f"{_MAGNITUDES[1]:g}], where the raw moments over- or underflow; multiply the "
                "activations by a constant first (correlation is scale-invariant)"
            )
        mean = self.total[alive] / n
        sd = np.sqrt(np.maximum(self.total_sq[alive] / n - mean * mean, 0.0))
        unstable = alive[~(sd * _MAX_MEAN_TO_STD > np.abs(mean))]
        if unstable.size:
            raise DataError(
                f"{name}: latent(s) {preview(unstable)} are nearly constant (|mean| / std > "
                f"{_MAX_MEAN_TO_STD:g}), so their correlation cannot be computed accurately from "
                "raw moments; subtract each latent's mean first (correlation is shift-invariant)"
            )
        return _Side(alive, dead, constant, mean, sd)


class CorrelationAccumulator:
    """Streams paired batches (batch_a (rows, n_a), batch_b (rows, n_b)) into sufficient statistics.

    Call :meth:`update` once per batch (dense arrays or scipy.sparse matrices), then :meth:`result`.
    """

    def __init__(self) -> None:
        self.n_samples = 0
        self._n_batches = 0
        self._a: _Moments | None = None
        self._b: _Moments | None = None
        self._dense: np.ndarray | None = None
        self._sparse: sp.csc_array | None = None

    def update(self, batch_a: object, batch_b: object) -> None:
        """Add one batch of paired samples (same rows in A and B)."""
        k = self._n_batches
        self._add(batch_a, batch_b, f"batch_a #{k}", f"batch_b #{k}")

    def _add(self, batch_a: object, batch_b: object, name_a: str, name_b: str) -> None:
        """Validate a batch pair (errors use ``name_a``/``name_b``) and add its statistics."""
        a, b = _batch(batch_a, name_a), _batch(batch_b, name_b)
        check_same_rows(a, b, (name_a, name_b))
        if self._a is None or self._b is None:
            self._a, self._b = _Moments(a.shape[1]), _Moments(b.shape[1])
        _check_width(a, self._a.n_latents, name_a)
        _check_width(b, self._b.n_latents, name_b)
        self._a.update(a)
        self._b.update(b)
        self._add_cross(a, b)
        self.n_samples += a.shape[0]
        self._n_batches += 1

    def _add_cross(self, a: Batch, b: Batch) -> None:
        """S += a^T b (see :func:`_cross_product`)."""
        part = _cross_product(a, b)
        if isinstance(part, np.ndarray):
            self._dense = part if self._dense is None else self._dense + part
        else:
            self._sparse = part if self._sparse is None else self._sparse + part

    def result(self, *, top_k: int | None = None, block_mb: int = 4, device: object = None) -> CorrelationResult:
        """Finish: full correlation matrix, or each latent's ``top_k`` partners on both sides.

        Work is done ``block_mb`` MiB of dense float64 rows at a time; on the host (device=None),
        or on ``device`` (a torch device; the accumulated S is uploaded once, see the module
        docstring).
        """
        if top_k is not None:
            top_k = positive_int(top_k, "top_k")
        block_bytes = positive_int(block_mb, "block_mb") << 20
        where = optional_device(device)
        if self._a is None or self._b is None or self.n_samples == 0:
            raise DataError("acts: no samples were given")
        n = self.n_samples
        sides = self._a.finish(n, "acts_a"), self._b.finish(n, "acts_b")
        counts = self._a.n_latents, self._b.n_latents
        if where is None:
            return finish_correlation(self._cross(), sides, counts, n, top_k, block_bytes)
        from featgeom.match._torch_correlation import cross_tensor

        finish = _device_finish(sides, counts, n, block_bytes, where)
        return _finished_on_device(finish, cross_tensor(self._cross(), where), sides, counts, n, top_k)

    def _cross(self) -> np.ndarray | sp.csc_array:
        """The accumulated S = A^T B (n_a, n_b): CSC unless some batch went through BLAS."""
        if self._dense is None:
            assert self._sparse is not None
            return self._sparse
        if self._sparse is None:
            return self._dense
        total = self._dense.copy()
        coo = self._sparse.tocoo()
        total[coo.row, coo.col] += coo.data
        return total


def check_samples(n_samples: int, names: str) -> None:
    """ShapeError naming ``names`` unless n_samples >= MIN_SAMPLES (100; see its comment)."""
    if n_samples < MIN_SAMPLES:
        raise ShapeError(
            f"{names}: {n_samples} samples (rows) are too few to pair latents by correlation; "
            f"need at least {MIN_SAMPLES} (unrelated latents correlate by ~1/sqrt(n_samples) by "
            "chance, and latents active on the same single sample correlate exactly 1)"
        )


def finish_correlation(
    cross: np.ndarray | sp.csc_array,
    sides: tuple[_Side, _Side],
    counts: tuple[int, int],
    n: int,
    top_k: int | None,
    block_bytes: int,
) -> CorrelationResult:
    """The CorrelationResult of cross-product S = A^T B (n_a, n_b) and both sides' statistics.

    counts: (n_a, n_b) latent counts; full matrix unless ``top_k``; dense work in blocks of
    ``block_bytes``.
    """
    side_a, side_b = sides
    blocks = _CorrBlocks.build(cross, side_a, side_b, n)
    shape = (side_a.alive.size, side_b.alive.size)
    if top_k is None:
        matrix = np.empty(shape)
        blocks.block(0, side_a.alive.size, matrix)
        return _assembled(matrix, sides, counts, n, None)
    top = both_sides(blocks.block, blocks.transposed().block, shape, top_k, block_bytes)
    return _assembled(top, sides, counts, n, top_k)


def _assembled(
    found: np.ndarray | TopK, sides: tuple[_Side, _Side], counts: tuple[int, int], n: int, top_k: int | None
) -> CorrelationResult:
    """The CorrelationResult of a finish: ``found`` is the (alive_a, alive_b) matrix (clipped in
    place) or the top-k lists (positions among the alive ids, mapped to latent ids)."""
    common = _common_fields(sides, counts, n)
    if isinstance(found, np.ndarray):
        np.clip(found, -1.0, 1.0, out=found)
        return CorrelationResult(**common, matrix=found)
    side_a, side_b = sides
    return CorrelationResult(
        **common,
        top_k=top_k,
        top_b_for_a=side_b.alive[found.row_idx],
        top_corr_for_a=np.clip(found.row_val, -1.0, 1.0),
        top_a_for_b=side_a.alive[found.col_idx],
        top_corr_for_b=np.clip(found.col_val, -1.0, 1.0),
    )


def _device_finish(
    sides: tuple[_Side, _Side], counts: tuple[int, int], n: int, block_bytes: int, device: torch.device
) -> DeviceFinish:
    """The device finish of both sides' statistics (scales and z as :meth:`_CorrBlocks.build`)."""
    from featgeom.match._torch_correlation import DeviceFinish

    scales, z = _finish_factors(sides, n)
    return DeviceFinish((sides[0].alive, sides[1].alive), z, scales, counts, block_bytes, device)


def _finished_on_device(
    finish: DeviceFinish, cross: torch.Tensor, sides: tuple[_Side, _Side], counts: tuple[int, int], n: int,
    top_k: int | None,
) -> CorrelationResult:
    """The CorrelationResult of S = ``cross`` (n_a, n_b; a dense or CSR tensor) finished on its device."""
    found = finish.matrix(cross) if top_k is None else finish.top(cross, top_k)
    return _assembled(found, sides, counts, n, top_k)


def _through_blas(products: float, n: int, n_a: int, n_b: int) -> bool:
    """Whether a^T b (n_a, n_b) over n rows goes through BLAS: when its sparse cost ``products`` =
    sum_t nnz(a_t) nnz(b_t), times _DENSE_CROSS_RATIO, exceeds BLAS's n n_a n_b."""
    return products * _DENSE_CROSS_RATIO > n * n_a * n_b


def _cross_product(a: Batch, b: Batch) -> np.ndarray | sp.csc_array:
    """a^T b (n_a, n_b): through BLAS when the batch is dense enough, else sparse-sparse (CSC)."""
    products = float(np.dot(_row_nnz(a), _row_nnz(b)))
    if _through_blas(products, a.shape[0], a.shape[1], b.shape[1]):
        return _as_dense(a).T @ _as_dense(b)
    return sp.csc_array(_as_csr(a).T @ _as_csr(b))


class PermutedCorrelation:
    """Correlations of A's latents with B's latents after permuting B's rows (samples).

    acts_a (n, n_a), acts_b (n, n_b): in-memory activations (dense or sparse). A row
    permutation leaves every latent's mean, std, dead/constant status unchanged, so those are
    computed once; :meth:`result` then costs one cross product S = A^T B[perm] (for sparse
    latents ~ n L0_a L0_b scattered updates) and the finish (full matrix, or ``top_k``
    partners; with ``top_k=1`` and a sparse S, read off S's stored entries in O(nnz(S)) instead
    of O(n_a n_b) dense blocks, with the same ids and bit-identical values).
    ``result(identity)`` is exactly what :func:`activation_correlation` returns for the two
    whole matrices in one batch (same arithmetic). ShapeError for fewer than MIN_SAMPLES (100)
    samples: this serves pairings and their permutation nulls.

    device: None (NumPy / SciPy) or a torch device (str or ``torch.device``, checked first:
    ConfigError naming ``device``). With a device, the input checks, per-latent statistics and
    alive / dead / constant sets are computed on the host as without one (same sets, same
    errors), the activations are uploaded once, and every :meth:`result` computes S = A^T B[perm]
    and its finish on the device in float64 (top-1 by the blockwise argmax, not the sparse
    shortcut; module docstring). Out of device memory: ResourceError.
    """

    def __init__(
        self, acts_a: object, acts_b: object, *, top_k: int | None = None, block_mb: int = 4, device: object = None
    ) -> None:
        self.top_k = None if top_k is None else positive_int(top_k, "top_k")
        self._block_bytes = positive_int(block_mb, "block_mb") << 20
        where = optional_device(device)
        a, b = _batch(acts_a, "acts_a"), _batch(acts_b, "acts_b")
        check_same_rows(a, b, ("acts_a", "acts_b"))
        check_samples(a.shape[0], "acts_a, acts_b")
        self.n_samples = a.shape[0]
        moments = _Moments(a.shape[1]), _Moments(b.shape[1])
        moments[0].update(a)
        moments[1].update(b)
        self._sides = moments[0].finish(self.n_samples, "acts_a"), moments[1].finish(self.n_samples, "acts_b")
        self._counts = a.shape[1], b.shape[1]
        self._a, self._b = a, b
        self._axes: tuple[Axis, Axis] | None = None
        self._device: _DevicePath | None = None
        if where is not None:
            from featgeom.match._torch_correlation import DeviceActivations

            finish = _device_finish(self._sides, self._counts, self.n_samples, self._block_bytes, where)
            self._device = _DevicePath(DeviceActivations(a, b, where), finish, (_row_nnz(a), _row_nnz(b)))

    def result(self, perm: np.ndarray | None = None) -> CorrelationResult:
        """corr(A, B[perm]) (``perm`` (n,) a permutation of range(n); None: the identity).

        With ``top_k=1`` and a sparse cross product, each latent's best partner is read off the
        stored entries of S and the per-latent statistics (:mod:`featgeom.match._sparse_best`,
        O(nnz(S)), bit-identical to the blockwise finish); otherwise the blockwise finish. On a
        device, S and the blockwise finish run there (:meth:`_device_result`).
        DataError when ``perm`` is not a permutation of range(n).
        """
        perm = None if perm is None else _permutation(perm, self.n_samples)
        if self._device is not None:
            return self._device_result(perm)
        b = self._b if perm is None else self._b[perm]
        cross = _cross_product(self._a, b)
        if self.top_k == 1 and not isinstance(cross, np.ndarray):
            return self._sparse_top1(cross)
        return finish_correlation(cross, self._sides, self._counts, self.n_samples, self.top_k, self._block_bytes)

    def _device_result(self, perm: np.ndarray | None) -> CorrelationResult:
        """corr(A, B[perm]) with S and the finish on the device; S goes through a dense matmul
        exactly when the NumPy path would use BLAS (:func:`_through_blas`, from the row nonzero
        counts, which the permutation reorders)."""
        assert self._device is not None
        nnz_a, nnz_b = self._device.row_nnz
        products = float(np.dot(nnz_a, nnz_b if perm is None else nnz_b[perm]))
        blas = _through_blas(products, self.n_samples, *self._counts)
        n_a, n_b = self._counts
        # dense: B[perm] and S; sparse: B[perm] and at most min(products, n_a n_b) entries of S
        needed = 8 * (self.n_samples + n_a) * n_b if blas else 16 * (int(nnz_b.sum()) + min(products, n_a * n_b))
        cross = self._device.activations.cross(perm, blas, int(needed))
        return _finished_on_device(self._device.finish, cross, self._sides, self._counts, self.n_samples, self.top_k)

    def _sparse_top1(self, cross: sp.csc_array) -> CorrelationResult:
        """The top_k=1 result from the sparse S = A^T B[perm] without dense blocks."""
        if self._axes is None:
            self._axes = _best_axes(self._sides, self._counts, self.n_samples)
        side_a, side_b = self._sides
        best_b, best_a = best_partners(cross, *self._axes)
        return CorrelationResult(
            **_common_fields(self._sides, self._counts, self.n_samples),
            top_k=1,
            top_b_for_a=best_b.idx[side_a.alive][:, None],
            top_corr_for_a=np.clip(best_b.val[side_a.alive], -1.0, 1.0)[:, None],
            top_a_for_b=best_a.idx[side_b.alive][:, None],
            top_corr_for_b=np.clip(best_a.val[side_b.alive], -1.0, 1.0)[:, None],
        )


@dataclass(frozen=True)
class _DevicePath:
    """What :class:`PermutedCorrelation` keeps for a device: the uploaded activations, the finish
    and the rows' nonzero counts (n,) of A and B (for the NumPy path's BLAS rule)."""

    activations: DeviceActivations
    finish: DeviceFinish
    row_nnz: tuple[np.ndarray, np.ndarray]


def _permutation(perm: object, n: int) -> np.ndarray:
    """``perm`` as an int64 array (n,); DataError unless it is a permutation of range(n)."""
    p = np.asarray(perm)
    if p.shape != (n,) or not np.issubdtype(p.dtype, np.integer):
        raise DataError(f"perm: expected a permutation of range({n}) (integers, shape ({n},)), got "
                        f"{p.dtype} of shape {p.shape}")
    p = p.astype(np.int64, copy=False)
    if p.min() < 0 or p.max() >= n or np.bincount(p, minlength=n).max() > 1:
        raise DataError(f"perm: not a permutation of range({n}) (ids out of range or repeated)")
    return p


def _finish_factors(
    sides: tuple[_Side, _Side], n: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The finish's scales (1 / (n sd_a), 1 / sd_b) and z = (mean_a / sd_a, mean_b / sd_b) of the alive latents."""
    a, b = sides
    return (1.0 / (n * a.sd), 1.0 / b.sd), (a.mean / a.sd, b.mean / b.sd)


def _best_axes(sides: tuple[_Side, _Side], counts: tuple[int, int], n: int) -> tuple[Axis, Axis]:
    """Both sides' statistics for :func:`best_partners`, computed as :meth:`_CorrBlocks.build` does."""
    a, b = sides
    scales, z = _finish_factors(sides, n)
    return Axis.build(counts[0], a.alive, z[0], scales[0]), Axis.build(counts[1], b.alive, z[1], scales[1])


def _common_fields(sides: tuple[_Side, _Side], counts: tuple[int, int], n: int) -> dict[str, object]:
    """The CorrelationResult fields every finish shares (sample count, latent ids)."""
    a, b = sides
    return {
        "n_samples": n, "n_latents_a": counts[0], "n_latents_b": counts[1], "alive_a": a.alive,
        "alive_b": b.alive, "dead_a": a.dead, "dead_b": b.dead, "constant_a": a.constant,
        "constant_b": b.constant,
    }


class _CorrBlocks:
    """corr[i, j] = S[i, j] * (row_scale[i] * col_scale[j]) - z_rows[i] * z_cols[j].

    S (n_rows, n_cols) is the raw cross-product restricted to alive latents (dense or CSR),
    row_scale = 1 / (n sd_a), col_scale = 1 / sd_b, z = mean / sd. Scaling happens block by
    block, in an order that gives bit-identical values for the transposed blocks.
    ``cross_t`` optionally holds S^T to spare :meth:`transposed` a conversion.
    """

    def __init__(
        self,
        cross: np.ndarray | sp.csr_array,
        scales: tuple[np.ndarray, np.ndarray],
        z: tuple[np.ndarray, np.ndarray],
        cross_t: np.ndarray | sp.csr_array | None = None,
    ) -> None:
        self.cross, self.cross_t = cross, cross_t
        self.row_scale, self.col_scale = scales
        self.z_rows, self.z_cols = z

    @classmethod
    def build(cls, cross: np.ndarray | sp.csc_array, a: _Side, b: _Side, n: int) -> _CorrBlocks:
        """Blocks of corr between alive latents of A (rows) and B (columns) from S = A^T B."""
        scales, z = _finish_factors((a, b), n)
        if isinstance(cross, np.ndarray):
            return cls(cross[np.ix_(a.alive, b.alive)], scales, z)
        cross_t = _restrict(sp.csr_array(cross.T), b.alive, a.alive)  # CSC of S is CSR of S^T
        return cls(sp.csr_array(cross_t.T), scales, z, cross_t)

    def block(self, start: int, stop: int, out: np.ndarray) -> None:
        """Write correlations of rows start:stop (unclipped) into out (stop - start, n_cols)."""
        row_scale = self.row_scale[start:stop]
        np.multiply.outer(-self.z_rows[start:stop], self.z_cols, out=out)
        if isinstance(self.cross, np.ndarray):
            out += self.cross[start:stop] * np.multiply.outer(row_scale, self.col_scale)
            return
        indptr = self.cross.indptr
        lo, hi = indptr[start], indptr[stop]
        counts = np.diff(indptr[start : stop + 1])
        cols = self.cross.indices[lo:hi]
        scale = np.repeat(row_scale, counts) * self.col_scale[cols]
        offsets = np.repeat(np.arange(stop - start) * out.shape[1], counts) + cols
        out.ravel()[offsets] += self.cross.data[lo:hi] * scale

    def transposed(self) -> _CorrBlocks:
        """The same correlations with rows and columns swapped (bit-identical values)."""
        cross_t = self.cross_t
        if cross_t is None:
            is_dense = isinstance(self.cross, np.ndarray)
            cross_t = np.ascontiguousarray(self.cross.T) if is_dense else sp.csr_array(self.cross.T)
        return _CorrBlocks(
            cross_t, (self.col_scale, self.row_scale), (self.z_cols, self.z_rows), self.cross
        )


def _restrict(m: sp.csr_array, rows: np.ndarray, cols: np.ndarray) -> sp.csr_array:
    """m[rows][:, cols] for sorted ids, renumbering columns in O(nnz) (scipy's is much slower)."""
    if rows.size < m.shape[0]:
        m = sp.csr_array(m[rows])
    if cols.size == m.shape[1]:
        return m
    position = np.full(m.shape[1], -1, dtype=m.indices.dtype)
    position[cols] = np.arange(cols.size, dtype=m.indices.dtype)
    new_cols = position[m.indices]
    keep = new_cols >= 0
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=m.indptr.dtype)])
    data, indices = (m.data, new_cols) if keep.all() else (m.data[keep], new_cols[keep])
    return sp.csr_array((data, indices, kept_before[m.indptr]), shape=(m.shape[0], cols.size))


def activation_correlation(
    acts_a: object,
    acts_b: object = None,
    *,
    top_k: int | None = None,
    batch_size: int | None = None,
    block_mb: int = 4,
    device: object = None,
) -> CorrelationResult:
    """Pearson correlation between every latent of A and every latent of B over the same samples.

    acts_a (n, n_a) and acts_b (n, n_b): dense arrays or scipy.sparse matrices; or ``acts_a`` alone
    as an iterable of (batch_a (rows, n_a), batch_b (rows, n_b)) pairs (streaming, one pass).
    In-memory inputs are read ``batch_size`` rows at a time (default: all rows when both are
    sparse, else about 64 MiB of float64). With ``top_k`` the result holds each alive latent's
    ``top_k`` best partners on both sides instead of the full matrix, computed ``block_mb`` MiB
    of dense rows at a time.

    device: None (all in NumPy / SciPy) or a torch device (checked before any work). With a
    device, the batches (in-memory or streamed alike) are still accumulated on the host, S = A^T B
    included, and only the finish, the O(n_a n_b) part, runs on the device; for S on the device
    as well (e.g. for many permutations) use :class:`PermutedCorrelation`.
    """
    if top_k is not None:
        positive_int(top_k, "top_k")
    positive_int(block_mb, "block_mb")
    device = optional_device(device)
    acc = CorrelationAccumulator()
    if acts_b is None:
        for k, item in enumerate(_pairs(acts_a)):
            acc._add(item[0], item[1], f"acts_a batch #{k}", f"acts_b batch #{k}")
    else:
        size = None if batch_size is None else positive_int(batch_size, "batch_size")
        for a, b, rows in _chunks(acts_a, acts_b, size):
            acc._add(a, b, f"acts_a (rows {rows})", f"acts_b (rows {rows})")
    return acc.result(top_k=top_k, block_mb=block_mb, device=device)


def _pairs(stream: object) -> Iterator[tuple[object, object]]:
    """Validate a stream of (batch_a, batch_b) pairs."""
    if isinstance(stream, np.ndarray) or sp.issparse(stream):
        raise ShapeError(
            "acts_b is missing: pass two activation arrays, "
            "or one iterable of (batch_a, batch_b) pairs"
        )
    if not isinstance(stream, Iterable):
        raise DataError(
            f"acts_a: expected an array or an iterable of pairs, got {type(stream).__name__}"
        )
    for k, item in enumerate(stream):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise DataError(f"acts_a: item #{k} of the stream is not a (batch_a, batch_b) pair")
        yield item[0], item[1]


def _chunks(
    acts_a: object, acts_b: object, batch_size: int | None
) -> Iterator[tuple[object, object, str]]:
    """Row chunks (a, b, 'start:stop') of two in-memory activation matrices."""
    a, b = _whole(acts_a, "acts_a"), _whole(acts_b, "acts_b")
    check_same_rows(a, b, ("acts_a", "acts_b"))
    n = a.shape[0]
    if batch_size is None:
        both_sparse = sp.issparse(a) and sp.issparse(b)
        batch_size = (
            n if both_sparse else max(1, _DENSE_BATCH_BYTES // (8 * max(a.shape[1], b.shape[1])))
        )
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield a[start:stop], b[start:stop], f"{start}:{stop}"


def _whole(x: object, name: str) -> np.ndarray | sp.csr_array:
    """A whole activation matrix as CSR (sparse input) or an uncopied ndarray; 2-D, non-empty."""
    if sp.issparse(x):
        m = sp.csr_array(x) if x.ndim == 2 else x
    else:
        try:
            m = np.asarray(to_numpy(x))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if m.ndim != 2 or 0 in m.shape:
        raise ShapeError(
            f"{name}: expected a non-empty 2-D array (n_samples, n_latents), got shape {m.shape}"
        )
    return m


def _batch(x: object, name: str) -> Batch:
    """One batch as a finite float64 array, or a float64 CSR copy without explicit zeros."""
    return as_activations(x, name)


def _check_width(x: Batch, expected: int, name: str) -> None:
    """ShapeError unless batch ``x`` has ``expected`` columns (latents)."""
    if x.shape[1] != expected:
        raise ShapeError(
            f"{name}: has {x.shape[1]} latents (columns), earlier batches had {expected}"
        )


def _row_nnz(x: Batch) -> np.ndarray:
    """(rows,) number of nonzeros in each row of a batch."""
    return np.count_nonzero(x, axis=1) if isinstance(x, np.ndarray) else np.diff(x.indptr)


def _as_dense(x: Batch) -> np.ndarray:
    """The batch as a dense array."""
    return x if isinstance(x, np.ndarray) else x.toarray()


def _as_csr(x: Batch) -> sp.csr_array:
    """The batch as CSR (nonzeros only)."""
    return sp.csr_array(x) if isinstance(x, np.ndarray) else x
