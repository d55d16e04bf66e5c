"""Pearson correlation of paired activation columns, without the full correlation matrix.

For pairs (i_k, j_k), r_k = cov(a[:, i_k], b[:, j_k]) / (sd(a[:, i_k]) sd(b[:, j_k])) (population
moments over the n shared samples). Dense inputs are centered column by column; sparse inputs use
raw moments, cov = sum(a b) / n - mean(a) mean(b), so they are never densified. Pairs are done a
block at a time (about 32 MiB of dense columns).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from featgeom.checks import check_same_rows
from featgeom.metrics._common import Acts, row_blocks


def paired_correlation(
    a: Acts, b: Acts, cols_a: np.ndarray, cols_b: np.ndarray, names: tuple[str, str]
) -> np.ndarray:
    """r (n_pairs,) in [-1, 1]: correlation of a[:, cols_a[k]] with b[:, cols_b[k]].

    NaN where either column is constant over the samples (incl. never active).
    """
    check_same_rows(a, b, names)
    if sp.issparse(a):
        a = sp.csc_array(a)
    if sp.issparse(b):
        b = sp.csc_array(b)
    out = np.empty(cols_a.size)
    for block in row_blocks(cols_a.size, a.shape[0]):
        out[block] = _block_corr(a[:, cols_a[block]], b[:, cols_b[block]])
    return out


def _block_corr(x: Acts, y: Acts) -> np.ndarray:
    """Column-wise correlation of x (n, p) and y (n, p); NaN for constant columns."""
    n = x.shape[0]
    mean_x, var_x, const_x = _moments(x)
    mean_y, var_y, const_y = _moments(y)
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        cov = np.einsum("ij,ij->j", x - mean_x, y - mean_y) / n
    else:
        cross = x.multiply(y) if sp.issparse(x) else y.multiply(x)
        cov = np.asarray(cross.sum(axis=0)).ravel() / n - mean_x * mean_y
    undefined = const_x | const_y
    denom = np.sqrt(np.where(undefined, 1.0, var_x * var_y))
    r = np.clip(cov / denom, -1.0, 1.0)
    r[undefined] = np.nan
    return r


def _moments(x: Acts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means, population variances and constant-column mask of x (n, p)."""
    n = x.shape[0]
    if isinstance(x, np.ndarray):
        mean = x.mean(axis=0)
        var = np.mean((x - mean) ** 2, axis=0)
        constant = x.max(axis=0) == x.min(axis=0)
    else:
        mean = np.asarray(x.sum(axis=0)).ravel() / n
        var = np.maximum(np.asarray(x.multiply(x).sum(axis=0)).ravel() / n - mean**2, 0.0)
        constant = x.max(axis=0).toarray() == x.min(axis=0).toarray()
    return mean, var, constant | (var <= 0)
