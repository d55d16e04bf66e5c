"""Helpers for the similarity tests: random orthogonal maps and input transforms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random (d, d) orthogonal matrix (QR of a Gaussian matrix with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _rotate(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return a @ random_orthogonal(a.shape[1], rng)


def _permute_dims(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return a[:, rng.permutation(a.shape[1])]


def _scale(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 3.7 * a


def _translate(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return a + 10.0 * rng.standard_normal(a.shape[1])


# transforms every metric (except RSA with cosine/correlation RDMs) must ignore
INVARIANT_TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "rotation": _rotate,
    "permute_dims": _permute_dims,
    "isotropic_scale": _scale,
    "translation": _translate,
}


def anisotropic(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invertible but non-orthogonal, non-isotropic linear map of the columns of ``a``."""
    d = a.shape[1]
    return a @ (np.diag(np.linspace(0.2, 5.0, d)) @ random_orthogonal(d, rng))
