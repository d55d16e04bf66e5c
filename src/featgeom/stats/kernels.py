"""Metric registry and vectorised permutation kernels for :func:`featgeom.stats.null_test`.

A shuffle kernel prepares a metric once for fixed x and y, then scores batches of row
permutations: ``values(perms)[j] == metric(x, y[perms[j]])``. Row permutations keep column
means, so nothing is re-centered; each named metric reduces to small per-permutation work:

* svcca / svcca_legacy: Qx, Qy = reduced orthonormal bases; value = mean singular value of
  Qx^T Qy[perm] (kx, ky). Legacy keeps kx = ky = 1, so this is |Qx . Qy[perm]|.
* procrustes: A, B = principal-component scores of the unit-norm centered sides; value =
  nuclear norm of A^T B[perm].
* cka: A, B = principal-component scores; value = ||A^T B[perm]||_F^2 / (||Sx^2|| ||Sy^2||), or
  via Gram matrices <K, L[perm][:, perm]> when that is cheaper.
* rsa: square RDM comparison vectors Rx, Ry (ranked once: ranks just move with the items);
  value = <Rx, Ry[perm][:, perm]>_F / 2.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from scipy.spatial.distance import squareform

from featgeom.errors import ConfigError, DataError
from featgeom.similarity import linear_cka, procrustes, rsa, svcca
from featgeom.similarity.base import paired_inputs, principal_coords
from featgeom.similarity.rsa import rdm_vectors
from featgeom.similarity.svcca import svcca_bases

Metric = Callable[..., float]
# CKA switches to Gram matrices when rank_x * rank_y > _GATHER_COST * n: gathering one entry of
# a permuted (n, n) Gram matrix costs roughly as much as this many BLAS multiply-adds (measured
# crossover 50-250 on a 2-core CPU, lower once the Gram matrices leave the cache).
_GATHER_COST = 64


@dataclass(frozen=True)
class ShuffleKernel:
    """Metric prepared for fixed x, y: ``values`` maps perms (B, n_items) to scores (B,).

    bytes_per_perm bounds the scratch memory one permutation needs inside a batch.
    """

    n_items: int
    bytes_per_perm: int
    values: Callable[[np.ndarray], np.ndarray]


def _svcca_legacy(x: object, y: object) -> float:
    """SVCCA as the universality paper's code computed it: |corr(PC1_x, PC1_y)|."""
    return svcca(x, y, legacy_top1=True)


def metric_function(metric: str | Metric, metric_kwargs: Mapping[str, Any]) -> Metric:
    """Return ``metric`` (a name in METRIC_NAMES or a callable) with ``metric_kwargs`` bound."""
    func = _named(metric)[0] if isinstance(metric, str) else metric
    if not callable(func):
        raise ConfigError(f"metric: expected a name or a callable, got {type(metric).__name__}")
    return partial(func, **_checked_kwargs(func, metric, metric_kwargs))


def shuffle_kernel(
    metric: str | Metric, x: np.ndarray, y: np.ndarray, metric_kwargs: Mapping[str, Any]
) -> ShuffleKernel:
    """Prepare ``metric`` for scoring row permutations of ``y`` against fixed ``x``."""
    if not isinstance(metric, str):
        return _loop_kernel(metric_function(metric, metric_kwargs), metric, x, y)
    func, build = _named(metric)
    return build(x, y, **_checked_kwargs(func, metric, metric_kwargs))


def as_score(value: object, metric: str | Metric) -> float:
    """``value`` as a finite float, else DataError naming the metric."""
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        kind = type(value).__name__
        raise DataError(f"metric {metric_label(metric)}: returned {kind}, not a number") from None
    if not np.isfinite(score):
        raise DataError(f"metric {metric_label(metric)}: returned a non-finite value ({score})")
    return score


def metric_label(metric: str | Metric) -> str:
    """Printable name of a metric name or callable."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", type(metric).__name__)


def _checked_kwargs(
    func: Metric, metric: str | Metric, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """ConfigError unless ``func(x, y, **kwargs)`` is a valid call signature."""
    if not kwargs:
        return {}
    try:
        inspect.signature(func).bind(None, None, **kwargs)
    except (TypeError, ValueError) as exc:  # ValueError: signature cannot be inspected
        label = metric_label(metric)
        raise ConfigError(f"metric_kwargs: not accepted by metric {label} ({exc})") from None
    return dict(kwargs)


def _loop_kernel(func: Metric, label: Metric, x: np.ndarray, y: np.ndarray) -> ShuffleKernel:
    """Fallback for callables: call the metric once per permutation."""

    def values(perms: np.ndarray) -> np.ndarray:
        return np.array([as_score(func(x, y[p]), label) for p in perms])

    return ShuffleKernel(x.shape[0], 8 * x.shape[0], values)


def _scratch(cache: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 work array of ``shape``, reusing (and growing) ``cache[key]`` across batches.

    Reuse matters: freshly allocated pages are slow to fault in, and a batch of permutations
    would otherwise allocate a new n * k (or n * n) array per batch.
    """
    size = math.prod(shape)
    if key not in cache or cache[key].size < size:
        cache[key] = np.empty(size)
    return cache[key][:size].reshape(shape)


class _CrossProducts:
    """Batches of a^T b[perm] as (B, ka, kb) views, from one gather and one matrix product."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a, self.b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        self.bytes_per_perm = 8 * (a.shape[0] + a.shape[1]) * b.shape[1]
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, perms: np.ndarray) -> np.ndarray:
        (n, ka), kb, count = self.a.shape, self.b.shape[1], len(perms)
        gathered = _scratch(self._cache, "gathered", (n, count, kb))
        np.take(self.b, perms.T, axis=0, out=gathered, mode="clip")  # [:, j] is b[perms[j]]
        product = _scratch(self._cache, "product", (ka, count * kb))
        np.matmul(self.a.T, gathered.reshape(n, count * kb), out=product)
        return product.reshape(ka, count, kb).transpose(1, 0, 2)


class _SquareAlignment:
    """<mx, my[perm][:, perm]>_F for each perm, for symmetric (n, n) matrices mx and my."""

    def __init__(self, mx: np.ndarray, my: np.ndarray) -> None:
        self.mx, self.my = mx, my
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, perms: np.ndarray) -> np.ndarray:
        n = self.my.shape[0]
        rows = _scratch(self._cache, "rows", (n, n))
        both = _scratch(self._cache, "both", (n, n))
        out = np.empty(len(perms))
        for j, p in enumerate(perms):
            np.take(self.my, p, axis=0, out=rows, mode="clip")
            np.take(rows, p, axis=1, out=both, mode="clip")
            out[j] = np.vdot(self.mx, both)
        return out


def _singular_value_kernel(
    a: np.ndarray, b: np.ndarray, reduce: Callable[..., np.ndarray]
) -> ShuffleKernel:
    """Kernel scoring reduce(singular values of a^T b[perm]) over the last axis."""
    cross = _CrossProducts(a, b)

    def values(perms: np.ndarray) -> np.ndarray:
        return reduce(np.linalg.svd(cross(perms), compute_uv=False), axis=-1)

    return ShuffleKernel(a.shape[0], cross.bytes_per_perm, values)


def _svcca_kernel(x: np.ndarray, y: np.ndarray, **options: Any) -> ShuffleKernel:
    """SVCCA: mean singular value of Qx^T Qy[perm]."""
    qx, qy = svcca_bases(x, y, **options)
    return _singular_value_kernel(qx, qy, np.mean)


def _procrustes_kernel(x: np.ndarray, y: np.ndarray) -> ShuffleKernel:
    """Procrustes: nuclear norm of A^T B[perm], A and B the unit-norm principal scores."""
    xa, ya = paired_inputs(x, y, min_rows=2)
    (ux, sx), (uy, sy) = principal_coords(xa, "x"), principal_coords(ya, "y")
    a, b = ux * (sx / np.linalg.norm(sx)), uy * (sy / np.linalg.norm(sy))
    return _singular_value_kernel(a, b, np.sum)


def _cka_kernel(x: np.ndarray, y: np.ndarray) -> ShuffleKernel:
    """Linear CKA: feature form on principal scores, or Gram form when the ranks are large."""
    xa, ya = paired_inputs(x, y, min_rows=2)
    (ux, sx), (uy, sy) = principal_coords(xa, "x"), principal_coords(ya, "y")
    a, b, n = ux * sx, uy * sy, xa.shape[0]
    denom = np.linalg.norm(sx**2) * np.linalg.norm(sy**2)
    if a.shape[1] * b.shape[1] <= _GATHER_COST * n:
        cross = _CrossProducts(a, b)

        def features(perms: np.ndarray) -> np.ndarray:
            return np.sum(cross(perms) ** 2, axis=(1, 2)) / denom

        return ShuffleKernel(n, cross.bytes_per_perm, features)
    align = _SquareAlignment(a @ a.T, b @ b.T)
    return ShuffleKernel(n, 8 * n, lambda perms: align(perms) / denom)


def _rsa_kernel(x: np.ndarray, y: np.ndarray, **options: Any) -> ShuffleKernel:
    """RSA: <Rx, Ry[perm][:, perm]>_F / 2 on the square (zero-diagonal) comparison vectors.

    With more than max_items items, permutes within RSA's own item sub-sample.
    """
    align = _SquareAlignment(*(squareform(v) for v in rdm_vectors(x, y, **options)))
    return ShuffleKernel(align.my.shape[0], 8 * align.my.shape[0], lambda perms: align(perms) / 2)


_REGISTRY: dict[str, tuple[Metric, Callable[..., ShuffleKernel]]] = {
    "svcca": (svcca, _svcca_kernel),
    "svcca_legacy": (_svcca_legacy, partial(_svcca_kernel, legacy_top1=True)),
    "rsa": (rsa, _rsa_kernel),
    "cka": (linear_cka, _cka_kernel),
    "procrustes": (procrustes, _procrustes_kernel),
}
METRIC_NAMES = tuple(_REGISTRY)


def _named(name: str) -> tuple[Metric, Callable[..., ShuffleKernel]]:
    """(metric function, kernel builder) for a metric name; ConfigError if unknown."""
    if name not in _REGISTRY:
        raise ConfigError(f"metric: unknown name {name!r} (allowed: {', '.join(METRIC_NAMES)})")
    return _REGISTRY[name]
