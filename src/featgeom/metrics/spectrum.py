"""How each SAE architecture responds to superposition, across a rho_mm spectrum (plan task 3.1).

Input: one row per trained SAE (run): its architecture, its world's superposition level rho_mm
and its MCC to the truth. Runs of one (architecture, rho_mm) cell are seeds. Levels are the
distinct rho_mm values (compared exactly: pass the grid values, not recomputed estimates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom.checks import to_numpy
from featgeom.errors import DataError, ShapeError
from featgeom.metrics._common import vector


@dataclass(frozen=True)
class ArchitectureResponse:
    """Architecture-specific response over A architectures and L superposition levels.

    architectures (A,) sorted names; levels (L,) sorted rho_mm; n_runs (A, L) int64 seeds per
    cell; mean_mcc (A, L) mean over seeds; response (A, L) = mean_mcc[a, l] - mean over
    architectures of mean_mcc[:, l] (ASR per (level, architecture) pair: > 0 = handles this
    superposition level better than the average architecture); diversity (A, L) = std over
    seeds of MCC, ddof = 1 (:func:`~featgeom.metrics.recovery.decomposition_diversity`, NaN for
    cells with one seed); slope (A,) = least-squares slope of mean_mcc[a] against levels (MCC
    change per unit rho_mm, levels weighted equally); slope_response (A,) = slope - mean over
    architectures of slope (> 0 = loses MCC more slowly than average as superposition grows;
    equals the slope of response[a] against levels).
    """

    architectures: np.ndarray
    levels: np.ndarray
    n_runs: np.ndarray
    mean_mcc: np.ndarray
    response: np.ndarray
    diversity: np.ndarray
    slope: np.ndarray
    slope_response: np.ndarray


def architecture_specific_response(
    architectures: object, rho_mm: object, mcc: object
) -> ArchitectureResponse:
    """ASR (plan task 3.1): how each architecture's MCC departs from the mean architecture's.

    architectures (n_runs,) names, rho_mm (n_runs,) superposition levels, mcc (n_runs,) MCC in
    [0, 1] of each run. With m[a, l] = mean MCC of architecture a's seeds at level l:

        ASR[a, l]   = m[a, l] - (1 / A) sum_b m[b, l]
        slope[a]    = sum_l (x_l - mean x) (m[a, l] - mean_l m[a]) / sum_l (x_l - mean x)^2
        slope_ASR[a] = slope[a] - (1 / A) sum_b slope[b]

    (x_l = levels). The plan asks, per (superposition level, architecture), "do some
    architectures handle high superposition better?": ASR[a, l] answers it level by level,
    slope_ASR[a] over the whole spectrum. Needs >= 2 architectures, every architecture at
    every level (DataError naming the missing cell) and >= 2 levels.
    """
    names = _names(architectures)
    rho = vector(rho_mm, "rho_mm", n=names.size, what="runs (architectures)")
    score = vector(mcc, "mcc", n=names.size, what="runs (architectures)")
    if np.any(score < 0) or np.any(score > 1):
        raise DataError("mcc: MCC values must be in [0, 1]")
    archs, a_idx = np.unique(names, return_inverse=True)
    levels, l_idx = np.unique(rho, return_inverse=True)
    if archs.size < 2:
        raise DataError(f"architectures: need at least 2 to compare, got {archs.size}")
    if levels.size < 2:
        raise DataError(f"rho_mm: need at least 2 superposition levels, got {levels.size}")
    count, total = np.zeros((archs.size, levels.size)), np.zeros((archs.size, levels.size))
    np.add.at(count, (a_idx, l_idx), 1)
    np.add.at(total, (a_idx, l_idx), score)
    _check_complete(count, archs, levels)
    mean = total / count
    slope = _slopes(levels, mean)
    return ArchitectureResponse(
        architectures=archs,
        levels=levels,
        n_runs=count.astype(np.int64),
        mean_mcc=mean,
        response=mean - mean.mean(axis=0),
        diversity=_seed_std(score, a_idx, l_idx, count.shape),
        slope=slope,
        slope_response=slope - slope.mean(),
    )


def _names(architectures: object) -> np.ndarray:
    """architectures as a non-empty 1-D array of str."""
    arr = np.asarray(to_numpy(architectures))
    if arr.ndim != 1 or arr.size == 0:
        raise ShapeError(f"architectures: expected a non-empty 1-D array of names, got {arr.shape}")
    return arr.astype(str)


def _check_complete(count: np.ndarray, archs: np.ndarray, levels: np.ndarray) -> None:
    """DataError naming the first (architecture, level) cell without runs."""
    missing = np.argwhere(count == 0)
    if missing.size:
        a, lvl = missing[0]
        raise DataError(
            f"architectures: {str(archs[a])!r} has no run at rho_mm={levels[lvl]:g} "
            f"({missing.shape[0]} empty cell(s)); every architecture needs every level"
        )


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of y (A, L) against x (L,)."""
    dx = x - x.mean()
    return (y - y.mean(axis=1, keepdims=True)) @ dx / (dx @ dx)


def _seed_std(
    score: np.ndarray, a_idx: np.ndarray, l_idx: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Sample std (ddof = 1) of the runs' scores in each (architecture, level) cell; NaN for a
    cell with one run."""
    out = np.full(shape, np.nan)
    for a, lvl in np.ndindex(*shape):
        cell = score[(a_idx == a) & (l_idx == lvl)]
        if cell.size >= 2:
            out[a, lvl] = np.std(cell, ddof=1)
    return out
