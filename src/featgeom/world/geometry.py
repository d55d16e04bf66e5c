"""Geometry of feature dictionaries: superposition (rho_mm) and fast orthogonalization.

Directions are normalised by :func:`featgeom.formulas.unit_rows` (zero rows are errors), which
this module re-exports for the world and family stages.
"""

from __future__ import annotations

import numpy as np
import torch

from featgeom.checks import as_matrix
from featgeom.errors import DataError
from featgeom.formulas import unit_rows


def max_abs_cos(vectors: np.ndarray, chunk_size: int = 2048) -> np.ndarray:
    """For each row i: max_{j != i} |cos(v_i, v_j)|.  vectors (N, d) -> (N,), computed in row chunks.

    Memory is O(chunk_size * N); there is no Python loop over features.
    """
    unit = unit_rows(as_matrix(vectors, "vectors", dtype=np.float64).astype(np.float32), "vectors")
    n = unit.shape[0]
    if n < 2:
        raise DataError("vectors: need at least 2 rows to measure superposition")
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        cos = np.abs(unit[start:stop] @ unit.T)
        cos[np.arange(stop - start), np.arange(start, stop)] = 0.0
        out[start:stop] = cos.max(axis=1)
    return out


def rho_mm(vectors: np.ndarray, chunk_size: int = 2048) -> float:
    """Superposition level rho_mm = mean_i max_{j != i} |cos(v_i, v_j)| (SynthSAEBench's measure)."""
    return float(max_abs_cos(vectors, chunk_size).mean())


def frustration_grad(embeddings: torch.Tensor) -> torch.Tensor:
    """Gradient of L(E) = sum_{i!=j} (e_i.e_j)^2 + N sum_i (|e_i|^2 - 1)^2 for E of shape (N, d).

    Uses sum_{i,j} (e_i.e_j)^2 = ||E^T E||_F^2, so the cost is O(N d^2) instead of O(N^2 d):
    dL/dE = 4 E (E^T E) - 4 diag(|e_i|^2) E + 4 N diag(|e_i|^2 - 1) E.
    This is the loss SAELens's ``orthogonalize_embeddings`` minimises through N x N Gram blocks.
    """
    n = embeddings.shape[0]
    sq_norms = (embeddings * embeddings).sum(dim=1, keepdim=True)
    gram = embeddings.T @ embeddings
    return 4.0 * (embeddings @ gram) - 4.0 * sq_norms * embeddings + 4.0 * n * (sq_norms - 1.0) * embeddings


def orthogonalize(
    embeddings: torch.Tensor, steps: int, lr: float, frozen: torch.Tensor | None = None
) -> torch.Tensor:
    """Adam on the frustration loss (see :func:`frustration_grad`), then unit-normalise rows.

    Same optimiser, loss and normalisation as SAELens's ``orthogonalize_embeddings``, so both give
    the same directions up to float rounding; ``frozen`` (bool, shape (N,)) keeps those rows fixed.
    embeddings (N, d) float32 -> (N, d) float32 with unit rows.
    """
    emb = embeddings.detach().clone()
    emb = emb / emb.norm(dim=1, keepdim=True).clamp(min=1e-8)
    emb.requires_grad_(True)
    optimizer = torch.optim.Adam([emb], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        with torch.no_grad():
            grad = frustration_grad(emb)
            if frozen is not None:
                grad[frozen] = 0.0
        emb.grad = grad
        optimizer.step()
    with torch.no_grad():
        result = emb / emb.norm(dim=1, keepdim=True).clamp(min=1e-8)
        if frozen is not None:
            result[frozen] = embeddings[frozen]
    return result.detach()


def reduce_coherence(
    vectors: np.ndarray, steps: int = 150, lr: float = 0.01, power: int = 8, chunk_size: int = 2048
) -> np.ndarray:
    """Lower the largest pairwise |cos| of unit rows: Adam on sum_{i!=j} (u_i.u_j)^power, rows kept
    on the unit sphere after each step.  A high even power concentrates the pressure on the most
    aligned pairs, which is what rho_mm (mean max |cos|) measures.  (N, d) -> (N, d) float32.

    Cost O(steps * N^2 d), computed in row chunks of the Gram matrix.
    """
    emb = torch.from_numpy(unit_rows(np.asarray(vectors, dtype=np.float32))).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([emb], lr=lr)
    n = emb.shape[0]
    for _ in range(steps):
        optimizer.zero_grad()
        with torch.no_grad():
            grad = torch.empty_like(emb)
            for start in range(0, n, chunk_size):
                stop = min(start + chunk_size, n)
                gram = emb[start:stop] @ emb.T
                gram[torch.arange(stop - start), torch.arange(start, stop)] = 0.0
                grad[start:stop] = gram.pow(power - 1) @ emb
        emb.grad = grad
        optimizer.step()
        with torch.no_grad():
            emb /= emb.norm(dim=1, keepdim=True)
    return emb.detach().numpy()
