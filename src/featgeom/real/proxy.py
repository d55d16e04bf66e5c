"""Superposition proxy from the eigenvalue decay of activation covariances (plan task 3.6).

The plan's proxy: the faster the covariance spectrum of a layer's activations decays, the fewer
directions carry its variance and the lower its superposition; a flat spectrum (variance spread
over every dimension) is what many features packed into few dimensions produce.  For a
covariance with eigenvalues l_1 >= ... >= l_d >= 0 (``spectrum_stats``):

- participation ratio   PR = (sum_k l_k)^2 / sum_k l_k^2, in [1, d]; ``pr_fraction`` = PR / d;
- effective rank        exp(H(p)), p_k = l_k / sum_j l_j, H(p) = -sum_k p_k log p_k (0 log 0 = 0)
  (Roy & Vetterli 2007), in [1, d];
- ``top_decile_variance``  sum of the top ceil(d / 10) eigenvalues / sum of all;
- ``alpha``                power-law decay exponent: least-squares slope of log l_k on log k,
  l_k ~ C k^(-alpha), over the ranks k = k_min .. k_max (1-based) with
  k_min = max(1, ceil(fit_range[0] * d)), k_max = max(k_min + 1, floor(fit_range[1] * d)),
  default fit_range (0.05, 0.5): the top 5% is skipped (a few outlier dimensions, the mean of
  non-centred data, dominate the head of real LLM spectra) and so is the bottom half (noise floor
  and numerically zero eigenvalues); ranks whose eigenvalue is <= 1e-12 * l_1 are left out of the fit.

PR, PR / d, effective rank, top-decile fraction and alpha are invariant to rotating the data
and to scaling it by a constant (they depend on the eigenvalues only through ratios), but not to
rescaling single dimensions.  The covariance is accumulated in float64 (``CovarianceAccumulator``,
Chan et al.'s pairwise merge of per-batch means and centred scatter matrices), so a layer never
has to be in memory at once.  ``layer_spectra`` applies this to a stored
:class:`featgeom.real.activations.ActivationSet`, ``member_spectra`` to the hidden states of a
synthetic family's members next to each member's rho_mm, so that real layers and synthetic worlds
can be placed on one scale.

Measured on synthetic worlds (tests/real/test_proxy.py): at a fixed hidden_dim, more features
(higher rho_mm) flatten the spectrum (PR up, alpha down), as the plan expects; but raising rho_mm
at a fixed feature count by pushing directions together (a family's ``superposition_delta``)
steepens it.  The statistic tracks how many features share the dimensions, not rho_mm as such.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from featgeom.errors import ConfigError, DataError, ShapeError

DEFAULT_FIT_RANGE = (0.05, 0.5)
EIGEN_FLOOR = 1e-12  # eigenvalues <= EIGEN_FLOOR * l_1 count as zero in the alpha fit


class CovarianceAccumulator:
    """Streaming mean and covariance of rows, in float64.

    ``add_batch(x)`` with x (rows, d); ``covariance()`` is the (d, d) sample covariance
    sum_i (x_i - mean)(x_i - mean)^T / (n - 1).  Batches are merged with the pairwise update
    M2 = M2_a + M2_b + (mean_b - mean_a)(mean_b - mean_a)^T n_a n_b / (n_a + n_b), which avoids the
    cancellation of accumulating raw sums of x x^T when the mean is large against the spread.
    """

    def __init__(self, dim: int | None = None, name: str = "acts") -> None:
        if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
            raise ConfigError(f"dim: must be a positive integer, got {dim!r}")
        self.name = name
        self.dim = None if dim is None else int(dim)
        self.n = 0
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None

    def add_batch(self, x: Any) -> None:
        """Add rows x (rows, d); rows may be any real dtype; non-finite values raise DataError."""
        x = _as_rows(x, self.name)
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise ShapeError(f"{self.name}: batch has {x.shape[1]} columns, earlier batches {self.dim}")
        if x.shape[0] == 0:
            return
        mean = x.mean(axis=0)
        centred = x - mean
        scatter = centred.T @ centred
        if self.n == 0:
            self.n, self._mean, self._scatter = x.shape[0], mean, scatter
            return
        n_a, n_b = self.n, x.shape[0]
        delta = mean - self._mean
        total = n_a + n_b
        self._scatter = self._scatter + scatter + np.outer(delta, delta) * (n_a * n_b / total)
        self._mean = self._mean + delta * (n_b / total)
        self.n = total

    @property
    def mean(self) -> np.ndarray:
        """(d,) float64 mean of the rows added so far."""
        self._check_enough(1)
        return self._mean.copy()

    def covariance(self) -> np.ndarray:
        """(d, d) float64 sample covariance (divisor n - 1)."""
        self._check_enough(2)
        return self._scatter / (self.n - 1)

    def compute(self, fit_range: tuple[float, float] = DEFAULT_FIT_RANGE) -> dict[str, Any]:
        """The spectrum statistics of the covariance so far (see :func:`spectrum_from_eigenvalues`)."""
        stats = spectrum_from_eigenvalues(covariance_eigenvalues(self.covariance()), fit_range, self.name)
        stats["n"] = self.n
        return stats

    def _check_enough(self, need: int) -> None:
        if self.n < need:
            raise DataError(f"{self.name}: needs at least {need} rows for a covariance, got {self.n}")


def covariance_eigenvalues(cov: np.ndarray) -> np.ndarray:
    """Eigenvalues (d,) of a symmetric covariance (d, d), descending, round-off negatives set to 0."""
    eig = np.linalg.eigvalsh(np.asarray(cov, dtype=np.float64))[::-1]
    return np.clip(eig, 0.0, None)


def spectrum_from_eigenvalues(eigenvalues: Any, fit_range: tuple[float, float] = DEFAULT_FIT_RANGE,
                              name: str = "eigenvalues") -> dict[str, Any]:
    """Decay statistics of a spectrum l (d,) >= 0 (sorted here, descending); see the module docstring.

    Returns {"d", "total_variance", "participation_ratio", "pr_fraction", "effective_rank",
    "top_decile_variance", "alpha", "alpha_r2", "alpha_k_min", "alpha_k_max", "eigenvalues"}
    ("eigenvalues": the descending spectrum as a float64 array; alpha is NaN when fewer than two
    ranks of the fit range are above the floor).
    """
    lo, hi = _check_fit_range(fit_range)
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())[::-1]
    if lam.size == 0 or not np.all(np.isfinite(lam)) or lam[-1] < 0:
        raise DataError(f"{name}: eigenvalues must be finite and >= 0 (got {lam.size} values)")
    total = float(lam.sum())
    if total <= 0:
        raise DataError(f"{name}: zero total variance (constant data): no spectrum to measure")
    d = lam.size
    p = lam / total
    nz = p[p > 0]
    pr = total ** 2 / float(np.sum(lam ** 2))
    alpha, r2, k_min, k_max = power_law_exponent(lam, lo, hi)
    return {
        "d": d,
        "total_variance": total,
        "participation_ratio": pr,
        "pr_fraction": pr / d,
        "effective_rank": float(np.exp(-np.sum(nz * np.log(nz)))),
        "top_decile_variance": float(lam[: math.ceil(d / 10)].sum() / total),
        "alpha": alpha,
        "alpha_r2": r2,
        "alpha_k_min": k_min,
        "alpha_k_max": k_max,
        "eigenvalues": lam,
    }


def power_law_exponent(lam: np.ndarray, lo: float, hi: float) -> tuple[float, float, int, int]:
    """(alpha, R^2, k_min, k_max): -slope of the least-squares line of log l_k on log k, ranks k_min..k_max.

    lam (d,) descending; k_min = max(1, ceil(lo d)), k_max = min(d, max(k_min + 1, floor(hi d))).
    """
    d = lam.size
    k_min = max(1, math.ceil(lo * d))
    k_max = min(d, max(k_min + 1, math.floor(hi * d)))
    k = np.arange(k_min, k_max + 1)
    vals = lam[k - 1]
    keep = vals > EIGEN_FLOOR * lam[0]
    if keep.sum() < 2:
        return float("nan"), float("nan"), k_min, k_max
    x, y = np.log(k[keep].astype(np.float64)), np.log(vals[keep])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss if ss > 0 else 1.0
    return float(-slope), r2, k_min, k_max


def spectrum_stats(acts: Any, fit_range: tuple[float, float] = DEFAULT_FIT_RANGE) -> dict[str, Any]:
    """Covariance-spectrum decay statistics of activations acts (n, d), n >= 2 (module docstring)."""
    acc = CovarianceAccumulator(name="acts")
    acc.add_batch(acts)
    return acc.compute(fit_range)


def layer_spectra(acts_set: Any, layers: Sequence[int] | None = None,
                  fit_range: tuple[float, float] = DEFAULT_FIT_RANGE) -> list[dict[str, Any]]:
    """One row per layer of a stored ActivationSet (anything with ``.layers`` and ``.iter_layer(l)``
    yielding (rows, d) chunks): {"layer", "n", statistics...}, streamed chunk by chunk."""
    if not hasattr(acts_set, "layers") or not hasattr(acts_set, "iter_layer"):
        raise ConfigError(f"acts_set: needs .layers and .iter_layer(layer) (an ActivationSet), "
                          f"got {type(acts_set).__name__}")
    available = tuple(int(layer) for layer in acts_set.layers)
    chosen = available if layers is None else tuple(int(layer) for layer in layers)
    missing = [layer for layer in chosen if layer not in available]
    if missing:
        raise ConfigError(f"layers: layer {missing[0]} is not stored in the activation set (stored: {available})")
    rows = []
    for layer in chosen:
        stats = accumulate(acts_set.iter_layer(layer), f"layer {layer}").compute(fit_range)
        rows.append({"layer": layer, **stats})
    return rows


def accumulate(chunks: Iterable[Any], name: str) -> CovarianceAccumulator:
    """A CovarianceAccumulator fed every (rows, d) chunk of ``chunks``."""
    acc = CovarianceAccumulator(name=name)
    for chunk in chunks:
        acc.add_batch(chunk)
    return acc


def member_spectra(family: Any, members: Sequence[str | int] | None = None, n_samples: int = 20_000,
                   seed: int = 0, batch_size: int = 4096,
                   fit_range: tuple[float, float] = DEFAULT_FIT_RANGE) -> list[dict[str, Any]]:
    """One row per member of a SyntheticModelFamily: {"member", "num_features", "hidden_dim",
    "rho_mm", "n", statistics...} of the covariance of n_samples hidden states (family.iter_batches
    with ``seed``: the same draw of the shared universe for every member)."""
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ConfigError(f"n_samples: needs at least 2 samples for a covariance, got {n_samples!r}")
    chosen = [family.member(m) for m in (family.names if members is None else members)]
    accs = {m.name: CovarianceAccumulator(m.hidden_dim, name=f"member {m.name}") for m in chosen}
    for batch in family.iter_batches(int(n_samples), seed=seed, batch_size=batch_size,
                                     members=[m.name for m in chosen]):
        for name, hidden in batch.hidden.items():
            accs[name].add_batch(hidden)
    return [{"member": m.name, "num_features": m.num_features, "hidden_dim": m.hidden_dim,
             "rho_mm": float(m.rho_mm), **accs[m.name].compute(fit_range)} for m in chosen]


def _as_rows(x: Any, name: str) -> np.ndarray:
    """x as a float64 (rows, d) array; ShapeError unless 2-D with d >= 1, DataError for NaN/inf."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: not a numeric array ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ShapeError(f"{name}: expected a 2-D array (rows, d) with d >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or inf")
    return arr


def _check_fit_range(fit_range: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in fit_range)
    except (TypeError, ValueError):
        raise ConfigError(f"fit_range: expected two fractions (lo, hi), got {fit_range!r}") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ConfigError(f"fit_range: needs 0 <= lo < hi <= 1, got {fit_range!r}")
    return lo, hi
