"""Do two models' SAEs find the same features? Cross-model scores (tasks 1.3, 2.3).

Activations (n_samples, n_items) of models A and B are over the same samples, dense or
scipy.sparse. A ground-truth correspondence C (N_a, N_b) (dense or scipy.sparse) is 1 where true
feature i of A is feature j of B, a weight in (0, 1) for mixtures, 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from featgeom.checks import as_activations, as_matrix, check_finite, to_numpy
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import CorrelationResult
from featgeom.formulas import unit_rows
from featgeom.metrics._common import ids, pair_ids, positive_int
from featgeom.metrics._corr import paired_correlation


def cross_mcc(corr: CorrelationResult | object) -> float:
    """Hungarian-matched mean |corr| between the latents of SAE A and SAE B.

    corr: a :class:`featgeom.match.CorrelationResult` with its full matrix, or a dense
    correlation matrix (n_a, n_b). With (l_k, m_k) the 1-1 matching maximizing sum |corr|,
    cross-MCC = sum_k |corr(l_k, m_k)| / min(n_a, n_b), counting *all* latents: dead or constant
    latents (absent from a CorrelationResult) have no correlation and contribute 0, so a
    half-dead SAE cannot score above 0.5. Range [0, 1]: 1 when every latent of the smaller SAE
    has a perfectly (anti-)correlated partner. Invariant to permuting either SAE's latents.
    A per-latent score: to compare with :func:`gt_mcc` (per feature slot) use
    :func:`empirical_mcc`.
    """
    matched, slots = _matched_abs_corr(corr, "cross_mcc")
    return float(matched.sum() / slots)


def empirical_mcc(corr: CorrelationResult | object, n_units: int) -> float:
    """Empirical MCC per ground-truth feature slot: :func:`cross_mcc` on :func:`gt_mcc`'s footing.

    corr: a :class:`featgeom.match.CorrelationResult` with its full matrix (its alive latents
    only), or a dense correlation matrix (n_a, n_b) of alive latents. n_units: m, the number of
    ground-truth feature slots, m = min(N_a, N_b), the denominator of :func:`gt_mcc`. With
    (l_k, m_k), k = 1..K, K = min(#alive A, #alive B), the 1-1 matching of alive latents maximizing
    sum |corr| (as in :func:`cross_mcc`) and v_1 >= v_2 >= ... >= v_K the matched |corr| sorted
    descending,

        empirical-MCC = (v_1 + ... + v_s) / m,   s = min(m, K) (matched slots).

    Range [0, 1]: 1 when at least m alive latent pairs correlate perfectly, whatever the number
    of extra (dead or alive) latents; an SAE with fewer alive latents than feature slots loses
    the (m - s) / m missing slots. Same unit as :func:`gt_mcc` (feature slots), so for identical
    members with identical SAEs gt - empirical ~ 0 (see :func:`universality_gap_details`).
    Invariant to permuting either SAE's latents.
    """
    return float(_slot_values(corr, n_units)[0].sum() / positive_int(n_units, "n_units"))


@dataclass(frozen=True)
class UniversalityGap:
    """UG on one footing (feature slots) and what explains it; every field a plain number.

    gt_mcc, empirical_mcc (:func:`empirical_mcc`), universality_gap = gt_mcc - empirical_mcc;
    n_units m; matched_slots s = min(m, K); missing_slots m - s (slots without an alive latent
    pair: the smaller SAE has fewer alive latents than feature slots); imperfection = mean
    (1 - |corr|) over the s matched slots (0 when s = 0); dead_a, dead_b: latents without a
    correlation (dead or constant) per side, None for a dense matrix. Exactly,

        universality_gap = (gt_mcc - 1) + missing_slots / m + (matched_slots / m) * imperfection.
    """

    gt_mcc: float
    empirical_mcc: float
    universality_gap: float
    n_units: int
    matched_slots: int
    missing_slots: int
    imperfection: float
    dead_a: int | None
    dead_b: int | None

    def as_dict(self) -> dict[str, float | int | None]:
        """The fields as a JSON-ready dict."""
        return dict(self.__dict__)


def universality_gap_details(
    gt: float, corr: CorrelationResult | object, n_units: int
) -> UniversalityGap:
    """UG = gt - :func:`empirical_mcc` (same units), split into the SAE imperfection behind it.

    gt: :func:`gt_mcc` of the pair, in [0, 1]; corr, n_units as in :func:`empirical_mcc`. With
    m = n_units, s = matched_slots, v the s best matched |corr| and imperfection
    e = mean_k (1 - v_k), empirical = (s - s e) / m, hence the exact decomposition

        UG = (gt - 1) + (m - s) / m + (s / m) e
           = -(ceiling shortfall of the truth) + missing slots + imperfect matches.

    Identical members (gt = 1) with identical SAEs give UG = 0 however many latents are dead;
    dead latents are reported separately (dead_a, dead_b), never mixed into UG.
    """
    if isinstance(gt, bool) or not isinstance(gt, Real) or not -1e-9 <= gt <= 1 + 1e-9:
        raise DataError(f"gt: expected a gt-MCC in [0, 1], got {gt!r}")
    m = positive_int(n_units, "n_units")
    values, result = _slot_values(corr, m)
    s = int(values.size)
    empirical = float(values.sum() / m)
    return UniversalityGap(
        gt_mcc=float(gt),
        empirical_mcc=empirical,
        universality_gap=universality_gap(gt, empirical),
        n_units=m,
        matched_slots=s,
        missing_slots=m - s,
        imperfection=float(np.mean(1.0 - values)) if s else 0.0,
        dead_a=None if result is None else result.n_latents_a - int(result.alive_a.size),
        dead_b=None if result is None else result.n_latents_b - int(result.alive_b.size),
    )


def _slot_values(
    corr: CorrelationResult | object, n_units: object
) -> tuple[np.ndarray, CorrelationResult | None]:
    """The min(n_units, K) best Hungarian-matched |corr|, sorted descending, and the result."""
    m = positive_int(n_units, "n_units")
    matched, _ = _matched_abs_corr(corr, "empirical_mcc")
    values = np.minimum(np.sort(matched)[::-1][:m], 1.0)  # rounding guard: |corr| <= 1
    return values, corr if isinstance(corr, CorrelationResult) else None


def _matched_abs_corr(corr: CorrelationResult | object, who: str) -> tuple[np.ndarray, int]:
    """|corr| (K,) of the 1-1 matching of alive latents maximizing sum |corr|, K = min(shape),
    and min(n_latents_a, n_latents_b) counting dead latents (min(shape) for a dense matrix)."""
    if isinstance(corr, CorrelationResult):
        if corr.matrix is None:
            raise ConfigError(f"corr: {who} needs the full matrix, not a top_k result")
        r = np.asarray(corr.matrix, dtype=np.float64)
        slots = min(corr.n_latents_a, corr.n_latents_b)
        check_finite(r, "corr")
    else:
        r = as_matrix(corr, "corr")
        slots = min(r.shape)
    r = np.abs(r)
    if r.size and r.max() > 1 + 1e-9:
        raise DataError(f"corr: correlations must lie in [-1, 1], found |corr| = {r.max():.6g}")
    rows, cols = linear_sum_assignment(r, maximize=True)
    return r[rows, cols], slots


def gt_mcc(
    true_acts_a: object, true_acts_b: object, c: object, *, undefined_as_zero: bool = False
) -> float:
    """Oracle cross-MCC: how well the two models' true features themselves correlate.

    true_acts_a (n, N_a), true_acts_b (n, N_b): true feature activations over the same samples;
    c (N_a, N_b): ground-truth correspondence. Pairs (i_k, j_k) = the 1-1 assignment maximizing
    sum C_ij (Hungarian, solved per connected component of C's support; zero-weight
    assignments count as unmatched). gt-MCC = sum_k |pearson(a[:, i_k], b[:, j_k])| /
    min(N_a, N_b): unmatched slots score 0. Range [0, 1]: 1 for identical members; about r when
    a fraction r of features is shared with identical activations. The ceiling that
    :func:`cross_mcc` of perfect SAEs would reach. A pair with a constant (e.g. never active)
    feature has no correlation: DataError, or 0 with ``undefined_as_zero``.
    """
    a, b = as_activations(true_acts_a, "true_acts_a"), as_activations(true_acts_b, "true_acts_b")
    weights = _correspondence(c, a.shape[1], b.shape[1])
    rows, cols = _max_weight_matching(weights)
    if rows.size == 0:
        return 0.0
    r = np.abs(paired_correlation(a, b, rows, cols, ("true_acts_a", "true_acts_b")))
    bad = np.isnan(r)
    if bad.any() and not undefined_as_zero:
        raise DataError(
            f"true_acts_a, true_acts_b: {int(bad.sum())} matched feature pair(s) are constant over "
            f"the samples (e.g. A {rows[bad][0]} / B {cols[bad][0]}), so their correlation is "
            "undefined; sample more or pass undefined_as_zero=True"
        )
    return float(np.nansum(r) / min(weights.shape))


def universality_gap(gt: float, empirical: float) -> float:
    """gt - empirical: the part of the oracle ceiling (:func:`gt_mcc`) that the SAEs miss.

    0 when the SAEs reach the ceiling; positive when they find less shared structure than exists.
    """
    for name, value in (("gt", gt), ("empirical", empirical)):
        if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
            raise DataError(f"{name}: expected a finite number, got {value!r}")
    return float(gt) - float(empirical)


def correspondence_accuracy(
    idx_a: object,
    idx_b: object,
    feature_of_a: object,
    feature_of_b: object,
    c: object,
    *,
    weighted: bool = False,
) -> float:
    """Fraction of latent pairs whose true features correspond.

    idx_a, idx_b (n_pairs,): pairs idx_a[k] <-> idx_b[k] of SAE latents; feature_of_a
    (n_latents_a,), feature_of_b (n_latents_b,): each latent's true feature (-1 = unassigned,
    e.g. from :func:`feature_assignment`); c (N_a, N_b). Pair k scores [C[fa, fb] > 0], or
    C[fa, fb] itself with ``weighted``; pairs with an unassigned latent score 0.
    Accuracy = mean score, in [0, 1]: 1 when every pair links corresponding features.
    """
    weights = _correspondence(c, None, None)
    fa_all = ids(feature_of_a, weights.shape[0], "feature_of_a", allow_unassigned=True)
    fb_all = ids(feature_of_b, weights.shape[1], "feature_of_b", allow_unassigned=True)
    a, b = pair_ids(idx_a, idx_b, fa_all.size, fb_all.size)
    fa, fb = fa_all[a], fb_all[b]
    assigned = (fa >= 0) & (fb >= 0)
    score = np.zeros(a.size)
    if assigned.any():
        score[assigned] = weights[fa[assigned], fb[assigned]]
    return float(np.mean(score if weighted else score > 0))


def angular_tolerance(
    x: object, y: object, degrees: Sequence[float] = (5, 10, 15, 20)
) -> dict[float, float]:
    """AST: for paired rows x (n, d), y (n, d), the fraction within each angle tolerance.

    angle_k = arccos |cos(x_k, y_k)| in [0, 90] degrees (sign ignored); AST(theta) =
    mean_k [angle_k <= theta] (with 1e-9 degrees of slack for rounding). Returns
    {theta: fraction}, each in [0, 1], non-decreasing in theta: 1 when all pairs are within
    theta, 0 when none is.
    """
    thetas = list(degrees) if isinstance(degrees, Sequence) else []
    if not thetas or not all(
        isinstance(t, Real) and not isinstance(t, bool) and 0 <= t <= 180 for t in thetas
    ):
        raise ConfigError(
            f"degrees: expected a non-empty sequence of angles in [0, 180], got {degrees!r}"
        )
    xa, ya = as_matrix(x, "x"), as_matrix(y, "y")
    if xa.shape != ya.shape:
        raise ShapeError(f"x has shape {xa.shape} but y has shape {ya.shape}: rows must be paired")
    ua, ub = unit_rows(xa, zero_rows="keep"), unit_rows(ya, zero_rows="keep")
    cos = np.clip(np.abs(np.einsum("ij,ij->i", ua, ub)), 0.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    return {t: float(np.mean(angle <= t + 1e-9)) for t in thetas}


@dataclass(frozen=True)
class FunctionalEquivalence:
    """FES details: value (mean over defined pairs), per_pair (n_pairs,) Pearson r (NaN where
    undefined), n_skipped (pairs with a constant latent, left out of the mean)."""

    value: float
    per_pair: np.ndarray
    n_skipped: int


def functional_equivalence(
    acts_a: object, acts_b: object, idx_a: object, idx_b: object, *, skip_undefined: bool = False
) -> float:
    """FES: mean Pearson correlation of paired latents' activations (see details function)."""
    return functional_equivalence_details(
        acts_a, acts_b, idx_a, idx_b, skip_undefined=skip_undefined
    ).value


def functional_equivalence_details(
    acts_a: object, acts_b: object, idx_a: object, idx_b: object, *, skip_undefined: bool = False
) -> FunctionalEquivalence:
    """FES = mean_k pearson(acts_a[:, idx_a[k]], acts_b[:, idx_b[k]]).

    acts_a (n, n_a), acts_b (n, n_b) over the same samples; idx_a, idx_b (n_pairs,). Range
    [-1, 1]: 1 when paired latents fire identically up to positive scale and shift, ~0 for
    unrelated latents. A pair with a constant (incl. dead) latent has no correlation: DataError,
    or with ``skip_undefined`` left out of the mean and counted in ``n_skipped`` (DataError if
    no pair is left).
    """
    a, b = as_activations(acts_a, "acts_a"), as_activations(acts_b, "acts_b")
    ia, ib = pair_ids(idx_a, idx_b, a.shape[1], b.shape[1])
    r = paired_correlation(a, b, ia, ib, ("acts_a", "acts_b"))
    bad = np.isnan(r)
    if bad.any() and (not skip_undefined or bad.all()):
        hint = "" if skip_undefined else "; pass skip_undefined=True to skip them"
        raise DataError(
            f"acts_a, acts_b: {int(bad.sum())} of {r.size} pair(s) have a constant latent "
            f"(e.g. A {ia[bad][0]} / B {ib[bad][0]}), so their correlation is undefined{hint}"
        )
    return FunctionalEquivalence(float(np.mean(r[~bad])), r, int(bad.sum()))


def _correspondence(c: object, n_a: int | None, n_b: int | None) -> sp.csr_array:
    """c as float64 CSR with positive entries only; checks finiteness, sign and shape."""
    c = to_numpy(c)
    m = sp.csr_array(c, dtype=np.float64) if sp.issparse(c) else sp.csr_array(as_matrix(c, "c"))
    if m.ndim != 2:
        raise ShapeError(f"c: expected a 2-D matrix, got shape {m.shape}")
    check_finite(m.data, "c")
    if np.any(m.data < 0):
        raise DataError("c: correspondence weights must be >= 0")
    expected = (m.shape[0] if n_a is None else n_a, m.shape[1] if n_b is None else n_b)
    if m.shape != expected:
        raise ShapeError(
            f"c has shape {m.shape} but the activations have {expected[0]} (A) and "
            f"{expected[1]} (B) features"
        )
    m.eliminate_zeros()
    return m


def _max_weight_matching(c: sp.csr_array) -> tuple[np.ndarray, np.ndarray]:
    """1-1 pairs (rows, cols) maximizing sum C over C's positive support.

    Solved per connected component of the bipartite support graph (a component with one
    entry is its own pair), so a permutation-like C of any size costs O(nnz).
    """
    graph = sp.bmat([[None, c], [c.T, None]], format="csr")
    _, label = connected_components(graph, directed=False)
    coo = c.tocoo()
    order = np.argsort(label[coo.row], kind="stable")
    row, col, w = coo.row[order], coo.col[order], coo.data[order]
    starts = np.flatnonzero(np.r_[True, np.diff(label[row]) != 0])
    sizes = np.diff(np.r_[starts, row.size])
    single = starts[sizes == 1]
    rows_out, cols_out = [row[single]], [col[single]]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        part = slice(start, start + size)
        ur, ri = np.unique(row[part], return_inverse=True)
        uc, ci = np.unique(col[part], return_inverse=True)
        block = np.zeros((ur.size, uc.size))
        block[ri, ci] = w[part]
        i, j = linear_sum_assignment(block, maximize=True)
        keep = block[i, j] > 0
        rows_out.append(ur[i[keep]])
        cols_out.append(uc[j[keep]])
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(cols_out).astype(np.int64)
