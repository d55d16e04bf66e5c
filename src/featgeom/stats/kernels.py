"""Named metrics and vectorised permutation kernels for :mod:`featgeom.stats`.

The named metrics are the similarity registry's (:data:`featgeom.similarity.registry.SIMILARITY`):
METRIC_NAMES lists them in registry order, SPECTRAL those with the registry's ``spectral`` flag, and
a name's function, default keyword arguments and fewest paired rows (``pairs_needed``; fewer is a
DataError naming the metric) are read from its entry. The spectral ones share the fast path below,
RSA has its own kernel, and every other name (debiased_cka, mutual_knn, anything registered later)
and every callable is called once per permutation (the loop path, always NumPy, float64).

A shuffle kernel prepares one or more metrics once for fixed x and y, then scores batches of row
permutations: ``values(perms, dtype)[m, j] == metrics[m](x, y[perms[j]])``. Row permutations keep
column means, so nothing is re-centered. With x_c = Ux diag(sx) Vx^T and y_c = Uy diag(sy) Vy^T
the thin SVDs of the centered sides (Ux (n, rx), Uy (n, ry)), every spectral metric is a function
of one cross product C = Ux^T Uy[perm] (rx, ry), computed once per permutation and shared:

* svcca: mean singular value of C[:kx, :ky] (Ux[:, :kx], Uy[:, :ky] are SVCCA's reduced bases).
* svcca_legacy: |C[0, 0]| (kx = ky = 1).
* cka: ||diag(sx) C diag(sy)||_F^2 / (||sx^2|| ||sy^2||); when CKA is the only spectral metric
  and rx * ry is large, <K, L[perm][:, perm]>_F / (||sx^2|| ||sy^2||) with Gram matrices K, L.
* procrustes: ||diag(sx) C diag(sy)||_* / (||sx|| ||sy||) (nuclear norm).
* rsa: square RDM comparison vectors Rx, Ry (ranked once: ranks just move with the items);
  value = <Rx, Ry[perm][:, perm]>_F / 2.

``dtype`` is the working precision of the per-permutation arithmetic. float64 uses LAPACK's SVD
and matches the metric functions to rounding; float32 halves the cost of the products (the
bottleneck: 2 n rx ry flops per permutation) and takes singular values as square roots of the
eigenvalues of the float32 Gram matrix of the smaller side (errors ~1e-6; featgeom.stats re-scores
near-ties in float64).

``device`` (:func:`shuffle_kernels`, :func:`paired_scores`): None runs everything above in NumPy /
SciPy, the reference numbers. A torch device ("cpu", "cuda", "cuda:N" or a ``torch.device``,
checked by :func:`featgeom.device.torch_device`) runs the same kernels in torch on that device
(:mod:`featgeom.stats._torch_kernels`). The readers above (what each metric reads off C), the
choice between C and Gram matrices for CKA (same crossover on both paths) and each kernel's
assembly are written once over an :class:`ArrayOps` (the array library and device); only the
array primitives (thin SVD, cross products, square alignment, singular values) have a NumPy and
a torch version. On the torch path the columns are centered on the host (the shared checks and
power-of-two rescaling), the thin SVD runs on the device in float64, SVCCA's kept directions and
RSA's ranked RDM vectors are computed on the host by the NumPy code and moved to the device, and
the per-permutation work runs on the device in ``dtype`` (singular values: float64
torch.linalg.svdvals; float32 square roots of the eigenvalues of the smaller Gram matrix, as on
the NumPy path). Permutations are drawn on the host and given as NumPy arrays either way; scores
come back as NumPy arrays (float64 on the torch path). Callables always run on the NumPy path.
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Protocol

import numpy as np
from scipy.spatial.distance import squareform

from featgeom.errors import ConfigError, DataError
from featgeom.similarity.base import blas_single_thread, principal_coords
from featgeom.similarity.registry import SIMILARITY, SimilarityMetric
from featgeom.similarity.rsa import rdm_vectors
from featgeom.similarity.svcca import kept_directions, svcca_checked_k

Metric = Callable[..., float]
Request = tuple["str | Metric", Mapping[str, Any]]
Array = Any  # np.ndarray on the NumPy path, torch.Tensor on the torch path
# CKA alone switches to Gram matrices when rank_x * rank_y > _GATHER_COST * n: gathering one
# entry of a permuted (n, n) Gram matrix costs roughly as much as this many BLAS multiply-adds
# (measured crossover 50-250 on a 2-core CPU, lower once the Gram matrices leave the cache).
_GATHER_COST = 64
# The named metrics are the similarity registry's (featgeom.similarity.registry.SIMILARITY, in its
# order); SPECTRAL: those read off the shared cross product (the registry's spectral flag).
METRIC_NAMES = tuple(SIMILARITY)
SPECTRAL = tuple(name for name, entry in SIMILARITY.items() if entry.spectral)
_PARALLEL_SCRATCH_BYTES = 128 * 2**20  # per-worker scratch above which RSA/CKA gathers run serially
_PARALLEL_MIN_SIZE = 64 * 64  # matrices smaller than this get their singular values in one call


@dataclass(frozen=True)
class ShuffleKernel:
    """Metrics prepared for fixed x, y.

    ``values(perms, dtype)`` maps NumPy perms (B, n_items) to NumPy scores (len(metrics), B),
    computed in ``dtype`` (np.float64 or np.float32) on the kernel's array library and device.
    bytes_per_perm bounds the float64 scratch memory one permutation needs inside a batch.
    metrics: the metrics' printable names.
    """

    metrics: tuple[str, ...]
    n_items: int
    bytes_per_perm: int
    values: Callable[[np.ndarray, type], np.ndarray]


class _RegistryFunctions(Mapping[str, Metric]):
    """Read-only view name -> function of the similarity registry (live: later registrations show)."""

    def __getitem__(self, name: str) -> Metric:
        return SIMILARITY[name].function

    def __iter__(self) -> Any:
        return iter(SIMILARITY)

    def __len__(self) -> int:
        return len(SIMILARITY)


_FUNCTIONS: Mapping[str, Metric] = _RegistryFunctions()


def metric_names() -> tuple[str, ...]:
    """The names of the similarity registry now (METRIC_NAMES plus any registered since import)."""
    return tuple(SIMILARITY)


def metric_function(metric: str | Metric, metric_kwargs: Mapping[str, Any]) -> Metric:
    """Return ``metric`` (a registered name or a callable) with ``metric_kwargs`` bound.

    A name's registry defaults (SimilarityMetric.defaults) are bound first, ``metric_kwargs`` over them.
    """
    if isinstance(metric, str):
        entry = _named(metric)
        func, kwargs = entry.function, {**entry.defaults, **metric_kwargs}
    else:
        func, kwargs = metric, metric_kwargs
    if not callable(func):
        raise ConfigError(f"metric: expected a name or a callable, got {type(metric).__name__}")
    return partial(func, **_checked_kwargs(func, metric, kwargs))


def check_pairs(metric: str | Metric, kwargs: Mapping[str, Any], n_pairs: int) -> None:
    """DataError naming the metric when a registered metric needs more than ``n_pairs`` paired rows
    (SimilarityMetric.pairs_needed with these kwargs); callables check their own inputs."""
    if isinstance(metric, str) and metric in SIMILARITY:
        needed = SIMILARITY[metric].pairs_needed(kwargs)
        if n_pairs < needed:
            raise DataError(f"metric {metric}: needs at least {needed} paired rows, got {n_pairs}")


def shuffle_kernels(
    requests: Sequence[Request], x: np.ndarray, y: np.ndarray, device: object = None
) -> list[ShuffleKernel]:
    """Kernels scoring row permutations of ``y`` against fixed ``x`` for each (metric, kwargs).

    The named spectral metrics (SPECTRAL) share one kernel and so one cross product per
    permutation; rsa, each other named metric and each callable get their own kernel (the other
    names and the callables: the loop path). Metric order is kept within kernels. DataError naming
    the metric when x has fewer rows than a named metric needs (SimilarityMetric.pairs_needed).
    ``device``: None for the NumPy path, else the torch device the named metrics run on
    (ConfigError naming ``device`` for a bad one); callables always run in NumPy.
    """
    xp = array_ops(device)
    funcs = [metric_function(metric, kwargs) for metric, kwargs in requests]
    for (metric, _), func in zip(requests, funcs):
        check_pairs(metric, func.keywords, x.shape[0])
    spectral = [(m, f.keywords) for (m, _), f in zip(requests, funcs) if _is_spectral(m)]
    kernels = [_spectral_kernel(x, y, spectral, xp)] if spectral else []
    for (metric, _), func in zip(requests, funcs):
        if metric == "rsa":
            kernels.append(_rsa_kernel(x, y, xp, **func.keywords))
        elif not _is_spectral(metric):
            kernels.append(_loop_kernel(func, metric, x, y))
    return kernels


def paired_scores(
    requests: Sequence[Request], x: np.ndarray, y: np.ndarray, device: object = None
) -> np.ndarray:
    """Scores (len(requests),) of each (metric, kwargs) on the paired rows x (n, dx), y (n, dy).

    Equal to calling each metric (to rounding), but the spectral metrics share one thin SVD per
    side (the kernels of :func:`shuffle_kernels` at the identity permutation, on ``device``).
    """
    values = {}
    for kernel in shuffle_kernels(requests, x, y, device):  # RSA's kernel may hold a sub-sample
        identity = np.arange(kernel.n_items)[None, :]
        values.update(zip(kernel.metrics, kernel.values(identity, np.float64)[:, 0]))
    return np.array([as_score(values[metric_label(m)], m) for m, _ in requests])


class Batched(Protocol):
    """Scores of a batch of permutations: ``(perms (B, n) on the device, dtype) -> (B, ...)``.

    bytes_per_perm: float64 scratch memory one permutation of the batch needs.
    """

    bytes_per_perm: int

    def __call__(self, perms: Array, dtype: Any) -> Array: ...


class ArrayOps(Protocol):
    """The array library (and device) a kernel runs on: what its readers and assembly need.

    Host inputs are float64 NumPy arrays; "arrays" are the library's own, on its device, and
    ``dtype`` the library's dtype (``kernel`` turns NumPy perms and dtypes into them).
    """

    def asarray(self, a: np.ndarray) -> Array:
        """The float64 host array ``a`` as a float64 array of the library."""

    def principal_coords(self, a: np.ndarray, name: str) -> tuple[Array, np.ndarray]:
        """(u (n, r) as an array, s (r,) on the host) as featgeom.similarity.base.principal_coords."""

    def cast(self, *arrays: np.ndarray) -> Callable[[Any], tuple[Array, ...]]:
        """``arrays`` (float64, host) in a dtype given later, copied once per dtype."""

    def einsum(self, subscripts: str, *operands: Array) -> Array:
        """numpy.einsum / torch.einsum."""

    def cross_products(self, a: Array, b: Array) -> Batched:
        """perms (B, n) -> a^T b[perm] (B, ka, kb) for a (n, ka), b (n, kb)."""

    def square_alignment(self, mx: Array, my: Array) -> Batched:
        """perms (B, n) -> <mx, my[perm][:, perm]>_F (B,) for symmetric (n, n) mx, my."""

    def singular_values(self, stacks: Sequence[Array | None]) -> list[Array | None]:
        """Singular values (B, min(p, q)) of each stack (B, p, q) (:func:`singular_values`)."""

    def stack(self, arrays: Sequence[Array]) -> Array:
        """numpy.stack / torch.stack along a new first axis."""

    def kernel(
        self,
        metrics: tuple[str, ...],
        n_items: int,
        bytes_per_perm: int,
        values: Callable[[Array, Any], Array],
    ) -> ShuffleKernel:
        """The ShuffleKernel of ``values`` (perms, dtype of the library) -> scores."""


def array_ops(device: object) -> ArrayOps:
    """NumPy for ``device=None``, else torch on the checked device (ConfigError naming ``device``)."""
    if device is None:
        return _NUMPY
    from featgeom.device import torch_device
    from featgeom.stats._torch_kernels import TorchOps

    return TorchOps(torch_device(device))


def _is_spectral(metric: str | Metric) -> bool:
    """True for the named metrics read off the shared cross product (SPECTRAL)."""
    return isinstance(metric, str) and metric in SPECTRAL


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
    """Callables and the non-spectral names other than RSA: call the metric once per permutation
    (always NumPy, float64)."""

    def values(perms: np.ndarray, dtype: type) -> np.ndarray:
        return np.array([[as_score(func(x, y[p]), label) for p in perms]])

    return ShuffleKernel((metric_label(label),), x.shape[0], 8 * x.shape[0], values)


def _scratch(
    cache: dict[tuple[str, str], np.ndarray], key: str, shape: tuple[int, ...], dtype: type
) -> np.ndarray:
    """A work array of ``shape`` and ``dtype``, reusing (and growing) a cached one across batches.

    Reuse matters: freshly allocated pages are slow to fault in, and a batch of permutations
    would otherwise allocate a new n * k (or n * n) array per batch.
    """
    size, slot = math.prod(shape), (key, np.dtype(dtype).name)
    if slot not in cache or cache[slot].size < size:
        cache[slot] = np.empty(size, dtype)
    return cache[slot][:size].reshape(shape)


class _Cast:
    """Arrays kept in float64, with float32 copies made on first use."""

    def __init__(self, *arrays: np.ndarray) -> None:
        self._copies = {np.dtype(np.float64): tuple(np.ascontiguousarray(a) for a in arrays)}

    def __call__(self, dtype: type) -> tuple[np.ndarray, ...]:
        key = np.dtype(dtype)
        if key not in self._copies:
            self._copies[key] = tuple(a.astype(dtype) for a in self._copies[np.dtype(np.float64)])
        return self._copies[key]


class _CrossProducts:
    """Batches of a^T b[perm] as (B, ka, kb) views, from one gather and one matrix product."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.sides = _Cast(a, b)
        self.bytes_per_perm = 8 * (a.shape[0] + a.shape[1]) * b.shape[1]
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, perms: np.ndarray, dtype: type) -> np.ndarray:
        a, b = self.sides(dtype)
        (n, ka), kb, count = a.shape, b.shape[1], len(perms)
        gathered = _scratch(self._cache, "gathered", (n, count, kb), dtype)
        np.take(b, perms.T, axis=0, out=gathered, mode="clip")  # [:, j] is b[perms[j]]
        product = _scratch(self._cache, "product", (ka, count * kb), dtype)
        np.matmul(a.T, gathered.reshape(n, count * kb), out=product)
        return product.reshape(ka, count, kb).transpose(1, 0, 2)


class _SquareAlignment:
    """<mx, my[perm][:, perm]>_F for each perm, for symmetric (n, n) matrices mx and my.

    Permutations are split over the thread pool when each worker's two (n, n) scratch arrays fit
    _PARALLEL_SCRATCH_BYTES; otherwise they run one after another.
    """

    def __init__(self, mx: np.ndarray, my: np.ndarray) -> None:
        self.sides, self.n = _Cast(mx, my), my.shape[0]
        self.bytes_per_perm = 8 * self.n  # the scratch is per worker: a permutation adds its indices
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, perms: np.ndarray, dtype: type) -> np.ndarray:
        mx, my = self.sides(dtype)
        out = np.empty(len(perms))

        def run(task: tuple[int, slice]) -> None:
            worker, part = task
            rows = _scratch(self._cache, f"rows{worker}", (self.n, self.n), dtype)
            both = _scratch(self._cache, f"both{worker}", (self.n, self.n), dtype)
            for j in range(part.start, part.stop):
                np.take(my, perms[j], axis=0, out=rows, mode="clip")
                np.take(rows, perms[j], axis=1, out=both, mode="clip")
                out[j] = np.vdot(mx, both)

        parallel = 2 * 8 * self.n**2 <= _PARALLEL_SCRATCH_BYTES
        parallel_map(run, list(enumerate(_chunks(len(perms)) if parallel else [slice(0, len(perms))])))
        return out


def singular_values(m: np.ndarray) -> np.ndarray:
    """Singular values (B, min(p, q)) of each matrix in m (B, p, q), ascending for float32.

    float64: LAPACK SVD (descending). float32: sqrt(max(0, eigenvalues of G)) with G = m^T m or
    m m^T, whichever is smaller (sigma^2 are G's eigenvalues; about half the work of an SVD,
    absolute error ~ sqrt(eps_32) ||m|| only for singular values near 0).
    """
    if m.dtype == np.float64:
        return np.linalg.svd(m, compute_uv=False)
    mt = np.swapaxes(m, 1, 2)
    gram = mt @ m if m.shape[2] <= m.shape[1] else m @ mt
    return np.sqrt(np.clip(np.linalg.eigvalsh(gram, UPLO="U"), 0.0, None))


def parallel_map(func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """[func(item) for item in items] on a pool of os.cpu_count() threads, BLAS single-threaded.

    For many small LAPACK calls (singular values of (B, r, r) batches) and gathers, one task per
    core beats multi-threaded BLAS, which slows down badly (10-100x measured) on a busy machine.
    The BLAS limit is process-wide while it lasts.
    """
    with blas_single_thread():
        if len(items) == 1:
            return [func(items[0])]
        return list(_pool().map(func, items))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1)


def _chunks(batch: int) -> list[slice]:
    """Up to os.cpu_count() contiguous slices covering range(batch)."""
    bounds = np.linspace(0, batch, min(batch, os.cpu_count() or 1) + 1).astype(int)
    return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class _Reader:
    """One spectral metric read off C batches (B, >= rows, >= cols), in any array library.

    ``matrices(C)`` -> (B, p, q) whose singular values it needs, or None; ``finish(C, sv)`` ->
    scores (B,) from C and those singular values (None if it needs none).
    """

    rows: int
    cols: int
    matrices: Callable[[Array], Array | None]
    finish: Callable[[Array, Array | None], Array]


def _svcca_reader(sx: np.ndarray, sy: np.ndarray, fixed_k: int | None, variance: float) -> _Reader:
    """SVCCA: mean singular value of C[:kx, :ky]; legacy is the kx = ky = 1 case, |C[0, 0]|."""
    kx = kept_directions(sx, "x", variance=variance, k=fixed_k)
    ky = kept_directions(sy, "y", variance=variance, k=fixed_k)
    if kx == ky == 1:
        return _Reader(1, 1, lambda c: None, lambda c, sv: abs(c[:, 0, 0]))
    return _Reader(kx, ky, lambda c: c[:, :kx, :ky], lambda c, sv: sv.mean(axis=-1))


def _scaled_reader(sx: np.ndarray, sy: np.ndarray, metric: str, xp: ArrayOps) -> _Reader:
    """CKA (squared Frobenius norm) or Procrustes (nuclear norm) of diag(sx) C diag(sy)."""
    casts, (rx, ry) = xp.cast(np.outer(sx, sy)), (sx.size, sy.size)
    if metric == "cka":
        denom = np.linalg.norm(sx**2) * np.linalg.norm(sy**2)

        def frobenius(c: Array, sv: None) -> Array:
            scaled = c[:, :rx, :ry] * casts(c.dtype)[0]
            return xp.einsum("bij,bij->b", scaled, scaled) / denom

        return _Reader(rx, ry, lambda c: None, frobenius)
    denom = np.linalg.norm(sx) * np.linalg.norm(sy)
    return _Reader(
        rx, ry, lambda c: c[:, :rx, :ry] * casts(c.dtype)[0], lambda c, sv: sv.sum(axis=-1) / denom
    )


def _read_all(readers: Sequence[_Reader], c: Array, xp: ArrayOps) -> Array:
    """Scores (len(readers), B) of the C batch c (B, rows, cols)."""
    values = xp.singular_values([reader.matrices(c) for reader in readers])
    return xp.stack([reader.finish(c, sv) for reader, sv in zip(readers, values)])


def _spectral_kernel(
    x: np.ndarray, y: np.ndarray, wanted: Sequence[tuple[str, Mapping[str, Any]]], xp: ArrayOps
) -> ShuffleKernel:
    """One kernel for named spectral metrics (name, kwargs), all read off C = Ux^T Uy[perm]."""
    options = [
        {**kwargs, "legacy_top1": True} if name == "svcca_legacy" else dict(kwargs)
        for name, kwargs in wanted
    ]
    fixed = {
        i: svcca_checked_k(x.shape, y.shape, **options[i])
        for i, (name, _) in enumerate(wanted)
        if name.startswith("svcca")
    }
    (ux, sx), (uy, sy) = xp.principal_coords(x, "x"), xp.principal_coords(y, "y")
    names = tuple(name for name, _ in wanted)
    if names == ("cka",) and sx.size * sy.size > _GATHER_COST * x.shape[0]:
        denom = np.linalg.norm(sx**2) * np.linalg.norm(sy**2)
        return _cka_gram_kernel(ux * xp.asarray(sx), uy * xp.asarray(sy), denom, xp)
    readers = [
        _svcca_reader(sx, sy, fixed[i], options[i].get("variance", 0.99))
        if i in fixed
        else _scaled_reader(sx, sy, name, xp)
        for i, (name, _) in enumerate(wanted)
    ]
    rows, cols = max(r.rows for r in readers), max(r.cols for r in readers)
    cross = xp.cross_products(ux[:, :rows], uy[:, :cols])

    def values(perms: Array, dtype: Any) -> Array:
        return _read_all(readers, cross(perms, dtype), xp)

    return xp.kernel(names, x.shape[0], cross.bytes_per_perm, values)


def _cka_gram_kernel(a: Array, b: Array, denom: float, xp: ArrayOps) -> ShuffleKernel:
    """CKA alone via Gram matrices: <a a^T, (b b^T)[perm][:, perm]>_F / denom."""
    align = xp.square_alignment(a @ a.T, b @ b.T)
    return xp.kernel(
        ("cka",), a.shape[0], align.bytes_per_perm, lambda perms, dtype: align(perms, dtype)[None] / denom
    )


def _rsa_kernel(x: np.ndarray, y: np.ndarray, xp: ArrayOps, **options: Any) -> ShuffleKernel:
    """RSA: <Rx, Ry[perm][:, perm]>_F / 2 on the square (zero-diagonal) comparison vectors.

    The ranked vectors are computed on the host (rdm_vectors) and moved to xp's device. With more
    than max_items items, permutes within RSA's own item sub-sample.
    """
    mx, my = (xp.asarray(squareform(v)) for v in rdm_vectors(x, y, **options))
    align = xp.square_alignment(mx, my)
    return xp.kernel(
        ("rsa",), mx.shape[0], align.bytes_per_perm, lambda perms, dtype: align(perms, dtype)[None] / 2
    )


class _NumpyOps:
    """ArrayOps of the NumPy path: LAPACK / BLAS on the host, many small calls on a thread pool."""

    asarray = staticmethod(np.asarray)
    principal_coords = staticmethod(principal_coords)
    cast = _Cast
    einsum = staticmethod(np.einsum)
    cross_products = _CrossProducts
    square_alignment = _SquareAlignment
    stack = staticmethod(np.stack)
    kernel = staticmethod(ShuffleKernel)

    @staticmethod
    def singular_values(stacks: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """Singular values of the stacks, split into per-core chunks (large matrices) in parallel."""
        tasks = [
            (i, part)
            for i, m in enumerate(stacks)
            if m is not None
            for part in (_chunks(len(m)) if m[0].size >= _PARALLEL_MIN_SIZE else [slice(None)])
        ]
        parts = parallel_map(lambda task: singular_values(stacks[task[0]][task[1]]), tasks)
        return [
            None if m is None else np.concatenate([p for (j, _), p in zip(tasks, parts) if j == i])
            for i, m in enumerate(stacks)
        ]


_NUMPY: ArrayOps = _NumpyOps()


def _named(name: str) -> SimilarityMetric:
    """The registry entry of a metric name; ConfigError if unknown."""
    if name not in SIMILARITY:
        raise ConfigError(f"metric: unknown name {name!r} (allowed: {', '.join(SIMILARITY)})")
    return SIMILARITY[name]
