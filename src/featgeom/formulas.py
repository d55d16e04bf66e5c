"""Formulas that several stages compute, one implementation each.

Below every stage (as :mod:`featgeom.checks`): the world normalises feature directions, the SAE
evaluation (torch, :mod:`featgeom.sae.evaluate`) and the ground-truth metrics (NumPy,
:mod:`featgeom.metrics`) score a decoder against true features with SAELens's definitions:

* :func:`unit_rows`: u_i = x_i / max(|x_i|, NORM_FLOOR) for the rows of x (n, d);
* :func:`matching`, :func:`mcc`: the Hungarian matching of |cos| (W, N) and its mean;
* :func:`best_features`, :func:`uniqueness`: each latent's best-matching feature and the share
  of distinct ones;
* :func:`ratio`, :func:`precision_recall`, :func:`f_beta`: a latent as a detector of its feature.

The scoring functions take NumPy arrays or CPU torch tensors (duck-typed: torch is never
imported) and compute in their input's library and dtype, so a tensor's score is the one torch
gives and an array's the one NumPy gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from featgeom.errors import ConfigError, DataError

NORM_FLOOR = 1e-8  # SAELens's cosine_similarities clamps row norms here
ZERO_ROWS = ("error", "keep")


def unit_rows(x: np.ndarray, name: str = "vectors", *, zero_rows: str = "error") -> np.ndarray:
    """Rows of ``x`` (n, d) scaled to unit L2 norm: u_i = x_i / max(|x_i|, NORM_FLOOR), (n, d), in
    x's dtype.

    A row shorter than NORM_FLOOR (a zero row) has no direction. ``zero_rows`` says what the caller
    needs: "error" (directions, the default) raises a DataError naming ``name`` and the first such
    row; "keep" (cosines, as SAELens) leaves it (near) zero, so its cosine with every row is 0.
    Rows of norm >= NORM_FLOOR are x_i / |x_i| either way.
    """
    if zero_rows not in ZERO_ROWS:
        raise ConfigError(f"zero_rows: expected one of {', '.join(ZERO_ROWS)}, got {zero_rows!r}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    short = norms[:, 0] < NORM_FLOOR
    if zero_rows == "error" and short.any():
        raise DataError(f"{name}: has {int(short.sum())} zero row(s) (norm < {NORM_FLOOR:g}), the first is "
                        f"row {int(np.flatnonzero(short)[0])}; directions need a non-zero norm")
    return x / np.maximum(norms, NORM_FLOOR)


def matching(cos: Any, *, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of rows and columns of |cos| (W, N) with the largest total:
    (rows, cols), min(W, N) index pairs sorted by row (Hungarian, scipy's solver).

    ``maximize`` False: minimise the cost 1 - |cos| (SAELens's ``mean_correlation_coefficient``,
    the SAE evaluation's); True: maximise |cos| itself (the metrics'). Both reach the same optimal
    total; where several matchings tie (duplicate or zero rows, exactly equal cosines) they can
    pick different ones, so each caller keeps its own and its numbers stay what they were.
    """
    if maximize:
        return linear_sum_assignment(np.asarray(cos), maximize=True)
    return linear_sum_assignment(1.0 - np.asarray(cos))


def mcc(cos: Any, *, maximize: bool = False) -> float:
    """Mean correlation coefficient of |cos| (W, N): MCC = (1 / min(W, N)) sum_k |cos|_{r_k c_k}
    over the pairs (r_k, c_k) of :func:`matching` (``maximize`` as there); the mean is taken by
    cos's library."""
    rows, cols = matching(cos, maximize=maximize)
    return float(cos[rows, cols].mean())


def best_features(cos: Any) -> np.ndarray:
    """Each row's best-matching column, argmax_j |cos|_ij (first on ties): (W,) int64 from (W, N)."""
    return np.asarray(cos).argmax(axis=1)


def uniqueness(cos: Any) -> float:
    """|{argmax_j |cos|_ij : i}| / W for |cos| (W, N): the share of distinct best-matching
    features among the W latents (SAELens's ``feature_uniqueness``), in (0, 1]."""
    best = best_features(cos)
    return np.unique(best).size / best.size


def ratio(num: Any, den: Any) -> Any:
    """num / den elementwise, 0 where den == 0 (den >= 0: counts or rates); arrays or tensors of
    one shape, the result in their floating type."""
    defined = den > 0
    return num / (den + ~defined) * defined


def precision_recall(tp: Any, fp: Any, fn: Any) -> tuple[Any, Any]:
    """Per-latent P = TP / (TP + FP) and R = TP / (TP + FN), each 0 where its denominator is 0."""
    return ratio(tp, tp + fp), ratio(tp, tp + fn)


def f_beta(precision: Any, recall: Any, beta: float) -> Any:
    """F_beta = (1 + beta^2) P R / (beta^2 P + R) elementwise, 0 where P = R = 0: beta 1 is F1 (the
    harmonic mean), 0.5 weighs precision more, 2 recall more."""
    b2 = beta * beta
    return ratio((1 + b2) * precision * recall, b2 * precision + recall)
