"""SVCCA: singular vector canonical correlation analysis (Raghu et al. 2017, "SVCCA: Singular
Vector Canonical Correlation Analysis for Deep Learning Dynamics and Interpretability").

Both sides are column-centered and reduced by SVD to their leading principal directions; CCA
between the reduced sides gives canonical correlations rho_1 >= rho_2 >= ..., which are the
cosines of the principal angles between the two reduced subspaces of item space R^n (Bjorck &
Golub 1973, "Numerical methods for computing angles between linear subspaces"): with orthonormal
bases Qx (n, kx) and Qy (n, ky) of the reduced data, rho = singular values of Qx^T Qy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.similarity.base import is_integer, paired_inputs, principal_coords

_VARIANCE_SLACK = 1e-12  # cumulative explained variance is compared to `variance` up to rounding


@dataclass(frozen=True, eq=False)
class SVCCAResult:
    """Full SVCCA output.

    value: mean canonical correlation. correlations: (min(kx, ky),) canonical correlations in
    descending order, each in [0, 1]. kx, ky: principal directions kept for x and for y.
    """

    value: float
    correlations: np.ndarray
    kx: int
    ky: int


def svcca(
    x: object, y: object, *, variance: float = 0.99, k: int | None = None, legacy_top1: bool = False
) -> float:
    """Mean canonical correlation between the SVD-reduced x (n, dim_x) and y (n, dim_y).

    See :func:`svcca_details` for the formula, options, invariances and range.
    """
    return svcca_details(x, y, variance=variance, k=k, legacy_top1=legacy_top1).value


def svcca_details(
    x: object, y: object, *, variance: float = 0.99, k: int | None = None, legacy_top1: bool = False
) -> SVCCAResult:
    """SVCCA of paired rows x (n, dim_x) and y (n, dim_y), with canonical correlations and kept k.

    Formula: center columns; x_c = Ux Sx Vx^T; keep the fewest kx leading directions whose
    cumulative explained variance sum(Sx[:kx]^2) / sum(Sx^2) >= ``variance`` (or exactly ``k``
    directions on each side if ``k`` is given); same for y. With Qx = Ux[:, :kx] and
    Qy = Uy[:, :ky], the canonical correlations are the singular values of Qx^T Qy (kx, ky), and
    the SVCCA value is their mean, in [0, 1].

    ``legacy_top1=True`` reproduces the universality paper's code (Lan et al. 2024, "Sparse
    Autoencoders Reveal Universal Feature Spaces Across Large Language Models"): its component
    count compared the *normalised* cumulative variance with ``threshold * total variance``, so
    whenever a side's centered sum of squares exceeds 1/0.99 (i.e. for practically all data) it
    kept exactly one direction. The value is then |corr(PC1_x, PC1_y)|, the absolute correlation
    of the two first principal-component scores (kx = ky = 1; ``variance`` is ignored and ``k``
    must be None).

    Invariant to: orthogonal transforms, isotropic scaling and translation of either side, and
    permutation of dims (all keep the PCA spectrum and the principal subspaces); to an invertible
    linear map only when it acts inside the kept subspace (e.g. when all directions are kept,
    k = rank, SVCCA is plain CCA, invariant to every invertible linear map).
    Not invariant to: general invertible linear maps (they re-weight directions and change which
    ones pass the variance threshold), or re-pairing of rows.

    Raises ConfigError for a bad ``variance``/``k``, ShapeError when k exceeds
    min(n_items - 1, dim) of a side, DataError when k exceeds a side's numerical rank or a side
    has no variance.
    """
    qx, qy = svcca_bases(x, y, variance=variance, k=k, legacy_top1=legacy_top1)
    rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return SVCCAResult(value=float(rho.mean()), correlations=rho, kx=qx.shape[1], ky=qy.shape[1])


def svcca_bases(
    x: object, y: object, *, variance: float = 0.99, k: int | None = None, legacy_top1: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal bases Qx (n, kx) and Qy (n, ky) of the reduced x and y (zero-mean columns).

    SVCCA = mean singular value of Qx^T Qy. featgeom.stats reuses these bases to evaluate
    many row permutations without re-centering or re-decomposing.
    """
    xa, ya = paired_inputs(x, y, min_rows=2)
    k = svcca_checked_k(xa.shape, ya.shape, variance=variance, k=k, legacy_top1=legacy_top1)
    bases = []
    for a, name in ((xa, "x"), (ya, "y")):
        u, s = principal_coords(a, name)
        bases.append(u[:, : kept_directions(s, name, variance=variance, k=k)])
    return bases[0], bases[1]


def svcca_checked_k(
    x_shape: tuple[int, int],
    y_shape: tuple[int, int],
    *,
    variance: float = 0.99,
    k: int | None = None,
    legacy_top1: bool = False,
) -> int | None:
    """Validate SVCCA's options for sides of these (n, dim) shapes; return the fixed k or None.

    The fixed k is 1 with ``legacy_top1``. ConfigError for bad options, ShapeError when k
    exceeds min(n_items - 1, dim) of a side.
    """
    _check_options(variance, k, legacy_top1)
    if legacy_top1:
        return 1
    for shape, name in ((x_shape, "x"), (y_shape, "y")):
        limit = min(shape[0] - 1, shape[1])
        if k is not None and k > limit:
            raise ShapeError(
                f"k: {k} exceeds min(n_items - 1, dim) = {limit} for {name} of shape {shape}"
            )
    return k


def kept_directions(s: np.ndarray, name: str, *, variance: float, k: int | None) -> int:
    """Leading principal directions SVCCA keeps for a side with singular values s (r,).

    The fewest whose cumulative explained variance sum(s[:kept]^2) / sum(s^2) >= variance, or
    ``k`` (DataError when k exceeds the numerical rank r).
    """
    if k is None:
        explained = np.cumsum(s**2) / np.sum(s**2)
        return int(np.argmax(explained >= variance - _VARIANCE_SLACK)) + 1
    if k > s.size:
        raise DataError(
            f"k: {k} exceeds the numerical rank {s.size} of {name}; "
            "the extra directions would be rounding noise"
        )
    return k


def _check_options(variance: float, k: int | None, legacy_top1: bool) -> None:
    """ConfigError unless 0 < variance <= 1, k is None or a positive int, not both k and legacy."""
    is_number = isinstance(variance, (int, float)) and not isinstance(variance, bool)
    if not is_number or not 0 < variance <= 1:
        raise ConfigError(f"variance: must be a number in (0, 1], got {variance!r}")
    if k is not None and (not is_integer(k) or k < 1):
        raise ConfigError(f"k: must be a positive integer or None, got {k!r}")
    if legacy_top1 and k is not None:
        raise ConfigError("k: cannot be combined with legacy_top1=True (it keeps one direction)")
