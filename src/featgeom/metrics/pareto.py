"""Non-dominated configurations, e.g. in (reconstruction MSE, MCC, F1) space (plan task 2.1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featgeom.checks import as_matrix, to_numpy
from featgeom.errors import ConfigError, ShapeError


def pareto_front(points: object, maximize: bool | Sequence[bool] = True) -> np.ndarray:
    """Indices (ascending, int64) of the points no other point dominates.

    points (n, k): one row per configuration, one column per objective; maximize: one bool for
    all k objectives or one per column (True = higher is better), e.g. (False, True, True) for
    (MSE, MCC, F1). After flipping the minimized columns, p dominates q when p >= q in every
    column and p > q in at least one. Identical points do not dominate each other, so all copies
    of a front point are kept. No points (shape (0, k)) give an empty front. O(n^2 k) time.
    """
    pts = _points(points)
    signs = _signs(maximize, pts.shape[1])
    oriented = pts * signs
    keep = np.ones(pts.shape[0], dtype=bool)
    for i, p in enumerate(oriented):
        at_least = np.all(oriented >= p, axis=1)
        better = np.any(oriented > p, axis=1)
        keep[i] = not np.any(at_least & better)
    return np.flatnonzero(keep).astype(np.int64)


def _points(points: object) -> np.ndarray:
    """points as a finite (n, k) float64 matrix, k >= 1; n = 0 allowed."""
    try:
        arr = np.asarray(to_numpy(points), dtype=np.float64)
    except (TypeError, ValueError):
        arr = None  # as_matrix says why
    if arr is not None and arr.ndim == 2 and arr.shape[0] == 0 and arr.shape[1] > 0:
        return arr
    return as_matrix(points, "points")


def _signs(maximize: bool | Sequence[bool], k: int) -> np.ndarray:
    """+1 for maximized columns, -1 for minimized ones, (k,)."""
    flags = [maximize] * k if isinstance(maximize, (bool, np.bool_)) else maximize
    if not isinstance(flags, Sequence) or isinstance(flags, str):
        raise ConfigError(f"maximize: expected a bool or a sequence of bools, got {maximize!r}")
    if not all(isinstance(f, (bool, np.bool_)) for f in flags):
        raise ConfigError(f"maximize: expected bools, got {maximize!r}")
    if len(flags) != k:
        raise ShapeError(f"maximize: has {len(flags)} flags but points has {k} columns")
    return np.where(np.asarray(flags, dtype=bool), 1.0, -1.0)
