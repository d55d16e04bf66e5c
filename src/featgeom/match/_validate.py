"""Argument checks shared by the match functions; errors name the argument."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from featgeom.errors import ConfigError, DataError, ShapeError


def bool_mask(mask: object, n: int, name: str) -> np.ndarray:
    """Return ``mask`` as a boolean array of shape (n,); None means "keep everything"."""
    if mask is None:
        return np.ones(n, dtype=bool)
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise DataError(f"{name}: expected a boolean mask, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ShapeError(f"{name}: expected a boolean mask of shape ({n},), got shape {arr.shape}")
    return arr


def threshold(value: object, name: str) -> float:
    """Return a finite float threshold; None means no threshold (-inf)."""
    if value is None:
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"{name}: expected a finite number or None, got {value!r}")
    return float(value)


def positive_number(value: object, name: str) -> float:
    """Return ``value`` as a float > 0, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < float(value) < math.inf:
        raise ConfigError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int >= 1, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def choice(value: object, allowed: tuple[str, ...], name: str) -> str:
    """Return ``value`` if it is one of ``allowed``, else ConfigError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}; got {value!r}")
    return value


def preview(ids: np.ndarray, limit: int = 5) -> str:
    """Short text listing of integer ids for error messages: '3, 8, 12, ... (40 in all)'."""
    head = ", ".join(str(int(i)) for i in ids[:limit])
    return head if ids.size <= limit else f"{head}, ... ({ids.size} in all)"
