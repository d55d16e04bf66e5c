"""Pair latents of A with latents of B from a score matrix (correlations, cosines, weights).

Modes, for scores M[i, j] between A latent i and B latent j (restricted by ``keep_a``/``keep_b``):

* ``many_to_one``: every A latent with its best B latent (B latents may repeat), as in Lan et al.
* ``one_to_many``: every B latent with its best A latent (A latents may repeat).
* ``mutual``: 1-1, the pairs that are each other's best. Unlike keeping the first A latent (by
  index) that chose a B latent, this never depends on latent order.
* ``greedy``: 1-1, repeatedly take the highest remaining score and remove both latents.
* ``hungarian``: 1-1, the min(n_a, n_b) pairs maximizing the total score.

The threshold (``min_corr`` etc.) then drops pairs scoring below it; it never changes which
partner a latent gets. Ties go to the lower index (for ``hungarian``, scipy's solver decides).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom.checks import as_matrix
from featgeom.errors import ConfigError, DataError
from featgeom.match import _dense
from featgeom.match._candidates import Context, pair_topk
from featgeom.match._topk import TopK
from featgeom.match._validate import bool_mask, choice, threshold
from featgeom.match.correlation import CorrelationResult, check_samples

MODES = ("many_to_one", "one_to_many", "mutual", "greedy", "hungarian")


@dataclass(frozen=True)
class Pairing:
    """Pairs (idx_a[p], idx_b[p]) of A and B latent ids with ``score``, sorted by (idx_a, idx_b).

    score_name says what the score is: 'pearson', 'abs_cosine' or 'weight'.
    """

    idx_a: np.ndarray
    idx_b: np.ndarray
    score: np.ndarray
    mode: str
    score_name: str

    def __len__(self) -> int:
        return int(self.idx_a.size)

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form: mode, score_name, n_pairs and the three arrays as lists."""
        return {
            "mode": self.mode,
            "score_name": self.score_name,
            "n_pairs": len(self),
            "idx_a": self.idx_a.tolist(),
            "idx_b": self.idx_b.tolist(),
            "score": self.score.tolist(),
        }


@dataclass(frozen=True)
class Scores:
    """Scores between A latents ``ids_a`` (rows) and B latents ``ids_b`` (columns).

    n_a, n_b: total latent counts (the length of keep masks). Exactly one of ``matrix``
    (len(ids_a), len(ids_b)) and ``topk`` (positions into ids_a/ids_b) is set.
    """

    ids_a: np.ndarray
    ids_b: np.ndarray
    n_a: int
    n_b: int
    matrix: np.ndarray | None = None
    topk: TopK | None = None


def pair(
    corr_or_result: object,
    *,
    mode: str = "many_to_one",
    min_corr: float | None = None,
    keep_a: object = None,
    keep_b: object = None,
) -> Pairing:
    """Pair A and B latents by Pearson correlation.

    corr_or_result: a correlation matrix (n_a, n_b) or a :class:`CorrelationResult` (full or
    top-k; 'hungarian' needs the full matrix; ShapeError when computed from fewer than
    MIN_SAMPLES = 100 samples, too few for a meaningful pairing). keep_a (n_a,) / keep_b (n_b,):
    boolean masks of the latents allowed in pairs (for a result: over all latents; dead/constant
    ones never pair).
    """
    return pair_scores(
        _scores_of(corr_or_result), mode, ("min_corr", min_corr), keep_a, keep_b, "pearson"
    )


def _scores_of(x: object) -> Scores:
    """Scores of a CorrelationResult (full or top-k) or of a plain (n_a, n_b) matrix."""
    if isinstance(x, CorrelationResult):
        check_samples(x.n_samples, "corr_or_result")
        if x.matrix is not None:
            return Scores(x.alive_a, x.alive_b, x.n_latents_a, x.n_latents_b, matrix=x.matrix)
        assert x.top_b_for_a is not None and x.top_a_for_b is not None
        top = TopK(
            np.searchsorted(x.alive_b, x.top_b_for_a),
            x.top_corr_for_a,
            np.searchsorted(x.alive_a, x.top_a_for_b),
            x.top_corr_for_b,
        )
        return Scores(x.alive_a, x.alive_b, x.n_latents_a, x.n_latents_b, topk=top)
    m = as_matrix(x, "corr")
    return Scores(np.arange(m.shape[0]), np.arange(m.shape[1]), m.shape[0], m.shape[1], matrix=m)


def pair_scores(
    scores: Scores,
    mode: str,
    thr_arg: tuple[str, float | None],
    keep_a: object,
    keep_b: object,
    score_name: str,
) -> Pairing:
    """Shared engine of every pairing function; ``thr_arg`` = (argument name, value)."""
    mode = choice(mode, MODES, "mode")
    thr_name, thr = thr_arg[0], threshold(thr_arg[1], thr_arg[0])
    keep_r = kept(keep_a, scores.n_a, scores.ids_a, "keep_a", "A")
    keep_c = kept(keep_b, scores.n_b, scores.ids_b, "keep_b", "B")
    if scores.matrix is not None:
        r, c, v = _choose_dense(scores.matrix, mode, keep_r, keep_c)
    else:
        assert scores.topk is not None
        if mode == "hungarian":
            raise ConfigError("mode: 'hungarian' needs the full score matrix, not top_k results")
        ctx = Context(mode, scores.topk.k, thr_name, thr, scores.ids_a, scores.ids_b)
        r, c, v = pair_topk(scores.topk, mode, keep_r, keep_c, ctx)
    strong = v >= thr
    if not strong.any():
        best = f" (best {v.max():.4g})" if v.size else ""
        raise DataError(
            f"{thr_name}={thr:g}: no {mode} pair scores at least this{best}; nothing left to pair"
        )
    ids_a, ids_b = scores.ids_a[r[strong]], scores.ids_b[c[strong]]
    order = np.lexsort((ids_b, ids_a))
    return Pairing(
        ids_a[order], ids_b[order], v[strong][order].astype(np.float64), mode, score_name
    )


def _choose_dense(
    m: np.ndarray, mode: str, keep_r: np.ndarray, keep_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, scores) of ``mode`` on the kept submatrix of ``m``, in positions of ``m``."""
    rows, cols = np.flatnonzero(keep_r), np.flatnonzero(keep_c)
    sub = m if rows.size == m.shape[0] and cols.size == m.shape[1] else m[np.ix_(rows, cols)]
    r, c = _dense.RULES[mode](sub)
    r, c = rows[r], cols[c]
    return r, c, m[r, c]


def kept(mask: object, n_total: int, ids: np.ndarray, name: str, side: str) -> np.ndarray:
    """Mask (len(ids),) of pairable ``ids`` that ``mask`` (n_total,) keeps; none -> DataError."""
    keep = bool_mask(mask, n_total, name)[ids]
    if not keep.any():
        raise DataError(
            f"{name}: keeps none of the {ids.size} pairable {side} latents; nothing to pair"
        )
    return keep
