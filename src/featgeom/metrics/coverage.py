"""Which true features does an SAE find, and which do two SAEs share? (tasks 6.1, 6.2, 6.5)

A true feature f is *covered* (recovered, captured) by an SAE when some decoder row has
|cos| >= threshold with f. Per-feature masks of several SAEs: :func:`covered_by_each`; features
no SAE of a set finds: :func:`undiscovered` / :func:`discovery_gap`; recovered fraction by
firing-rarity decile or hierarchy depth: :func:`coverage_by_rarity`, :func:`coverage_by_depth`.
Pairs and sets of SAEs (agreement, complementarity): :mod:`featgeom.metrics.agreement`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom.checks import as_matrix, to_numpy
from featgeom.errors import DataError, ShapeError
from featgeom.metrics._common import (
    abs_cos,
    bool_array,
    matrices,
    positive_int,
    probability,
    row_blocks,
    same_dim,
    vector,
)


def covered(decoder: object, features: object, *, threshold: float = 0.9) -> np.ndarray:
    """(N,) bool: feature j is covered, max_i |cos(decoder_i, features_j)| >= threshold.

    decoder (n, d), features (N, d).
    """
    return _covered(decoder, features, threshold, ("decoder", "features"))


def _covered(
    decoder: object, features: object, threshold: float, names: tuple[str, str]
) -> np.ndarray:
    """:func:`covered`, with error messages naming ``names``."""
    dec, feat = as_matrix(decoder, names[0]), as_matrix(features, names[1])
    same_dim(dec, feat, names)
    thr = probability(threshold, "threshold")
    out = np.empty(feat.shape[0], dtype=bool)
    for block in row_blocks(feat.shape[0], dec.shape[0]):
        out[block] = abs_cos(feat[block], dec).max(axis=1) >= thr
    return out


def coverage_fraction(decoder: object, features: object, threshold: float = 0.9) -> float:
    """Fraction of the N true features covered by the decoder, in [0, 1] (1 = all found)."""
    return float(covered(decoder, features, threshold=threshold).mean())


def coverage(
    decoder_a: object,
    decoder_b: object,
    features: object,
    *,
    threshold: float = 0.9,
    features_b: object = None,
) -> dict[str, float]:
    """Coverage of N true features by two SAEs, as fractions of N.

    decoder_a (n_a, d_a), decoder_b (n_b, d_b); features (N, d_a) in A's space; features_b
    (N, d_b), row j = the same true feature j in B's space (default: ``features``, for two SAEs
    in one space). Returns a, b (covered by each), overlap (by both), unique_a (A only),
    unique_b (B only), union (by either); overlap + unique_a + unique_b = union <= 1.
    """
    cov_a = _covered(decoder_a, features, threshold, ("decoder_a", "features"))
    if features_b is None:
        cov_b = _covered(decoder_b, features, threshold, ("decoder_b", "features"))
    else:
        cov_b = _covered(decoder_b, features_b, threshold, ("decoder_b", "features_b"))
    if cov_a.size != cov_b.size:
        raise ShapeError(
            f"features_b: has {cov_b.size} rows but features has {cov_a.size}: "
            "row j must be the same true feature in both spaces"
        )
    return {
        "a": float(cov_a.mean()),
        "b": float(cov_b.mean()),
        "overlap": float(np.mean(cov_a & cov_b)),
        "unique_a": float(np.mean(cov_a & ~cov_b)),
        "unique_b": float(np.mean(~cov_a & cov_b)),
        "union": float(np.mean(cov_a | cov_b)),
    }


def covered_by_each(
    decoders: object, features: object, *, threshold: float = 0.9
) -> np.ndarray:
    """(K, N) bool: row k = :func:`covered` (decoders[k], features, threshold).

    decoders: K >= 1 matrices (n_k, d) (n_k may differ), e.g. K architectures or seeds trained on
    one world; features (N, d).
    """
    feat = as_matrix(features, "features")
    mats = matrices(decoders, "decoders", 1)
    return np.stack(
        [_covered(m, feat, threshold, (f"decoders[{k}]", "features")) for k, m in enumerate(mats)]
    )


def undiscovered(decoders: object, features: object, *, threshold: float = 0.9) -> np.ndarray:
    """(N,) bool: true feature j is covered by none of the K SAEs (no latent of any decoder has
    |cos| >= threshold with it). decoders: K >= 1 matrices (n_k, d); features (N, d)."""
    return ~covered_by_each(decoders, features, threshold=threshold).any(axis=0)


def discovery_gap(decoders: object, features: object, *, threshold: float = 0.9) -> float:
    """Feature discovery gap (plan task 6.1): fraction of true features no SAE captures.

    gap = |{j : no decoder k has a row with |cos| >= threshold with features_j}| / N
        = 1 - |union_k S_k| / N, S_k = :func:`covered` set of decoders[k].
    decoders: K >= 1 matrices (n_k, d) (a single SAE: [decoder], then gap = 1 -
    :func:`coverage_fraction`); features (N, d). Range [0, 1]: 0 when every feature is found by
    some SAE, 1 when none is. Which features: :func:`undiscovered`.
    """
    return float(undiscovered(decoders, features, threshold=threshold).mean())


@dataclass(frozen=True)
class GroupCoverage:
    """Recovered fraction per group of true features.

    group (G,): the group's key (decile index 0 = rarest, or hierarchy depth); n_features (G,)
    and n_recovered (G,) int64; fraction (G,) = n_recovered / n_features; bounds (G, 2): the
    smallest and largest firing probability in each decile (rarity only, else None).
    """

    group: np.ndarray
    n_features: np.ndarray
    n_recovered: np.ndarray
    fraction: np.ndarray
    bounds: np.ndarray | None = None


def coverage_by_rarity(
    firing_prob: object, recovered: object, *, n_bins: int = 10
) -> GroupCoverage:
    """Recovered fraction of true features per firing-rarity decile (plan task 6.5).

    firing_prob (N,): each true feature's firing probability (or rate) >= 0; recovered (N,) bool:
    whether an SAE captures it, e.g. :func:`covered` (decoder, features, threshold=0.5), or from
    the Hungarian matching: ``np.isin(np.arange(N), feature_assignment(dec, feat,
    min_cos=0.5))``. Features are sorted by firing_prob ascending (stable sort: ties keep their
    index order, so equal probabilities can straddle a bin edge) and split into n_bins groups of
    sizes differing by at most one (``np.array_split``: the first N % n_bins groups get the
    extra feature). fraction[b] = mean(recovered over group b); group 0 = rarest. Needs
    N >= n_bins.
    """
    bins = positive_int(n_bins, "n_bins")
    prob = vector(firing_prob, "firing_prob")
    if np.any(prob < 0):
        raise DataError("firing_prob: firing probabilities must be >= 0")
    hit = _recovered_mask(recovered, prob.size)
    if prob.size < bins:
        raise ShapeError(f"firing_prob: {prob.size} features cannot fill n_bins={bins} bins")
    groups = np.array_split(np.argsort(prob, kind="stable"), bins)
    n_feat = np.array([g.size for g in groups], dtype=np.int64)
    n_hit = np.array([int(hit[g].sum()) for g in groups], dtype=np.int64)
    bounds = np.array([[prob[g].min(), prob[g].max()] for g in groups])
    return GroupCoverage(np.arange(bins), n_feat, n_hit, n_hit / n_feat, bounds)


def coverage_by_depth(depth: object, recovered: object) -> GroupCoverage:
    """Recovered fraction of true features per hierarchy depth (plan tasks 6.5, 6.6).

    depth (N,) int >= 0: each true feature's depth in the hierarchy (0 = root / no parent);
    recovered (N,) bool as in :func:`coverage_by_rarity`. group = the distinct depths, ascending;
    fraction[g] = mean(recovered over the features of depth group[g]).
    """
    arr = np.asarray(to_numpy(depth))
    if arr.ndim != 1 or arr.size == 0:
        raise ShapeError(f"depth: expected a non-empty 1-D array of depths, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise DataError("depth: expected integer depths >= 0")
    hit = _recovered_mask(recovered, arr.size)
    levels, code = np.unique(arr, return_inverse=True)
    n_feat = np.bincount(code).astype(np.int64)
    n_hit = np.bincount(code, weights=hit).astype(np.int64)
    return GroupCoverage(levels.astype(np.int64), n_feat, n_hit, n_hit / n_feat)


def _recovered_mask(recovered: object, n: int) -> np.ndarray:
    """recovered as an (n,) bool mask, ShapeError when its length is not n."""
    hit = bool_array(recovered, "recovered", 1)
    if hit.size != n:
        raise ShapeError(f"recovered: has {hit.size} entries but there are {n} true features")
    return hit
