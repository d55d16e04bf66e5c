"""Is the true features' structure visible in an SAE's decoder geometry? (tasks 4.1, 4.2)

decoder (n_latents, d) rows are SAE latent directions; similarity between latents is the
absolute cosine of their decoder rows.
"""

from __future__ import annotations

import numpy as np

from featgeom.checks import as_matrix
from featgeom.errors import DataError, ShapeError
from featgeom.formulas import unit_rows
from featgeom.metrics._common import (
    abs_cos,
    ids,
    labels,
    positive_int,
    row_blocks,
    same_dim,
)
from featgeom.metrics.recovery import match_to_features


def hierarchy_recovery(decoder: object, features: object, parent: object, *, k: int = 1) -> float:
    """HRS: fraction of parent-child feature pairs whose latents are decoder neighbours.

    parent (N,) int: parent[c] = p >= 0 makes true feature p the parent of c (-1: root).
    Each true feature is mapped to its latent by the Hungarian matching of
    :func:`match_to_features`. For every pair (p, c) with both features matched, success when
    the parent's latent is among the k nearest other latents of the child's latent by decoder
    |cos|, i.e. fewer than k other latents have strictly larger |cos| with the child's latent
    (ties count in the parent's favour). HRS = successes / evaluated pairs, in [0, 1]: 1 when
    every parent latent is a nearest neighbour of its child latents, about k / n_latents for
    unrelated directions. DataError when no pair can be evaluated.
    """
    dec, feat = as_matrix(decoder, "decoder"), as_matrix(features, "features")
    same_dim(dec, feat, ("decoder", "features"))
    n_nearest = positive_int(k, "k")
    par = ids(parent, feat.shape[0], "parent", allow_unassigned=True)
    if par.size != feat.shape[0]:
        raise ShapeError(f"parent: has {par.size} entries but there are {feat.shape[0]} features")
    if np.any(par == np.arange(par.size)):
        raise DataError("parent: a feature cannot be its own parent")
    latent_of = np.full(feat.shape[0], -1, dtype=np.int64)
    lat, fid, _ = match_to_features(dec, feat)
    latent_of[fid] = lat
    child = np.flatnonzero(par >= 0)
    child = child[(latent_of[child] >= 0) & (latent_of[par[child]] >= 0)]
    if child.size == 0:
        raise DataError(
            "parent: no parent-child pair has both features matched to a latent "
            f"({int(np.sum(par >= 0))} pair(s), {lat.size} of {feat.shape[0]} features matched)"
        )
    lc, lp = latent_of[child], latent_of[par[child]]
    unit = unit_rows(dec, zero_rows="keep")
    success = np.empty(child.size, dtype=bool)
    for block in row_blocks(child.size, dec.shape[0]):
        cos = np.abs(unit[lc[block]] @ unit.T)  # (b, n_latents)
        rows = np.arange(cos.shape[0])
        cos[rows, lc[block]] = -np.inf  # a latent is not its own neighbour
        to_parent = cos[rows, lp[block]]
        success[block] = np.sum(cos > to_parent[:, None], axis=1) < n_nearest
    return float(success.mean())


def subspace_coherence(decoder: object, categories: object) -> dict[str, object]:
    """SCS: are latents of the same category closer in decoder space than latents of different ones?

    categories (n_latents,) int labels, -1 = unlabelled (ignored). Over unordered pairs of
    distinct labelled latents: within = mean |cos| over same-category pairs, between = mean
    |cos| over different-category pairs, score = within - between in [-1, 1]; 0 when category
    carries no geometric signal, > 0 when categories form coherent subspaces. Also per_category
    {label: mean within-category |cos|} for categories with at least two latents.
    DataError unless there is at least one within pair and one between pair.
    """
    dec = as_matrix(decoder, "decoder")
    cat = labels(categories, dec.shape[0], "categories")
    keep = cat >= 0
    names, code = np.unique(cat[keep], return_inverse=True)
    sizes = np.bincount(code, minlength=names.size)
    within_pairs = sizes * (sizes - 1) // 2
    n = int(keep.sum())
    between_pairs = n * (n - 1) // 2 - int(within_pairs.sum())
    if within_pairs.sum() == 0 or between_pairs == 0:
        raise DataError(
            f"categories: need two latents sharing a category and two in different ones "
            f"({n} labelled latent(s) in {names.size} categories)"
        )
    within_sum, total = _category_sums(dec[keep], code, names.size)
    between = (total - within_sum.sum()) / between_pairs
    has_pairs = within_pairs > 0
    within = within_sum.sum() / within_pairs.sum()
    per_category = {
        int(names[g]): float(within_sum[g] / within_pairs[g]) for g in np.flatnonzero(has_pairs)
    }
    return {
        "score": float(within - between),
        "within": float(within),
        "between": float(between),
        "per_category": per_category,
    }


def _category_sums(dec: np.ndarray, code: np.ndarray, n_cat: int) -> tuple[np.ndarray, float]:
    """Sum of |cos| over distinct same-category pairs per category, and over all distinct pairs."""
    onehot = np.zeros((code.size, n_cat))
    onehot[np.arange(code.size), code] = 1.0
    within = np.zeros(n_cat)
    total = 0.0
    unit = unit_rows(dec, zero_rows="keep")
    diag = np.abs(np.einsum("ij,ij->i", unit, unit))
    for block in row_blocks(dec.shape[0], dec.shape[0]):
        cos = abs_cos(dec[block], dec)  # (b, n)
        per_cat = cos @ onehot  # (b, n_cat)
        within += np.bincount(code[block], per_cat[np.arange(per_cat.shape[0]), code[block]], n_cat)
        total += cos.sum()
    within -= np.bincount(code, diag, n_cat)  # self-pairs
    return within / 2, (total - diag.sum()) / 2
