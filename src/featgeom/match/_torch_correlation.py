"""The torch path of the correlation finish and of :class:`~featgeom.match.PermutedCorrelation`.

For activations A (n, n_a), B (n, n_b) and a permutation ``perm`` of the n samples,

    S = A^T B[perm]                                                  (n_a, n_b)
    corr_ij = (-z_i) * z_j + S_ij * (r_i * c_j),   r = 1 / (n sd_a),  c = 1 / sd_b,  z = mean / sd

over the alive latents, the expressions of ``correlation._CorrBlocks`` evaluated in the same
order and in float64, so a device gives the NumPy path's values up to the rounding of S's sums.

What runs where. On the host (``featgeom.match.correlation``): every input check, the per-latent
statistics (mean, sd, alive / dead / constant sets; O(nnz)) and, per permutation, the choice
between the sparse product and BLAS (the NumPy path's rule, from the rows' nonzero counts). On
the device: the activations, uploaded once (:class:`DeviceActivations`: sparse inputs as CSR
tensors of A^T (n_a, n) and B (n, n_b), dense ones as dense tensors, the other form uploaded
when a permutation first needs it); S (a sparse-sparse CSR product, or a dense matmul), where a
row permutation of B is a move of its CSR rows; and the finish (:class:`DeviceFinish`), one block
of ``block_bytes`` of dense float64 rows at a time: the full (alive_a, alive_b) matrix copied
block by block into a host array, or each latent's top-k partners on both sides, copied to the
host once: one pass over the row blocks gives the rows' lists (torch.topk; k = 1: argmax) and
updates every column's running list, so corr^T is never formed. Equal values are listed lower id
first, as ``_topk.select_topk`` lists them (a tie at the k-th place is cut arbitrarily).
Running out of device memory is one :class:`~featgeom.errors.ResourceError`
(:func:`featgeom.device.device_memory`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from featgeom.device import device_memory
from featgeom.match._topk import TopK, row_blocks

Batch = np.ndarray | sp.csr_array


@contextmanager
def _quiet_csr() -> Iterator[None]:
    """Silence torch's one-time notice that sparse CSR tensors are a beta feature."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        yield


def to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on ``device`` (shared with the array on the CPU when writable)."""
    x = np.ascontiguousarray(x)
    return (torch.from_numpy(x) if x.flags.writeable else torch.tensor(x)).to(device)


def csr_tensor(m: sp.csr_array, device: torch.device) -> torch.Tensor:
    """A scipy CSR matrix (rows, cols) as a float64 CSR tensor with int64 indices on ``device``."""
    with _quiet_csr():
        return torch.sparse_csr_tensor(
            to_device(m.indptr.astype(np.int64), device), to_device(m.indices.astype(np.int64), device),
            to_device(m.data.astype(np.float64, copy=False), device), size=m.shape, check_invariants=False,
        )


def cross_tensor(cross: np.ndarray | sp.csc_array, device: torch.device) -> torch.Tensor:
    """A host cross product S (n_a, n_b), dense or CSC, as a dense or CSR tensor on ``device``."""
    m = cross if isinstance(cross, np.ndarray) else sp.csr_array(cross)
    with device_memory("A^T B: uploading the cross product to the device", tensor_bytes(m)):
        return to_device(m, device) if isinstance(m, np.ndarray) else csr_tensor(m, device)


def tensor_bytes(x: Batch) -> int:
    """Bytes a matrix takes on the device: 8 per dense entry, 16 per sparse entry (value, int64 index)."""
    return 8 * x.size if isinstance(x, np.ndarray) else 16 * x.nnz + 8 * (x.shape[0] + 1)


class DeviceActivations:
    """A (n, n_a) and B (n, n_b) on a torch device, for S = A^T B[perm] (:meth:`cross`).

    a, b: the checked host batches (float64 ndarray, or CSR without explicit zeros). Each side is
    uploaded in the form it comes in: CSR inputs as the CSR tensors A^T (n_a, n) and B (n, n_b),
    dense inputs as dense tensors; the other form is uploaded the first time a permutation needs
    it (the NumPy path's rule can send a batch either way).
    """

    def __init__(self, a: Batch, b: Batch, device: torch.device) -> None:
        self.device = device
        self._host = a, b
        self._dense: dict[int, torch.Tensor] = {}
        self._sparse: dict[int, torch.Tensor] = {}
        with device_memory("acts_a, acts_b: uploading to the device", tensor_bytes(a) + tensor_bytes(b)):
            for side, x in enumerate(self._host):
                (self._dense_side if isinstance(x, np.ndarray) else self._sparse_side)(side)

    def _dense_side(self, side: int) -> torch.Tensor:
        """Side 0 (A) or 1 (B) as a dense (n, n_side) tensor, uploaded once."""
        if side not in self._dense:
            x = self._host[side]
            self._dense[side] = to_device(x if isinstance(x, np.ndarray) else x.toarray(), self.device)
        return self._dense[side]

    def _sparse_side(self, side: int) -> torch.Tensor:
        """A^T (n_a, n) (side 0) or B (n, n_b) (side 1) as a CSR tensor, uploaded once."""
        if side not in self._sparse:
            x = self._host[side]
            m = sp.csr_array(x.T) if side == 0 else sp.csr_array(x)
            self._sparse[side] = csr_tensor(m, self.device)
        return self._sparse[side]

    def cross(self, perm: np.ndarray | None, through_blas: bool, needed_bytes: int) -> torch.Tensor:
        """S = A^T B[perm] (n_a, n_b) on the device: dense by matmul when ``through_blas``, else a
        CSR tensor (sparse-sparse product). perm (n,): a permutation of range(n), None: identity;
        needed_bytes: the size estimate an out-of-memory error reports."""
        with device_memory("A^T B[perm]: the cross product on the device", needed_bytes):
            if through_blas:
                b = self._dense_side(1)
                if perm is not None:
                    b = b.index_select(0, to_device(perm, self.device))
                return self._dense_side(0).T @ b
            b = self._sparse_side(1)
            if perm is not None:
                b = permuted_rows(b, to_device(perm, self.device))
            with _quiet_csr():
                return self._sparse_side(0) @ b


def permuted_rows(m: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """m[perm] for a CSR tensor m (n, k) and a permutation perm (n,): row r of m becomes row
    inv[r] (inv the inverse permutation), so each entry moves to
    start'[inv[r]] + (its offset within row r), start' the row starts of the permuted counts.
    (Gathers use index_select, several times faster on the CPU than ``x[idx]``.)"""
    crow, cols, vals = m.crow_indices(), m.col_indices(), m.values()
    n = perm.numel()
    counts = crow.diff()
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n, device=perm.device, dtype=perm.dtype)
    new_crow = torch.cat([crow.new_zeros(1), counts.index_select(0, perm).cumsum(0)])
    rows = torch.repeat_interleave(torch.arange(n, device=crow.device), counts, output_size=cols.numel())
    shift = new_crow.index_select(0, inv) - crow[:-1]  # (n,) new start minus old start of each row
    dest = shift.index_select(0, rows) + torch.arange(cols.numel(), device=crow.device)
    new_cols, new_vals = torch.empty_like(cols), torch.empty_like(vals)
    new_cols[dest], new_vals[dest] = cols, vals
    with _quiet_csr():
        return torch.sparse_csr_tensor(new_crow, new_cols, new_vals, size=m.shape, check_invariants=False)


@dataclass(frozen=True)
class _Entries:
    """The stored entries (rows, cols, vals) of a sparse matrix (n_rows, n_cols), sorted by row;
    starts (n_rows + 1,) on the host: entries starts[i]:starts[i + 1] belong to row i."""

    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    starts: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> _Entries:
        """Entries given in row order (``rows`` non-decreasing)."""
        counts = torch.bincount(rows, minlength=shape[0]).cpu().numpy()
        return cls(rows, cols, vals, np.concatenate([[0], np.cumsum(counts)]), shape)


class _Blocks:
    """Rows of corr = (-z_rows) z_cols^T + S * (row_scale col_scale^T) (n_rows, n_cols) on the
    device, from S dense (n_rows, n_cols) or as :class:`_Entries`; z and scales (n_rows,), (n_cols,)."""

    def __init__(
        self, cross: torch.Tensor | _Entries, scales: tuple[torch.Tensor, torch.Tensor], z: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        self.cross = cross
        self.row_scale, self.col_scale = scales
        self.z_rows, self.z_cols = z
        self.shape = (self.z_rows.numel(), self.z_cols.numel())

    def block(self, start: int, stop: int) -> torch.Tensor:
        """Correlations (unclipped) of rows start:stop, (stop - start, n_cols)."""
        out = torch.outer(-self.z_rows[start:stop], self.z_cols)
        if isinstance(self.cross, torch.Tensor):
            out += self.cross[start:stop] * torch.outer(self.row_scale[start:stop], self.col_scale)
            return out
        lo, hi = int(self.cross.starts[start]), int(self.cross.starts[stop])
        rows, cols = self.cross.rows[lo:hi], self.cross.cols[lo:hi]
        scale = self.row_scale.index_select(0, rows) * self.col_scale.index_select(0, cols)
        out.view(-1).index_add_(0, (rows - start) * self.shape[1] + cols, self.cross.vals[lo:hi] * scale)
        return out


class DeviceFinish:
    """The finish of S (n_a, n_b) on a device: correlations between the alive latents.

    alive (alive ids of A, of B); z = mean / sd and scales (1 / (n sd_a), 1 / sd_b) of the alive
    latents, as ``correlation._CorrBlocks.build`` computes them on the host; n_latents (n_a, n_b);
    block_bytes: dense float64 rows per block.
    """

    def __init__(
        self,
        alive: tuple[np.ndarray, np.ndarray],
        z: tuple[np.ndarray, np.ndarray],
        scales: tuple[np.ndarray, np.ndarray],
        n_latents: tuple[int, int],
        block_bytes: int,
        device: torch.device,
    ) -> None:
        self.device, self.block_bytes = device, block_bytes
        self.shape = (alive[0].size, alive[1].size)
        self.restricted = self.shape != n_latents
        with device_memory("the latents' statistics: uploading to the device", 40 * sum(n_latents)):
            self._alive = to_device(alive[0], device), to_device(alive[1], device)
            self._position = tuple(to_device(_positions(ids, count), device) for ids, count in zip(alive, n_latents))
            self._z = to_device(z[0], device), to_device(z[1], device)
            self._scales = to_device(scales[0], device), to_device(scales[1], device)

    def needed_bytes(self, cross: torch.Tensor) -> int:
        """About the device memory the finish of ``cross`` takes beside S itself: S restricted to
        the alive latents (dense: 8 bytes an entry; sparse: row, column and value, 24) and two
        blocks of rows."""
        stored = cross.numel() if cross.layout == torch.strided else int(cross.values().numel())
        per_entry = 8 if cross.layout == torch.strided else 24
        return per_entry * stored + 2 * self.block_bytes

    def matrix(self, cross: torch.Tensor) -> np.ndarray:
        """The (alive_a, alive_b) correlations (unclipped) as a host float64 array."""
        with device_memory("the correlation matrix on the device", self.needed_bytes(cross)):
            blocks = self._blocks(cross)
            out = np.empty(self.shape)
            for start, stop in row_blocks(self.shape[0], self.shape[1], self.block_bytes):
                out[start:stop] = blocks.block(start, stop).cpu().numpy()
            return out

    def top(self, cross: torch.Tensor, k: int) -> TopK:
        """Each alive latent's k best partners on both sides (positions among the alive ids), in
        one pass over row blocks: each block gives its rows' lists and updates every column's
        running list (the NumPy path reads the columns' lists off blocks of corr^T, whose values
        are the same bits: the products commute)."""
        with device_memory("the top-k correlations on the device", self.needed_bytes(cross)):
            blocks = self._blocks(cross)
            n_rows, n_cols = self.shape
            k_rows = min(k, n_cols)
            row_idx = torch.empty((n_rows, k_rows), dtype=torch.int64, device=self.device)
            row_val = torch.empty((n_rows, k_rows), dtype=torch.float64, device=self.device)
            columns = _ColumnTop(n_cols, min(k, n_rows), self.device)
            for start, stop in row_blocks(n_rows, n_cols, self.block_bytes):
                d = blocks.block(start, stop)
                row_idx[start:stop], row_val[start:stop] = select_topk(d, k_rows)
                columns.add(d, start)
            return TopK(row_idx.cpu().numpy(), row_val.cpu().numpy(), *columns.result())

    def _blocks(self, cross: torch.Tensor) -> _Blocks:
        """Blocks of corr between the alive latents from S (n_a, n_b), dense or CSR."""
        if cross.layout == torch.strided:
            if self.restricted:
                cross = cross.index_select(0, self._alive[0]).index_select(1, self._alive[1])
            return _Blocks(cross, self._scales, self._z)
        # int64 indices: CUDA's sparse product returns int32 ones
        crow, cols, vals = cross.crow_indices().long(), cross.col_indices().long(), cross.values()
        rows = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=crow.device), crow.diff(),
                                       output_size=cols.numel())
        if self.restricted:
            rows, cols = self._position[0].index_select(0, rows), self._position[1].index_select(0, cols)
            kept = ((rows >= 0) & (cols >= 0)).nonzero().squeeze(1)
            rows, cols, vals = rows.index_select(0, kept), cols.index_select(0, kept), vals.index_select(0, kept)
        return _Blocks(_Entries.of(rows, cols, vals, self.shape), self._scales, self._z)


class _ColumnTop:
    """Every column's k largest entries (and their rows) over the row blocks added so far,
    best first, lower row first among equal values (ties at the k-th place cut arbitrarily)."""

    def __init__(self, n_cols: int, k: int, device: torch.device) -> None:
        self.k = k
        self.idx = torch.empty((n_cols, 0), dtype=torch.int64, device=device)
        self.val = torch.empty((n_cols, 0), dtype=torch.float64, device=device)

    def add(self, d: torch.Tensor, start: int) -> None:
        """Merge block d = rows start:start + len(d) (r, n_cols): its best k rows per column
        (k = 1: the first maximum) join the lists, which keep their best k."""
        if self.k == 1:
            val, pos = d.max(dim=0, keepdim=True)
        elif d.shape[0] > self.k:
            val, pos = torch.topk(d, self.k, dim=0)
        else:
            val = d
            pos = torch.arange(d.shape[0], device=d.device)[:, None].expand(d.shape)
        self.idx, self.val = best_of(torch.cat([self.idx, pos.T + start], 1), torch.cat([self.val, val.T], 1), self.k)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_cols, k) rows and values on the host."""
        return self.idx.cpu().numpy(), self.val.cpu().numpy()


def best_of(ids: torch.Tensor, vals: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of the candidates ``ids``, ``vals`` (r, m), the k best: largest value first,
    lower id first among equal values (a stable sort by value of the candidates sorted by id)."""
    ids, order = ids.sort(dim=1)
    vals = vals.gather(1, order)
    order = vals.argsort(dim=1, descending=True, stable=True)[:, :k]
    return ids.gather(1, order), vals.gather(1, order)


def select_topk(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's k largest entries of ``d`` (r, m) and their columns, best first, lower column
    first among equal values (as ``_topk.select_topk``; k = 1 is argmax, the first maximum)."""
    if k == 1:
        idx = d.argmax(dim=1, keepdim=True)
    else:
        idx = torch.topk(d, k, dim=1).indices.sort(dim=1).values
        order = d.gather(1, idx).argsort(dim=1, descending=True, stable=True)
        idx = idx.gather(1, order)
    return idx, d.gather(1, idx)


def _positions(ids: np.ndarray, count: int) -> np.ndarray:
    """(count,) position of each latent among the sorted ``ids``, -1 for the others."""
    position = np.full(count, -1, dtype=np.int64)
    position[ids] = np.arange(ids.size)
    return position
