"""The torch path of :mod:`featgeom.stats.kernels`: its ArrayOps on any torch device.

kernels.py writes each metric's reader (what it reads off C = Ux^T Uy[perm]) and each kernel's
assembly once over an ArrayOps; :class:`TorchOps` is that interface on a torch device, with the
torch version of the array primitives:

* principal coordinates: the columns are centered and rescaled on the host
  (:func:`featgeom.similarity.base.centered`, with its checks), then the thin SVD runs on the
  device in float64 under the rules of :func:`featgeom.similarity.base.principal_coords`: a tall
  (n >= 2 d), well-conditioned (s_max / s_min <= 1e3) c goes through c^T c = V diag(s^2) V^T and
  u = c V / s, anything else through torch.linalg.svd, cut where s <= s[0] * max(n, d) * eps.
* cross products C (B, ka, kb) = a^T b[perm] for a (n, ka), b (n, kb): one row gather
  b[perms^T] (n, B kb) and one (ka, n) x (n, B kb) matrix product per batch.
* square alignment <mx, my[perm][:, perm]>_F (B,) for (n, n) mx, my: a row gather my[perms]
  (B, n, n), a column gather within each row (torch.gather; about 2x faster on the CPU than one
  two-index gather) and one matrix-vector product with mx flattened.
* singular values (B, min(p, q)) of m (B, p, q): float64 torch.linalg.svdvals; float32
  sqrt(max(0, eigvalsh(G))) with G = m^T m or m m^T, whichever is smaller (as the NumPy path).

Permutations arrive as NumPy int arrays and move to the device once per batch; scores come back
as NumPy float64 arrays. Device work runs under :func:`featgeom.device.device_memory`, so running
out of device memory is one ResourceError with the bytes asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from featgeom.device import device_memory
from featgeom.similarity.base import centered, gram_is_stable, numerical_rank, takes_gram_route
from featgeom.stats.kernels import ShuffleKernel

_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


class _Cast:
    """Tensors kept in float64, with copies in other dtypes made on first use."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self._copies = {torch.float64: tuple(t.contiguous() for t in tensors)}

    def __call__(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        if dtype not in self._copies:
            self._copies[dtype] = tuple(t.to(dtype) for t in self._copies[torch.float64])
        return self._copies[dtype]


class _CrossProducts:
    """Batches of a^T b[perm] (B, ka, kb) for a (n, ka), b (n, kb): one gather, one product."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.sides = _Cast(a, b)
        self.bytes_per_perm = 8 * (a.shape[0] + a.shape[1]) * b.shape[1]

    def __call__(self, perms: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        a, b = self.sides(dtype)
        (n, ka), kb, count = a.shape, b.shape[1], perms.shape[0]
        gathered = torch.index_select(b, 0, perms.T.reshape(-1)).reshape(n, count * kb)
        return (a.T @ gathered).reshape(ka, count, kb).transpose(0, 1)  # [j] is a^T b[perms[j]]


class _SquareAlignment:
    """<mx, my[perm][:, perm]>_F (B,) for each perm, for symmetric (n, n) tensors mx and my."""

    def __init__(self, mx: torch.Tensor, my: torch.Tensor) -> None:
        self.sides, self.n = _Cast(mx, my), my.shape[0]
        self.bytes_per_perm = 2 * 8 * self.n**2  # the batch's my[p] and my[p][:, p]

    def __call__(self, perms: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        mx, my = self.sides(dtype)
        (count, n), rows = perms.shape, my[perms]  # rows[j] = my[p_j]: (B, n, n), whole rows
        permuted = torch.gather(rows, 2, perms[:, None, :].expand(count, n, n))  # [j] = my[p_j][:, p_j]
        return permuted.reshape(count, -1) @ mx.reshape(-1)


def singular_values(m: torch.Tensor) -> torch.Tensor:
    """Singular values (B, min(p, q)) of each matrix in m (B, p, q), ascending for float32.

    float64: torch.linalg.svdvals (descending). float32: sqrt(max(0, eigenvalues of G)) with
    G = m^T m or m m^T, whichever is smaller, as :func:`featgeom.stats.kernels.singular_values`.
    """
    if m.dtype == torch.float64:
        return torch.linalg.svdvals(m)
    mt = m.transpose(1, 2)
    gram = mt @ m if m.shape[2] <= m.shape[1] else m @ mt
    return torch.linalg.eigvalsh(gram, UPLO="U").clamp(min=0).sqrt()


def _thin_svd(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(u (n, r), s (r,)) of the centered c (n, d), by the rules of base.principal_coords."""
    if takes_gram_route(c.shape):
        lam, v = torch.linalg.eigh(c.T @ c)
        if gram_is_stable(lam[0], lam[-1]):
            s = lam.flip(0).sqrt()
            return (c @ v.flip(1)) / s, s
    u, s, _ = torch.linalg.svd(c, full_matrices=False)
    rank = numerical_rank(s, c.shape)
    return u[:, :rank], s[:rank]


class TorchOps:
    """ArrayOps of the torch path on ``device`` (a checked torch.device)."""

    einsum = staticmethod(torch.einsum)
    cross_products = _CrossProducts
    square_alignment = _SquareAlignment
    stack = staticmethod(torch.stack)

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        """``a`` as a float64 tensor on the device."""
        with device_memory(f"null test: moving a {a.shape} array to {self.device}", a.nbytes):
            return torch.as_tensor(a, dtype=torch.float64, device=self.device)

    def principal_coords(self, a: np.ndarray, name: str) -> tuple[torch.Tensor, np.ndarray]:
        """(u (n, r) on the device, s (r,) on the host): ``a`` centered on the host, thin SVD here."""
        c = centered(a, name)
        n, d = c.shape
        with device_memory(f"null test: thin SVD of {name} {c.shape}", 8 * (2 * n * d + 2 * d * d)):
            u, s = _thin_svd(self.asarray(c))
            return u, s.cpu().numpy()

    def cast(self, *arrays: np.ndarray) -> _Cast:
        """``arrays`` on the device in float64, with copies in other dtypes made on first use."""
        return _Cast(*(self.asarray(a) for a in arrays))

    @staticmethod
    def singular_values(stacks: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Singular values of each stack, one batched call per stack."""
        return [None if m is None else singular_values(m) for m in stacks]

    def kernel(
        self,
        metrics: tuple[str, ...],
        n_items: int,
        bytes_per_perm: int,
        values: Callable[[torch.Tensor, torch.dtype], torch.Tensor],
    ) -> ShuffleKernel:
        """ShuffleKernel taking NumPy perms and dtypes, returning NumPy float64 scores."""

        def host_values(perms: np.ndarray, dtype: Any) -> np.ndarray:
            count = f"{len(perms)} permutation{'s' if len(perms) != 1 else ''}"
            what = f"null test of {', '.join(metrics)} ({count} on {self.device})"
            with device_memory(what, len(perms) * bytes_per_perm):
                scores = values(torch.as_tensor(perms, device=self.device), _DTYPES[np.dtype(dtype)])
                return scores.to(torch.float64).cpu().numpy()

        return ShuffleKernel(metrics, n_items, bytes_per_perm, host_values)
