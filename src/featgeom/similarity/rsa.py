"""RSA: representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008,
"Representational similarity analysis - connecting the branches of systems neuroscience").

Each side is summarised by its representational dissimilarity matrix (RDM) among the n items;
the two RDMs (upper triangles) are compared with a Spearman or Pearson correlation.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

from featgeom.errors import ConfigError, DataError
from featgeom.similarity.base import is_integer, paired_inputs, rescaled

RDM_KINDS = ("euclidean", "correlation", "cosine")
COMPARE_KINDS = ("spearman", "pearson")
DEFAULT_MAX_ITEMS = 5000
_UNDEFINED_ROW = {"correlation": "is constant", "cosine": "is all zeros"}


def rsa(
    x: object,
    y: object,
    *,
    rdm: str = "euclidean",
    compare: str = "spearman",
    max_items: int | None = None,
    seed: int = 0,
) -> float:
    """Correlation between the RDMs of x (n, dim_x) and y (n, dim_y), in [-1, 1].

    Formula: D_x[i, j] = d(x_i, x_j) for i < j (n(n-1)/2 values), with d the Euclidean distance,
    the correlation distance 1 - pearson(x_i, x_j) (across features) or the cosine distance
    1 - cos(x_i, x_j); same for y; RSA = corr(D_x, D_y), Spearman (Pearson on average ranks) or
    Pearson.

    Exact when n <= ``max_items`` (default 5000). Beyond that, both sides are restricted to the
    same ``max_items`` items drawn without replacement by ``numpy.random.default_rng(seed)``
    (sorted indices), because the RDMs grow as n^2.

    Invariances depend on ``rdm``. euclidean: orthogonal transforms, isotropic scaling,
    translation, permutation of dims. cosine: orthogonal transforms, isotropic scaling,
    permutation of dims, per-item scaling; NOT translation. correlation: per-item shift and scale,
    permutation of dims; NOT orthogonal transforms or translation. Spearman adds invariance to any
    monotone transform of the dissimilarities. Never invariant to general invertible linear maps
    (they distort distances) or re-pairing of rows.

    Raises ConfigError for unknown ``rdm``/``compare`` or max_items < 3, ShapeError for fewer
    than 3 paired rows, DataError for constant items under rdm="correlation", zero items under
    rdm="cosine", or an RDM whose dissimilarities are all equal (correlation undefined).
    """
    vx, vy = rdm_vectors(x, y, rdm=rdm, compare=compare, max_items=max_items, seed=seed)
    return float(vx @ vy)


def rdm_vectors(
    x: object,
    y: object,
    *,
    rdm: str = "euclidean",
    compare: str = "spearman",
    max_items: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Condensed RDMs of x and y (m = n'(n'-1)/2,), ranked if Spearman, centered, unit norm.

    n' = min(n, max_items) items; RSA is their dot product. Entries follow scipy's condensed
    (pdist) order, so ``scipy.spatial.distance.squareform`` maps them back to (n', n').
    """
    _check_options(rdm, compare)
    xa, ya = paired_inputs(x, y, min_rows=3)
    items = _item_subset(xa.shape[0], max_items, seed)
    if items is not None:
        xa, ya = xa[items], ya[items]
    vx = _comparable(_rdm(xa, "x", rdm), "x", compare)
    return vx, _comparable(_rdm(ya, "y", rdm), "y", compare)


def _item_subset(n_items: int, max_items: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of the items RSA keeps, or None when all n_items are kept (exact RSA)."""
    limit = DEFAULT_MAX_ITEMS if max_items is None else max_items
    if not is_integer(limit) or limit < 3:
        raise ConfigError(f"max_items: must be an integer >= 3 or None, got {max_items!r}")
    if n_items <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_items, size=limit, replace=False))


def _check_options(rdm: str, compare: str) -> None:
    """ConfigError naming the allowed values when ``rdm`` or ``compare`` is unknown."""
    if rdm not in RDM_KINDS:
        raise ConfigError(f"rdm: unknown dissimilarity {rdm!r} (allowed: {', '.join(RDM_KINDS)})")
    if compare not in COMPARE_KINDS:
        allowed = ", ".join(COMPARE_KINDS)
        raise ConfigError(f"compare: unknown comparison {compare!r} (allowed: {allowed})")


def _rdm(a: np.ndarray, name: str, kind: str) -> np.ndarray:
    """Condensed dissimilarities (n(n-1)/2,) among the rows of ``a`` (n, d), up to a factor.

    ``a`` is rescaled by a power of two first (:func:`featgeom.similarity.base.rescaled`): that
    multiplies Euclidean dissimilarities by the same factor, leaves cosine and correlation ones
    unchanged, and so never changes RSA (ranks and Pearson correlations are scale-invariant),
    while keeping pdist's squares finite and nonzero for inputs near 1e300 or 1e-300.
    """
    if kind != "euclidean":
        bad = np.all(a == (a[:, :1] if kind == "correlation" else 0.0), axis=1)
        if bad.any():
            raise DataError(
                f"{name}: row {int(np.argmax(bad))} {_UNDEFINED_ROW[kind]}, "
                f"so its {kind} distance is undefined"
            )
    return pdist(rescaled(a), metric=kind)


def _comparable(d: np.ndarray, name: str, compare: str) -> np.ndarray:
    """Rank (Spearman) or keep (Pearson) ``d``, then center and scale it to unit norm.

    DataError when the dissimilarities are all equal up to rounding (range <= 1e-12 * max).
    """
    if np.ptp(d) <= 1e-12 * np.abs(d).max():
        raise DataError(f"{name}: all pairwise dissimilarities are equal, so RSA is undefined")
    v = rankdata(d) if compare == "spearman" else d
    v = v - v.mean()
    return v / np.linalg.norm(v)
