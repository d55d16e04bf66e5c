"""How well one SAE's decoder recovers the true feature directions (tasks 3.1, 3.2, 3.4).

The functions take a decoder (n_latents, d) (SAE ``W_dec`` rows) and true feature directions
(N, d) in the same space; NumPy arrays, nested lists or torch tensors. Similarities are absolute
cosines |cos| (a latent may point either way); zero rows have cosine 0 with everything.
Across seeds: :func:`decomposition_diversity` (plan DD: spread of the seeds' MCC to the truth,
from :func:`per_seed_mcc`) and :func:`seed_disagreement` (1 - mean pairwise decoder MCC).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import scipy.sparse as sp
from featgeom import formulas
from featgeom.checks import as_matrix, to_numpy
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics._common import (
    abs_cos,
    matrices,
    positive_int,
    probability,
    row_blocks,
    same_dim,
    vector,
)

ASSIGNMENTS = ("hungarian", "argmax")


def abs_cosine(decoder: object, features: object) -> np.ndarray:
    """|cos(decoder_i, features_j)|, shape (n_latents, N), values in [0, 1]."""
    dec, feat = _pair_inputs(decoder, features)
    return abs_cos(dec, feat)


def match_to_features(
    decoder: object, features: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1-1 latent-feature matching maximizing total |cos| (Hungarian).

    Returns (latent_idx, feature_idx, cos), each of length min(n_latents, N), sorted by
    latent_idx; cos[k] = |cos(decoder[latent_idx[k]], features[feature_idx[k]])| in [0, 1].
    The matching is :func:`featgeom.formulas.matching` maximising |cos| (ties broken by scipy's solver).
    """
    cos = abs_cosine(decoder, features)
    rows, cols = formulas.matching(cos, maximize=True)
    return rows, cols, cos[rows, cols]


def mcc(decoder: object, features: object) -> float:
    """Mean correlation coefficient between decoder rows and true features.

    MCC = (1 / min(n, N)) sum_k |cos(decoder_{l_k}, features_{f_k})|, where (l_k, f_k) is the
    Hungarian matching of :func:`match_to_features`. Range [0, 1]: 1 when every matched latent
    is exactly (up to sign and scale) a true feature, near 0 for unrelated directions (random
    rows in high dimension). Equals SAELens's ``mean_correlation_coefficient``. Invariant to
    permutation, sign flips and positive scaling of rows of either input, and to any rotation
    applied to both. (:func:`featgeom.formulas.mcc` of :func:`abs_cosine`, on the matching of
    :func:`match_to_features`.)
    """
    return formulas.mcc(abs_cosine(decoder, features), maximize=True)


def uniqueness(decoder: object, features: object) -> float:
    """Fraction of distinct best-matching features among the latents.

    uniqueness = |{argmax_j |cos(decoder_i, features_j)| : i}| / n_latents. Range (0, 1]: 1
    when every latent's best-matching feature is different, 1 / n_latents when all latents
    prefer the same feature. Equals SAELens's ``feature_uniqueness``
    (:func:`featgeom.formulas.uniqueness` of :func:`abs_cosine`).
    """
    return formulas.uniqueness(abs_cosine(decoder, features))


def feature_assignment(
    decoder: object, features: object, *, mode: str = "hungarian", min_cos: float = 0.0
) -> np.ndarray:
    """Each latent's true feature, (n_latents,) int64, -1 = unassigned.

    mode 'hungarian': the matching of :func:`match_to_features` (latents beyond min(n, N) are
    unassigned); 'argmax': each latent's best feature by |cos| (as SAELens's detection metrics).
    Latents whose |cos| with their feature is below ``min_cos`` are unassigned.
    """
    if mode not in ASSIGNMENTS:
        raise ConfigError(f"mode: expected one of {', '.join(ASSIGNMENTS)}; got {mode!r}")
    floor = probability(min_cos, "min_cos")
    cos = abs_cosine(decoder, features)
    out = np.full(cos.shape[0], -1, dtype=np.int64)
    if mode == "hungarian":
        rows, cols = formulas.matching(cos, maximize=True)
    else:
        rows, cols = np.arange(cos.shape[0]), formulas.best_features(cos)
    good = cos[rows, cols] >= floor
    out[rows[good]] = cols[good]
    return out


def per_seed_mcc(decoders: Sequence[object], features: object) -> np.ndarray:
    """MCC of each seed's decoder to the true features, (S,): [mcc(decoders[s], features)].

    decoders: S >= 1 matrices (n_s, d) (n_s may differ); features (N, d). The input of
    :func:`decomposition_diversity`.
    """
    feat = as_matrix(features, "features")
    mats = matrices(decoders, "decoders", 1)
    for s, m in enumerate(mats):
        same_dim(m, feat, (f"decoders[{s}]", "features"))
    return np.array([mcc(m, feat) for m in mats])


def decomposition_diversity(seed_mcc: object, *, ddof: int = 1) -> float:
    """DD (plan task 3.1): standard deviation over seeds of each SAE's MCC to the ground truth.

    seed_mcc: (S,) MCC values in [0, 1] of S SAEs (one architecture, one world, different seeds)
    against the true features, e.g. :func:`per_seed_mcc`. DD = sqrt(sum_s (m_s - mean)^2 /
    (S - ddof)). ddof = 1 (default) is the sample standard deviation: the seeds are a sample
    of training runs and the plan uses 3 seeds, where ddof = 0 would understate the spread by
    a factor sqrt(2/3); needs S >= 2. ddof = 0 gives the population value (S >= 1). Range
    [0, 0.5] for ddof = 0: 0 when every seed recovers the truth equally well. High DD: the
    superposition admits several solutions that recover the truth to different degrees. The
    variance across seeds of plan task 9.1 is DD ** 2. Two seeds with equal MCC but different
    features have DD = 0; :func:`seed_disagreement` measures that instead.
    """
    if isinstance(ddof, bool) or ddof not in (0, 1):
        raise ConfigError(f"ddof: expected 0 or 1, got {ddof!r}")
    values = vector(seed_mcc, "seed_mcc")
    if values.size < ddof + 1:
        raise ShapeError(
            f"seed_mcc: ddof={ddof} needs at least {ddof + 1} seeds, got {values.size}"
        )
    if np.any(values < 0) or np.any(values > 1):
        raise DataError("seed_mcc: MCC values must be in [0, 1]")
    return float(np.std(values, ddof=ddof))


def seed_disagreement(decoders: Sequence[object]) -> float:
    """1 - mean over pairs s < t of mcc(decoders[s], decoders[t]), for SAEs of different seeds.

    decoders: at least two (n_s, d) matrices in one space (n_s may differ). Range [0, 1]: 0 when
    all seeds learn the same directions (up to order, sign, scale), larger when they disagree.
    Needs no ground truth. (Called decomposition_diversity before the plan's definition, the
    spread of MCC to the truth, took that name.)
    """
    mats = matrices(decoders, "decoders", 2)
    for s, m in enumerate(mats[1:], start=1):
        same_dim(mats[0], m, ("decoders[0]", f"decoders[{s}]"))
    scores = [mcc(x, y) for x, y in combinations(mats, 2)]
    return 1.0 - float(np.mean(scores))


def soft_mcc(s: object, cos: object) -> float:
    """Superposition-adjusted MCC: SA-MCC = (1 / N) sum_j min(1, sum_i S_ij |cos_ij|).

    s: (n_latents, N) soft correspondence in [0, 1] between latents and true features (dense or
    scipy.sparse; e.g. ``featgeom.match.soft_correspondence``); cos: (n_latents, N) cosines
    (absolute values are used). A feature whose direction is split over several latents is
    credited with the sum of their weighted cosines, capped at 1. Range [0, 1]: 1 for a
    permutation S with |cos| 1 on it (then SA-MCC = MCC = 1), 0 when no latent with weight
    points towards any feature. With columns of S summing to at most 1 (as soft_correspondence
    guarantees), each feature's credit is a weighted mean of |cos|, so it cannot exceed 1
    before the cap.
    """
    c = np.abs(as_matrix(cos, "cos"))
    w = to_numpy(s)
    if sp.issparse(w):
        weights = sp.csr_array(w, dtype=np.float64)
        values = weights.data
    else:
        weights = values = as_matrix(w, "s")
    if weights.shape != c.shape:
        raise ShapeError(f"s has shape {weights.shape} but cos has shape {c.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise DataError("s: weights must be finite and in [0, 1]")
    product = weights.multiply(c) if sp.issparse(weights) else weights * c
    credit = np.asarray(product.sum(axis=0)).ravel()
    return float(np.minimum(credit, 1.0).mean())


def latents_per_feature(
    decoder: object, features: object, *, target: float = 0.9, max_latents: int = 10
) -> np.ndarray:
    """Latents needed to reconstruct each true feature, (N,) int64; 0 = not within max_latents.

    For feature f, take latents in decreasing |cos| with f; count(f) = the smallest m such that
    the least-squares projection of f onto the span of the first m decoder rows has
    cos(f, proj) = ||proj|| / ||f|| >= ``target``. Greedy by |cos| (not the best subset).
    """
    dec, feat = _pair_inputs(decoder, features)
    goal = probability(target, "target", open_low=True)
    m_max = min(positive_int(max_latents, "max_latents"), dec.shape[0])
    counts = np.empty(feat.shape[0], dtype=np.int64)
    for block in row_blocks(feat.shape[0], max(dec.shape[0], m_max * dec.shape[1])):
        cos = abs_cos(feat[block], dec)  # (b, n)
        top = np.argpartition(-cos, m_max - 1, axis=1)[:, :m_max]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(cos, top, 1), 1), 1)
        counts[block] = _greedy_counts(dec, feat[block], order, goal)
    return counts


def superposition_exploitation(
    decoder: object, features: object, *, target: float = 0.9, max_latents: int = 10
) -> float:
    """Mean of :func:`latents_per_feature` over the features reconstructed within max_latents.

    Range [1, max_latents]: 1 when each feature is (nearly) one decoder row, k when features are
    split evenly over k latents. DataError when no feature reaches ``target``.
    """
    counts = latents_per_feature(decoder, features, target=target, max_latents=max_latents)
    reached = counts[counts > 0]
    if reached.size == 0:
        raise DataError(
            f"features: none is reconstructed to cos >= {target} by its {max_latents} best latents"
        )
    return float(reached.mean())


def _greedy_counts(dec: np.ndarray, feat: np.ndarray, order: np.ndarray, goal: float) -> np.ndarray:
    """Smallest m with ||proj of unit f onto span(dec[order[f, :m]])|| >= goal; 0 if none.

    Gram-Schmidt over the m axis (two passes for stability), vectorized over features.
    """
    f = feat / np.maximum(np.linalg.norm(feat, axis=1, keepdims=True), 1e-300)
    n_feat, m_max = order.shape
    basis = np.zeros((n_feat, m_max, dec.shape[1]))
    captured = np.zeros(n_feat)  # ||proj||^2 so far
    counts = np.zeros(n_feat, dtype=np.int64)
    for m in range(m_max):
        v = dec[order[:, m]].copy()
        scale = np.linalg.norm(v, axis=1)
        for _ in range(2):
            v -= np.einsum("fk,fkd->fd", np.einsum("fkd,fd->fk", basis[:, :m], v), basis[:, :m])
        norm = np.linalg.norm(v, axis=1)
        fresh = norm > 1e-10 * np.maximum(scale, 1e-300)  # dependent rows add nothing
        basis[fresh, m] = v[fresh] / norm[fresh, None]
        captured += np.einsum("fd,fd->f", basis[:, m], f) ** 2
        newly = (counts == 0) & (captured >= goal * goal * (1 - 1e-12))
        counts[newly] = m + 1
    return counts


def _pair_inputs(decoder: object, features: object) -> tuple[np.ndarray, np.ndarray]:
    """decoder (n, d) and features (N, d) as float64 matrices in one space."""
    dec, feat = as_matrix(decoder, "decoder"), as_matrix(features, "features")
    same_dim(dec, feat, ("decoder", "features"))
    return dec, feat
