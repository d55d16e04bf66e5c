"""Which true features does an SAE find, and which do two SAEs share? (task 6.2)

A true feature f is *covered* by an SAE when some decoder row has |cos| >= threshold with f.
"""

from __future__ import annotations

import numpy as np

from featgeom.checks import as_matrix
from featgeom.errors import ShapeError
from featgeom.metrics._common import abs_cos, probability, row_blocks, same_dim


def covered(decoder: object, features: object, *, threshold: float = 0.9) -> np.ndarray:
    """(N,) bool: feature j is covered, max_i |cos(decoder_i, features_j)| >= threshold.

    decoder (n, d), features (N, d).
    """
    return _covered(decoder, features, threshold, ("decoder", "features"))


def _covered(
    decoder: object, features: object, threshold: float, names: tuple[str, str]
) -> np.ndarray:
    """:func:`covered`, with error messages naming ``names``."""
    dec, feat = as_matrix(decoder, names[0]), as_matrix(features, names[1])
    same_dim(dec, feat, names)
    thr = probability(threshold, "threshold")
    out = np.empty(feat.shape[0], dtype=bool)
    for block in row_blocks(feat.shape[0], dec.shape[0]):
        out[block] = abs_cos(feat[block], dec).max(axis=1) >= thr
    return out


def coverage_fraction(decoder: object, features: object, threshold: float = 0.9) -> float:
    """Fraction of the N true features covered by the decoder, in [0, 1] (1 = all found)."""
    return float(covered(decoder, features, threshold=threshold).mean())


def coverage(
    decoder_a: object,
    decoder_b: object,
    features: object,
    *,
    threshold: float = 0.9,
    features_b: object = None,
) -> dict[str, float]:
    """Coverage of N true features by two SAEs, as fractions of N.

    decoder_a (n_a, d_a), decoder_b (n_b, d_b); features (N, d_a) in A's space; features_b
    (N, d_b), row j = the same true feature j in B's space (default: ``features``, for two SAEs
    in one space). Returns a, b (covered by each), overlap (by both), unique_a (A only),
    unique_b (B only), union (by either); overlap + unique_a + unique_b = union <= 1.
    """
    cov_a = _covered(decoder_a, features, threshold, ("decoder_a", "features"))
    if features_b is None:
        cov_b = _covered(decoder_b, features, threshold, ("decoder_b", "features"))
    else:
        cov_b = _covered(decoder_b, features_b, threshold, ("decoder_b", "features_b"))
    if cov_a.size != cov_b.size:
        raise ShapeError(
            f"features_b: has {cov_b.size} rows but features has {cov_a.size}: "
            "row j must be the same true feature in both spaces"
        )
    return {
        "a": float(cov_a.mean()),
        "b": float(cov_b.mean()),
        "overlap": float(np.mean(cov_a & cov_b)),
        "unique_a": float(np.mean(cov_a & ~cov_b)),
        "unique_b": float(np.mean(~cov_a & cov_b)),
        "union": float(np.mean(cov_a | cov_b)),
    }
