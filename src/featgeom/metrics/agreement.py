"""Do two or more SAEs (architectures, seeds) recover the same true features? (tasks 2.1, 6.2, 6.3)

All functions take decoders trained on one world: a sequence of K matrices (n_k, d) (n_k may
differ) and the true features (N, d) in the same space. S_k is the set of true features SAE k
covers (:func:`~featgeom.metrics.coverage.covered`: some decoder row with |cos| >= threshold).
For two SAEs in different spaces use :func:`~featgeom.metrics.coverage.coverage` with
``features_b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from featgeom.checks import as_matrix
from featgeom.errors import ShapeError
from featgeom.metrics.coverage import _covered, covered_by_each


def architecture_agreement(
    decoder_a: object, decoder_b: object, features: object, *, threshold: float = 0.9
) -> float:
    """Architecture agreement score (plan task 2.1): Jaccard index of the recovered feature sets.

    AAS = |S_a & S_b| / |S_a | S_b|, decoder_a (n_a, d), decoder_b (n_b, d), features (N, d).
    The plan's wording, "percentage of features where both architectures identify the same
    ground-truth feature (using GT correspondences)", is read as: of the true features either
    SAE identifies, the share both identify. Range [0, 1]: 1 when they recover exactly the
    same features, 0 when they share none; NaN when neither recovers any feature. The share of
    all N features that both recover is ``coverage(...)["overlap"]`` (plan 6.2, CO).
    """
    feat = as_matrix(features, "features")
    a = _covered(decoder_a, feat, threshold, ("decoder_a", "features"))
    b = _covered(decoder_b, feat, threshold, ("decoder_b", "features"))
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else float("nan")


def complementary_coverage(
    decoders: Sequence[object], features: object, *, threshold: float = 0.9
) -> float:
    """Complementary coverage (plan task 2.1): share of true features found by some SAE, not all.

    CC = (|union_k S_k| - |intersection_k S_k|) / N for K >= 2 decoders (n_k, d), features
    (N, d). For a pair, the plan's "percentage of ground-truth features captured by at least one
    architecture but not both" = |S_a xor S_b| / N = UC_a + UC_b of plan 6.2. Range [0, 1]: 0
    when all SAEs recover the same set. What the union adds over the best single SAE:
    :func:`ensemble_gain`.
    """
    cov = _at_least_two(decoders, features, threshold)
    return float(np.mean(cov.any(axis=0) & ~cov.all(axis=0)))


def ensemble_gain(
    decoders: Sequence[object], features: object, *, threshold: float = 0.9
) -> float:
    """Coverage of the union of K >= 2 SAEs beyond the best single one (plan tasks 6.3, 2.1).

    gain = |union_k S_k| / N - max_k |S_k| / N, decoders (n_k, d), features (N, d). Range
    [0, 1 - max_k |S_k| / N]: 0 when one SAE already finds every feature any of them finds
    (plan outcome: ">85% coverage with 2-3 architectures vs. 70% for the best single one" is a
    gain of 0.15).
    """
    cov = _at_least_two(decoders, features, threshold)
    return float(cov.any(axis=0).mean() - cov.mean(axis=1).max())


def pairwise_coverage(
    decoders: Sequence[object],
    features: object,
    *,
    threshold: float = 0.9,
    names: Sequence[str] | None = None,
) -> list[dict[str, object]]:
    """Coverage overlap / unique / union counts for every pair of K >= 2 SAEs (plan task 6.2).

    One row per pair i < j (in order): {"a": names[i], "b": names[j], "n_features": N,
    "covered_a": |S_i|, "covered_b": |S_j|, "overlap": |S_i & S_j| (CO), "unique_a":
    |S_i - S_j| (UC_A), "unique_b": |S_j - S_i| (UC_B), "union": |S_i | S_j| (UnC)}, counts as
    ints (divide by n_features for the plan's percentages); overlap + unique_a + unique_b =
    union. names default to "0", "1", ...
    """
    cov = _at_least_two(decoders, features, threshold)
    labels = _names(names, cov.shape[0])
    rows = []
    for i, j in combinations(range(cov.shape[0]), 2):
        a, b = cov[i], cov[j]
        rows.append({
            "a": labels[i], "b": labels[j], "n_features": int(a.size),
            "covered_a": int(a.sum()), "covered_b": int(b.sum()),
            "overlap": int((a & b).sum()), "unique_a": int((a & ~b).sum()),
            "unique_b": int((~a & b).sum()), "union": int((a | b).sum()),
        })
    return rows


def _at_least_two(decoders: Sequence[object], features: object, threshold: float) -> np.ndarray:
    """(K, N) coverage masks of K >= 2 decoders."""
    cov = covered_by_each(decoders, features, threshold=threshold)
    if cov.shape[0] < 2:
        raise ShapeError(f"decoders: need at least 2 SAEs to compare, got {cov.shape[0]}")
    return cov


def _names(names: Sequence[str] | None, k: int) -> list[str]:
    """names as k strings (default "0".."k-1")."""
    if names is None:
        return [str(i) for i in range(k)]
    labels = [str(n) for n in names] if not isinstance(names, str) else [names]
    if len(labels) != k:
        raise ShapeError(f"names: has {len(labels)} names but there are {k} decoders")
    return labels
