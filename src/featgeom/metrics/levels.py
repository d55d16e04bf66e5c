"""Multi-level universality: how strongly is each cross-model latent pair shared? (task 7.1)

Each pair k (latent idx_a[k] of SAE A <-> latent idx_b[k] of SAE B, e.g. from ground truth or a
pairing) gets the FIRST level whose test it passes:

* L1  aligned decoder |cos| > 0.95         (same direction, up to a global rotation)
* L2  aligned decoder |cos| > 0.7          (similar direction)
* L3  neighbourhood SVCCA > 0.6            (same local geometry, direction moved)
* L4  activation correlation > 0.7         (same function, different geometry)
* L5  same semantic category               (only the category is shared)
* L6  none of the above

Aligned |cos|: decoder rows of the pairs are scaled to unit norm, zero-padded to a common
dimension, and one orthogonal map R (scipy's orthogonal_procrustes, fitted on all pairs) takes
A's rows onto B's; cos_k = |<a_k R, b_k>|. (With fewer pairs than dimensions R can fit anything.)
Neighbourhood SVCCA of pair k: the k_nn paired A latents nearest to idx_a[k] by A-decoder |cos|,
plus idx_a[k] itself, give rows X (k_nn + 1, d_a) of A's decoder and rows Y of their partners in
B's decoder; the score is SVCCA(X, Y) keeping ``svcca_dims`` directions per side (invariant to
rotations of either model's space). Keeping few directions matters: for k_nn + 1 items SVCCA
with all directions is 1 by construction. For unrelated Gaussian rows in 32 dims, the default
(k_nn = 20, 3 directions) averages about 0.32 with a 95th percentile about 0.44. It is computed
only for pairs not already in L1/L2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import orthogonal_procrustes

from featgeom.checks import as_matrix, to_numpy
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.formulas import unit_rows
from featgeom.metrics._common import pair_ids, positive_int, row_blocks
from featgeom.similarity import svcca

LEVELS = ("L1", "L2", "L3", "L4", "L5", "L6")


@dataclass(frozen=True)
class LevelThresholds:
    """Strict lower bounds of the level tests (see the module docstring)."""

    identical_cos: float = 0.95
    similar_cos: float = 0.7
    neighbourhood_svcca: float = 0.6
    activation_corr: float = 0.7


@dataclass(frozen=True)
class UniversalityLevels:
    """fractions: {"L1": ..., "L6": ...} summing to 1; level (n_pairs,) int in 1..6;
    cos (n_pairs,) aligned decoder |cos|; neighbourhood_svcca (n_pairs,) (NaN where not
    computed: pairs in L1/L2, or a rank-deficient neighbourhood)."""

    fractions: dict[str, float]
    level: np.ndarray
    cos: np.ndarray
    neighbourhood_svcca: np.ndarray = field(repr=False)


def universality_levels(
    decoder_a: object,
    decoder_b: object,
    idx_a: object,
    idx_b: object,
    act_corr: object,
    *,
    same_category: object = None,
    k_nn: int = 20,
    svcca_dims: int = 3,
    thresholds: LevelThresholds | None = None,
) -> UniversalityLevels:
    """Assign each latent pair to the first universality level L1..L6 it meets.

    decoder_a (n_a, d_a), decoder_b (n_b, d_b); idx_a, idx_b (n_pairs,) paired latent ids;
    act_corr (n_pairs,) Pearson correlation of each pair's activations (NaN = undefined, fails
    L4; e.g. ``functional_equivalence_details(...).per_pair``); same_category (n_pairs,) bool or
    None (L5 never met); thresholds: default :class:`LevelThresholds`. Needs n_pairs > k_nn
    and svcca_dims <= min(k_nn, d_a, d_b). Pairs should be 1-1 (a latent repeated in idx_a
    would be its own neighbour).
    """
    dec_a, dec_b = as_matrix(decoder_a, "decoder_a"), as_matrix(decoder_b, "decoder_b")
    ia, ib = pair_ids(idx_a, idx_b, dec_a.shape[0], dec_b.shape[0])
    n_pairs = ia.size
    corr = _per_pair(act_corr, n_pairs, "act_corr", float)
    category = (
        np.zeros(n_pairs, dtype=bool)
        if same_category is None
        else _per_pair(same_category, n_pairs, "same_category", bool)
    )
    k = positive_int(k_nn, "k_nn")
    dims = positive_int(svcca_dims, "svcca_dims")
    if n_pairs <= k:
        raise ShapeError(f"idx_a, idx_b: {n_pairs} pair(s), but k_nn={k} needs more than k_nn")
    if dims > min(k, dec_a.shape[1], dec_b.shape[1]):
        raise ConfigError(
            f"svcca_dims: {dims} exceeds min(k_nn, d_a, d_b) = "
            f"{min(k, dec_a.shape[1], dec_b.shape[1])}"
        )
    x, y = unit_rows(dec_a[ia], zero_rows="keep"), unit_rows(dec_b[ib], zero_rows="keep")
    cos = _aligned_cos(x, y)
    t = LevelThresholds() if thresholds is None else thresholds
    need_nbhd = ~(cos > t.similar_cos)
    nbhd = np.full(n_pairs, np.nan)
    nbhd[need_nbhd] = _neighbourhood_svcca(x, y, np.flatnonzero(need_nbhd), k, dims)
    tests = [
        cos > t.identical_cos,
        cos > t.similar_cos,
        nbhd > t.neighbourhood_svcca,
        corr > t.activation_corr,
        category,
        np.ones(n_pairs, dtype=bool),
    ]
    level = np.argmax(np.stack(tests), axis=0) + 1
    fractions = {name: float(np.mean(level == i + 1)) for i, name in enumerate(LEVELS)}
    return UniversalityLevels(fractions, level, cos, nbhd)


def _per_pair(x: object, n: int, name: str, dtype: type) -> np.ndarray:
    """A per-pair vector (n,) of ``dtype``; floats may be NaN (undefined) but not inf."""
    arr = np.asarray(to_numpy(x))
    if arr.shape != (n,):
        raise ShapeError(f"{name}: expected shape ({n},) (one value per pair), got {arr.shape}")
    if dtype is bool:
        if arr.dtype != np.bool_:
            raise DataError(f"{name}: expected a boolean array, got dtype {arr.dtype}")
        return arr
    arr = arr.astype(np.float64)
    if np.any(np.isinf(arr)):
        raise DataError(f"{name}: contains infinite values (NaN marks an undefined pair)")
    return arr


def _aligned_cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|cos| of paired unit rows after the orthogonal map of x onto y (zero-padded to one dim)."""
    dim = max(x.shape[1], y.shape[1])
    xp = np.pad(x, ((0, 0), (0, dim - x.shape[1])))
    yp = np.pad(y, ((0, 0), (0, dim - y.shape[1])))
    rot, _ = orthogonal_procrustes(xp, yp)
    return np.clip(np.abs(np.einsum("ij,ij->i", xp @ rot, yp)), 0.0, 1.0)


def _neighbourhood_svcca(
    x: np.ndarray, y: np.ndarray, which: np.ndarray, k: int, dims: int
) -> np.ndarray:
    """SVCCA of (x, y) restricted to each pair in ``which`` and its k nearest pairs in x."""
    out = np.empty(which.size)
    for block in row_blocks(which.size, x.shape[0]):
        rows = which[block]
        cos = np.abs(x[rows] @ x.T)
        cos[np.arange(rows.size), rows] = -np.inf
        near = np.argpartition(-cos, k - 1, axis=1)[:, :k]
        for pos, (row, nbrs) in enumerate(zip(rows, near), start=block.start):
            items = np.r_[row, nbrs]
            try:
                out[pos] = svcca(x[items], y[items], k=dims)
            except DataError:  # rank-deficient neighbourhood (duplicate rows): no score
                out[pos] = np.nan
    return out
