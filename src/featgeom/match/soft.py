"""Soft many-to-many correspondence from correlations: dual softmax with an "unmatched" option.

For correlations r (n_a, n_b), temperature t and an unmatched score z:

    R_ij = exp(r_ij / t) / (exp(z / t) + sum_k exp(r_ik / t))   (A latent i picks B latent j)
    K_ij = exp(r_ij / t) / (exp(z / t) + sum_k exp(r_kj / t))   (B latent j picks A latent i)
    S_ij = R_ij * K_ij

R is a softmax over B's latents plus a "stay unmatched" option scoring z, K the same over A's
latents. S_ij is the probability that i and j pick each other when each picks independently: a
soft mutual-nearest-neighbour match (the dual-softmax of feature matching, one step of Sinkhorn
balancing). S_ij lies in [0, 1] and every row and column of S sums to at most 1. As t -> 0, S
tends to the 0/1 indicator of pairs that are each other's best and correlate above z, i.e.
``pair(mode="mutual", min_corr=z)``. Negative correlations need no clipping: they get less mass
than staying unmatched. S concentrates on a partner whose correlation beats the other
candidates' by well over t * log(n) (n candidates), so keep t small for wide SAEs.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from featgeom.checks import as_matrix
from featgeom.errors import ConfigError
from featgeom.match._validate import positive_number, threshold
from featgeom.match.correlation import CorrelationResult


def soft_correspondence(
    corr: object, *, temperature: float = 0.05, unmatched_score: float = 0.0
) -> np.ndarray:
    """Soft correspondence S (n_a, n_b) in [0, 1] from correlations ``corr`` (n_a, n_b).

    ``corr`` may be a :class:`CorrelationResult` with a full matrix: S then covers all latents
    (n_latents_a, n_latents_b), and dead/constant latents, having no correlation, are unmatched
    (all-zero rows/columns).
    """
    t = positive_number(temperature, "temperature")
    z = threshold(unmatched_score, "unmatched_score")
    if isinstance(corr, CorrelationResult):
        if corr.matrix is None:
            raise ConfigError("corr: soft_correspondence needs the full matrix, not top_k results")
        out = np.zeros((corr.n_latents_a, corr.n_latents_b))
        out[np.ix_(corr.alive_a, corr.alive_b)] = _dual_softmax(corr.matrix, t, z)
        return out
    return _dual_softmax(as_matrix(corr, "corr"), t, z)


def _dual_softmax(r: np.ndarray, t: float, z: float) -> np.ndarray:
    """S = R * K for r (n_a, n_b), computed in log space."""
    logits = r / t
    row_norm = np.logaddexp(logsumexp(logits, axis=1), z / t)
    col_norm = np.logaddexp(logsumexp(logits, axis=0), z / t)
    s = np.exp(2.0 * logits - row_norm[:, None] - col_norm[None, :])
    return np.clip(s, 0.0, 1.0, out=s)
