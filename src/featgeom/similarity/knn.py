"""Mutual k-nearest-neighbour alignment (Huh, Cheung, Wang & Isola 2024, "The Platonic
Representation Hypothesis", section 2 and appendix A: the fraction of each item's k nearest
neighbours that the two representations share).
"""

from __future__ import annotations

import numpy as np

from featgeom.errors import ConfigError, DataError
from featgeom.similarity.base import is_integer, paired_inputs, rescaled

KNN_METRICS = ("cosine", "euclidean")


def mutual_knn(x: object, y: object, *, k: int = 10, metric: str = "cosine") -> float:
    """Mutual k-NN alignment of paired rows x (n, dim_x) and y (n, dim_y), in [0, 1].

    Formula: N_x(i) = the k items j != i most similar to item i in x (cosine: largest
    <x_i, x_j> / (|x_i| |x_j|), as in Huh et al.; euclidean: smallest |x_i - x_j|), ties broken
    by the smaller index; same for y; score = (1 / (n k)) sum_i |N_x(i) & N_y(i)|.
    1 when both sides give every item the same neighbours; for independent sides its
    expectation is k / (n - 1) (each of the k neighbours of x lands among y's k of n - 1 others
    by chance), not 0.

    Invariant to anything that keeps each item's neighbour ranking: orthogonal transforms and
    isotropic scaling of either side, permutation of dims; 'cosine' also per-item (positive)
    scaling, 'euclidean' also translation. Not invariant to: general (anisotropic) invertible
    linear maps, 'cosine' to translation, 'euclidean' to per-item scaling, or re-pairing of rows.
    Memory O(n^2) (the n x n similarity matrix).

    Raises ConfigError for k not in [1, n - 2] (with k = n - 1 every item's neighbours are all
    the others: the score would be 1 whatever the inputs) or an unknown metric; ShapeError for
    mismatched or fewer than 3 rows; DataError for NaN/inf, a side whose rows are all identical
    (no neighbour structure), or a zero row under 'cosine' (no direction).
    """
    xa, ya = paired_inputs(x, y, min_rows=3)
    n = xa.shape[0]
    if not is_integer(k) or not 1 <= k <= n - 2:
        raise ConfigError(f"k: must be an integer in [1, n - 2] = [1, {n - 2}] for {n} items, got {k!r}")
    if metric not in KNN_METRICS:
        raise ConfigError(f"metric: unknown {metric!r} (allowed: {', '.join(KNN_METRICS)})")
    for a, name in ((xa, "x"), (ya, "y")):
        if np.all(a == a[0]):
            raise DataError(f"{name}: all rows are identical, so no item has nearer neighbours than another")
    nx, ny = neighbours(xa, k, metric, "x"), neighbours(ya, k, metric, "y")
    shared = sum(np.intersect1d(a, b, assume_unique=True).size for a, b in zip(nx, ny))
    return float(shared / (n * k))


def neighbours(a: np.ndarray, k: int, metric: str, name: str) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows of a (n, d), nearest first, ties by index."""
    a = rescaled(a)
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1)
        if np.any(norms == 0):
            raise DataError(f"{name}: row {int(np.argmax(norms == 0))} is all zeros, so it has no cosine neighbours")
        unit = a / norms[:, None]
        distance = -(unit @ unit.T)
    else:
        sq = np.einsum("ij,ij->i", a, a)
        distance = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    np.fill_diagonal(distance, np.inf)  # an item is not its own neighbour
    return np.argsort(distance, axis=1, kind="stable")[:, :k]
