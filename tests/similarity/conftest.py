"""Shared fixtures for the similarity tests: seeded data."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def related(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paired rows with partial shared structure: x (60, 8), y (60, 6), anisotropic spectra."""
    z = rng.standard_normal((60, 8)) * np.array([5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.3])
    y = z @ rng.standard_normal((8, 6)) + 0.8 * rng.standard_normal((60, 6))
    return z, y
