"""Permutation null tests for a similarity score of paired rows (Tests 1 and 2 of Lan et al. 2024,
"Sparse Autoencoders Reveal Universal Feature Spaces Across Large Language Models").

Both keep the pairing fixed. That is a valid null only when the pairing does not depend on the
data being tested. When latents were paired by activation correlation (as in the paper), the
paired rows carry each SAE's own geometry and the shuffle null is far too low: on independent
models, many_to_one pairing gave p <= 0.05 in 98-100% of comparisons for SVCCA / CKA /
Procrustes (tests/stats/test_repair_calibration.py). Use :func:`featgeom.stats.repair_tests`,
which repeats the pairing under the null, for that question; these functions reproduce the
paper's numbers and answer "does this particular pairing matter?".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featgeom.checks import as_matrix, check_same_rows
from featgeom.device import optional_device
from featgeom.errors import ConfigError, ShapeError
from featgeom.similarity.base import is_integer, paired_inputs
from featgeom.stats.kernels import (
    Metric,
    Request,
    ShuffleKernel,
    as_score,
    metric_function,
    metric_label,
    paired_scores,
    shuffle_kernels,
)

KINDS = ("shuffle", "subset")
PRECISIONS = {"float64": np.float64, "float32": np.float32}
# p >= 1 / (1 + n_perm): from 19 permutations on, p can reach 0.05 (with fewer it never can)
MIN_N_PERM = 19
NULL_BYTES_LIMIT = 2 << 30  # float64 null scores one call may hold (2 GiB), checked before allocating
_BATCH_BYTES = 64 * 2**20  # scratch memory budget of one batch of permutations
_TIE_RTOL = 1e-12  # null scores this close to the observed one count as reaching it
# float32 null scores this close (relative to max(1, |observed|)) to the observed score are
# re-scored in float64. float32 rounding of the named metrics' scores stayed below 1e-6 (measured
# up to 16,384 items x 768 dims; tests/stats/test_null_tests.py checks 3,000 x 256), so every
# score that could fall on the other side of the observed one is re-scored and p equals the
# float64 p-value.
_FLOAT32_WINDOW = 1e-4


@dataclass(frozen=True, eq=False)
class NullTestResult:
    """Outcome of :func:`null_test`.

    observed: metric on the given pairing. null: (n_perm,) read-only null scores; null_mean and
    null_std (population std, ddof=0) summarise it. p_value: (1 + #{null >= observed}) /
    (1 + n_perm), one-sided (larger = more similar), never 0. metric: the metric's name (a
    callable's ``__name__``); kind, n_perm, seed, precision: as passed to null_test.
    """

    metric: str
    kind: str
    observed: float
    null_mean: float
    null_std: float
    p_value: float
    null: np.ndarray
    n_perm: int
    seed: int
    precision: str = "float64"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (the null as a list of floats)."""
        return {
            "metric": self.metric,
            "kind": self.kind,
            "observed": self.observed,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "p_value": self.p_value,
            "null": self.null.tolist(),
            "n_perm": self.n_perm,
            "seed": self.seed,
            "precision": self.precision,
        }


def null_test(
    metric: str | Metric,
    x: object,
    y: object,
    *,
    kind: str = "shuffle",
    n_perm: int = 1000,
    seed: int = 0,
    pool_x: object = None,
    pool_y: object = None,
    paired_pool: bool = False,
    metric_kwargs: Mapping[str, Any] | None = None,
    precision: str = "float64",
    device: object = None,
) -> NullTestResult:
    """Compare metric(x, y) on paired rows x (n, dim_x), y (n, dim_y) with a permutation null.

    ``metric``: "svcca", "svcca_legacy", "rsa", "cka", "procrustes" (featgeom.similarity, with
    ``metric_kwargs`` passed on) or a callable (x, y, **metric_kwargs) -> float, which receives
    the checked float64 NumPy arrays.

    kind="shuffle" (Test 1, is the pairing meaningful?): null score j = metric(x, y[perm_j]),
    where perm_j is the j-th call of ``rng.permutation(n)``, rng = numpy.random.default_rng(seed).
    Named metrics are prepared once and evaluated on batches of permutations (see
    featgeom.stats.kernels); callables are called once per permutation. For "rsa" with
    n > max_items, items are permuted within RSA's own item sub-sample.

    kind="subset" (Test 2, is this set of pairs more similar than random sets of the same size?):
    ``pool_x`` (N_x, dim_x) and ``pool_y`` (N_y, dim_y) are the candidate rows (e.g. all decoder
    rows of each SAE); null score j = metric(pool_x[ix_j], pool_y[iy_j]) with ix_j =
    ``rng.choice(N_x, n, replace=False)`` and iy_j drawn the same way from N_y, independently
    (unpaired random subsets, as in the paper), or iy_j = ix_j when ``paired_pool=True`` (random
    subsets of a paired pool, N_x == N_y; a stricter null that keeps the pairing). Each draw
    recomputes the metric, so this costs n_perm full metric evaluations.

    ``precision`` ("float64" or "float32", shuffle only): working precision of the named metrics'
    per-permutation arithmetic (callables always run in float64). float32 is about twice as fast
    for large inputs; the observed score is always computed in float64, and every float32 null
    score within 1e-4 * max(1, |observed|) of it is re-scored in float64, so the p-value is the
    float64 one (float32 rounding is far below that window) and null_mean / null_std differ from
    the float64 ones by rounding only (~1e-6).

    ``device``: None (the default) runs the named metrics in NumPy / SciPy, the reference numbers.
    A torch device ("cpu", "cuda", "cuda:N" or a ``torch.device``) runs them in torch on that
    device (featgeom.stats.kernels): the same permutations (still drawn on the host by
    ``rng.permutation``), the same float64 preparation, per-permutation arithmetic in
    ``precision`` and the same float32 re-scoring, so the p-values are the NumPy path's and the
    scores differ from it by rounding only (~1e-12 in float64, ~1e-6 in float32). With
    kind="subset", each draw of a named metric (and the observed score) is scored on the device
    (:func:`featgeom.stats.kernels.paired_scores`). Callables always run in NumPy. ConfigError
    naming ``device`` for a bad one (or CUDA on a machine without it); ResourceError when the
    device runs out of memory.

    p-value = (1 + #{null >= observed}) / (1 + n_perm), where null scores within 1e-12 (relative)
    of the observed one count as ties, so rounding never shrinks p (e.g. when a permutation happens
    to be the identity). ``n_perm`` >= 19 (MIN_N_PERM), so that p can reach 0.05, and small enough
    for the null scores to fit 2 GiB (:func:`check_permutations`). Same inputs and seed give the
    same numbers. Errors raised by the metric on a subset draw propagate (the paper's code silently
    skipped such draws).
    Raises ConfigError for an unknown metric/kind, bad n_perm/seed/metric_kwargs or misplaced
    pools; ShapeError/DataError for bad x, y or pools, as the metric itself would.
    """
    check_permutations(n_perm, seed, n_scores=1)
    label = _check_options(metric, kind, (pool_x, pool_y, paired_pool), metric_kwargs)
    _check_precision(precision, kind)
    device = optional_device(device)
    kwargs = dict(metric_kwargs or {})
    xa, ya = paired_inputs(x, y, min_rows=2)
    if kind == "shuffle":
        return _shuffle_tests([(metric, kwargs)], xa, ya, n_perm, seed, precision, device)[label]
    score = _scorer(metric, kwargs, device)
    observed = score(xa, ya)
    px, py = _pools(xa, ya, pool_x, pool_y, paired_pool)
    rng = np.random.default_rng(seed)
    null = _subset_null(score, xa.shape[0], px, py, paired_pool, n_perm, rng)
    return summarize_null(label, kind, observed, null, seed, precision)


def null_tests(
    metrics: Sequence[str | Metric] | str,
    x: object,
    y: object,
    *,
    n_perm: int = 1000,
    seed: int = 0,
    metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    precision: str = "float64",
    device: object = None,
) -> dict[str, NullTestResult]:
    """Shuffle null tests of several metrics (a single name is one metric) on the same permutations,
    keyed by metric name.

    Each result is the one ``null_test(metric, x, y, n_perm=n_perm, seed=seed,
    metric_kwargs=metric_kwargs.get(name), precision=precision, device=device)`` returns (same
    permutations, same scores up to rounding), but the named spectral metrics (svcca,
    svcca_legacy, cka, procrustes) share one cross product per permutation, the dominant cost
    (see featgeom.stats.kernels), on ``device`` when one is given. ``metric_kwargs`` maps a
    metric's name (a callable's ``__name__``) to its keyword arguments. ConfigError for an empty
    or duplicated metric list or kwargs of a metric not listed; other errors as null_test.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    labels = [metric_label(m) for m in metrics]
    kwargs = dict(metric_kwargs or {})
    if not labels or len(set(labels)) < len(labels):
        raise ConfigError(f"metrics: need distinct metrics, got {labels}")
    if not set(kwargs) <= set(labels):
        raise ConfigError(f"metric_kwargs: for metrics not listed: {sorted(set(kwargs) - set(labels))}")
    check_permutations(n_perm, seed, n_scores=len(labels))
    for metric, label in zip(metrics, labels):
        _check_options(metric, "shuffle", (None, None, False), kwargs.get(label))
    _check_precision(precision, "shuffle")
    device = optional_device(device)
    xa, ya = paired_inputs(x, y, min_rows=2)
    requests = [(m, dict(kwargs.get(label) or {})) for m, label in zip(metrics, labels)]
    return _shuffle_tests(requests, xa, ya, n_perm, seed, precision, device)


def _shuffle_tests(
    requests: Sequence[Request],
    x: np.ndarray,
    y: np.ndarray,
    n_perm: int,
    seed: int,
    precision: str,
    device: object,
) -> dict[str, NullTestResult]:
    """Shuffle nulls: each kernel draws its permutations from a fresh default_rng(seed)."""
    results = {}
    for kernel in shuffle_kernels(requests, x, y, device):
        observed = kernel.values(np.arange(kernel.n_items)[None, :], np.float64)[:, 0]
        rng = np.random.default_rng(seed)
        null = _shuffle_null(kernel, n_perm, rng, PRECISIONS[precision], observed)
        for label, obs, scores in zip(kernel.metrics, observed, null):
            results[label] = summarize_null(label, "shuffle", float(obs), scores, seed, precision)
    return {metric_label(m): results[metric_label(m)] for m, _ in requests}


def _scorer(
    metric: str | Metric, kwargs: Mapping[str, Any], device: object
) -> Callable[[np.ndarray, np.ndarray], float]:
    """score(x, y) of ``metric`` with ``kwargs``: the metric's function on the NumPy path and for
    callables, else the named metric's kernel on ``device`` (:func:`paired_scores`)."""
    func = metric_function(metric, kwargs)  # ConfigError for unknown names or kwargs, before any draw
    if device is None or not isinstance(metric, str):
        return lambda a, b: as_score(func(a, b), metric)
    return lambda a, b: float(paired_scores([(metric, kwargs)], a, b, device)[0])


def _check_precision(precision: str, kind: str) -> None:
    """ConfigError for an unknown precision, or float32 with kind='subset'."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: unknown {precision!r} (allowed: {', '.join(PRECISIONS)})")
    if kind == "subset" and precision != "float64":
        raise ConfigError("precision: only kind='shuffle' supports float32")


def check_permutations(n_perm: object, seed: object, *, n_scores: int) -> None:
    """ConfigError unless ``n_perm`` and ``seed`` can run a permutation test of ``n_scores`` nulls.

    n_perm: an integer >= MIN_N_PERM = 19. Every p-value is at least p_min = 1 / (1 + n_perm), so
    with fewer permutations no result could ever reach p <= 0.05 (n_perm = 1 would always report
    p >= 0.5). And the null scores, 8 * n_scores * n_perm bytes of float64, must fit
    NULL_BYTES_LIMIT (2 GiB): refused here, before anything is allocated. seed: an integer >= 0.
    """
    if not is_integer(n_perm) or n_perm < MIN_N_PERM:
        raise ConfigError(
            f"n_perm: must be an integer >= {MIN_N_PERM}, got {n_perm!r} (p-values are at least "
            f"1 / (1 + n_perm), and only from {MIN_N_PERM} permutations on can they reach 0.05)"
        )
    if 8 * n_scores * n_perm > NULL_BYTES_LIMIT:
        most = NULL_BYTES_LIMIT // (8 * n_scores)
        raise ConfigError(
            f"n_perm: {n_perm:,} permutations x {n_scores} score(s) need "
            f"{8 * n_scores * n_perm / 2**30:,.1f} GiB of null scores, over the "
            f"{NULL_BYTES_LIMIT / 2**30:g} GiB limit; use at most {most:,} permutations"
        )
    if not is_integer(seed) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")


def _check_options(
    metric: str | Metric,
    kind: str,
    pool_options: tuple[object, object, bool],
    metric_kwargs: object,
) -> str:
    """Validate the options other than n_perm and seed (not the arrays); return the metric's name."""
    pool_x, pool_y, paired_pool = pool_options
    if kind not in KINDS:
        raise ConfigError(f"kind: unknown null {kind!r} (allowed: {', '.join(KINDS)})")
    if metric_kwargs is not None and not isinstance(metric_kwargs, Mapping):
        type_name = type(metric_kwargs).__name__
        raise ConfigError(f"metric_kwargs: must be a mapping or None, got {type_name}")
    if kind == "shuffle" and (pool_x is not None or pool_y is not None or paired_pool):
        raise ConfigError("pool_x, pool_y, paired_pool: only used by kind='subset'")
    if kind == "subset" and (pool_x is None or pool_y is None):
        raise ConfigError("pool_x, pool_y: kind='subset' needs both pools to draw subsets from")
    return metric_label(metric)


def _shuffle_null(
    kernel: ShuffleKernel, n_perm: int, rng: np.random.Generator, dtype: type, observed: np.ndarray
) -> np.ndarray:
    """Scores (n_metrics, n_perm) of n_perm random row permutations, in memory-bounded batches."""
    batch = max(1, _BATCH_BYTES // kernel.bytes_per_perm)
    null = np.empty((len(kernel.metrics), n_perm))
    for start in range(0, n_perm, batch):
        stop = min(n_perm, start + batch)
        perms = np.stack([rng.permutation(kernel.n_items) for _ in range(stop - start)])
        null[:, start:stop] = _scores(kernel, perms, dtype, observed)
    return null


def _scores(kernel: ShuffleKernel, perms: np.ndarray, dtype: type, observed: np.ndarray) -> np.ndarray:
    """Kernel scores (n_metrics, B) of perms; float32 near-ties of ``observed`` re-scored in float64.

    Held in float64, so that the re-scored values keep their float64 bits.
    """
    scores = kernel.values(perms, dtype).astype(np.float64, copy=False)
    if dtype == np.float64:
        return scores
    window = _FLOAT32_WINDOW * np.maximum(1.0, np.abs(observed))[:, None]
    near = np.any(np.abs(scores - observed[:, None]) <= window, axis=0)
    if near.any():
        scores[:, near] = kernel.values(perms[near], np.float64)
    return scores


def _pools(
    x: np.ndarray, y: np.ndarray, pool_x: object, pool_y: object, paired_pool: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Checked pools: same dims as x / y, at least n rows, equal rows when paired."""
    pools = as_matrix(pool_x, "pool_x"), as_matrix(pool_y, "pool_y")
    for pool, side, name in zip(pools, (x, y), ("pool_x", "pool_y")):
        if pool.shape[1] != side.shape[1]:
            raise ShapeError(
                f"{name}: has dim {pool.shape[1]} but its side of the pairs has dim {side.shape[1]}"
            )
        if pool.shape[0] < side.shape[0]:
            raise ShapeError(
                f"{name}: has {pool.shape[0]} rows, fewer than the {side.shape[0]} rows to draw"
            )
    if paired_pool:
        check_same_rows(*pools, names=("pool_x", "pool_y"))
    return pools


def _subset_null(
    score: Callable[[np.ndarray, np.ndarray], float],
    n: int,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    paired_pool: bool,
    n_perm: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scores of n_perm random size-n subsets of the pools (unpaired unless paired_pool)."""
    null = np.empty(n_perm)
    for j in range(n_perm):
        ix = rng.choice(pool_x.shape[0], size=n, replace=False)
        iy = ix if paired_pool else rng.choice(pool_y.shape[0], size=n, replace=False)
        null[j] = score(pool_x[ix], pool_y[iy])
    return null


def summarize_null(
    metric: str, kind: str, observed: float, null: np.ndarray, seed: int, precision: str
) -> NullTestResult:
    """NullTestResult of ``null`` (n_perm,): +1-corrected one-sided p-value, mean, std.

    p = (1 + #{null >= observed - 1e-12 max(1, |observed|)}) / (1 + n_perm).
    """
    null.setflags(write=False)
    exceed = int(np.count_nonzero(null >= observed - _TIE_RTOL * max(1.0, abs(observed))))
    return NullTestResult(
        metric=metric,
        kind=kind,
        observed=observed,
        null_mean=float(null.mean()),
        null_std=float(null.std()),
        p_value=(1 + exceed) / (1 + null.size),
        null=null,
        n_perm=int(null.size),
        seed=int(seed),
        precision=precision,
    )
